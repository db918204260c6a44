"""Results of an experiment: per-run values pulled from metrics.json, summaries over seeds
(mean ± half-range), and the results.json + results.md an experiment leaves in its work_dir."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import tensorflow as tf

from yt8m_kd.files import write_json


def eval_history(metrics: dict, names: Iterable[str]) -> list[dict]:
    """The step and the metrics `names` of every evaluation in a run's metrics.json (a resumed
    run's: those of the resumed part), the final one last."""
    names = tuple(names)
    return [
        {"step": e["step"], **{name: e[name] for name in names}}
        for e in metrics.get("eval_history", [])
    ]


def difficulty_passes(metrics: dict) -> list[dict]:
    """SAKD's difficulty passes in a run's metrics.json (those of the resumed part, if resumed):
    seconds, num_selected, selected_per_class, ... of each."""
    return [e["difficulty_pass"] for e in metrics.get("epochs", []) if "difficulty_pass" in e]


def describe(values: Iterable[float | None]) -> dict | None:
    """mean, min, max, half_range and sample std (0 for one value) of per-seed values; None when
    there are none or one is missing."""
    series = pd.Series(list(values), dtype=float)
    if series.empty or series.isna().any():
        return None
    low, high = float(series.min()), float(series.max())
    return {
        "mean": float(series.mean()),
        "min": low,
        "max": high,
        "half_range": (high - low) / 2,
        "std": float(series.std()) if len(series) > 1 else 0.0,
    }


def summarize(
    per_seed: Mapping[str, Mapping[str, dict]],
    fields: Sequence[str],
    *,
    same: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, dict]:
    """Every run's summary over the seeds: run name -> {field: `describe` of its per-seed values}.

    `per_seed` is seed -> run name -> that run's results. A field that some seed's run lacks is
    left out of that run's summary; the fields `same` (a model's size: equal for all seeds) are
    the first seed's values (where it has them), and `labels` adds each run's "label".
    """
    frame = pd.DataFrame(
        [{"run": name, **run} for runs in per_seed.values() for name, run in runs.items()]
    )
    first = next(iter(per_seed.values()))
    summary = {}
    for name, group in frame.groupby("run", sort=False):
        present = [f for f in fields if all(f in runs[name] for runs in per_seed.values())]
        summary[name] = {
            **({"label": labels[name]} if labels else {}),
            **{field: describe(group[field]) for field in present},
            **{field: first[name][field] for field in same if field in first[name]},
        }
    return summary


def format_pm(stats: dict | None, digits: int) -> str:
    """'mean ± half-range' of `describe`'s result, or 'n/a'."""
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['half_range']:.{digits}f}"


def format_mean(stats: dict | None, spec: str) -> str:
    """The mean of `describe`'s result formatted by `spec` (".0f", ".0%"), or 'n/a'."""
    return "n/a" if stats is None else format(stats["mean"], spec)


def machine() -> str:
    """What the timings were measured on, in words: "2 CPU cores, no GPU"."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{os.cpu_count()} CPU cores" + (f" and {gpus} GPU(s)" if gpus else ", no GPU")


def write_results(
    work_dir: str, results: dict, table: str, started: float, figures: Sequence[str] = ()
) -> None:
    """results.json and results.md in work_dir, then the table, the files and the wall time of
    the invocation (since `started`, a time.perf_counter() value) on stdout."""
    os.makedirs(work_dir, exist_ok=True)
    write_json(os.path.join(work_dir, "results.json"), results)
    with open(os.path.join(work_dir, "results.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    written = ["results.md", *(os.path.basename(p) for p in figures)]
    print(f"Results: {os.path.join(work_dir, 'results.json')}, " + ", ".join(written))
    print(f"Wall time of this invocation: {time.perf_counter() - started:.0f} s")
