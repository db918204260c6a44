"""Building a teacher cache in parts, one per input file, by any number of processes.

launchers/cache_teacher.py --num_shards=N --shard_index=i caches the input files files[i::N] of
the sorted file list. Every input file gets its own part (yt8m_kd.cache_layout names the files),
so that

- a process killed mid-way loses only the part it was writing: a part is written under a
  temporary name, renamed, and only then given its marker; a rerun with the same flags skips
  every part that has its marker and redoes the others;
- the cache stays aligned with its input files: part k holds the teacher's rows of input file k,
  in that file's record order;
- processes with different flags cannot mix their parts: the first one writes the plan
  (teacher, checkpoint, input files with sizes, num_shards, features; for an ensemble every
  teacher run and checkpoint, yt8m_kd.distill.ensemble) and every later one must bring the same
  plan.

When every part is complete, `finalize` checks that no video id is in two parts and writes
teacher_cache.json, the same file a single-process cache has (plus each shard's input file and
the num_shards used), so `TeacherCache.load` reads both. It is deterministic, so every process
may try it after its own files and the last one to finish succeeds.

Usage (what the launcher does):
  ensure_plan(output_dir, make_plan(...))
  for index in my_indices:
      if not part_is_complete(output_dir, index, plan["input_files"][index]):
          write_part(model, model_config, dataset_of(index), output_dir, index, ...)
  if not missing_inputs(output_dir, plan):
      finalize(output_dir, skip_duplicates=...)
"""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf

from yt8m_kd.cache_layout import (
    METADATA_FILE,
    PLAN_FILE,
    SHARD_PREFIX,
    describe_missing,
    marker_name,
    missing_inputs,
    read_json,
    read_plan,
    shard_name,
)
from yt8m_kd.configs import ModelConfig
from yt8m_kd.data.yt8m import BadRecordCounter
from yt8m_kd.data.yt8m_records import display_id
from yt8m_kd.distill.teacher_cache import (
    FORMAT,
    UniqueIds,
    bad_record_counts,
    check_teacher,
    duplicate_message,
    example,
    listed_duplicates,
    teacher_batches,
)
from yt8m_kd.files import write_json

PLAN_FORMAT = "yt8m_kd.teacher_cache_plan/1"

# The plan fields two processes must agree on, with how a refusal names them.
PLAN_FIELDS = {
    "teacher_run_dir": "teacher run (--teacher_run_dir)",
    "teacher_run_dirs": "ensemble of teacher runs (--teacher_run_dir)",
    "checkpoint": "teacher checkpoint (--checkpoint)",
    "checkpoints": "ensemble of teacher checkpoints (--checkpoint)",
    "input_files": "input file list (--data_pattern)",
    "split_file": "split file (--split_file)",
    "num_shards": "number of shards (--num_shards)",
    "feature_names": "feature names (feature_names of the teacher run)",
    "max_frames": "max_frames (of the teacher run)",
    "cache_dtype": "storage type (--cache_dtype)",
}
# What a plan written before a field existed meant by it.
_PLAN_DEFAULTS = {"cache_dtype": "float32"}

# The plan keys of an ensemble of teachers (yt8m_kd.distill.ensemble), absent for one teacher;
# teacher_cache.json repeats them. "teacher_run_dir" and "checkpoint" stay the first teacher's.
ENSEMBLE_KEYS = ("teacher_run_dirs", "checkpoints", "teacher_model_configs", "ensemble")

# Records read at once when a part's ids are read back.
_READ_BATCH = 4096


class IncompleteCache(ValueError):
    """Some input files of the plan have no complete part yet."""


def make_plan(
    *,
    teacher_run_dir: str,
    checkpoint: str,
    data_pattern: str,
    input_files: list[dict],
    num_shards: int,
    feature_names: list[str],
    max_frames: int,
    teacher_model_config: dict,
    split_file: str | None = None,
    ensemble: dict | None = None,
    cache_dtype: str = "float32",
) -> dict:
    """What a cache is made from. `input_files`: [{"path", "size"}] in sorted order (a UCF101
    frames directory is one input with size None). `ensemble`: for several teachers, the
    ENSEMBLE_KEYS (every run, checkpoint and model config, in order, and how their outputs are
    combined); the single-teacher fields then hold the first teacher's."""
    plan = {
        "format": PLAN_FORMAT,
        "teacher_run_dir": teacher_run_dir,
        "checkpoint": checkpoint,
        "data_pattern": data_pattern,
        "input_files": input_files,
        "split_file": split_file,
        "num_shards": num_shards,
        "feature_names": list(feature_names),
        "max_frames": max_frames,
        "teacher_model_config": teacher_model_config,
        "cache_dtype": cache_dtype,
    }
    if ensemble:
        plan.update({key: ensemble[key] for key in ENSEMBLE_KEYS})
    return plan


def _describe_files(there: list[dict], here: list[dict]) -> str:
    if len(there) != len(here):
        return f"{len(there)} files there, {len(here)} now"
    for old, new in zip(there, here, strict=True):
        if old != new:
            return f"{old['path']} ({old['size']} bytes) there, {new['path']} ({new['size']} bytes) now"
    return "the same files"


def ensure_plan(output_dir: str, plan: dict) -> None:
    """Writes `plan` to output_dir, or checks it equals the plan already there.

    A finished cache of the single-process format (teacher_cache.json, no plan) is removed first,
    as before: a cache in --output_dir is replaced.

    Raises:
      ValueError: output_dir holds the plan of another cache; the message names the first field
        that differs.
    """
    tf.io.gfile.makedirs(output_dir)
    existing = read_plan(output_dir)
    if existing is None:
        _remove_single_process_cache(output_dir)
        write_json(os.path.join(output_dir, PLAN_FILE), plan)
        return
    for field, label in PLAN_FIELDS.items():
        default = _PLAN_DEFAULTS.get(field)
        there, here = existing.get(field, default), plan.get(field, default)
        if there == here:
            continue
        shown = (
            _describe_files(there, here)
            if field == "input_files"
            else f"{there!r} there, {here!r} now"
        )
        raise ValueError(
            f"{output_dir} holds a teacher cache planned with another {label}: {shown} "
            f"({PLAN_FILE}); rerun with the same flags, or use another --output_dir"
        )


def _remove_single_process_cache(output_dir: str) -> None:
    if not tf.io.gfile.exists(os.path.join(output_dir, METADATA_FILE)):
        return
    tf.io.gfile.remove(os.path.join(output_dir, METADATA_FILE))
    for path in tf.io.gfile.glob(os.path.join(output_dir, f"{SHARD_PREFIX}*.tfrecord")):
        tf.io.gfile.remove(path)


def _remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def _counts_since(counter: BadRecordCounter | None, before: dict) -> dict:
    if counter is None:
        return {}
    return {key: value - before.get(key, 0) for key, value in counter.counts().items()}


def write_part(
    model,
    model_config: ModelConfig,
    dataset: tf.data.Dataset,
    output_dir: str,
    index: int,
    input_file: dict,
    *,
    bad_record_counter: BadRecordCounter | None = None,
    skip_duplicates: bool = False,
    progress: Callable[[int], None] | None = None,
    dtype: str = "float32",
) -> dict:
    """Runs the teacher over `dataset` (the batches of one input file, unshuffled) and writes
    part `index` of the cache, its outputs stored as `dtype`, and then its marker, which it
    returns.

    The marker holds the input file and its size, num_videos, num_classes and repr_size, the
    file's bad-record counts (the counter's change while the part was read, plus duplicate_id) and
    the ids repeated within the file ("duplicate_ids"). A finished cache in output_dir becomes
    unfinished first: its teacher_cache.json is removed, and so are the temporary files of this
    part that a killed process left (one process owns a part: the plan gives each input file to
    one --shard_index).

    Raises:
      ValueError: a teacher that sees k < all frames, a video id that is empty or (without
        skip_duplicates) twice in the file, or outputs of the wrong width. The part is left
        without its marker.
    """
    check_teacher(model_config)
    path = os.path.join(output_dir, shard_name(index))
    marker_path = os.path.join(output_dir, marker_name(index))
    _remove(os.path.join(output_dir, METADATA_FILE))
    _remove(marker_path)
    for stale in tf.io.gfile.glob(f"{path}.tmp-*"):  # left by a process killed in this part
        _remove(stale)
    before = bad_record_counter.counts() if bad_record_counter is not None else {}
    ids = UniqueIds(skip_duplicates)
    repr_size = None
    # Per process: two processes redoing one part never write into each other's file.
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for rows in teacher_batches(model, model_config, dataset, input_file["path"]):
                for video_id, source, logits, representation in rows:
                    repr_size = len(representation)
                    if ids.add(video_id, source):
                        writer.write(example(video_id, logits, representation, dtype))
                if progress is not None:
                    progress(len(rows))
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        _remove(tmp)
    marker = {
        "input_file": input_file["path"],
        "input_size": input_file["size"],
        "num_videos": len(ids.seen),
        "num_classes": int(model_config.num_classes),
        "repr_size": repr_size,
        "bad_records": bad_record_counts(
            _counts_since(bad_record_counter, before), len(ids.duplicates)
        ),
        "duplicate_ids": listed_duplicates(ids.duplicates),
    }
    write_json(marker_path, marker)  # last: the part is complete
    return marker


def _part_ids(path: str) -> list[bytes]:
    features = {"video_id": tf.io.FixedLenFeature([], tf.string)}
    ids: list[bytes] = []
    for batch in tf.data.TFRecordDataset(path).batch(_READ_BATCH):
        ids += list(tf.io.parse_example(batch, features)["video_id"].numpy())
    return ids


def _drop_rows(output_dir: str, index: int, drop: set[bytes], duplicates: list[dict]) -> None:
    """Rewrites part `index` without the rows of `drop` and adds `duplicates` to its marker.

    The marker goes first: a process killed here leaves the part incomplete, and a rerun redoes
    it from its input file and finds the same duplicates again.
    """
    path = os.path.join(output_dir, shard_name(index))
    marker_path = os.path.join(output_dir, marker_name(index))
    marker = read_json(marker_path)
    tf.io.gfile.remove(marker_path)
    features = {"video_id": tf.io.FixedLenFeature([], tf.string)}
    tmp = f"{path}.tmp-{os.getpid()}"
    kept = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in tf.data.TFRecordDataset(path):
                video_id = tf.io.parse_single_example(record, features)["video_id"].numpy()
                if video_id not in drop:
                    writer.write(record.numpy())
                    kept += 1
        tf.io.gfile.rename(tmp, path, overwrite=True)
    finally:
        _remove(tmp)
    marker["num_videos"] = kept
    marker["bad_records"] = bad_record_counts(marker["bad_records"], len(duplicates))
    marker["duplicate_ids"] = marker["duplicate_ids"] + duplicates
    write_json(marker_path, marker)


def _remove_duplicates_across_parts(output_dir: str, plan: dict, skip_duplicates: bool) -> None:
    """Finds ids in two parts: an error naming both input files, or with skip_duplicates the
    later rows are removed from their parts (the first occurrence in input-file order wins, as in
    a single-process cache)."""
    files = [item["path"] for item in plan["input_files"]]
    first: dict[bytes, int] = {}
    drops: dict[int, tuple[set[bytes], list[dict]]] = {}
    for index in range(len(files)):
        for video_id in _part_ids(os.path.join(output_dir, shard_name(index))):
            if video_id not in first:
                first[video_id] = index
                continue
            shown = display_id(video_id)
            earlier = files[first[video_id]]
            if not skip_duplicates:
                raise ValueError(
                    duplicate_message(shown, earlier, files[index], "in two input files")
                )
            drop, listed = drops.setdefault(index, (set(), []))
            drop.add(video_id)
            # Whether their frames are equal is not known here: the parts hold outputs only.
            listed.append(
                {"video_id": shown, "files": [earlier, files[index]], "same_frames": None}
            )
    for index, (drop, listed) in sorted(drops.items()):
        _drop_rows(output_dir, index, drop, listed)


def _sum_counts(all_counts: list[dict]) -> dict:
    total: dict[str, int] = {}
    for counts in all_counts:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


def finalize(output_dir: str, *, skip_duplicates: bool = False) -> dict:
    """Writes teacher_cache.json of a cache whose parts are all complete, and returns it.

    Raises:
      FileNotFoundError: output_dir has no plan.
      IncompleteCache: some parts are missing (named, with their count).
      ValueError: a video id in two input files (without skip_duplicates; named with both
        files), parts that disagree on the output widths, or no video at all.
    """
    plan = read_plan(output_dir)
    if plan is None:
        raise FileNotFoundError(
            f"{output_dir} has no {PLAN_FILE}: no teacher cache is being built there"
        )
    missing = missing_inputs(output_dir, plan)
    if missing:
        raise IncompleteCache(
            f"teacher cache {output_dir} cannot be finished yet: "
            f"{describe_missing(missing, len(plan['input_files']))}"
        )
    _remove_duplicates_across_parts(output_dir, plan, skip_duplicates)
    markers = [
        read_json(os.path.join(output_dir, marker_name(index)))
        for index in range(len(plan["input_files"]))
    ]
    num_videos = sum(marker["num_videos"] for marker in markers)
    if not num_videos:
        raise ValueError("no video in the data: nothing to cache")
    widths = {(m["num_classes"], m["repr_size"]) for m in markers if m["num_videos"]}
    if len(widths) != 1:
        raise ValueError(
            f"the parts of {output_dir} disagree on (num_classes, repr_size): {widths}"
        )
    ((num_classes, repr_size),) = widths
    result = {key: plan[key] for key in ("teacher_run_dir", "checkpoint", "data_pattern")}
    result.update({key: plan[key] for key in ENSEMBLE_KEYS if key in plan})
    result.update(
        format=FORMAT,
        max_frames=plan["max_frames"],
        feature_names=plan["feature_names"],
        num_classes=num_classes,
        repr_size=repr_size,
        num_videos=num_videos,
        records_per_shard=None,  # one shard per input file
        num_shards=plan["num_shards"],
        shards=[
            {
                "name": shard_name(index),
                "num_videos": marker["num_videos"],
                "input_file": marker["input_file"],
                "input_size": marker["input_size"],
            }
            for index, marker in enumerate(markers)
        ],
        teacher_model_config=plan["teacher_model_config"],
        dtype=plan.get("cache_dtype", "float32"),
        bad_records=_sum_counts([marker["bad_records"] for marker in markers]),
    )
    duplicates = [d for marker in markers for d in marker["duplicate_ids"]]
    if duplicates:
        result["duplicate_ids"] = listed_duplicates(duplicates)
    write_json(os.path.join(output_dir, METADATA_FILE), result)  # last: the cache is finished
    return result


def part_sizes(files: list[str]) -> list[dict]:
    """[{"path", "size"}] of input files, for a plan."""
    return [{"path": path, "size": int(tf.io.gfile.stat(path).length)} for path in files]
