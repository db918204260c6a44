"""What --cache_dtype=float16 costs and saves: a teacher cache's size, and the GAP of students
distilled from it against the same students distilled from the float32 cache.

On the synthetic YouTube-8M set at the tiny presets' widths: a tiny teacher, its cache written as
float32 and as float16, and a k=6 distilled student (models/tiny_distilled_k6.flags) trained from
each, for every seed, with the same seed and steps (so the float32 and float16 students differ
only by the cache). Sizes are measured on disk for that cache and, at the reference widths (3862
logits + a 2048-wide repr), per serialized row.

    .venv/bin/python benchmarks/cache_dtype_benchmark.py
    .venv/bin/python benchmarks/cache_dtype_benchmark.py --teacher_steps 100 --student_steps 100
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
from yt8m_kd.distill.teacher_cache import CACHE_DTYPES, example, write_teacher_cache
from yt8m_kd.experiments.data import synthetic_yt8m
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.restore import restore_run
from yt8m_kd.training.runs import train_or_reuse

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_WIDTHS = {"num_classes": 3862, "teacher_repr": 2048}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_videos", type=int, default=1024)
    parser.add_argument("--eval_videos", type=int, default=512)
    parser.add_argument("--teacher_steps", type=int, default=500)
    parser.add_argument("--student_steps", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--work_dir", default=None, help="default: a temporary directory")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "cache_dtype.json",
    )
    return parser.parse_args(argv)


def _config(preset: str, steps: int, **overrides):
    return yflags.read_flagfile(
        str(REPO_ROOT / "models" / preset),
        max_steps=steps,
        checkpoint_every_steps=steps,
        eval_every_steps=steps,
        progress_bar=False,
        **overrides,
    )


def reference_row_bytes() -> dict[str, int]:
    """Bytes of one serialized cache row at the reference widths, per storage type."""
    logits = np.zeros(REFERENCE_WIDTHS["num_classes"], np.float32)
    representation = np.zeros(REFERENCE_WIDTHS["teacher_repr"], np.float32)
    return {dtype: len(example(b"x" * 11, logits, representation, dtype)) for dtype in CACHE_DTYPES}


def _cache_bytes(cache_dir: str) -> int:
    return sum(
        os.path.getsize(os.path.join(cache_dir, name))
        for name in os.listdir(cache_dir)
        if name.endswith(".tfrecord")
    )


def max_weight_difference(run_a: str, run_b: str) -> float:
    """The largest difference between two runs' model weights (their latest checkpoints): shows
    that the two students did train on different teacher outputs, however close their GAP."""
    readers = [tf.train.load_checkpoint(os.path.join(r, "checkpoints")) for r in (run_a, run_b)]
    names = [
        name
        for name, _ in tf.train.list_variables(os.path.join(run_a, "checkpoints"))
        if name.startswith("model/") and "OPTIMIZER_SLOT" not in name
    ]
    return max(
        float(np.max(np.abs(readers[0].get_tensor(n) - readers[1].get_tensor(n)))) for n in names
    )


def run(args: argparse.Namespace, work_dir: str) -> dict:
    strategy = strategy_lib.make_strategy("one_device")
    teacher_config = _config("tiny_teacher.flags", args.teacher_steps)
    train, evaluate = synthetic_yt8m(
        os.path.join(work_dir, "data"), teacher_config.model, args.train_videos, args.eval_videos
    )
    data = {"train_data_pattern": train, "eval_data_pattern": evaluate}
    teacher_dir = os.path.join(work_dir, "teacher")
    teacher_config = _config("tiny_teacher.flags", args.teacher_steps, **data)
    teacher_metrics, _ = train_or_reuse(teacher_config, teacher_dir, strategy)
    teacher = restore_run(teacher_dir)
    caches = {}
    for dtype in CACHE_DTYPES:
        cache_dir = os.path.join(work_dir, f"cache_{dtype}")
        write_teacher_cache(
            teacher.model,
            teacher.model_config,
            teacher.frame_dataset(train, batch_size=64),
            cache_dir,
            metadata={"teacher_run_dir": teacher_dir, "data_pattern": train},
            dtype=dtype,
        )
        caches[dtype] = {"dir": cache_dir, "bytes": _cache_bytes(cache_dir)}
    students = []
    for seed in args.seeds:
        row = {"seed": seed}
        for dtype, cache in caches.items():
            config = _config(
                "tiny_distilled_k6.flags",
                args.student_steps,
                seed=seed,
                teacher_cache=cache["dir"],
                **data,
            )
            started = time.perf_counter()
            metrics, _ = train_or_reuse(
                config, os.path.join(work_dir, f"s{seed}_{dtype}"), strategy
            )
            row[dtype] = {
                "gap": metrics["eval"]["gap"],
                "map": metrics["eval"].get("map"),
                "wall_s": time.perf_counter() - started,
            }
        row["gap_float16_minus_float32"] = row["float16"]["gap"] - row["float32"]["gap"]
        row["max_abs_weight_difference"] = max_weight_difference(
            *(os.path.join(work_dir, f"s{seed}_{dtype}") for dtype in CACHE_DTYPES)
        )
        students.append(row)
        print(json.dumps(row), flush=True)
    differences = [row["gap_float16_minus_float32"] for row in students]
    reference = reference_row_bytes()
    return {
        "teacher_gap": teacher_metrics["eval"]["gap"],
        "cache_bytes": {dtype: cache["bytes"] for dtype, cache in caches.items()},
        "cache_bytes_float16_over_float32": caches["float16"]["bytes"] / caches["float32"]["bytes"],
        "reference_row_bytes": reference,
        "reference_row_bytes_float16_over_float32": reference["float16"] / reference["float32"],
        "students": students,
        "mean_gap_float16_minus_float32": float(np.mean(differences)),
        "max_abs_gap_difference": float(np.max(np.abs(differences))),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "teacher cache storage type: size and distilled-student GAP (issue 12)",
        "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        "settings": {**vars(args), "output": str(args.output)},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if args.work_dir:
        report.update(run(args, args.work_dir))
    else:
        with tempfile.TemporaryDirectory() as work_dir:
            report.update(run(args, work_dir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("machine", "students")}))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
