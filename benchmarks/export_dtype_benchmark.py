"""What `launchers/export.py --export_dtype=float16|bfloat16` saves and costs: the export's size,
the GAP of what it serves, and its inference time, against the float32 export (issue 13 item 4).

Two parts, in one run:

- trained models, on the synthetic YouTube-8M set at the tiny presets' widths: a tiny teacher and
  a tiny k=6 student (models/tiny_teacher.flags, tiny_student_k6.flags) per seed, each exported in
  every type; GAP, mAP and Hit@1 of `serving_default` over the held-out records, the largest
  probability difference to the float32 export, and the bytes of the SavedModel;
- the reference NeXtVLAD (models/nextvlad_reference.flags: 1024+128 features, 300 frames, 3862
  classes, 88.9M parameters) with its initial weights (no training: sizes, speed and the
  probability difference only), exported in every type; ms/video of `serve_frames` on batches of
  300-frame videos, after a warm-up call.

    .venv/bin/python benchmarks/export_dtype_benchmark.py
    .venv/bin/python benchmarks/export_dtype_benchmark.py --steps 100 --seeds 0 --skip_reference
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
from yt8m_kd import metrics as metrics_lib
from yt8m_kd.experiments.data import synthetic_yt8m
from yt8m_kd.export import EXPORT_DTYPES, export_saved_model
from yt8m_kd.modeling import build_video_model
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.restore import RestoredRun, restore_run
from yt8m_kd.training.runs import train_or_reuse

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_PRESETS = {"teacher": "tiny_teacher.flags", "student_k6": "tiny_student_k6.flags"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_videos", type=int, default=1024)
    parser.add_argument("--eval_videos", type=int, default=512)
    parser.add_argument("--steps", type=int, default=500, help="training steps of each tiny run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--reference_batch", type=int, default=16)
    parser.add_argument("--reference_calls", type=int, default=3)
    parser.add_argument("--skip_reference", action="store_true")
    parser.add_argument("--work_dir", default=None, help="default: a temporary directory")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "export_dtype.json"
    )
    return parser.parse_args(argv)


def _config(preset: str, **overrides):
    return yflags.read_flagfile(str(REPO_ROOT / "models" / preset), progress_bar=False, **overrides)


def saved_model_bytes(export_dir: str) -> int:
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(export_dir)
        for name in names
    )


def variables_bytes(export_dir: str) -> int:
    """The weights' share of an export (its variables/ folder); the rest is the graph."""
    return saved_model_bytes(os.path.join(export_dir, "variables"))


def _labels_by_id(run: RestoredRun, pattern: str) -> dict[bytes, np.ndarray]:
    """Each held-out video's multi-hot labels, read by the run's own pipeline."""
    labels = {}
    for batch in run.frame_dataset(pattern, batch_size=64):
        for video_id, row in zip(batch["video_id"].numpy(), batch["labels"].numpy(), strict=True):
            labels[video_id] = row
    return labels


def served_probabilities(export_dir: str, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """(video ids, probabilities) of `serving_default` over the records of `pattern`, in order."""
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    ids, probabilities = [], []
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(64)
    for batch in records:
        outputs = serve(example_bytes=batch)
        ids.append(outputs["video_id"].numpy())
        probabilities.append(outputs["probabilities"].numpy())
    return np.concatenate(ids), np.concatenate(probabilities)


def tiny_exports(args: argparse.Namespace, work_dir: str) -> list[dict]:
    strategy = strategy_lib.make_strategy("one_device")
    model_config = _config(TINY_PRESETS["teacher"]).model
    train, evaluate = synthetic_yt8m(
        os.path.join(work_dir, "data"), model_config, args.train_videos, args.eval_videos
    )
    rows = []
    for seed in args.seeds:
        for name, preset in TINY_PRESETS.items():
            run_dir = os.path.join(work_dir, f"{name}_s{seed}")
            config = _config(
                preset,
                seed=seed,
                max_steps=args.steps,
                checkpoint_every_steps=args.steps,
                eval_every_steps=args.steps,
                train_data_pattern=train,
                eval_data_pattern=evaluate,
            )
            metrics, _ = train_or_reuse(config, run_dir, strategy)
            run = restore_run(run_dir)
            labels = _labels_by_id(run, evaluate)
            row = {"model": name, "seed": seed, "run_gap": metrics["eval"]["gap"]}
            served = {}
            for dtype in EXPORT_DTYPES:
                export_dir = export_saved_model(
                    run, os.path.join(work_dir, f"{name}_s{seed}_{dtype}"), export_dtype=dtype
                )
                ids, served[dtype] = served_probabilities(export_dir, evaluate)
                accumulator = metrics_lib.EvaluationAccumulator(config.model.num_classes)
                accumulator.update(served[dtype], np.stack([labels[i] for i in ids]))
                result = accumulator.result()
                row[dtype] = {
                    "bytes": saved_model_bytes(export_dir),
                    "variables_bytes": variables_bytes(export_dir),
                    "gap": result["gap"],
                    "map": result["map"],
                    "hit_at_one": result["hit_at_one"],
                    "videos": len(ids),
                }
            for dtype in EXPORT_DTYPES[1:]:
                row[dtype]["bytes_over_float32"] = row[dtype]["bytes"] / row["float32"]["bytes"]
                row[dtype]["variables_bytes_over_float32"] = (
                    row[dtype]["variables_bytes"] / row["float32"]["variables_bytes"]
                )
                row[dtype]["gap_minus_float32"] = row[dtype]["gap"] - row["float32"]["gap"]
                row[dtype]["max_abs_probability_difference"] = float(
                    np.abs(served[dtype] - served["float32"]).max()
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def reference_exports(args: argparse.Namespace, work_dir: str) -> dict:
    """The reference NeXtVLAD's exports at its initial weights: bytes, ms/video, differences."""
    config = _config("nextvlad_reference.flags")
    model = build_video_model(config.model)
    run = RestoredRun(model, config, checkpoint="(initial weights, not trained)")
    width = sum(config.model.feature_sizes)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.reference_batch, 300, width), dtype=np.uint8)
    num_frames = np.full([args.reference_batch], 300, np.int32)
    report = {
        "parameters": int(sum(np.prod(w.shape) for w in model.weights)),
        "batch": args.reference_batch,
        "frames": 300,
    }
    probabilities = {}
    for dtype in EXPORT_DTYPES:
        export_dir = export_saved_model(
            run, os.path.join(work_dir, f"reference_{dtype}"), export_dtype=dtype
        )
        serve = tf.saved_model.load(export_dir).signatures["serve_frames"]
        inputs = {"frames": tf.constant(frames), "num_frames": tf.constant(num_frames)}
        probabilities[dtype] = serve(**inputs)["probabilities"].numpy()  # warm-up
        started = time.perf_counter()
        for _ in range(args.reference_calls):
            serve(**inputs)
        seconds = (time.perf_counter() - started) / args.reference_calls
        report[dtype] = {
            "bytes": saved_model_bytes(export_dir),
            "variables_bytes": variables_bytes(export_dir),
            "ms_per_video": 1000 * seconds / args.reference_batch,
        }
        print(json.dumps({dtype: report[dtype]}), flush=True)
    for dtype in EXPORT_DTYPES[1:]:
        report[dtype]["bytes_over_float32"] = report[dtype]["bytes"] / report["float32"]["bytes"]
        report[dtype]["variables_bytes_over_float32"] = (
            report[dtype]["variables_bytes"] / report["float32"]["variables_bytes"]
        )
        report[dtype]["ms_over_float32"] = (
            report[dtype]["ms_per_video"] / report["float32"]["ms_per_video"]
        )
        report[dtype]["max_abs_probability_difference"] = float(
            np.abs(probabilities[dtype] - probabilities["float32"]).max()
        )
    return report


def summary(rows: list[dict]) -> dict:
    """Per compact type: the size ratio range and the largest GAP change over the tiny runs."""
    return {
        dtype: {
            "bytes_over_float32": [
                min(r[dtype]["bytes_over_float32"] for r in rows),
                max(r[dtype]["bytes_over_float32"] for r in rows),
            ],
            "variables_bytes_over_float32": [
                min(r[dtype]["variables_bytes_over_float32"] for r in rows),
                max(r[dtype]["variables_bytes_over_float32"] for r in rows),
            ],
            "max_abs_gap_difference": max(abs(r[dtype]["gap_minus_float32"]) for r in rows),
        }
        for dtype in EXPORT_DTYPES[1:]
    }


def run(args: argparse.Namespace, work_dir: str) -> dict:
    rows = tiny_exports(args, work_dir)
    report = {"tiny": rows, "tiny_summary": summary(rows)}
    if not args.skip_reference:
        report["reference"] = reference_exports(args, work_dir)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "compact SavedModel export: size, GAP and speed against float32 (issue 13)",
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
    print(json.dumps({k: v for k, v in report.items() if k in ("tiny_summary", "reference")}))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
