"""The fuzz campaign over both data families' readers (issue 11): seeded mutants of valid
synthetic records and frames folders, each read in strict and skip mode and its outcome classified
against an oracle (yt8m_kd/fuzz). Writes benchmarks/results/fuzz.json: mutants per kind and
family, outcomes per class, forbidden totals, good records written vs read in skip mode, seconds,
and one stratified sample (one mutant per kind) through the launchers.

    .venv/bin/python benchmarks/fuzz_records.py                       # 1,000 mutants per family
    .venv/bin/python benchmarks/fuzz_records.py --mutants_per_family=200 --nolaunchers
    .venv/bin/python benchmarks/fuzz_records.py --nocampaign   # the launcher sample again

Exit status 1 when any outcome is in a forbidden class.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from yt8m_kd import machine as yt8m_machine  # noqa: E402
from yt8m_kd.fuzz import campaign, entry_points  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

flags.DEFINE_integer("mutants_per_family", 1000, "Mutants of each family.", lower_bound=1)
flags.DEFINE_list("families", ["yt8m", "ucf101"], "Data families to fuzz.")
flags.DEFINE_integer("seed", 0, "Seeds every mutant.")
flags.DEFINE_float("timeout_s", 120.0, "A read taking longer than this is a hang.")
flags.DEFINE_integer(
    "workers", os.cpu_count() or 1, "Reader worker processes (one per core).", lower_bound=1
)
flags.DEFINE_integer("group_size", 16, "Record mutants read together (see campaign.run_mutants).")
flags.DEFINE_boolean("launchers", True, "Also run one mutant per kind through the launchers.")
flags.DEFINE_boolean(
    "campaign",
    True,
    "Run the reader campaign; --nocampaign reruns only the launcher sample and replaces that part "
    "of an existing --output (its reader results kept as they were).",
)
flags.DEFINE_list("launcher_kinds", [], "Only these kinds through the launchers (default: all).")
flags.DEFINE_string(
    "output", str(REPO_ROOT / "benchmarks" / "results" / "fuzz.json"), "Where the JSON goes."
)
FLAGS = flags.FLAGS


def launcher_sample(seed: int, families: list[str], workers: int) -> dict:
    """One mutant per kind (index 0) of each family through the launchers, with a teacher run of
    the YouTube-8M fuzz widths for cache_teacher.py and infer.py; `workers` mutants at a time."""
    outcomes: dict = {}
    with tempfile.TemporaryDirectory() as work:
        teacher = None
        if "yt8m" in families:
            valid = campaign.make_mutant("yt8m", seed, "extra_features", 0)
            teacher = entry_points.train_teacher(
                valid, valid.write(work), os.path.join(work, "teacher")
            )
        mutants = [
            campaign.make_mutant(family, seed, kind, 0)
            for family in families
            for kind in campaign.kinds(family)
            if not FLAGS.launcher_kinds or kind in FLAGS.launcher_kinds
        ]

        def run(mutant):
            base = mutant.write(work)
            expected = campaign.expected_of(mutant, base)
            runs = entry_points.run_entry_points(mutant, base, expected, work, teacher)
            print(mutant.name, {name: run["class"] for name, run in runs.items()}, flush=True)
            return mutant, runs

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for mutant, runs in pool.map(run, mutants):
                outcomes.setdefault(mutant.family, {})[mutant.kind] = runs
    forbidden = [
        f"{family} {kind} {name}: {run['class']}"
        for family, kinds in outcomes.items()
        for kind, runs in kinds.items()
        for name, run in runs.items()
        if run["class"] in entry_points.FORBIDDEN
    ]
    return {"runs": outcomes, "forbidden_total": len(forbidden), "forbidden": forbidden}


def reader_campaign() -> tuple[dict, dict]:
    """(the report of the reader campaign, its summary)."""
    start = time.perf_counter()
    counts = {family: FLAGS.mutants_per_family for family in FLAGS.families}
    results = campaign.run_campaign(
        counts,
        seed=FLAGS.seed,
        timeout_s=FLAGS.timeout_s,
        group_size=FLAGS.group_size,
        workers=FLAGS.workers,
        progress=lambda line: print(line, flush=True),
    )
    summary = campaign.summarize(results, time.perf_counter() - start)
    report = {
        "benchmark": "fuzz campaign over the record readers (yt8m_kd/fuzz)",
        "machine": yt8m_machine.machine_info(tensorflow=tf.__version__),
        "settings": {
            "mutants_per_family": FLAGS.mutants_per_family,
            "families": FLAGS.families,
            "seed": FLAGS.seed,
            "timeout_s": FLAGS.timeout_s,
            "group_size": FLAGS.group_size,
            "workers": FLAGS.workers,
            "kinds": {family: list(campaign.kinds(family)) for family in FLAGS.families},
        },
        "allowed_classes": list(campaign.ALLOWED),
        "forbidden_classes": list(campaign.FORBIDDEN),
        **summary,
    }
    return report, summary


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.campaign:
        report, summary = reader_campaign()
    else:
        report = json.loads(Path(FLAGS.output).read_text())
        summary = {k: report[k] for k in ("families", "forbidden_total")}
    if FLAGS.launchers:
        launch_start = time.perf_counter()
        report["launchers"] = launcher_sample(FLAGS.seed, FLAGS.families, FLAGS.workers)
        report["launchers"]["seconds"] = round(time.perf_counter() - launch_start, 1)
        if not FLAGS.campaign:
            report["launchers"]["run_apart"] = {
                "note": "rerun with --nocampaign after the reader campaign",
                "machine": yt8m_machine.machine_info(tensorflow=tf.__version__),
            }
    Path(FLAGS.output).parent.mkdir(parents=True, exist_ok=True)
    Path(FLAGS.output).write_text(json.dumps(report, indent=2) + "\n")
    for family, result in summary["families"].items():
        print(
            f"{family}: {result['mutants']} mutants, {result['forbidden_total']} forbidden "
            f"outcomes {result['forbidden_per_class']}, skip mode good records "
            f"{result['skip_mode_good_records']}"
        )
    print(f"wrote {FLAGS.output}")
    launch_forbidden = report.get("launchers", {}).get("forbidden_total", 0)
    if summary["forbidden_total"] or launch_forbidden:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
