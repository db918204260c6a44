"""Evaluates a trained run's latest (or a given) checkpoint: GAP, mAP, Hit@1, PERR.

  python launchers/evaluate.py --run_dir=runs/teacher \
      [--eval_data_pattern='data/synthetic/validate-*.tfrecord'] [--checkpoint=PATH] \
      [--strategy=mirrored [--num_logical_cpus=N]]

The model is rebuilt from the run's flags.txt; --eval_data_pattern defaults to the run's. With
--strategy=mirrored every GPU (or every logical CPU) predicts its share of each global batch of
--eval_batch_size videos, with the metrics of one device (yt8m_kd/training/evaluation.py).
Writes <run_dir>/eval_metrics.json (or --output_json) and prints the metrics as JSON. A bad record
stops it with one line naming the file and the record; with --skip_bad_records it is skipped and
counted under "bad_records" (with the bytes and records lost to damaged files, and the records
read without labels, which count as all-negative: a warning line names one).
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags

from yt8m_kd import cli
from yt8m_kd import flags as yflags
from yt8m_kd.data import videos
from yt8m_kd.files import write_json
from yt8m_kd.training import evaluation
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.restore import restore_run

flags.DEFINE_string("run_dir", None, "Run directory written by launchers/train.py.")
flags.DEFINE_string("eval_data_pattern", None, "Records to evaluate on (default: the run's).")
flags.DEFINE_string("checkpoint", None, "Checkpoint path (default: the run's latest).")
flags.DEFINE_string("output_json", None, "Where to write the metrics (default: run_dir).")
flags.DEFINE_integer("eval_batch_size", 256, "Global evaluation batch size.", lower_bound=1)
flags.DEFINE_enum(
    "strategy",
    "one_device",
    ["one_device", "mirrored"],
    "one_device, or mirrored: every GPU (or logical CPU) evaluates its share.",
)
flags.DEFINE_integer(
    "num_logical_cpus",
    0,
    "Split the CPU into this many logical devices (for --strategy=mirrored on CPU; 0 = no split).",
    lower_bound=0,
)
flags.DEFINE_boolean("skip_bad_records", False, "Skip and count malformed records.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    yflags.require_run_dir("run_dir", FLAGS.run_dir)
    strategy_lib.split_cpu(FLAGS.num_logical_cpus)  # before TensorFlow initialises its devices
    devices = strategy_lib.make_strategy(FLAGS.strategy)
    distributed = evaluation.distributes(devices)
    # Mirrored weights on every replica; one device restores the model as it always has.
    run = restore_run(FLAGS.run_dir, FLAGS.checkpoint, strategy=devices if distributed else None)
    data = run.data_config
    if FLAGS.eval_data_pattern:
        data = dataclasses.replace(data, eval_data_pattern=FLAGS.eval_data_pattern)
    yflags.validate_run_config(run.config.replace(data=data))
    yflags.require_files("eval_data_pattern", data.eval_data_pattern)

    counter = videos.bad_record_counter(run.data_config)

    def read(batch_size: int):
        return run.frame_dataset(
            data.eval_data_pattern,
            split_file=data.eval_split_file,
            batch_size=batch_size,
            skip_bad_records=FLAGS.skip_bad_records,
            bad_record_counter=counter,
        )

    if distributed:
        dataset = evaluation.distributed_eval_dataset(devices, read, FLAGS.eval_batch_size)
    else:
        dataset = read(FLAGS.eval_batch_size)
    results = {
        "checkpoint": run.checkpoint,
        "eval": evaluation.evaluate(
            run.model,
            run.model_config,
            dataset,
            single_label=run.single_label,
            class_names=videos.class_names(data),
            strategy=devices,
        ),
        "bad_records": counter.counts(),
    }
    write_json(FLAGS.output_json or os.path.join(FLAGS.run_dir, "eval_metrics.json"), results)
    unlabelled = counter.unlabelled_warning()
    if unlabelled:  # they were scored as all-negative: the metrics need this caveat
        cli.stage(f"warning: {unlabelled}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
