"""Runs a trained teacher once over a set of records and caches its logits and repr per video.

  python launchers/cache_teacher.py --teacher_run_dir=runs/teacher \
      --data_pattern='data/synthetic/train-*.tfrecord' --output_dir=caches/teacher

Distillation runs then read the cache (yt8m_kd.distill.teacher_cache.TeacherCache) instead of
running the teacher at every step. The teacher is rebuilt from the run's flags.txt (its feature
names and sizes, max_frames and num_classes also read the records) and sees all frames, in
inference mode.

The cache has one part per input file (teacher-NNNNN.tfrecord, NNNNN the file's index in the
sorted list of --data_pattern, with its marker teacher-NNNNN.json), so that many machines can
build it and a killed build resumes (yt8m_kd.distill.cache_build):

  # on machine i of 8, i = 0..7; each caches the input files i, i + 8, i + 16, ...
  python launchers/cache_teacher.py ... --num_shards=8 --shard_index=$i

A rerun with the same flags skips the input files whose parts are complete and redoes the others;
one with another teacher, checkpoint, file list, split file or --num_shards is refused (the plan
in teacher_plan.json). After its own files, every process finishes the cache if all parts are
there (writes and prints teacher_cache.json), else says how many input files are cached;
`--finalize` does only that last step. A single-process cache of an older version in
--output_dir is replaced. A UCF101 frames directory (not records) is one input, for one shard.

Several teacher runs, comma-separated, cache an ensemble (yt8m_kd.distill.ensemble): per video
the logits of the teachers' averaged probabilities and the mean of their reprs (the first
teacher's when the widths differ), in the same rows as one teacher's, so students read it
unchanged:

  python launchers/cache_teacher.py --teacher_run_dir=runs/t1,runs/t2 [--checkpoint=c1,c2] ...

The teachers must read the same data (features, frames, classes; refused naming both runs
otherwise); the data is read once and every batch goes through all of them. The plan and
teacher_cache.json list every run and checkpoint ("teacher_run_dirs", "checkpoints") and how the
outputs were combined ("ensemble"); "teacher_run_dir" and "checkpoint" are the first teacher's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import keras
import tensorflow as tf
from absl import flags

from yt8m_kd import cli, flag_checks
from yt8m_kd import flags as yflags
from yt8m_kd.cache_layout import describe_missing, missing_inputs, part_is_complete, shard_name
from yt8m_kd.data import yt8m
from yt8m_kd.data.videos import bad_record_counter
from yt8m_kd.distill import ensemble
from yt8m_kd.distill.cache_build import (
    IncompleteCache,
    ensure_plan,
    finalize,
    make_plan,
    part_sizes,
    write_part,
)
from yt8m_kd.distill.teacher_cache import CACHE_DTYPES
from yt8m_kd.training.restore import RestoredRun, restore_run

flags.DEFINE_string(
    "teacher_run_dir",
    None,
    "Run directory of the teacher (launchers/train.py); several, comma-separated, cache an "
    "ensemble: their averaged probabilities.",
)
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
flags.DEFINE_string(
    "checkpoint",
    None,
    "Teacher checkpoint (default: the run's latest); for an ensemble one per teacher run, "
    "comma-separated, an empty item for that run's latest.",
)
flags.DEFINE_integer("batch_size", 64, "Videos per teacher batch.", lower_bound=1)
flags.DEFINE_integer(
    "num_shards", 1, "Processes that build the cache together (each a --shard_index)."
)
flags.DEFINE_integer(
    "shard_index", 0, "This process caches the input files shard_index, +num_shards, ..."
)
flags.DEFINE_boolean(
    "finalize",
    False,
    "Only finish the cache (check ids, write teacher_cache.json) once every part is there; "
    "needs only --output_dir.",
)
flags.DEFINE_boolean(
    "skip_bad_records",
    False,
    "Skip and count malformed records, and repeated video ids (the first is cached).",
)
flags.DEFINE_enum(
    "cache_dtype",
    "float32",
    list(CACHE_DTYPES),
    "How the logits and repr are stored: float32 (exact) or float16 (half the size; students "
    "read them back as float32).",
)
flags.DEFINE_boolean("progress_bar", True, "Show a progress bar.")
FLAGS = flags.FLAGS


def _absolute(path: str) -> str:
    """A local path made absolute for the record; a URL (gs://...) as it is."""
    return path if "://" in path else os.path.abspath(path)


def _teacher_run_dirs() -> list[str]:
    """The runs of --teacher_run_dir (several for an ensemble), each a run directory."""
    if not FLAGS.teacher_run_dir:
        raise yflags.FlagError("--teacher_run_dir is required")
    run_dirs = FLAGS.teacher_run_dir.split(",")
    for run_dir in run_dirs:
        if not run_dir:
            raise yflags.FlagError(f"--teacher_run_dir={FLAGS.teacher_run_dir} has an empty item")
        yflags.require_run_dir("teacher_run_dir", run_dir)
    return run_dirs


def _checkpoints(run_dirs: list[str]) -> list[str | None]:
    """--checkpoint per teacher run: None (each run's latest), or one per run (an empty item:
    that run's latest)."""
    if not FLAGS.checkpoint:
        return [None] * len(run_dirs)
    checkpoints = FLAGS.checkpoint.split(",") if len(run_dirs) > 1 else [FLAGS.checkpoint]
    if len(checkpoints) != len(run_dirs):
        given = f"{len(checkpoints)} checkpoint{'s' if len(checkpoints) > 1 else ''}"
        raise yflags.FlagError(
            f"--checkpoint={FLAGS.checkpoint}: {given} for {len(run_dirs)} teacher runs "
            f"(--teacher_run_dir={FLAGS.teacher_run_dir}): give one per run, comma-separated "
            "(an empty item: that run's latest), or none"
        )
    return [checkpoint or None for checkpoint in checkpoints]


def _check_teachers(run_dirs: list[str]) -> None:
    """Every teacher sees all frames, and an ensemble's teachers read the same data and classes;
    from their flags.txt, before any model is built."""
    configs = [yflags.read_run_config(run_dir) for run_dir in run_dirs]
    for run_dir, config in zip(run_dirs, configs, strict=True):
        flag_checks.check_teacher_model(config.model, "teacher_run_dir", run_dir)
    try:
        ensemble.check_teachers(list(zip(run_dirs, configs, strict=True)))
    except ValueError as e:
        raise yflags.FlagError(f"--teacher_run_dir: {e}") from e


def _ensemble_plan(runs: list[RestoredRun]) -> dict | None:
    """The plan's ENSEMBLE_KEYS for several teachers; None for one (today's plan)."""
    if len(runs) == 1:
        return None
    return {
        "teacher_run_dirs": [_absolute(d) for d in FLAGS.teacher_run_dir.split(",")],
        "checkpoints": [_absolute(run.checkpoint) for run in runs],
        "teacher_model_configs": [dataclasses.asdict(run.model_config) for run in runs],
        "ensemble": ensemble.description(
            runs[0].single_label, [run.model_config.hidden_size for run in runs]
        ),
    }


def _teacher_model(runs: list[RestoredRun]):
    """The model whose outputs are cached: the teacher, or the ensemble of all of them."""
    if len(runs) == 1:
        return runs[0].model
    return ensemble.EnsembleTeacher(
        [run.model for run in runs],
        single_label=runs[0].single_label,
        repr_mode=ensemble.repr_mode([run.model_config.hidden_size for run in runs]),
    )


def _validate_flags() -> list[str]:
    """Checks the flags before any work; returns the data patterns (none with --finalize)."""
    if not FLAGS.output_dir:
        raise yflags.FlagError("--output_dir is required")
    if FLAGS.finalize:
        return []
    run_dirs = _teacher_run_dirs()
    _checkpoints(run_dirs)
    patterns = yflags.require_files("data_pattern", FLAGS.data_pattern)
    if FLAGS.num_shards < 1:
        raise yflags.FlagError(f"--num_shards={FLAGS.num_shards} must be at least 1")
    if not 0 <= FLAGS.shard_index < FLAGS.num_shards:
        raise yflags.FlagError(
            f"--shard_index={FLAGS.shard_index} must be in 0..{FLAGS.num_shards - 1} "
            f"(--num_shards={FLAGS.num_shards})"
        )
    if FLAGS.split_file and not _frames_dir(patterns):
        raise yflags.FlagError(
            f"--split_file is only for a UCF101 frames directory; --data_pattern="
            f"{FLAGS.data_pattern} names records, which hold one split"
        )
    if FLAGS.num_shards > 1 and _frames_dir(patterns):
        raise yflags.FlagError(
            f"--num_shards={FLAGS.num_shards}: --data_pattern={patterns[0]} is a (UCF101 frames) "
            "directory, which one process caches; shard its frame records instead"
        )
    return patterns


def _frames_dir(patterns: list[str]) -> bool:
    """A UCF101 frames directory rather than record files (a directory holds no records)."""
    return len(patterns) == 1 and tf.io.gfile.isdir(patterns[0])


def _input_files(patterns: list[str], dataset: str) -> list[dict]:
    """[{"path", "size"}] of the sorted input files; a UCF101 frames directory is one input."""
    if dataset == "ucf101" and _frames_dir(patterns):
        return [{"path": _absolute(patterns[0]), "size": None}]
    files = yt8m.list_files([_absolute(pattern) for pattern in patterns])
    return part_sizes(files)


def _finish(output_dir: str) -> None:
    """The final step; prints teacher_cache.json."""
    try:
        result = finalize(output_dir, skip_duplicates=FLAGS.skip_bad_records)
    except IncompleteCache as e:
        raise yflags.FlagError(f"--finalize: {e}") from e
    except (FileNotFoundError, ValueError) as e:  # no plan; an id in two input files; no video
        raise yflags.FlagError(f"--output_dir={output_dir}: {e}") from e
    print(json.dumps(result, sort_keys=True))


def main(argv: list[str]) -> None:
    del argv
    patterns = _validate_flags()
    output_dir = FLAGS.output_dir
    if FLAGS.finalize:
        _finish(output_dir)
        return
    run_dirs = _teacher_run_dirs()
    _check_teachers(run_dirs)
    # A run without checkpoints: FileNotFoundError naming its checkpoints directory (cli.py).
    runs = [
        restore_run(run_dir, checkpoint)
        for run_dir, checkpoint in zip(run_dirs, _checkpoints(run_dirs), strict=True)
    ]
    # The first teacher's reader feeds every teacher (check_teachers: they read alike).
    run = runs[0]
    model_config = run.model_config
    is_yt8m = run.data_config.dataset == "yt8m"
    inputs = _input_files(patterns, run.data_config.dataset)
    frames_dir = inputs[0]["size"] is None
    # A frames directory is read with a split file; records hold one split and take none (the
    # teacher may have trained from a frames directory, with a --train_split_file).
    split_file = (FLAGS.split_file or run.data_config.train_split_file) if frames_dir else None
    plan = make_plan(
        teacher_run_dir=_absolute(run_dirs[0]),
        checkpoint=_absolute(run.checkpoint),
        data_pattern=",".join(_absolute(pattern) for pattern in patterns),
        input_files=inputs,
        num_shards=FLAGS.num_shards,
        feature_names=list(run.data_config.feature_names),
        max_frames=run.max_frames,
        teacher_model_config=dataclasses.asdict(model_config),
        split_file=_absolute(split_file) if split_file else None,
        ensemble=_ensemble_plan(runs),
        cache_dtype=FLAGS.cache_dtype,
    )
    try:
        ensure_plan(output_dir, plan)
    except ValueError as e:
        raise yflags.FlagError(f"--output_dir={output_dir}: {e}") from e

    mine = list(range(FLAGS.shard_index, len(inputs), FLAGS.num_shards))
    skipped = [i for i in mine if part_is_complete(output_dir, i, inputs[i])]
    if skipped:
        print(
            f"skipping {len(skipped)} input files whose parts are complete: "
            + ", ".join(f"{inputs[i]['path']} ({shard_name(i)})" for i in skipped),
            file=sys.stderr,
        )
    model = _teacher_model(runs)
    counter = bad_record_counter(run.data_config)
    # Counts videos (their number is unknown until all are read).
    progbar = keras.utils.Progbar(None, unit_name="video")
    videos = 0

    def progress(batch_videos: int) -> None:
        nonlocal videos
        videos += batch_videos
        if FLAGS.progress_bar:
            progbar.update(videos)

    for index in mine:
        if index in skipped:
            continue
        path = inputs[index]["path"]
        dataset = run.frame_dataset(
            path,
            split_file=split_file,
            batch_size=FLAGS.batch_size,
            skip_bad_records=FLAGS.skip_bad_records,
            bad_record_counter=counter,
            # So that a duplicate id is named with both of its files.
            **({"source_files": True} if is_yt8m else {}),
        )
        try:
            write_part(
                model,
                model_config,
                dataset,
                output_dir,
                index,
                inputs[index],
                bad_record_counter=counter,
                skip_duplicates=FLAGS.skip_bad_records,
                progress=progress,
                dtype=FLAGS.cache_dtype,
            )
        except ValueError as e:  # duplicate or empty video ids: a problem of the data
            raise yflags.FlagError(f"--data_pattern={FLAGS.data_pattern}: {e}") from e
    if FLAGS.progress_bar:
        progbar.update(videos, finalize=True)  # the final count, and a new line

    missing = missing_inputs(output_dir, plan)
    if missing:
        print(
            f"shard {FLAGS.shard_index} of {FLAGS.num_shards} done: "
            f"{describe_missing(missing, len(inputs))}; the cache is finished by the last shard "
            "to finish, or by rerunning with --finalize"
        )
        return
    _finish(output_dir)


if __name__ == "__main__":
    cli.run(main)
