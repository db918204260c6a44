"""Evaluates the same tiny models on one device and on both replicas of Mirrored over 2 logical
CPUs (`Trainer.run_eval`, `evaluation.evaluate`); prints one JSON object.

Run as its own process: logical devices must be configured before TensorFlow initialises.
  python tests/scripts/distributed_eval.py DATA_DIR OUT_DIR
DATA_DIR holds the tiny train-*/validate-* records (32 validation videos); the script writes a
one-video set into OUT_DIR.
"""

import dataclasses
import json
import os
import sys

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)

import tensorflow as tf  # noqa: E402

from yt8m_kd import flags as yflags  # noqa: E402
from yt8m_kd.data import videos  # noqa: E402
from yt8m_kd.data.synthetic import write_synthetic_yt8m  # noqa: E402
from yt8m_kd.training import evaluation  # noqa: E402
from yt8m_kd.training.loop import Trainer  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def make_trainer(preset: str, strategy_name: str, data_dir: str, run_dir: str, **overrides):
    config = yflags.read_flagfile(
        os.path.join(MODELS, preset),
        train_data_pattern=os.path.join(data_dir, "train-*"),
        eval_data_pattern=os.path.join(data_dir, "validate-*"),
        max_frames=60,
        batch_size=8,
        progress_bar=False,
        **overrides,
    )
    strategy = strategy_lib.make_strategy(strategy_name)
    return Trainer(config.model, config.train, config.data, run_dir, strategy)


def run_eval(trainer: Trainer, pattern: str, eval_batch_size: int) -> dict:
    """`trainer.run_eval` on `pattern` in global batches of `eval_batch_size` (the trainer's
    cached predict function is reused, as a run's periodic evaluations reuse it)."""
    trainer.data_config = dataclasses.replace(trainer.data_config, eval_data_pattern=pattern)
    trainer.config = dataclasses.replace(trainer.config, eval_batch_size=eval_batch_size)
    return trainer.run_eval()


def max_weight_diff(a: Trainer, b: Trainer) -> float:
    return max(
        float(np.max(np.abs(x.numpy() - y.numpy())))
        for x, y in zip(a.model.weights, b.model.weights, strict=True)
    )


def scores(trainer: Trainer, pattern: str, eval_batch_size: int) -> tuple[np.ndarray, list[int]]:
    """Every video's probabilities in the order the accumulator sees them, and the rows each
    replica predicted at each step (0 for an empty batch); with the trainer's predict function
    (after a `run_eval`)."""
    trainer.data_config = dataclasses.replace(trainer.data_config, eval_data_pattern=pattern)
    if not evaluation.distributes(trainer.strategy):
        dataset = trainer.eval_dataset(eval_batch_size)
        return np.concatenate([trainer._predict(b).numpy() for b in dataset]), []
    strategy = trainer.strategy
    dataset = evaluation.distributed_eval_dataset(strategy, trainer.eval_dataset, eval_batch_size)
    rows, parts = [], []
    for batch in dataset:
        probabilities, _ = trainer._predict(batch)
        for local in strategy.experimental_local_results(probabilities):
            rows.append(int(local.shape[0]))
            parts.append(local.numpy())
    return np.concatenate(parts), rows


def single_label_metrics(trainer: Trainer, pattern: str, eval_batch_size: int) -> dict:
    """`evaluate` with softmax scores and class-index labels (each video's first label): the
    single-label (AccuracyAccumulator) path, on the same records."""

    def first_label(batch):
        return {**batch, "labels": tf.argmax(batch["labels"], axis=1, output_type=tf.int32)}

    def read(batch_size):
        return videos.read_videos(
            trainer.data_config,
            trainer.model_config,
            pattern,
            batch_size=batch_size,
            training=False,
        ).map(first_label)

    strategy = trainer.strategy
    if evaluation.distributes(strategy):
        dataset = evaluation.distributed_eval_dataset(strategy, read, eval_batch_size)
    else:
        dataset = read(eval_batch_size)
    return evaluation.evaluate(
        trainer.model,
        trainer.model_config,
        dataset,
        single_label=True,
        strategy=strategy,
    )


def main() -> None:
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    all_videos = os.path.join(data_dir, "validate-*")
    one_video = write_synthetic_yt8m(
        os.path.join(out_dir, "one_video"),
        split="validate",
        num_shards=1,
        videos_per_shard=1,
        num_classes=32,
        feature_sizes=(64, 16),
        min_frames=20,
        max_frames=60,
        seed=3,
    )[0]
    report = {}
    for name, preset, overrides in (
        ("teacher", "tiny_teacher.flags", {}),
        ("random_k", "tiny_student_k6.flags", {"frame_selection": "random"}),
    ):
        trainers = {
            strategy: make_trainer(
                preset, strategy, data_dir, os.path.join(out_dir, name, strategy), **overrides
            )
            for strategy in ("one_device", "mirrored")
        }
        one, mirrored = trainers["one_device"], trainers["mirrored"]
        # 32 videos in global batches of 6 (3 per replica; the last step gives replica 0 two
        # videos and replica 1 none).
        report[name] = {
            "replicas": [one.strategy.num_replicas_in_sync, mirrored.strategy.num_replicas_in_sync],
            "weight_diff": max_weight_diff(one, mirrored),
            "one_device": {"all_6": run_eval(one, all_videos, 6)},
            "mirrored": {"all_6": run_eval(mirrored, all_videos, 6)},
        }
        if name == "random_k":
            # 1 video: fewer than the replicas.
            report[name]["one_device"]["one_video"] = run_eval(one, one_video, 6)
            report[name]["mirrored"]["one_video"] = run_eval(mirrored, one_video, 6)
            # Batches of 10 (5 per replica): most videos on another replica than with 6.
            report[name]["mirrored"]["all_10"] = run_eval(mirrored, all_videos, 10)
        one_scores, _ = scores(one, all_videos, 6)
        mirrored_scores, rows = scores(mirrored, all_videos, 6)
        report[name]["scores_shape"] = [list(one_scores.shape), list(mirrored_scores.shape)]
        report[name]["score_diff"] = float(np.max(np.abs(one_scores - mirrored_scores)))
        report[name]["rows_per_replica"] = rows
        if name == "teacher":
            report[name]["single_label"] = {
                "one_device": single_label_metrics(one, all_videos, 6),
                "mirrored": single_label_metrics(mirrored, all_videos, 6),
            }
    try:  # a plain dataset under 2 replicas would count every video twice
        evaluation.evaluate(
            mirrored.model,
            mirrored.model_config,
            mirrored.eval_dataset(),
            strategy=mirrored.strategy,
        )
        report["plain_dataset_error"] = None
    except TypeError as e:
        report["plain_dataset_error"] = str(e)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
