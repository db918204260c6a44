"""Runs a trained teacher once over a set of records and caches its logits and repr per video.

  python launchers/cache_teacher.py --teacher_run_dir=runs/teacher \
      --data_pattern='data/synthetic/train-*.tfrecord' --output_dir=caches/teacher

Distillation runs then read the cache (yt8m_kd.distill.teacher_cache.TeacherCache) instead of
running the teacher at every step. The teacher is rebuilt from the run's flags.txt (its feature
names and sizes, max_frames and num_classes also read the records) and sees all frames, in
inference mode. The output directory gets teacher-NNNNN.tfrecord shards and, last,
teacher_cache.json, which is also printed. A cache already in --output_dir is replaced.
"""

from __future__ import annotations

import json
import os

import keras
from absl import flags

from yt8m_kd import cli, flag_checks
from yt8m_kd import flags as yflags
from yt8m_kd.data.videos import bad_record_counter
from yt8m_kd.distill.teacher_cache import write_teacher_cache
from yt8m_kd.training.restore import restore_run

flags.DEFINE_string("teacher_run_dir", None, "Run directory of the teacher (launchers/train.py).")
flags.DEFINE_string(
    "data_pattern", None, "Records to cache, usually the training set (comma-separated globs)."
)
flags.DEFINE_string("output_dir", None, "Directory of the cache.")
flags.DEFINE_string(
    "split_file",
    None,
    "UCF101, when --data_pattern is a frames directory: the split file to read (default: the "
    "teacher run's --train_split_file).",
)
flags.DEFINE_string("checkpoint", None, "Teacher checkpoint (default: the run's latest).")
flags.DEFINE_integer("batch_size", 64, "Videos per teacher batch.", lower_bound=1)
flags.DEFINE_integer("records_per_shard", 10000, "Videos per cache shard.", lower_bound=1)
flags.DEFINE_boolean(
    "skip_bad_records",
    False,
    "Skip and count malformed records, and repeated video ids (the first is cached).",
)
flags.DEFINE_boolean("progress_bar", True, "Show a progress bar.")
FLAGS = flags.FLAGS


def _absolute(path: str) -> str:
    """A local path made absolute for the record; a URL (gs://...) as it is."""
    return path if "://" in path else os.path.abspath(path)


def _validate_flags() -> list[str]:
    """Checks the flags before any work; returns the data patterns."""
    yflags.require_run_dir("teacher_run_dir", FLAGS.teacher_run_dir)
    patterns = yflags.require_files("data_pattern", FLAGS.data_pattern)
    if not FLAGS.output_dir:
        raise yflags.FlagError("--output_dir is required")
    return patterns


def main(argv: list[str]) -> None:
    del argv
    patterns = _validate_flags()
    run = restore_run(FLAGS.teacher_run_dir, FLAGS.checkpoint)
    model_config = run.model_config
    flag_checks.check_teacher_model(model_config, "teacher_run_dir", FLAGS.teacher_run_dir)

    counter = bad_record_counter(run.data_config)
    dataset = run.frame_dataset(
        patterns[0] if len(patterns) == 1 else patterns,
        # UCF101 frames directories are read with a split file; records need none.
        split_file=FLAGS.split_file or run.data_config.train_split_file,
        batch_size=FLAGS.batch_size,
        skip_bad_records=FLAGS.skip_bad_records,
        bad_record_counter=counter,
        # The files of YouTube-8M records, so that a duplicate id is named with both of its files.
        **({"source_files": True} if run.data_config.dataset == "yt8m" else {}),
    )
    # Updated after every batch, counting videos (their number is unknown until all are read).
    progbar = keras.utils.Progbar(None, unit_name="video")

    def progress(batches: int, videos: int) -> None:
        del batches
        if FLAGS.progress_bar:
            progbar.update(videos)

    metadata = {
        "teacher_run_dir": _absolute(FLAGS.teacher_run_dir),
        "checkpoint": _absolute(run.checkpoint),
        "data_pattern": ",".join(_absolute(pattern) for pattern in patterns),
        "max_frames": run.max_frames,
        "feature_names": list(run.data_config.feature_names),
    }
    try:
        result = write_teacher_cache(
            run.model,
            model_config,
            dataset,
            FLAGS.output_dir,
            metadata=metadata,
            records_per_shard=FLAGS.records_per_shard,
            bad_record_counter=counter,
            progress=progress,
            skip_duplicates=FLAGS.skip_bad_records,
        )
    except ValueError as e:  # duplicate or empty video ids, no records: a problem of the data
        raise yflags.FlagError(f"--data_pattern={FLAGS.data_pattern}: {e}") from e
    if FLAGS.progress_bar:
        progbar.update(result["num_videos"], finalize=True)  # the final count, and a new line
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
