"""Trains one video model on YouTube-8M frame records: a teacher on all frames or a k-frame student.

  python launchers/train.py --flagfile=models/tiny_teacher.flags \
      --train_data_pattern='data/synthetic/train-*.tfrecord' \
      --eval_data_pattern='data/synthetic/validate-*.tfrecord' --run_dir=runs/teacher

Distillation (Bhardwaj et al.): give the student a teacher, online or from a teacher cache:

  python launchers/train.py --flagfile=models/tiny_student_k6.flags --teacher_run_dir=runs/teacher \
      [--teacher_cache=runs/teacher_cache] [--w_pred=0.01 --w_rep=0.001 --w_kl=0] ...

The run directory gets flags.txt, checkpoints/ (resumed automatically when present), TensorBoard
events in train/ and eval/, and metrics.json with the final evaluation.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import json

from absl import flags, logging

from yt8m_kd import cli
from yt8m_kd import flags as yflags

yflags.define_all_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    yflags.validate_training_flags(FLAGS)
    # Logical CPU devices must be configured before TensorFlow touches its devices.
    from yt8m_kd.training import strategy as strategy_lib

    strategy_lib.split_cpu(FLAGS.num_logical_cpus)
    import tensorflow as tf

    from yt8m_kd.training.distillation import DistillationTrainer
    from yt8m_kd.training.loop import Trainer
    from yt8m_kd.training.sakd_trainer import SAKDTrainer

    strategy = strategy_lib.make_strategy(FLAGS.strategy)
    if FLAGS.batch_size % strategy.num_replicas_in_sync:
        raise yflags.FlagError(
            f"--batch_size={FLAGS.batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas of --strategy={FLAGS.strategy}"
        )
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    if has_gpu if FLAGS.mixed_precision is None else FLAGS.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    configs = (
        yflags.model_config_from_flags(FLAGS),
        yflags.train_config_from_flags(
            FLAGS, default_jit=has_gpu and strategy.num_replicas_in_sync == 1
        ),
        yflags.data_config_from_flags(FLAGS),
        FLAGS.run_dir,
        strategy,
    )
    distill_config = yflags.distill_config_from_flags(FLAGS)
    sakd_config = yflags.sakd_config_from_flags(FLAGS)
    try:
        if sakd_config is not None:
            trainer = SAKDTrainer(*configs, distill_config, sakd_config, FLAGS.num_epochs)
        elif distill_config is not None:
            trainer = DistillationTrainer(*configs, distill_config)
        else:
            trainer = Trainer(*configs)
    except ValueError as e:  # a teacher or cache that does not fit the student
        raise yflags.FlagError(str(e)) from e
    if trainer.is_chief:
        yflags.write_flags_file(FLAGS, FLAGS.run_dir)
    logging.info("Training in %s with %d replica(s)", FLAGS.run_dir, strategy.num_replicas_in_sync)
    results = trainer.fit()
    print(json.dumps({"step": results["step"], "eval": results.get("eval")}, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
