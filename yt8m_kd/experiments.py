"""Helpers shared by the experiment launchers (launchers/*_experiment.py).

An experiment trains many runs in one process, reuses the runs a previous invocation finished,
and summarises them over seeds. What they share lives here, so that no launcher imports another
(importing a launcher would define its flags in the importer's FLAGS):

  parse_int_list       a list flag of integers, checked (seeds, ks)
  make_synthetic_yt8m  the synthetic YouTube-8M shards of the fewer-frames and SAKD experiments
  read_json            a JSON file, or None when absent
  update_timing        adds values to a run's experiment_timing.json
  check_run_flags      stops when a run directory was trained with other flags
  ensure_teacher_cache the teacher's outputs over the training data, written once per checkpoint
  describe, format_pm  mean, min, max, half-range and std over seeds; "mean ± half-range"
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence

from absl import flags, logging

from yt8m_kd import flags as yflags

TIMING_FILE = "experiment_timing.json"
# The synthetic YouTube-8M data the fewer-frames and SAKD experiments share: shards per split,
# the generator's seed (the data are fixed; only training seeds vary), and the manifest file that
# records how they were made.
YT8M_TRAIN_SHARDS, YT8M_EVAL_SHARDS = 8, 4
YT8M_DATA_SEED = 0
DATA_MANIFEST = "synthetic.json"
# Flags holding paths: compared as absolute paths, so that a relative --work_dir or --data_dir
# given from the same directory matches what a run recorded.
PATH_FLAGS = (
    "train_data_pattern",
    "eval_data_pattern",
    "teacher_cache",
    "class_index_file",
    "train_split_file",
    "eval_split_file",
)


# ----------------------------------------------------------------------------------- flags
def parse_int_list(name: str, values: Sequence[str], minimum: int) -> list[int]:
    """The integers of list flag --name: not empty, each >= minimum, no repeats.

    Raises:
      FlagError: otherwise (one line naming the flag).
    """
    try:
        numbers = [int(v) for v in values]
    except ValueError:
        raise yflags.FlagError(f"--{name}={','.join(values)} must be integers") from None
    if not numbers:
        raise yflags.FlagError(f"--{name} is empty")
    if min(numbers) < minimum:
        raise yflags.FlagError(f"--{name}={','.join(values)}: every value must be >= {minimum}")
    if len(set(numbers)) != len(numbers):
        raise yflags.FlagError(f"--{name}={','.join(values)} repeats a value")
    return numbers


def _flag_lines(text: str) -> set[str]:
    """flags.txt lines that decide what a run trains, with paths made absolute."""
    lines = set()
    for line in text.splitlines():
        if not line.startswith("--") or "progress_bar" in line:
            continue
        name, _, value = line[2:].partition("=")
        if name in PATH_FLAGS and value and "://" not in value:
            line = f"--{name}={os.path.abspath(value)}"
        lines.add(line)
    return lines


def check_run_flags(run_dir: str, fv: flags.FlagValues, what: str) -> None:
    """Stops when run_dir was trained with other flags than fv.

    Every flag recorded in an existing flags.txt must have the value this launcher gives it; flags
    the file does not list at all (defined in the project after the run was trained, such as the
    SAKD flags in an older teacher's flags.txt) are not compared. Whether a progress bar was shown
    is never compared.

    Raises:
      FlagError: naming the run, its flags.txt, the first differing lines, and `what` to change.
    """
    import tensorflow as tf

    path = os.path.join(run_dir, "flags.txt")
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        recorded = _flag_lines(f.read())
    differ = sorted(recorded - _flag_lines(yflags.flags_text(fv)))
    if differ:
        raise yflags.FlagError(
            f"{run_dir} was trained with other flags than this experiment's ({path}: "
            f"{', '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}): use another {what}"
        )


# ------------------------------------------------------------------------------------ data
def make_synthetic_yt8m(
    data_dir: str, model_config, train_videos: int, eval_videos: int
) -> tuple[str, str]:
    """Synthetic train/validate shards in the model's format, made once, then reused.

    Returns (train pattern, eval pattern). The manifest is written last, so only finished data
    have one.

    Raises:
      FlagError: data_dir holds data made otherwise, or records without a manifest.
    """
    import tensorflow as tf

    from yt8m_kd.data import synthetic
    from yt8m_kd.training.loop import write_json

    manifest = {
        "num_classes": model_config.num_classes,
        "feature_sizes": list(model_config.feature_sizes),
        "train_videos": train_videos,
        "train_shards": YT8M_TRAIN_SHARDS,
        "eval_videos": eval_videos,
        "eval_shards": YT8M_EVAL_SHARDS,
        "seed": YT8M_DATA_SEED,
    }
    train_pattern = os.path.join(data_dir, "train-*.tfrecord")
    eval_pattern = os.path.join(data_dir, "validate-*.tfrecord")
    manifest_path = os.path.join(data_dir, DATA_MANIFEST)
    existing = read_json(manifest_path)
    if existing is not None:
        if existing != manifest:
            raise yflags.FlagError(
                f"--data_dir={data_dir} holds synthetic data made with {existing}, not "
                f"{manifest}: use another --data_dir (or matching --train_videos/--eval_videos)"
            )
        logging.info("Using the synthetic data already in %s", data_dir)
        return train_pattern, eval_pattern
    if tf.io.gfile.glob(os.path.join(data_dir, "*.tfrecord")):
        raise yflags.FlagError(
            f"--data_dir={data_dir} holds records but no {DATA_MANIFEST} (unfinished, or not made "
            "by the experiment launchers): remove it or use another --data_dir"
        )
    print(f"Writing synthetic data to {data_dir}")
    for split, videos, shards in (
        ("train", train_videos, YT8M_TRAIN_SHARDS),
        ("validate", eval_videos, YT8M_EVAL_SHARDS),
    ):
        synthetic.write_synthetic_yt8m(
            data_dir,
            split=split,
            num_shards=shards,
            videos_per_shard=videos // shards,
            num_classes=model_config.num_classes,
            feature_sizes=model_config.feature_sizes,
            seed=YT8M_DATA_SEED,
        )
    write_json(manifest_path, manifest)  # last: only finished data have it
    return train_pattern, eval_pattern


# ----------------------------------------------------------------------------------- files
def read_json(path: str) -> dict | None:
    """The JSON object in `path` (local or gs://), or None when there is no such file."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def update_timing(run_dir: str, **values) -> None:
    """Adds `values` to run_dir/experiment_timing.json (what the experiment measured itself)."""
    from yt8m_kd.training.loop import write_json

    path = os.path.join(run_dir, TIMING_FILE)
    write_json(path, {**(read_json(path) or {}), **values})


# --------------------------------------------------------------------------------- teacher
def ensure_teacher_cache(
    teacher_dir: str,
    cache_dir: str,
    train_pattern: str,
    *,
    batch_size: int,
    split_file: str | None = None,
) -> None:
    """The teacher's outputs over the training data, written once per teacher checkpoint.

    A cache in `cache_dir` made from the teacher's latest checkpoint and the same data is reused;
    otherwise it is written (replacing any other) and its wall time goes to the teacher's
    experiment_timing.json as teacher_cache_wall_s. `split_file` is for a UCF101 frames
    directory (records need none).
    """
    from yt8m_kd.distill.teacher_cache import METADATA_FILE, write_teacher_cache
    from yt8m_kd.training.restore import latest_checkpoint, restore_run

    checkpoint = os.path.abspath(latest_checkpoint(teacher_dir))
    data_pattern = os.path.abspath(train_pattern)
    existing = read_json(os.path.join(cache_dir, METADATA_FILE))
    if existing and (existing.get("checkpoint"), existing.get("data_pattern")) == (
        checkpoint,
        data_pattern,
    ):
        print(f"== {cache_dir}: teacher cache of {checkpoint}, reused")
        return
    print(f"== {cache_dir}: caching the teacher's outputs over {train_pattern}")
    started = time.perf_counter()
    run = restore_run(teacher_dir)
    write_teacher_cache(
        run.model,
        run.model_config,
        run.frame_dataset(train_pattern, batch_size=batch_size, split_file=split_file),
        cache_dir,
        metadata={
            "teacher_run_dir": os.path.abspath(teacher_dir),
            "checkpoint": checkpoint,
            "data_pattern": data_pattern,
            "max_frames": run.max_frames,
            "feature_names": list(run.run_flags.feature_names),
        },
    )
    update_timing(teacher_dir, teacher_cache_wall_s=time.perf_counter() - started)


# --------------------------------------------------------------------------------- summary
def describe(values: Sequence[float | None]) -> dict | None:
    """mean, min, max, half_range and sample std (0 for one value) of per-seed values; None when
    there are none or one is missing."""
    if not values or any(v is None for v in values):
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    low, high = min(values), max(values)
    return {
        "mean": mean,
        "min": low,
        "max": high,
        "half_range": (high - low) / 2,
        "std": math.sqrt(var),
    }


def format_pm(stats: dict | None, digits: int) -> str:
    """'mean ± half-range' of `describe`'s result, or 'n/a'."""
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['half_range']:.{digits}f}"


def write_results(
    work_dir: str, results: dict, table: str, started: float, figures: Sequence[str] = ()
) -> None:
    """results.json and results.md in work_dir, then the table, the files and the wall time of
    the invocation (since `started`, a time.perf_counter() value) on stdout."""
    from yt8m_kd.training.loop import write_json

    os.makedirs(work_dir, exist_ok=True)
    write_json(os.path.join(work_dir, "results.json"), results)
    with open(os.path.join(work_dir, "results.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    written = ["results.md", *(os.path.basename(p) for p in figures)]
    print(f"Results: {os.path.join(work_dir, 'results.json')}, " + ", ".join(written))
    print(f"Wall time of this invocation: {time.perf_counter() - started:.0f} s")
