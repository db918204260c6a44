"""Training examples/s of the tiny presets with one step per tf.function call against several
(--steps_per_loop), in one run, the variants taking turns.

Small models spend most of a step in the per-call overhead (the Python loop, the function call,
fetching the NaN guard), which a loop inside the call pays once per N steps. Each run trains the
preset from scratch on the synthetic set for --steps steps, logging every --log_every steps (a
call never runs past a log step); its rate is the examples/s of its last logging window (steady
state: tracing and the pipeline's start are in the first). Best of --repeats per variant.

    .venv/bin/python benchmarks/steps_per_loop_benchmark.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from yt8m_kd import flags as yflags
from yt8m_kd import machine as yt8m_machine
from yt8m_kd.experiments.data import synthetic_yt8m
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.runs import train_or_reuse

REPO_ROOT = Path(__file__).resolve().parent.parent
GOAL = 2.0  # issue 13: several steps per call / one step per call, tiny student


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny_student_k6.flags"])
    parser.add_argument("--steps_per_loop", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--log_every", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train_videos", type=int, default=1024)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "steps_per_loop.json",
    )
    return parser.parse_args(argv)


def examples_per_second(preset: str, steps_per_loop: int, args, train: str, run_dir: str) -> float:
    config = yflags.read_flagfile(
        str(REPO_ROOT / "models" / preset),
        train_data_pattern=train,
        max_steps=args.steps,
        log_every_steps=args.log_every,
        checkpoint_every_steps=args.steps,
        steps_per_loop=steps_per_loop,
        progress_bar=False,
    )
    metrics, _ = train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    return float(metrics["train"]["examples_per_sec"])


def run(args: argparse.Namespace, work_dir: str) -> dict:
    results = {}
    for preset in args.presets:
        model = yflags.read_flagfile(str(REPO_ROOT / "models" / preset)).model
        train, _ = synthetic_yt8m(os.path.join(work_dir, preset), model, args.train_videos, 64)
        rates = {n: [] for n in args.steps_per_loop}
        for repeat in range(args.repeats):
            for n in args.steps_per_loop:
                run_dir = os.path.join(work_dir, f"{preset}_{n}_{repeat}")
                rates[n].append(examples_per_second(preset, n, args, train, run_dir))
                print(f"{preset} steps_per_loop={n}: {rates[n][-1]:,.0f} examples/s", flush=True)
        best = {str(n): max(r) for n, r in rates.items()}
        base = best[str(min(args.steps_per_loop))]
        results[preset] = {
            "examples_per_sec": best,
            "all_examples_per_sec": {str(n): r for n, r in rates.items()},
            "ratio_over_one_step_per_call": {n: rate / base for n, rate in best.items()},
        }
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "training steps per tf.function call (issue 13)",
        "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        "settings": {**vars(args), "output": str(args.output)},
        "goal_ratio": GOAL,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory() as work_dir:
        report["presets"] = run(args, work_dir)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({p: r["ratio_over_one_step_per_call"] for p, r in report["presets"].items()}))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
