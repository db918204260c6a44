"""Why several steps per tf.function call do not double the tiny student's rate (issue 13,
"several steps per call"): the trainer's compiled step timed with 1 and with 10 steps per call,
over its own input pipeline and over one batch held in memory, in one run.

A loop inside the call saves only the per-call overhead (the Python loop, the call with its
iterator argument, fetching the NaN guard). Timing the same step both ways, with and without the
input pipeline's cost, splits a step's time into that overhead, the step's own work and the
input's share:

- pipeline_N: `_train_step` over the trainer's own input pipeline (`_train_dataset`), N steps per
  call, as the training loop calls it;
- in_memory_N: the same step over one batch of that pipeline repeated from memory
  (`from_tensors(batch).repeat()`, distributed like the trainer's): no input cost;
- empty_call: a tf.function call that does nothing, for scale.

Milliseconds per step, the best of --repeats rounds in which the variants take turns (both
iterators stay alive throughout: the pipeline's buffers are full before it is timed). Writes
benchmarks/results/steps_per_loop_profile.json.

    .venv/bin/python benchmarks/steps_per_loop_profile.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import compute_benchmark  # benchmarks/: its preset config and one-device trainer
import tensorflow as tf
from _report import write_report

from yt8m_kd import flags as yflags
from yt8m_kd.experiments.data import synthetic_yt8m

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny_student_k6.flags")
    parser.add_argument("--train_videos", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "steps_per_loop_profile.json",
    )
    return parser.parse_args(argv)


def profile(args: argparse.Namespace, root: str) -> dict:
    model = yflags.read_flagfile(str(REPO_ROOT / "models" / args.preset)).model
    train, _ = synthetic_yt8m(os.path.join(root, "data"), model, args.train_videos, 64)
    config = compute_benchmark._config(args.preset, train)  # quiet: no logs nor checkpoints
    trainer = compute_benchmark.one_device_trainer(config, os.path.join(root, "run"))
    strategy = trainer.strategy
    pipeline = iter(trainer._train_dataset(0))
    batch = next(pipeline)
    in_memory = iter(
        strategy.distribute_datasets_from_function(
            lambda _: tf.data.Dataset.from_tensors(batch).repeat()
        )
    )
    iterators = {"pipeline": pipeline, "in_memory": in_memory}

    def ms_per_step(iterator, per_call: int) -> float:
        calls = max(1, args.steps // per_call)
        started = time.perf_counter()
        for _ in range(calls):
            out = trainer._train_step(iterator, tf.constant(per_call, tf.int64))
            bool(out["finite"])  # the host reads the NaN guard every call, as the loop does
        return 1e3 * (time.perf_counter() - started) / (calls * per_call)

    @tf.function
    def empty():
        return tf.constant(True)

    def empty_call_ms() -> float:
        started = time.perf_counter()
        for _ in range(args.steps):
            bool(empty())
        return 1e3 * (time.perf_counter() - started) / args.steps

    variants = {
        f"{name}_{n}": (lambda it=it, n=n: ms_per_step(it, n))
        for name, it in iterators.items()
        for n in (1, 10)
    }
    variants["empty_call"] = empty_call_ms
    for run in variants.values():  # untimed: tracing, the pipeline's start
        run()
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            timings[name].append(run())
            print(f"{name}: {timings[name][-1]:.2f} ms", flush=True)
    best = {name: min(values) for name, values in timings.items()}
    call_overhead = (best["in_memory_1"] - best["in_memory_10"]) * 10 / 9
    return {
        "preset": args.preset,
        "batch_size": config.train.batch_size,
        "ms_per_step": best,
        "all_ms_per_step": timings,
        "examples_per_sec": {
            name: config.train.batch_size * 1e3 / ms
            for name, ms in best.items()
            if name != "empty_call"
        },
        # in_memory_N = work + overhead / N: solved from N = 1 and N = 10.
        "per_call_overhead_ms": call_overhead,
        "step_work_ms": best["in_memory_1"] - call_overhead,
        "input_share_ms": best["pipeline_10"] - best["in_memory_10"],
        "ratios": {
            "pipeline_10_over_1": best["pipeline_1"] / best["pipeline_10"],
            "in_memory_10_over_1": best["in_memory_1"] / best["in_memory_10"],
            # with no per-call overhead at all, over the loop's real input
            "pipeline_bound_without_overhead": best["pipeline_1"]
            / (best["pipeline_1"] - call_overhead),
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        results = profile(args, root)
    write_report(
        args, "steps per call: the step, its input and the call overhead apart (issue 13)", results
    )
    print(json.dumps(results["ratios"], indent=2))


if __name__ == "__main__":
    main()
