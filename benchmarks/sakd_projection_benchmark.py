"""How much SAKD's selection changes when its diversity features are the teacher repr projected
to a few dimensions (--sakd_feature_dim) instead of the full repr.

On the synthetic YouTube-8M set: a tiny teacher whose repr has the reference width (2048), trained
briefly; its repr of every training video; a difficulty per video (the teacher's own per-video
label loss, min-max normalised: a stand-in for the student's interrupted-input loss, which this
comparison does not depend on); then `select_samples` at the paper's ratio 0.1 and gamma 0.5 on
the full repr and on its projections to 32 ... 256 dimensions (`diversity_projection`). Reported:
the overlap |full & projected| / |full|, against two references: the overlap of a random
selection of the same size (about the ratio) and of a selection on difficulty alone (gamma 0).

    .venv/bin/python benchmarks/sakd_projection_benchmark.py
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
from yt8m_kd.distill import sakd
from yt8m_kd.distill.selection import select_samples
from yt8m_kd.experiments.data import synthetic_yt8m
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.restore import restore_run
from yt8m_kd.training.runs import train_or_reuse
from yt8m_kd.training.sakd_trainer import diversity_projection

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_videos", type=int, default=2048)
    parser.add_argument("--teacher_steps", type=int, default=300)
    parser.add_argument("--repr_size", type=int, default=2048, help="the teacher's repr width")
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "sakd_projection.json",
    )
    return parser.parse_args(argv)


def teacher_outputs(args: argparse.Namespace, work_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(repr [N, H], per-video label loss [N]) of a briefly trained wide tiny teacher."""
    overrides = {
        "hidden_size": args.repr_size,
        "max_steps": args.teacher_steps,
        "checkpoint_every_steps": args.teacher_steps,
        "progress_bar": False,
    }
    config = yflags.read_flagfile(str(REPO_ROOT / "models" / "tiny_teacher.flags"), **overrides)
    train, _ = synthetic_yt8m(os.path.join(work_dir, "data"), config.model, args.train_videos, 256)
    config = yflags.read_flagfile(
        str(REPO_ROOT / "models" / "tiny_teacher.flags"), train_data_pattern=train, **overrides
    )
    run_dir = os.path.join(work_dir, "teacher")
    train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    run = restore_run(run_dir)
    representations, label_loss = [], []
    for batch in run.frame_dataset(train, batch_size=128):
        outputs = run.model(model_inputs(batch, run.model_config), training=False)
        representations.append(outputs["repr"].numpy())
        loss = tf.nn.sigmoid_cross_entropy_with_logits(batch["labels"], outputs["logits"])
        label_loss.append(tf.reduce_sum(loss, axis=1).numpy())
    return np.concatenate(representations), np.concatenate(label_loss)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return len(np.intersect1d(a, b)) / len(a)


def run(args: argparse.Namespace, work_dir: str) -> dict:
    representations, label_loss = teacher_outputs(args, work_dir)
    d_hat = sakd.normalise_difficulty(label_loss)
    n = len(d_hat)
    results = {"num_videos": n, "repr_size": int(representations.shape[1]), "seeds": []}
    for seed in args.seeds:
        full = select_samples(representations, d_hat, args.ratio, gamma=args.gamma, seed=seed)
        row = {"seed": seed, "selected": int(len(full))}
        for dim in args.dims:
            projected = representations @ diversity_projection(representations.shape[1], dim)
            chosen = select_samples(projected, d_hat, args.ratio, gamma=args.gamma, seed=seed)
            row[f"overlap_dim{dim}"] = overlap(full, chosen)
        random = np.random.default_rng(seed).choice(n, size=len(full), replace=False)
        row["overlap_random"] = overlap(full, random)
        easiest = select_samples(representations, d_hat, args.ratio, gamma=0.0, seed=seed)
        row["overlap_difficulty_only"] = overlap(full, easiest)
        results["seeds"].append(row)
        print(json.dumps(row), flush=True)
    keys = [key for key in results["seeds"][0] if key.startswith("overlap")]
    results["mean"] = {key: float(np.mean([r[key] for r in results["seeds"]])) for key in keys}
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {
        "benchmark": "SAKD selection on projected diversity features (issue 12)",
        "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        "settings": {**vars(args), "output": str(args.output)},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory() as work_dir:
        report.update(run(args, work_dir))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["mean"]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
