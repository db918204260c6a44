"""Bytes per student example sent to the training step, frames selected in the step or on the host.

A k-frame student trained without a teacher in the step gets its k frames selected in tf.data
(issue 12, item 4), so the step receives [B, k, D] instead of [B, max_frames, D]. This script reads
the figure off the `element_spec` of the trainers' real training pipelines
(`Trainer._train_dataset`) on a few synthetic records at the reference shapes (1024 + 128 uint8
features, up to 300 frames, 3862 classes, k = 6): a plain student, and a student distilled from a
teacher cache of reference width (3862 logits, a 2048-wide repr; the cache of an untrained teacher of
small inner widths: only its output widths matter here). Every tensor the step receives counts
(strings are left out: the step drops them). It also times training steps/s of the tiny preset
(tiny_student_k6.flags, 64 + 16 features, 300 frames) both ways, on this machine's CPU.

    .venv/bin/python benchmarks/host_selection_benchmark.py
    .venv/bin/python benchmarks/host_selection_benchmark.py --steps 50 --repeats 3
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
from yt8m_kd.configs import DistillConfig
from yt8m_kd.data import videos
from yt8m_kd.data.synthetic import write_synthetic_yt8m
from yt8m_kd.distill.teacher_cache import write_teacher_cache
from yt8m_kd.modeling import build_video_model
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.loop import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "models"

# The reference shapes (docs/design.md; models/student_k6.flags, models/teacher.flags).
REFERENCE = {
    "feature_sizes": (1024, 128),
    "max_frames": 300,
    "num_classes": 3862,
    "k_frames": 6,
    "teacher_repr": 2048,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=16, help="synthetic records per data set")
    parser.add_argument("--batch_size", type=int, default=8, help="batch of the bytes pipelines")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per run")
    parser.add_argument("--warmup_steps", type=int, default=5, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per mode, best kept")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "host_selection.json",
        help="where the JSON goes",
    )
    return parser.parse_args(argv)


def step_bytes_per_example(element_spec: dict) -> dict[str, int]:
    """Bytes per example of each tensor a batch with this spec sends to the step (dim 0 = B)."""
    sizes = {}
    for name, spec in element_spec.items():
        if spec.dtype == tf.string:
            continue
        sizes[name] = int(np.prod(spec.shape[1:].as_list(), dtype=np.int64)) * spec.dtype.size
    return sizes


def _config(preset: str, data_pattern: str, **overrides):
    return yflags.read_flagfile(
        str(MODELS / preset),
        train_data_pattern=data_pattern,
        progress_bar=False,
        checkpoint_every_steps=10**9,
        log_every_steps=10**9,
        **overrides,
    )


def _trainer(config, run_dir: str, host: bool, distill: DistillConfig | None = None) -> Trainer:
    strategy = strategy_lib.make_strategy("one_device")
    configs = (config.model, config.train, config.data, run_dir, strategy)
    trainer = DistillationTrainer(*configs, distill) if distill else Trainer(*configs)
    trainer.host_frame_selection = host
    return trainer


def _reference_cache(root: str, pattern: str, batch_size: int) -> str:
    """A teacher cache of reference output widths over the records (an untrained teacher)."""
    teacher = _config(
        "tiny_teacher.flags",
        pattern,
        feature_sizes=REFERENCE["feature_sizes"],
        max_frames=REFERENCE["max_frames"],
        num_classes=REFERENCE["num_classes"],
        hidden_size=REFERENCE["teacher_repr"],
    )
    model = build_video_model(teacher.model)
    dataset = videos.read_videos(
        teacher.data, teacher.model, pattern, batch_size=batch_size, training=False
    )
    cache_dir = os.path.join(root, "cache")
    write_teacher_cache(
        model, teacher.model, dataset, cache_dir, metadata={"data_pattern": pattern}
    )
    return cache_dir


def measure_bytes(args: argparse.Namespace, root: str) -> dict:
    """Per-example bytes of the plain and the cache-distilled student's pipelines, both ways."""
    write_synthetic_yt8m(
        root,
        split="train",
        num_shards=1,
        videos_per_shard=args.videos,
        num_classes=REFERENCE["num_classes"],
        feature_sizes=REFERENCE["feature_sizes"],
        min_frames=60,
        max_frames=REFERENCE["max_frames"],
    )
    pattern = os.path.join(root, "train-*")
    # The tiny student's inner widths (the model does not change what the pipeline sends).
    student = _config(
        "tiny_distilled_k6.flags",
        pattern,
        feature_sizes=REFERENCE["feature_sizes"],
        max_frames=REFERENCE["max_frames"],
        num_classes=REFERENCE["num_classes"],
        k_frames=REFERENCE["k_frames"],
        batch_size=args.batch_size,
    )
    cache = DistillConfig(teacher_cache_dir=_reference_cache(root, pattern, args.batch_size))
    results = {}
    for name, distill in (("plain_student", None), ("student_from_teacher_cache", cache)):
        modes = {}
        for mode, host in (("in_step_selection", False), ("host_selection", True)):
            trainer = _trainer(student, os.path.join(root, f"{name}_{mode}"), host, distill)
            dataset = trainer._train_dataset(0)
            next(iter(dataset))  # the pipeline runs on these records
            sizes = step_bytes_per_example(dataset.element_spec)
            modes[mode] = {
                "frames_shape": dataset.element_spec["frames"].shape.as_list(),
                "bytes": sizes,
                "total_bytes": sum(sizes.values()),
            }
        before, after = modes["in_step_selection"], modes["host_selection"]
        modes["frames_bytes_ratio"] = after["bytes"]["frames"] / before["bytes"]["frames"]
        modes["total_bytes_ratio"] = after["total_bytes"] / before["total_bytes"]
        results[name] = modes
        print(
            f"{name}: frames {before['bytes']['frames']:,} -> {after['bytes']['frames']:,} B, "
            f"all tensors {before['total_bytes']:,} -> {after['total_bytes']:,} B per example",
            flush=True,
        )
    return results


def time_steps(args: argparse.Namespace, root: str) -> dict:
    """Steps/s of the tiny preset (64 + 16 features, 300 frames, k = 6), both ways."""
    write_synthetic_yt8m(
        root,
        split="train",
        num_shards=2,
        videos_per_shard=64,
        num_classes=32,
        feature_sizes=(64, 16),
        min_frames=60,
        max_frames=300,
    )
    config = _config("tiny_student_k6.flags", os.path.join(root, "train-*"))
    results = {"preset": "tiny_student_k6.flags", "batch_size": config.train.batch_size}
    for mode, host in (("in_step_selection", False), ("host_selection", True)):
        rates = []
        for repeat in range(args.repeats):
            trainer = _trainer(config, os.path.join(root, f"{mode}_{repeat}"), host)
            iterator = iter(trainer._train_dataset(0))
            one = tf.constant(1, tf.int64)  # one step per call
            for _ in range(args.warmup_steps):  # tracing and the shuffle buffer's first fill
                trainer._train_step(iterator, one)["finite"].numpy()
            started = time.perf_counter()
            for _ in range(args.steps):
                outputs = trainer._train_step(iterator, one)
            outputs["finite"].numpy()
            rates.append(args.steps / (time.perf_counter() - started))
        results[mode] = {"steps_per_sec": max(rates), "all_steps_per_sec": rates}
        print(f"tiny preset, {mode}: {max(rates):.1f} steps/s (best of {rates})", flush=True)
    results["speedup"] = (
        results["host_selection"]["steps_per_sec"] / results["in_step_selection"]["steps_per_sec"]
    )
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "host-side frame selection (issue 12, item 4)",
        "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        "settings": {**vars(args), "output": str(args.output), "reference": REFERENCE},
    }
    with tempfile.TemporaryDirectory() as root:
        report["bytes_per_example"] = measure_bytes(args, os.path.join(root, "reference"))
        report["tiny_preset_train_steps"] = time_steps(args, os.path.join(root, "tiny"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
