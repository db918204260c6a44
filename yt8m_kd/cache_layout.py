"""The files of a teacher cache directory, and whether a cache built in parts is finished.

A teacher cache (yt8m_kd.distill.teacher_cache) built by launchers/cache_teacher.py holds one part
per input file of its plan, named by that file's index in the plan's sorted file list:

  teacher_plan.json        what the cache is made from (teacher, checkpoint, every input file
                           with its size, num_shards, features); written when the first process
                           starts, so that every later shard can check it builds the same cache
  teacher-00007.tfrecord   the teacher's rows of input file 7, in that file's record order
  teacher-00007.json       its marker, written after the part is renamed into place: a part
                           without its marker (a process killed mid-part) is not complete
  teacher_cache.json       written last, once every part is complete: a finished cache

It lives at the bottom of the package because both the flag checks (yt8m_kd.flags, which refuse
an unfinished --teacher_cache before a run starts) and the cache itself read it.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

METADATA_FILE = "teacher_cache.json"
PLAN_FILE = "teacher_plan.json"
SHARD_PREFIX = "teacher-"

# Missing input files named in an "incomplete" message; all are counted.
_MAX_NAMED = 5


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.tfrecord"


def marker_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.json"


def read_json(path: str) -> dict | None:
    """The JSON object at `path`, None when there is no such file."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def read_plan(cache_dir: str) -> dict | None:
    return read_json(os.path.join(cache_dir, PLAN_FILE))


def part_is_complete(cache_dir: str, index: int, input_file: dict) -> bool:
    """Part `index` is there with its marker, and the marker is of this input file ({"path",
    "size"}): an input file that changed size since its part was written is redone."""
    marker = read_json(os.path.join(cache_dir, marker_name(index)))
    return (
        marker is not None
        and marker.get("input_file") == input_file["path"]
        and marker.get("input_size") == input_file["size"]
        and tf.io.gfile.exists(os.path.join(cache_dir, shard_name(index)))
    )


def missing_inputs(cache_dir: str, plan: dict) -> list[str]:
    """The input files of `plan` whose parts are not complete, in plan order."""
    return [
        item["path"]
        for index, item in enumerate(plan["input_files"])
        if not part_is_complete(cache_dir, index, item)
    ]


def describe_missing(missing: list[str], total: int) -> str:
    """ "K of M input files cached (missing: a, b, ...)"."""
    if not missing:
        return f"{total} of {total} input files cached (not finalized)"
    named = ", ".join(missing[:_MAX_NAMED]) + (", ..." if len(missing) > _MAX_NAMED else "")
    return f"{total - len(missing)} of {total} input files cached (missing: {named})"


def incomplete_message(cache_dir: str) -> str | None:
    """One line for a cache directory with a plan but no teacher_cache.json (some parts still to
    be built, or built but not finalized); None for a finished cache or a directory without a
    plan (no cache at all, or an unfinished cache of the single-process format)."""
    if tf.io.gfile.exists(os.path.join(cache_dir, METADATA_FILE)):
        return None
    plan = read_plan(cache_dir)
    if plan is None:
        return None
    missing = missing_inputs(cache_dir, plan)
    return (
        f"teacher cache {cache_dir} is incomplete: "
        f"{describe_missing(missing, len(plan['input_files']))}; run launchers/cache_teacher.py "
        "for the missing shards or --finalize"
    )
