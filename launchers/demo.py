"""The yt8m-kd demo, the whole story on synthetic YouTube-8M data: all-frames teacher -> plain
6-frame student -> teacher cache -> distilled 6-frame student -> SAKD 6-frame student -> export of
the best student as a SavedModel -> Kaggle predictions CSV from that SavedModel -> plots -> table.

  python launchers/demo.py [--work_dir=demo_runs] [--data_dir=data/demo] [--max_steps=N]

Runs in a few minutes on 2 CPU cores with the tiny presets of models/. Every run directory it
leaves (flags.txt, checkpoints, TensorBoard events, metrics.json) is a normal training run:
`tensorboard --logdir demo_runs` shows them side by side. It also leaves
<work_dir>/export/ (the SavedModel), <work_dir>/predictions.csv and <work_dir>/plots/.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import time

from absl import flags, logging

from yt8m_kd import cli

flags.DEFINE_string("work_dir", "demo_runs", "Where the demo's run directories go.")
flags.DEFINE_string("data_dir", "data/demo", "Synthetic data (made here when absent).")
flags.DEFINE_integer("max_steps", 1000, "Training steps of each model.")
flags.DEFINE_integer("train_videos", 2048, "Synthetic training videos.")
flags.DEFINE_integer("eval_videos", 512, "Synthetic held-out videos.")
flags.DEFINE_integer("seed", 0, "Seed of the data and of the training runs.")
flags.DEFINE_boolean("progress_bar", True, "Show progress bars.")
FLAGS = flags.FLAGS

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
_SHARDS = 8


def make_data(data_dir: str, model_config) -> tuple[str, str]:
    """Synthetic train/validate shards in the exact YouTube-8M frame-record format."""
    import tensorflow as tf

    from yt8m_kd.data import synthetic

    train_pattern = os.path.join(data_dir, "train-*.tfrecord")
    eval_pattern = os.path.join(data_dir, "validate-*.tfrecord")
    if tf.io.gfile.glob(train_pattern) and tf.io.gfile.glob(eval_pattern):
        logging.info("Using the synthetic data already in %s", data_dir)
        return train_pattern, eval_pattern
    for split, videos in (("train", FLAGS.train_videos), ("validate", FLAGS.eval_videos)):
        synthetic.write_synthetic_yt8m(
            data_dir,
            split=split,
            num_shards=_SHARDS,
            videos_per_shard=max(1, videos // _SHARDS),
            num_classes=model_config.num_classes,
            feature_sizes=model_config.feature_sizes,
            seed=FLAGS.seed,
        )
    return train_pattern, eval_pattern


def cache_teacher(teacher_dir: str, train_pattern: str) -> str:
    """Runs the teacher once over the training videos and stores its logits and repr per video."""
    from yt8m_kd.distill.teacher_cache import write_teacher_cache
    from yt8m_kd.training.restore import restore_run

    run = restore_run(teacher_dir)
    dataset = run.frame_dataset(train_pattern, batch_size=128)
    cache_dir = os.path.join(FLAGS.work_dir, "teacher_cache")
    metadata = {"teacher_run_dir": teacher_dir, "checkpoint": run.checkpoint}
    metadata["data_pattern"] = train_pattern
    info = write_teacher_cache(run.model, run.model_config, dataset, cache_dir, metadata=metadata)
    print(f"\n== teacher cache: {info['num_videos']} videos -> {cache_dir}")
    return cache_dir


def train_one(
    name: str,
    preset: str,
    train_pattern: str,
    eval_pattern: str,
    teacher_cache: str | None = None,
    **overrides,
) -> dict:
    """Trains the model of a preset on the synthetic data, returns its metrics.json content."""
    from yt8m_kd import flags as yflags
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.distillation import DistillationTrainer
    from yt8m_kd.training.loop import Trainer
    from yt8m_kd.training.sakd_trainer import SAKDTrainer

    run_dir = os.path.join(FLAGS.work_dir, name)
    values = yflags.flagfile_values(
        os.path.join(MODELS_DIR, preset),
        run_dir=run_dir,
        train_data_pattern=train_pattern,
        eval_data_pattern=eval_pattern,
        max_steps=FLAGS.max_steps,
        checkpoint_every_steps=FLAGS.max_steps,
        eval_every_steps=max(1, FLAGS.max_steps // 4),  # a few points for the GAP-vs-step plot
        seed=FLAGS.seed,
        progress_bar=FLAGS.progress_bar,
        teacher_cache=teacher_cache,
        **overrides,
    )
    yflags.write_flags_file(values, run_dir)
    model_config, train_config, data_config = yflags.configs_from_values(values)
    print(f"\n== {name}: {preset} ({model_config.k_frames or data_config.max_frames} frames)")
    configs = (
        model_config,
        train_config,
        data_config,
        run_dir,
        strategy_lib.make_strategy("one_device"),
    )
    # The preset's loss weights, and the teacher cache, make the distillation config.
    distill_config = yflags.distill_config_from_flags(values)
    if values.sakd:
        sakd_config = yflags.sakd_config_from_flags(values)
        trainer = SAKDTrainer(*configs, distill_config, sakd_config, values.num_epochs)
    elif distill_config is not None:
        trainer = DistillationTrainer(*configs, distill_config)
    else:
        trainer = Trainer(*configs)
    started = time.perf_counter()
    results = trainer.fit()
    results["wall_time_s"] = time.perf_counter() - started
    results["run_dir"] = run_dir
    return results


def export_and_predict(name: str, run_dir: str, eval_pattern: str) -> tuple[str, str]:
    """Exports a run's model as a SavedModel and writes the Kaggle CSV of the held-out videos
    from it, the way a serving client would: raw records in, top-20 classes out."""
    from yt8m_kd.export import export_saved_model
    from yt8m_kd.inference import saved_model_predictions, write_kaggle_csv

    export_dir = export_saved_model(run_dir, os.path.join(FLAGS.work_dir, "export"), overwrite=True)
    csv_path = os.path.join(FLAGS.work_dir, "predictions.csv")
    rows = write_kaggle_csv(
        saved_model_predictions(export_dir, eval_pattern, batch_size=256), csv_path
    )
    print(f"\n== export: {name} -> {export_dir}; {rows} predictions -> {csv_path}")
    return export_dir, csv_path


def plot(rows: list[tuple[str, dict]]) -> list[str]:
    """GAP against step, the training losses and GAP against GFLOPs of every run."""
    from yt8m_kd import run_logs
    from yt8m_kd.plots import plot_runs

    runs = [run_logs.read_run(r["run_dir"], label=name) for name, r in rows]
    drawn = plot_runs(runs, os.path.join(FLAGS.work_dir, "plots"), metric="gap", smoothing=3)
    paths = [png for png, _svg in drawn.paths.values()]
    print("\n== plots: " + ", ".join(paths))
    return paths


def print_table(rows: list[tuple[str, dict]]) -> None:
    header = (
        "| model | frames | GAP | mAP | Hit@1 | PERR | trainable params | GFLOPs/video | steps "
        "| time s |"
    )
    print("\n" + header)
    print("|---" * (header.count("|") - 1) + "|")
    for name, r in rows:
        e, m = r["eval"], r["model"]
        print(
            f"| {name} | {m['frames']} | {e['gap']:.4f} | {e['map']:.4f} | {e['hit_at_one']:.4f} "
            f"| {e['perr']:.4f} | {m['trainable_params']:,} | {m['gflops_per_video']:.4f} "
            f"| {r['step']} | {r['wall_time_s']:.0f} |"
        )


def main(argv: list[str]) -> None:
    del argv
    from yt8m_kd import flags as yflags

    teacher_config, _, _ = yflags.configs_from_flagfile(
        os.path.join(MODELS_DIR, "tiny_teacher.flags")
    )

    # 1. Data: synthetic videos whose class evidence sits in a few frames, so k frames see less.
    train_pattern, eval_pattern = make_data(FLAGS.data_dir, teacher_config)

    # 2. The teacher looks at every frame of every video.
    teacher = train_one("teacher", "tiny_teacher.flags", train_pattern, eval_pattern)

    # 3. A plain student looks at 6 uniformly spaced frames and learns from the labels only.
    student = train_one("student_k6", "tiny_student_k6.flags", train_pattern, eval_pattern)

    # 4. The teacher runs once more, over the training videos, into a cache of its outputs ...
    cache_dir = cache_teacher(os.path.join(FLAGS.work_dir, "teacher"), train_pattern)

    # 5. ... from which a distilled 6-frame student learns: L_CE + w_pred L_pred + w_rep L_rep
    # (the weights of tiny_distilled_k6.flags).
    distilled = train_one(
        "distilled_k6", "tiny_distilled_k6.flags", train_pattern, eval_pattern, cache_dir
    )

    # 6. SAKD: per-sample strength between label and distillation loss, and epochs over a
    # selected half of the videos (easy and diverse), re-selected every 5 epochs. As many epochs
    # as give it the others' step budget: half the videos per epoch, twice the epochs.
    sakd_ratio, batch_size = 0.5, 32
    steps_per_epoch = int(sakd_ratio * FLAGS.train_videos) // batch_size
    sakd_run = train_one(
        "sakd_k6",
        "tiny_sakd_k6.flags",
        train_pattern,
        eval_pattern,
        cache_dir,
        sakd_ratio=sakd_ratio,
        batch_size=batch_size,
        num_epochs=max(1, FLAGS.max_steps // max(1, steps_per_epoch)),
    )

    rows = [
        ("teacher (all frames)", teacher),
        ("plain student (k=6)", student),
        ("distilled student (k=6)", distilled),
        ("SAKD student (k=6, 50%)", sakd_run),
    ]
    # 7. Ship the best student: a SavedModel that takes raw records, and its predictions.
    best_name, best = max(rows[1:], key=lambda row: row[1]["eval"]["gap"])
    export_and_predict(best_name, best["run_dir"], eval_pattern)

    # 8. Plots, and the held-out metrics side by side.
    plot(rows)
    print_table(rows)
    print(f"\nRun directories in {FLAGS.work_dir}/: tensorboard --logdir {FLAGS.work_dir}")


if __name__ == "__main__":
    cli.run(main)
