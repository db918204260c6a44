"""Predicts the top classes of every video of a set of records and writes a CSV.

  python launchers/infer.py --run_dir=runs/student_k6 \
      --input_data_pattern='data/test-*.tfrecord' [--output_file=predictions.csv]
  python launchers/infer.py --saved_model=runs/student_k6/export \
      --input_data_pattern='data/test-*.tfrecord'
  python launchers/infer.py --saved_model=runs/ucf101_student/export \
      --input_data_pattern='records/testlist01-*.tfrecord' [--class_index_file=classInd.txt]

With --run_dir the model is rebuilt from the run's flags.txt and checkpoint and reads the records
with the training code's reader; with --saved_model an export of launchers/export.py is fed the
serialized records. The CSV follows the data family of the run or export (yt8m_kd/inference.py):

  YouTube-8M  the Kaggle CSV: header `VideoId,LabelConfidencePairs`, a row `id,label score ...`
              per video, its --top_k (default 20) classes by descending score, "%i %g"
  UCF101      header `video_id,class_1,score_1,...,class_5,score_5`, a row per video: its id,
              then its --top_k (default 5) classes by descending probability, each as its
              classInd.txt name and "%g" score; the names come from --class_index_file, else
              the run's --class_index_file or the export's metadata

Ids are quoted as CSV quotes them (a comma, quote or line break reads back); an empty, non-UTF-8
or repeated id stops the run with one line naming the record and the id, or with
--skip_bad_records is left out, logged and counted (empty_id, non_utf8_id, duplicate_id in the
summary's bad_records). Records without labels (test data) are fine.

It is written batch by batch to <output_file>.partial and renamed to --output_file when complete.
Prints a JSON summary.
"""

from __future__ import annotations

import collections
import json
import os

import tensorflow as tf
from absl import flags

from yt8m_kd import cli, inference
from yt8m_kd import flags as yflags
from yt8m_kd.data.videos import bad_record_counter
from yt8m_kd.export import data_family, load_export_metadata
from yt8m_kd.training.restore import restore_run

flags.DEFINE_string("run_dir", None, "Run directory written by launchers/train.py.")
flags.DEFINE_string("checkpoint", None, "With --run_dir: checkpoint path (default: the latest).")
flags.DEFINE_string("saved_model", None, "Instead of --run_dir: an export of launchers/export.py.")
flags.DEFINE_string(
    "input_data_pattern", None, "Records to predict (comma-separated globs of TFRecord files)."
)
flags.DEFINE_string("output_file", "predictions.csv", "Where to write the CSV.")
flags.DEFINE_integer("batch_size", 256, "Videos per batch.", lower_bound=1)
flags.DEFINE_integer(
    "top_k",
    None,
    "Classes per video in the CSV (default: 20 for YouTube-8M, 5 for UCF101).",
    lower_bound=1,
)
flags.DEFINE_string(
    "class_index_file",
    None,
    "UCF101: classInd.txt naming the classes (default: the run's, or the export's names).",
)
flags.DEFINE_boolean(
    "skip_bad_records",
    False,
    "Skip and count malformed records (UCF101 records: with --saved_model only).",
)
flags.DEFINE_boolean("progress_bar", True, "Show a progress bar.")
FLAGS = flags.FLAGS


def _validate_flags() -> list[str]:
    """Checks the flags before any work; returns the data patterns."""
    if bool(FLAGS.run_dir) == bool(FLAGS.saved_model):
        raise yflags.FlagError("give one of --run_dir and --saved_model")
    if FLAGS.run_dir:
        yflags.require_run_dir("run_dir", FLAGS.run_dir)
    if FLAGS.saved_model and not tf.io.gfile.exists(
        os.path.join(FLAGS.saved_model, "saved_model.pb")
    ):
        raise yflags.FlagError(f"--saved_model={FLAGS.saved_model} holds no saved_model.pb")
    if FLAGS.saved_model and FLAGS.checkpoint:
        raise yflags.FlagError("--checkpoint goes with --run_dir, not --saved_model")
    yflags.require_file("class_index_file", FLAGS.class_index_file)
    return yflags.require_files("input_data_pattern", FLAGS.input_data_pattern)


def _class_names(read, source) -> list[str]:
    """UCF101 class names from a run or an export; a missing or wrong one is a flag error."""
    try:
        return read(source, FLAGS.class_index_file)
    except (ValueError, FileNotFoundError) as e:
        raise yflags.FlagError(str(e)) from e


def _bad_record_counts(read: dict, ids: collections.Counter) -> dict[str, int]:
    """What the reader skipped and what the CSV's id check skipped, per kind, with their total
    (records skipped: the reader's "total" plus the id check's). The reader's other counts
    (lost_bytes, lost_records, unlabelled: not skipped records) are kept beside them."""
    counts = collections.Counter({k: v for k, v in read.items() if k != "total"})
    counts.update(ids)
    return {**counts, "total": read.get("total", 0) + sum(ids.values())}


def main(argv: list[str]) -> None:
    del argv
    patterns = _validate_flags()

    options = {
        "batch_size": FLAGS.batch_size,
        "top_k": FLAGS.top_k,
        "skip_bad_records": FLAGS.skip_bad_records,
    }
    if FLAGS.run_dir:
        run = restore_run(FLAGS.run_dir, FLAGS.checkpoint)
        counter = bad_record_counter(run.data_config)
        family = data_family(run)
        if family == "ucf101":
            class_names = _class_names(inference.run_class_names, run)
        batches = inference.run_predictions(run, patterns, bad_record_counter=counter, **options)
        summary = {"run_dir": FLAGS.run_dir, "checkpoint": run.checkpoint}
    else:
        family = load_export_metadata(FLAGS.saved_model)["data_family"]
        if family == "ucf101":
            class_names = _class_names(inference.export_class_names, FLAGS.saved_model)
        skipped = collections.Counter()
        batches = inference.saved_model_predictions(
            FLAGS.saved_model, patterns, skipped=skipped, **options
        )
        summary = {"saved_model": FLAGS.saved_model}
    id_check = inference.VideoIdCheck(FLAGS.skip_bad_records)
    if family == "ucf101":
        top_k = FLAGS.top_k or inference.DEFAULT_TOP_K[family]
        videos = inference.write_class_name_csv(
            batches, FLAGS.output_file, class_names, top_k, FLAGS.progress_bar, id_check
        )
    else:
        videos = inference.write_kaggle_csv(
            batches, FLAGS.output_file, FLAGS.progress_bar, id_check
        )
    summary["data_family"] = family
    read = counter.counts() if FLAGS.run_dir else skipped
    summary.update(
        output_file=FLAGS.output_file,
        videos=videos,
        bad_records=_bad_record_counts(read, id_check.counts),
    )
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
