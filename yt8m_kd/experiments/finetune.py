"""What the SAKD experiments (launchers/sakd_experiment.py, launchers/ucf101_experiment.py) share:
the SAKD settings, where a student starts from (--init), its run key, and the comparison of
every setting with vanilla KD of the same seed and init (speed-up, accuracy difference, time to
accuracy points).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from absl import flags

from yt8m_kd.experiments.flags import define_choice_list

# name -> (SAKD ratio, selection interval, class-balanced selection)
SAKD_SETTINGS = {
    "sakd_r10_i1": (0.1, 1, False),
    "sakd_r10_i5": (0.1, 5, False),
    "sakd_r50_i1": (0.5, 1, False),
    "sakd_r50_i5": (0.5, 5, False),
    "sakd_r10_i5_balanced": (0.1, 5, True),
}


def define_init_flag(inits: Iterable[str], help_text: str) -> None:
    """--init: where the students' weights start, one or more of `inits` (default scratch)."""
    define_choice_list("init", ["scratch"], help_text, tuple(inits))
    flags.register_validator("init", bool, message="names no initialisation")


def define_settings_flag(settings: Iterable[str], baseline: str) -> None:
    """--settings: which of `settings` to run, all by default; `baseline` (vanilla KD, which the
    others are measured against) among them."""
    settings = list(settings)
    define_choice_list(
        "settings",
        settings,
        f"The settings to run ({baseline} among them: the others are measured against it); a "
        "later invocation with more reuses the runs made.",
        settings,
    )
    flags.register_validator(
        "settings", lambda names: baseline in names, message=f"must include {baseline}"
    )


def setting_label(
    ratio: float | None,
    interval: int | None,
    balanced: bool = False,
    baseline: str = "vanilla KD, all samples",
) -> str:
    """A setting's label: `baseline` for vanilla KD (no ratio), else SAKD's ratio and interval."""
    if ratio is None:
        return baseline
    every = "every epoch" if interval == 1 else f"every {interval} epochs"
    return f"SAKD r={ratio:.0%}, re-select {every}" + (", class-balanced" if balanced else "")


def run_key(init: str, setting: str) -> str:
    """A student's key in the results and its run directory under seed{s}/: from scratch the
    setting's name, else from_<init>/<setting> (--init_from_run only acts before the first
    checkpoint, so each init needs its own directories)."""
    return setting if init == "scratch" else os.path.join(f"from_{init}", setting)


def init_source(init: str, teacher_run_dir: str, **others: str) -> dict:
    """The spec overrides that start a student from `init`: none from scratch, else
    --init_from_run=<the teacher's run dir> (init "teacher") or others[init]."""
    if init == "scratch":
        return {}
    return {"init_from_run": teacher_run_dir if init == "teacher" else others[init]}


def compare_with_baseline(
    runs: Mapping[str, dict],
    keys: Iterable[str],
    baseline: str,
    *,
    seconds: str,
    metrics: Iterable[str],
) -> None:
    """Adds to every run of `keys` (of one seed and init) its speed-up over the `baseline` run
    (the baseline's `seconds` over its own) and, per metric m, m_minus_<baseline name>."""
    base = runs[baseline]
    name = os.path.basename(baseline)
    for key in keys:
        run = runs[key]
        run[f"speedup_vs_{name}"] = base[seconds] / run[seconds]
        for metric in metrics:
            run[f"{metric}_minus_{name}"] = run[metric] - base[metric]


def goal_check(
    run_summary: Mapping | None, baseline: str, metric: str, margin: float, speedup: float
) -> dict | None:
    """Whether a run's means over seeds reach `metric` >= the baseline's - `margin` at >=
    `speedup` x its speed; None when the run or its comparison is missing."""
    if run_summary is None:
        return None
    difference = run_summary.get(f"{metric}_minus_{baseline}")
    faster = run_summary.get(f"speedup_vs_{baseline}")
    if difference is None or faster is None:
        return None
    return {
        f"{metric}_minus_{baseline}": difference["mean"],
        f"speedup_vs_{baseline}": faster["mean"],
        "reached": difference["mean"] >= -margin and faster["mean"] >= speedup,
    }


def time_points(summary: Iterable[Mapping], *, metric: str, seconds: str) -> list[dict]:
    """plots.plot_metric_vs_seconds's points of run summaries with "label" and "init": `metric`
    against `seconds`, the means over seeds, error bars the half-ranges."""
    return [
        {
            "label": s["label"],
            "group": f"from {s['init']}",
            "seconds": s[seconds]["mean"],
            "value": s[metric]["mean"],
            "x_error": s[seconds]["half_range"],
            "y_error": s[metric]["half_range"],
        }
        for s in summary
    ]
