"""Trains one video model: a teacher on all frames, a k-frame student, distilled or with SAKD.

  python launchers/train.py --flagfile=models/tiny_teacher.flags \
      --train_data_pattern='data/synthetic/train-*.tfrecord' \
      --eval_data_pattern='data/synthetic/validate-*.tfrecord' --run_dir=runs/teacher

Distillation (Bhardwaj et al.): give the student a teacher, online or from a teacher cache:

  python launchers/train.py --flagfile=models/tiny_student_k6.flags --teacher_run_dir=runs/teacher \
      [--teacher_cache=runs/teacher_cache] [--w_pred=0.01 --w_rep=0.001 --w_kl=0] ...

A run may start from another run's weights (model weights only), e.g. a student from its teacher:

  python launchers/train.py --flagfile=models/tiny_sakd_k6.flags --init_from_run=runs/teacher ...

The run directory gets flags.txt, checkpoints/, TensorBoard events in train/ and eval/, and
metrics.json with the final evaluation. A rerun on the same --run_dir goes on from its latest
checkpoint (a longer --max_steps trains further, recorded in flags_history.json); one with flags
that change what is trained is refused, naming them, unless --overwrite_run_dir replaces the run.

SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop, a preemption) saves a checkpoint of the current
step and exits with one line and status 130 or 143; rerunning the same command resumes at that
step. A run whose loss, gradient or weights become NaN or infinite stops with one line naming the
step and the loss terms (exit 1), and its last finite checkpoint stays the latest.
"""

from __future__ import annotations

import json
import os

from absl import flags

from yt8m_kd import cli
from yt8m_kd import flags as yflags
from yt8m_kd.training import runs, strategy

yflags.define_all_flags(flags.FLAGS)
flags.DEFINE_boolean(
    "overwrite_run_dir",
    False,
    "Delete the run in --run_dir (one with flags.txt or checkpoints/) and train a new one there.",
)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.run_dir:
        raise yflags.FlagError("--run_dir is required")
    config = yflags.run_config_from_flags(FLAGS)
    yflags.validate_run_config(config, training=True)
    devices = strategy.setup_devices(config.train)
    cli.stage(f"Training in {FLAGS.run_dir} with {devices.num_replicas_in_sync} replica(s)")
    checkpoints = os.path.join(FLAGS.run_dir, "checkpoints")
    with strategy.worker_failures(devices, checkpoints):  # a lost worker: one line
        results, _ = runs.train_or_reuse(
            config, FLAGS.run_dir, devices, overwrite=FLAGS.overwrite_run_dir
        )
    print(json.dumps({"step": results["step"], "eval": results.get("eval")}, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
