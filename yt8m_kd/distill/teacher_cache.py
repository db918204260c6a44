"""A teacher's outputs per video, computed once and joined onto every student batch by video id.

Distilling a few-frame student from an all-frames teacher (Bhardwaj et al., CVPR 2019) needs the
teacher's `logits` [C] and `repr` [H] for every training video. They do not change while the
student trains (the teacher is frozen and runs in inference mode), so running the teacher on all
300 frames at every student step would be wasted work: `launchers/cache_teacher.py` runs it once
over the training records and stores the outputs here, and any number of student runs read them.

On disk, a cache directory holds

  teacher-00000.tfrecord, ...  tf.train.Example {"video_id": bytes, "logits": float_list [C],
                               "repr": float_list [H]}, float32 (exact)
  teacher_cache.json           what the cache was made from (teacher run, checkpoint, data pattern),
                               its sizes, and every shard with its number of videos; written last
                               and atomically, so a directory without it is an unfinished cache

in one of two layouts, both read by `TeacherCache.load` (it reads the shards the json lists):

- built in parts (launchers/cache_teacher.py, yt8m_kd.distill.cache_build): shard k holds the rows
  of input file k of the sorted file list, in its record order, and has a marker teacher-0000k.json;
  teacher_plan.json says what the cache is made from; the json adds per shard its "input_file" and
  "input_size", and "num_shards" (records_per_shard is null). Until it is finished, `load` and the
  --teacher_cache flag check say how many input files are cached (yt8m_kd.cache_layout).
- in one pass (`write_teacher_cache`, the in-process API of the experiments): records_per_shard
  videos per shard, in the dataset's order.

Usage:
  cache = TeacherCache.load("caches/teacher")  # outside strategy.scope()
  cache.check_compatible(model_config.num_classes, repr_size=None)
  dataset = cache.join(frame_dataset(pattern, batch_size=...))
  # batches now also hold teacher_logits [B, C] and teacher_repr [B, H] (docs/design.md batch contract)

Memory. `TeacherCache.load` holds the whole cache in host memory, N * (C + H) * 4 bytes for N
videos: the 1/100 YouTube-8M training subset (about 39k videos) with the reference teacher
(C = 3862 classes, H = 2048) takes 39,000 * 5,910 * 4 bytes, about 0.9 GB, and about twice that
while loading. The full training set (about 3.9M videos) would take about 92 GB: a cache built per
input file is streamed instead (yt8m_kd.distill.cache_stream, memory independent of N), which
distillation runs do by default where they can.

Why variables and a hash table. The outputs live in two float32 `tf.Variable`s on the host CPU and
the ids in a `tf.lookup.StaticHashTable` (id -> row), created eagerly outside any strategy scope,
like `yt8m.BadRecordCounter`: tf.data functions capture them as resource handles. Captured as a
constant, a 0.9 GB array would be embedded in the pipeline's graph and overflow the 2 GB GraphDef
limit; inside a strategy scope the variables would be mirrored onto the accelerators, out of
tf.data's reach.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.cache_layout import (
    METADATA_FILE,
    PLAN_FILE,
    SHARD_PREFIX,
    incomplete_message,
    shard_name,
)
from yt8m_kd.configs import ModelConfig
from yt8m_kd.data.yt8m import BadRecordCounter
from yt8m_kd.data.yt8m_records import display_id
from yt8m_kd.files import write_json
from yt8m_kd.modeling.predict import model_inputs

FORMAT = "yt8m_kd.teacher_cache/1"
_REBUILD_HINT = "rebuild it with launchers/cache_teacher.py"

# Duplicate ids listed in teacher_cache.json (all are counted).
_MAX_LISTED_DUPLICATES = 100

# Records parsed at once while loading: bounds the temporary tensors to a few MB per batch.
_LOAD_BATCH = 1024


def _make_teacher_fn(model, model_config: ModelConfig) -> Callable:
    @tf.function(reduce_retracing=True)
    def teacher_outputs(frames, num_frames):
        batch = {"frames": frames, "num_frames": num_frames}
        outputs = model(model_inputs(batch, model_config), training=False)
        return tf.cast(outputs["logits"], tf.float32), tf.cast(outputs["repr"], tf.float32)

    return teacher_outputs


# How the outputs are stored: float32 exactly (float_list), or float16 (raw little-endian bytes,
# half the size; values beyond float16's range, |x| > 65504, are clipped to it).
CACHE_DTYPES = ("float32", "float16")
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def example(
    video_id: bytes, logits: np.ndarray, representation: np.ndarray, dtype: str = "float32"
) -> bytes:
    """A cache row: the teacher's logits [C] and repr [H] of one video, stored as `dtype`."""

    def values(x: np.ndarray) -> tf.train.Feature:
        if dtype == "float16":
            half = np.clip(np.asarray(x, np.float32), -_FLOAT16_MAX, _FLOAT16_MAX).astype("<f2")
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[half.tobytes()]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=x))

    feature = {
        "video_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id])),
        "logits": values(logits),
        "repr": values(representation),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def check_dtype(dtype: str) -> None:
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"cache dtype {dtype!r}; valid: {', '.join(CACHE_DTYPES)}")


def _sources(batch: dict, default: str) -> list[str]:
    """The file of each video of a batch, `default` without `source_file`."""
    if "source_file" not in batch:
        return [default] * int(tf.shape(batch["video_id"])[0])
    return [path.decode(errors="replace") for path in batch["source_file"].numpy()]


def _digest(batch: dict, row: int) -> bytes:
    """A digest of a video's frames, to tell a repeated video from two videos with one id."""
    num_frames = int(batch["num_frames"][row])
    return hashlib.blake2b(
        batch["frames"][row, :num_frames].numpy().tobytes(), digest_size=16
    ).digest()


def duplicate_message(shown_id: str, first_file: str, second_file: str, what: str) -> str:
    return (
        f"video id {shown_id} appears twice in the data, in {first_file} and in {second_file} "
        f"({what}): a teacher cache needs unique ids (with --skip_bad_records the first is "
        "kept and the others are counted as duplicate_id)"
    )


def _duplicate(video_id: bytes, first: tuple[str, bytes], second: tuple[str, bytes]) -> dict:
    same = first[1] == second[1]
    shown = display_id(video_id)
    what = "the same frames" if same else "different frames: two videos under one id"
    return {
        "video_id": shown,
        "files": [first[0], second[0]],
        "same_frames": same,
        "message": duplicate_message(shown, first[0], second[0], what),
    }


def listed_duplicates(duplicates: list[dict]) -> list[dict]:
    """The duplicates as teacher_cache.json lists them (the first _MAX_LISTED_DUPLICATES)."""
    return [
        {key: d[key] for key in ("video_id", "files", "same_frames")}
        for d in duplicates[:_MAX_LISTED_DUPLICATES]
    ]


class UniqueIds:
    """The ids seen so far: a repeated id is an error naming both files, or with
    `skip_duplicates` it is logged and listed in `duplicates` (the first video of an id wins)."""

    def __init__(self, skip_duplicates: bool):
        self.skip_duplicates = skip_duplicates
        self.seen: dict[bytes, tuple[str, bytes]] = {}  # id -> (its file, a digest of its frames)
        self.duplicates: list[dict] = []

    def add(self, video_id: bytes, source: tuple[str, bytes]) -> bool:
        """True for a new id (to cache), False for a skipped repeat; ValueError when strict."""
        if not video_id:
            raise ValueError("a record without a video id: a teacher cache is looked up by id")
        if video_id not in self.seen:
            self.seen[video_id] = source
            return True
        duplicate = _duplicate(video_id, self.seen[video_id], source)
        if not self.skip_duplicates:
            raise ValueError(duplicate["message"])
        logging.warning("skipping %s", duplicate["message"])
        self.duplicates.append(duplicate)
        return False


def check_teacher(model_config: ModelConfig) -> None:
    """A cache holds the outputs of a teacher that sees every frame; ValueError otherwise."""
    if model_config.k_frames != 0:
        raise ValueError(
            f"a teacher cache stores the outputs of an all-frames teacher (k_frames=0); this "
            f"model sees k_frames={model_config.k_frames}"
        )


def teacher_batches(
    model, model_config: ModelConfig, dataset: tf.data.Dataset, default_source: str
) -> Iterator[list[tuple[bytes, tuple[str, bytes], np.ndarray, np.ndarray]]]:
    """Runs the teacher over `dataset`; yields per batch its rows (video id, (its file, a digest
    of its frames), logits [C], repr [H]). A video's file is `default_source` for batches
    without `source_file`.

    Raises:
      ValueError: outputs whose width differs from model_config.num_classes.
    """
    teacher_outputs = _make_teacher_fn(model, model_config)
    for batch in dataset:
        logits, representation = teacher_outputs(batch["frames"], batch["num_frames"])
        logits, representation = logits.numpy(), representation.numpy()
        if logits.shape[1] != model_config.num_classes:
            raise ValueError(
                f"the teacher gives {logits.shape[1]} logits, its config says "
                f"num_classes={model_config.num_classes}"
            )
        sources = _sources(batch, default_source)
        yield [
            (video_id, (sources[row], _digest(batch, row)), logits[row], representation[row])
            for row, video_id in enumerate(batch["video_id"].numpy())
        ]


def bad_record_counts(counts: dict, duplicates: int) -> dict:
    """A reader's bad-record counts with the skipped duplicate ids added: skipped, so not in the
    cache."""
    counts = dict(counts)
    counts["duplicate_id"] = counts.get("duplicate_id", 0) + duplicates
    counts["total"] = counts.get("total", 0) + duplicates
    return counts


def _remove_previous_cache(output_dir: str) -> None:
    """Makes a cache already in output_dir incomplete before any of its shards is overwritten;
    the plan and part markers of a cache built in parts go too (it is replaced, not resumed)."""
    metadata_path = os.path.join(output_dir, METADATA_FILE)
    if tf.io.gfile.exists(metadata_path):
        tf.io.gfile.remove(metadata_path)
    plan_path = os.path.join(output_dir, PLAN_FILE)
    if tf.io.gfile.exists(plan_path):
        tf.io.gfile.remove(plan_path)
    for pattern in (f"{SHARD_PREFIX}*.tfrecord", f"{SHARD_PREFIX}*.json"):
        for path in tf.io.gfile.glob(os.path.join(output_dir, pattern)):
            tf.io.gfile.remove(path)


def write_teacher_cache(
    model,
    model_config: ModelConfig,
    dataset: tf.data.Dataset,
    output_dir: str,
    *,
    metadata: dict,
    records_per_shard: int = 10000,
    bad_record_counter: BadRecordCounter | None = None,
    progress: Callable[[int, int], None] | None = None,
    skip_duplicates: bool = False,
    dtype: str = "float32",
) -> dict:
    """Runs the teacher once over `dataset` and writes its outputs per video to `output_dir`.

    Args:
      model: the teacher, a video model mapping (frames, num_frames) to {"logits", "repr"}.
      model_config: its configuration; it must see all frames (k_frames = 0).
      dataset: batches of `yt8m.frame_dataset`, not shuffled and not repeated; every video once.
      output_dir: the cache directory (created). A cache already there is replaced: its
        teacher_cache.json and shards are removed first.
      metadata: what the cache was made from, stored in teacher_cache.json; by convention
        "teacher_run_dir", "checkpoint" and "data_pattern" (named by load errors). The keys this
        function computes (format, num_classes, repr_size, num_videos, shards, ...) override
        same-named keys of `metadata`.
      records_per_shard: videos per TFRecord shard.
      bad_record_counter: the counter of a pipeline that skips bad records; its counts are stored
        under "bad_records" (the skipped videos are not in the cache).
      progress: called after every batch with (batches done, videos done).
      skip_duplicates: a video id seen before is skipped (logged, counted as "duplicate_id" in
        "bad_records", listed under "duplicate_ids" with its files and whether its frames are
        those of the first one) instead of an error; the cache keeps the first video of an id.
        Batches with `source_file` (frame_dataset(source_files=True)) let messages name files.
      dtype: how the outputs are stored, "float32" (exact) or "float16" (half the size).

    Returns:
      The metadata written to teacher_cache.json.

    Raises:
      ValueError: a teacher that sees k < all frames, a video id that is empty or (without
        skip_duplicates) seen twice (named with both files), outputs whose width differs from model_config.num_classes, or no video at all.
        Shards written before the error stay, without teacher_cache.json: not loadable.
    """
    check_teacher(model_config)
    check_dtype(dtype)
    if records_per_shard <= 0:
        raise ValueError(f"records_per_shard={records_per_shard} must be positive")
    rows = teacher_batches(model, model_config, dataset, "an unknown file")
    tf.io.gfile.makedirs(output_dir)
    _remove_previous_cache(output_dir)

    ids = UniqueIds(skip_duplicates)
    shards: list[dict] = []
    writer = None
    repr_size = None
    num_batches = 0
    try:
        for batch_rows in rows:
            for video_id, source, logits, representation in batch_rows:
                repr_size = len(representation)
                if not ids.add(video_id, source):
                    continue
                if writer is None or shards[-1]["num_videos"] == records_per_shard:
                    if writer is not None:
                        writer.close()
                    shards.append({"name": shard_name(len(shards)), "num_videos": 0})
                    writer = tf.io.TFRecordWriter(os.path.join(output_dir, shards[-1]["name"]))
                writer.write(example(video_id, logits, representation, dtype))
                shards[-1]["num_videos"] += 1
            num_batches += 1
            if progress is not None:
                progress(num_batches, len(ids.seen))
    finally:
        if writer is not None:
            writer.close()
    if not ids.seen:
        raise ValueError("no video in the data: nothing to cache")

    result = dict(metadata)
    result.update(
        format=FORMAT,
        num_classes=int(model_config.num_classes),
        repr_size=int(repr_size),
        num_videos=len(ids.seen),
        records_per_shard=records_per_shard,
        shards=shards,
        dtype=dtype,
        teacher_model_config=dataclasses.asdict(model_config),
    )
    if bad_record_counter is not None or ids.duplicates:
        counts = bad_record_counter.counts() if bad_record_counter is not None else {}
        result["bad_records"] = bad_record_counts(counts, len(ids.duplicates))
    if ids.duplicates:
        result["duplicate_ids"] = listed_duplicates(ids.duplicates)
    # Last, and atomically: only a finished cache has its json.
    write_json(os.path.join(output_dir, METADATA_FILE), result)
    return result


def read_metadata(cache_dir: str) -> dict:
    """A finished cache's teacher_cache.json, checked (format, shard counts).

    Raises:
      FileNotFoundError: no teacher_cache.json (no cache, or an unfinished one: one line saying
        how many input files are cached when it is built in parts).
      ValueError: another format, or shards whose video counts do not add up to num_videos.
    """
    metadata_path = os.path.join(cache_dir, METADATA_FILE)
    incomplete = incomplete_message(cache_dir)
    if incomplete:
        raise FileNotFoundError(incomplete)
    if not tf.io.gfile.exists(metadata_path):
        raise FileNotFoundError(
            f"no teacher cache at {cache_dir} ({METADATA_FILE} missing: run "
            "launchers/cache_teacher.py)"
        )
    with tf.io.gfile.GFile(metadata_path) as f:
        metadata = json.load(f)
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{metadata_path} has format {metadata.get('format')!r}, expected {FORMAT!r}; "
            f"{_REBUILD_HINT}"
        )
    listed = sum(shard["num_videos"] for shard in metadata["shards"])
    if listed != metadata["num_videos"]:
        raise ValueError(
            f"{metadata_path}: its shards hold {listed} videos, but num_videos is "
            f"{metadata['num_videos']}; {_REBUILD_HINT}"
        )
    return metadata


def parse_rows(serialized: tf.Tensor, metadata: dict) -> dict[str, tf.Tensor]:
    """Cache rows [n] serialized -> {"video_id": [n], "logits": [n, C], "repr": [n, H]}, the
    outputs float32 whatever the cache stores (teacher_cache.json's "dtype"; float32 when absent,
    as in caches written before float16 storage)."""
    num_classes, repr_size = int(metadata["num_classes"]), int(metadata["repr_size"])
    if metadata.get("dtype", "float32") == "float32":
        return tf.io.parse_example(
            serialized,
            {
                "video_id": tf.io.FixedLenFeature([], tf.string),
                "logits": tf.io.FixedLenFeature([num_classes], tf.float32),
                "repr": tf.io.FixedLenFeature([repr_size], tf.float32),
            },
        )
    rows = tf.io.parse_example(
        serialized,
        {key: tf.io.FixedLenFeature([], tf.string) for key in ("video_id", "logits", "repr")},
    )

    def decoded(values: tf.Tensor, width: int) -> tf.Tensor:
        # Every row of a cache has one width (DecodeRaw needs equal lengths in a batch).
        half = tf.ensure_shape(tf.io.decode_raw(values, tf.float16), [None, width])
        return tf.cast(half, tf.float32)

    return {
        "video_id": rows["video_id"],
        "logits": decoded(rows["logits"], num_classes),
        "repr": decoded(rows["repr"], repr_size),
    }


class CacheInfo:
    """What a teacher cache holds (teacher_cache.json), however it is read."""

    def __init__(self, cache_dir: str, metadata: dict):
        self.cache_dir = cache_dir
        self._metadata = metadata

    @property
    def num_classes(self) -> int:
        return int(self._metadata["num_classes"])

    @property
    def repr_size(self) -> int:
        return int(self._metadata["repr_size"])

    @property
    def num_videos(self) -> int:
        return int(self._metadata["num_videos"])

    @property
    def metadata(self) -> dict:
        """The contents of teacher_cache.json (a copy)."""
        return json.loads(json.dumps(self._metadata))

    def check_compatible(self, num_classes: int, repr_size: int | None = None) -> None:
        """Raises ValueError when a student with these sizes cannot learn from this cache.

        Args:
          num_classes: the student's classes; the teacher's logits must have as many.
          repr_size: the width the student's L_rep compares with the teacher's repr, or None when
            a learned projection adapts any width (docs/design.md, Models).
        """
        where = (
            f"the teacher cache {self.cache_dir} (teacher {self._metadata.get('teacher_run_dir')})"
        )
        if num_classes != self.num_classes:
            raise ValueError(
                f"{where} has {self.num_classes} logits per video but the student has "
                f"num_classes={num_classes}: the cache belongs to another label set"
            )
        if repr_size is not None and repr_size != self.repr_size:
            raise ValueError(
                f"{where} has a repr of width {self.repr_size} but the student expects {repr_size}"
            )


class TeacherCache(CacheInfo):
    """A teacher cache in host memory: video id -> the teacher's logits [C] and repr [H].

    Create it with `TeacherCache.load(cache_dir)`, eagerly and outside any `strategy.scope()`
    (see the module docstring for why and for its memory, N * (C + H) * 4 bytes).
    """

    def __init__(
        self,
        cache_dir: str,
        metadata: dict,
        video_ids: np.ndarray,
        logits: np.ndarray,
        representation: np.ndarray,
    ):
        if tf.distribute.has_strategy():
            # Distributed variables would be mirrored onto the accelerators, out of tf.data's
            # reach on the host.
            raise ValueError("load the TeacherCache outside strategy.scope()")
        super().__init__(cache_dir, metadata)
        self.video_ids = np.asarray(video_ids)  # row i of the cache is video_ids[i]
        with tf.init_scope(), tf.device("/CPU:0"):
            self._rows = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(video_ids, tf.string),
                    tf.range(len(video_ids), dtype=tf.int64),
                ),
                default_value=-1,
            )
            self._logits = tf.Variable(logits, trainable=False, name="teacher_logits")
            self._repr = tf.Variable(representation, trainable=False, name="teacher_repr")

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, cache_dir: str) -> TeacherCache:
        """Reads a cache written by `write_teacher_cache` (launchers/cache_teacher.py).

        Raises:
          FileNotFoundError: no teacher_cache.json (no cache, or an unfinished one: one line
            saying how many input files are cached when it is built in parts), or a shard it
            lists is missing.
          ValueError: a shard's video count differs from the json's, or an id appears twice.
        """
        metadata = read_metadata(cache_dir)
        num_videos = metadata["num_videos"]
        num_classes, repr_size = metadata["num_classes"], metadata["repr_size"]

        # Filled in place: the peak memory is these arrays plus the variables made from them.
        video_ids = np.empty([num_videos], object)
        logits = np.empty([num_videos, num_classes], np.float32)
        representation = np.empty([num_videos, repr_size], np.float32)
        start = 0
        for shard in metadata["shards"]:
            path = os.path.join(cache_dir, shard["name"])
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(
                    f"teacher cache shard {path} listed in {METADATA_FILE} is missing; "
                    f"{_REBUILD_HINT}"
                )
            records = tf.data.TFRecordDataset(path).batch(_LOAD_BATCH)
            count = 0
            for batch in records.map(lambda s: parse_rows(s, metadata)):
                n = int(tf.shape(batch["video_id"])[0])
                if start + count + n <= num_videos:
                    rows = slice(start + count, start + count + n)
                    video_ids[rows] = batch["video_id"].numpy()
                    logits[rows] = batch["logits"].numpy()
                    representation[rows] = batch["repr"].numpy()
                count += n
            if count != shard["num_videos"]:
                raise ValueError(
                    f"teacher cache shard {path} holds {count} videos, {METADATA_FILE} says "
                    f"{shard['num_videos']}; {_REBUILD_HINT}"
                )
            start += count

        unique, counts = np.unique(video_ids.astype(bytes), return_counts=True)
        if len(unique) != num_videos:
            duplicate = display_id(unique[np.argmax(counts > 1)])
            raise ValueError(f"video id {duplicate} is twice in the teacher cache {cache_dir}")
        return cls(cache_dir, metadata, video_ids, logits, representation)

    # ----------------------------------------------------------------------------------- lookup
    def rows(self, video_ids: tf.Tensor) -> tf.Tensor:
        """The cache rows of video ids (any shape), int64, -1 for an id not in the cache.

        A row is a dense sample index 0..N-1 over the cached (training) videos: SAKD keeps its
        per-sample state (difficulty, strength, selection) in arrays indexed by it.
        """
        return self._rows.lookup(video_ids)

    def lookup(self, video_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """{"teacher_logits": [B, C], "teacher_repr": [B, H]} float32 and the dense sample
        `index` [B] int64 (the cache row) for video ids [B].

        A video id not in the cache raises tf.errors.InvalidArgumentError naming it and the cache.
        """
        rows = self.rows(video_ids)  # [B] int64, -1 where missing
        found = rows >= 0

        def describe() -> tf.Tensor:
            missing = tf.boolean_mask(video_ids, ~found)
            # No quotes around the id: tf.debugging.Assert would print them escaped.
            return tf.strings.join(
                [
                    "video id ",
                    missing[0],
                    f" is not in the teacher cache {self.cache_dir} (made from "
                    f"{self._metadata.get('data_pattern')}; ",
                    tf.strings.as_string(tf.size(missing)),
                    " of the ",
                    tf.strings.as_string(tf.size(video_ids)),
                    f" ids in this batch are missing); {_REBUILD_HINT} over the records you "
                    "train on",
                ]
            )

        all_found = tf.reduce_all(found)
        # The message is built only on failure: missing[0] needs a missing id.
        message = tf.cond(all_found, lambda: tf.constant(""), describe)
        check = tf.debugging.Assert(all_found, [message])
        with tf.control_dependencies([check]):
            rows = tf.maximum(rows, 0)
            return {
                "teacher_logits": tf.gather(self._logits, rows),
                "teacher_repr": tf.gather(self._repr, rows),
                "index": rows,
            }

    def join(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Adds `teacher_logits` [B, C], `teacher_repr` [B, H] and `index` [B] to batches with
        `video_id` [B].

        Map it over batches (after `frame_dataset`'s padded_batch): one lookup per batch. Works in
        the dataset_fn of `strategy.distribute_datasets_from_function`, as long as the cache was
        loaded outside the strategy's scope. Iterating raises tf.errors.InvalidArgumentError at
        the first batch with a video id the cache lacks.
        """

        def add_teacher(batch):
            return {**batch, **self.lookup(batch["video_id"])}

        return dataset.map(add_teacher, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )
