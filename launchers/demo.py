"""The yt8m-kd demo: few-frame video classifiers distilled from an all-frames teacher.

  python launchers/demo.py [--work_dir=demo_runs] [--data_dir=data/demo] [--max_steps=N]

The whole story on synthetic YouTube-8M data, with the tiny presets of models/, in a few minutes
on 2 CPU cores: an all-frames teacher -> a plain 6-frame student -> the teacher's outputs cached
-> a distilled 6-frame student -> a SAKD 6-frame student, fine-tuned from the teacher's weights
(--init_from_run=<work_dir>/teacher) -> the best student exported as a SavedModel -> Kaggle
predictions from that SavedModel -> plots -> a table.

Every run directory it leaves (flags.txt, checkpoints, TensorBoard events, metrics.json) is a
normal training run (`tensorboard --logdir demo_runs` shows them side by side); a second
invocation reuses the finished runs. It also leaves <work_dir>/teacher_cache/,
<work_dir>/export/ (the SavedModel), <work_dir>/predictions.csv and <work_dir>/plots/.
"""

from __future__ import annotations

import os

import pandas as pd
from absl import flags

from yt8m_kd import cli, run_logs
from yt8m_kd import experiments as exp
from yt8m_kd.export import export_saved_model
from yt8m_kd.inference import saved_model_predictions, write_kaggle_csv
from yt8m_kd.plots import plot_runs
from yt8m_kd.tables import markdown_table
from yt8m_kd.training.strategy import make_strategy

exp.define_flags(
    work_dir="demo_runs",
    data_dir="data/demo",
    max_steps=1000,
    train_videos=2048,
    eval_videos=512,
    seed=0,
    progress_bar=True,
)
FLAGS = flags.FLAGS
METRICS = {"GAP": "gap", "mAP": "map", "Hit@1": "hit_at_one", "PERR": "perr"}


def run_specs(
    work_dir: str,
    patterns: tuple[str, str],
    *,
    max_steps: int,
    train_videos: int,
    seed: int,
    progress_bar: bool,
) -> list[exp.RunSpec]:
    """The demo's runs, in training order: teacher, plain, distilled and SAKD students."""
    # Each run is a preset of models/ with a few flags changed: the same data, steps and seed
    # for all, and a few evaluations along the way for the GAP-vs-step plot.
    common = dict(
        train_data_pattern=patterns[0],
        eval_data_pattern=patterns[1],
        max_steps=max_steps,
        checkpoint_every_steps=max_steps,
        eval_every_steps=max(1, max_steps // 4),
        seed=seed,
        progress_bar=progress_bar,
    )
    teacher = exp.RunSpec("teacher", "tiny_teacher.flags", work_dir, common, "teacher (all frames)")
    # SAKD trains on a selected half of the videos (easy and diverse ones, re-selected every 5
    # epochs), with a per-sample strength between the label and the distillation loss; as many
    # epochs as give it the others' step budget: half the videos per epoch, twice the epochs.
    # It starts from the teacher's trained weights (--init_from_run; NeXtVLAD's weights do not
    # depend on the frame count), the regime SAKD is made for: the paper fine-tunes a pretrained
    # model, and from random weights SAKD falls below the plain student (README, "SAKD in the
    # fine-tuning regime"). The teacher is trained first, so its run directory is there.
    sakd_ratio, batch_size = 0.5, 32
    steps_per_epoch = max(1, int(sakd_ratio * train_videos) // batch_size)
    sakd = dict(
        common,
        sakd_ratio=sakd_ratio,
        batch_size=batch_size,
        num_epochs=max(1, max_steps // steps_per_epoch),
        init_from_run=teacher.run_dir,
    )
    return [
        # The teacher looks at every frame of every video.
        teacher,
        # A plain student looks at 6 uniformly spaced frames and learns from the labels only.
        exp.RunSpec("student_k6", "tiny_student_k6.flags", work_dir, common, "plain student (k=6)"),
        # The teacher runs once more, over the training videos, into a cache of its outputs,
        # from which a distilled student learns: L_CE + w_pred L_pred + w_rep L_rep (the
        # weights of tiny_distilled_k6.flags) ...
        exp.RunSpec(
            "distilled_k6",
            "tiny_distilled_k6.flags",
            work_dir,
            common,
            "distilled student (k=6)",
            teacher="teacher",
        ),
        # ... and so does the SAKD student, fine-tuned from the teacher's weights.
        exp.RunSpec(
            "sakd_k6",
            "tiny_sakd_k6.flags",
            work_dir,
            sakd,
            "SAKD student (k=6, 50%, from teacher)",
            teacher="teacher",
        ),
    ]


def main(argv: list[str]) -> None:
    del argv
    work_dir = FLAGS.work_dir

    # ## 1. Data
    # Synthetic videos in the exact YouTube-8M frame-record format, whose class evidence sits in
    # a few bursts of frames: a student that sees 6 of 300 frames misses much of it.
    teacher_config = exp.read_preset("tiny_teacher.flags")
    train_pattern, eval_pattern = exp.synthetic_yt8m(
        FLAGS.data_dir,
        teacher_config.model,
        FLAGS.train_videos,
        FLAGS.eval_videos,
        shards=(8, 8),
        seed=FLAGS.seed,
    )

    # ## 2. The runs, as data (`run_specs` below)
    specs = run_specs(
        work_dir,
        (train_pattern, eval_pattern),
        max_steps=FLAGS.max_steps,
        train_videos=FLAGS.train_videos,
        seed=FLAGS.seed,
        progress_bar=FLAGS.progress_bar,
    )

    # ## 3. Training
    # One after the other; a run finished by an earlier invocation is reused.
    runs = exp.train_runs(specs, make_strategy("one_device"), cache_batch_size=128)

    # ## 4. Ship the best student
    # A SavedModel that takes raw records, and the Kaggle CSV of the held-out videos from it, the
    # way a serving client would make it: records in, top-20 classes out.
    best = max(list(runs.values())[1:], key=lambda run: run.metrics["eval"]["gap"])
    export_dir = export_saved_model(best.run_dir, os.path.join(work_dir, "export"), overwrite=True)
    csv_path = os.path.join(work_dir, "predictions.csv")
    predictions = saved_model_predictions(export_dir, eval_pattern, batch_size=256)
    rows = write_kaggle_csv(predictions, csv_path)
    cli.stage(f"== export: {best.spec.label} -> {export_dir}; {rows} predictions -> {csv_path}")

    # ## 5. Plots: GAP against step, the training losses, and GAP against GFLOPs
    logs = [run_logs.read_run(run.run_dir, label=run.spec.label) for run in runs.values()]
    drawn = plot_runs(logs, os.path.join(work_dir, "plots"), metric="gap", smoothing=3)
    cli.stage("== plots: " + ", ".join(png for png, _svg in drawn.paths.values()))

    # ## 6. The held-out metrics side by side
    table = pd.DataFrame(
        {
            "model": run.spec.label,
            "frames": run.metrics["model"]["frames"],
            **{name: f"{run.metrics['eval'][key]:.4f}" for name, key in METRICS.items()},
            "trainable params": f"{run.metrics['model']['trainable_params']:,}",
            "GFLOPs/video": f"{run.metrics['model']['gflops_per_video']:.4f}",
            "steps": run.metrics["step"],
            "time s": f"{run.metrics['wall_time_s']:.0f}",  # building, training, evaluations
        }
        for run in runs.values()
    )
    print("\n" + markdown_table(table, index=False))
    print(f"\nRun directories in {work_dir}/: tensorboard --logdir {work_dir}")


if __name__ == "__main__":
    cli.run(main)
