"""A teacher cache streamed from disk: each input file's part zipped onto that file's records.

`TeacherCache` (yt8m_kd.distill.teacher_cache) holds every cached video in host memory, N * (C + H)
* 4 bytes: about 92 GB for the 3.9M YouTube-8M training videos with the reference teacher. A cache
built per input file (launchers/cache_teacher.py: part k holds the rows of input file k of the
sorted file list, in that file's record order) does not need that: the reader opens a file's
part when it opens the file and pairs the two in order, before files are interleaved and
shuffled (`yt8m.frame_dataset(file_join=...)`). What is in memory is the rows of the files being
read and the shuffle buffer, whatever the number of videos.

The pairing is checked, never assumed: a record whose id is not that of its row, a file with more
good records than its part has rows, or fewer, is an error naming the file, the part and the
ids, from which nothing is trained. Such a mismatch means the part was made from other records
(the file changed) or with other bad-record handling; the in-memory join, which looks ids up,
accepts any order (`--teacher_cache_join=memory`).

It gives the batches of `TeacherCache.join` exactly (tests/test_cache_stream.py): the rows'
`index` is the same dense sample index (the part's first row in the cache plus the position in
the part), the outputs are the stored float32 values.

When it cannot stream (DistillationTrainer chooses with --teacher_cache_join=auto): a cache
written in one pass (`write_teacher_cache`, shards not aligned with input files), a cache that
dropped repeated ids (with --skip_bad_records its parts lack those rows, so they would not pair),
a training file that is not one of the cache's input files, and the UCF101 reader (a frames
directory is one input; its clips are few enough for memory). SAKD streams too: its selected
samples are a filter on the paired rows (`SelectedRows`), and its difficulty pass gathers the
diversity features it needs from the batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.data.yt8m import list_files
from yt8m_kd.data.yt8m_records import display_id_tensor
from yt8m_kd.distill.teacher_cache import CacheInfo, TeacherCache, parse_rows, read_metadata

# Cache rows parsed at once per open file: a few hundred KB per file in flight at the reference
# widths (3862 + 2048 floats per row).
_ROW_BATCH = 16

_MEMORY_HINT = "rebuild the cache over these files, or train with --teacher_cache_join=memory"


class CannotStream(ValueError):
    """This cache cannot be streamed for these files (the in-memory join still can join it)."""


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


class StreamedTeacherCache(CacheInfo):
    """A finished cache built per input file, joined onto the records file by file.

    Use it as the `file_join` of `yt8m.frame_dataset` (or `videos.read_videos`); the batches then
    hold `teacher_logits` [B, C], `teacher_repr` [B, H] and `index` [B] as with
    `TeacherCache.join`.
    """

    def __init__(self, cache_dir: str, metadata: dict):
        super().__init__(cache_dir, metadata)
        shards = metadata["shards"]
        if not shards or any("input_file" not in shard for shard in shards):
            raise CannotStream(
                f"the teacher cache {cache_dir} was written in one pass, not per input file "
                "(launchers/cache_teacher.py builds it per file)"
            )
        if metadata.get("duplicate_ids"):
            raise CannotStream(
                f"the teacher cache {cache_dir} dropped repeated video ids "
                f"({len(metadata['duplicate_ids'])} listed in its json), so its parts lack rows "
                "that the files have"
            )
        self._shards = shards
        self._first_rows = np.concatenate([[0], np.cumsum([s["num_videos"] for s in shards])])
        self._by_path = {shard["input_file"]: i for i, shard in enumerate(shards)}
        self.padded_shapes = {
            "teacher_logits": [self.num_classes],
            "teacher_repr": [self.repr_size],
            "index": [],
        }

    @classmethod
    def open(cls, cache_dir: str) -> StreamedTeacherCache:
        """Reads only teacher_cache.json; the parts are read as the files are.

        Raises:
          FileNotFoundError, ValueError: as `TeacherCache.load` (no or an unfinished cache).
          CannotStream: a cache written in one pass or with dropped repeated ids.
        """
        return cls(cache_dir, read_metadata(cache_dir))

    # ------------------------------------------------------------------------------- files
    def part_of(self, path: str) -> int:
        """The part of an input file: the one made from the same path, else from a file of the
        same name and size (the data moved); CannotStream when there is none."""
        index = self._by_path.get(_absolute(path))
        if index is not None:
            return index
        name, size = os.path.basename(path), None
        same_name = [
            i
            for i, shard in enumerate(self._shards)
            if os.path.basename(shard["input_file"]) == name
        ]
        if same_name:
            size = tf.io.gfile.stat(path).length
            same = [i for i in same_name if self._shards[i]["input_size"] == size]
            if len(same) == 1:
                return same[0]
        raise CannotStream(
            f"{path} is not one of the input files of the teacher cache {self.cache_dir} "
            f"(made from {self._metadata.get('data_pattern')}, {len(self._shards)} files); "
            f"{_MEMORY_HINT}"
        )

    def file_fields(self, files: Sequence[str]) -> dict[str, tf.Tensor]:
        """Per file of the pipeline: its part's path and that part's first row in the cache."""
        parts = [self.part_of(path) for path in files]
        names = [os.path.join(self.cache_dir, self._shards[p]["name"]) for p in parts]
        return {
            "part": tf.constant(names),
            "first_row": tf.constant([self._first_rows[p] for p in parts], tf.int64),
        }

    # ------------------------------------------------------------------------------- the join
    def _rows(self, part: tf.Tensor) -> tf.data.Dataset:
        """A part's rows in order, each with "_emit" True (a row to pair)."""

        def parse(serialized):
            rows = parse_rows(serialized, self._metadata)
            rows["_emit"] = tf.ones_like(rows["video_id"], tf.bool)
            return rows

        return tf.data.TFRecordDataset(part).batch(_ROW_BATCH).map(parse).unbatch()

    def join(
        self, path: tf.Tensor, fields: dict[str, tf.Tensor], records: tf.data.Dataset
    ) -> tf.data.Dataset:
        """A file's good records, in file order, with their part's rows (yt8m.FileJoin)."""
        rows = self._rows(fields["part"])
        # Each side ends with one end marker ("_emit" False), so that a side with more elements
        # than the other pairs an element with the other's end marker: zip alone would stop at
        # the shorter side and silently drop the rest.
        pairs = tf.data.Dataset.zip(
            (records.concatenate(_end_marker(records)), rows.concatenate(_end_marker(rows)))
        ).enumerate()

        def pair(position, both):
            record, row = both
            same = (record["_emit"] == row["_emit"]) & (record["video_id"] == row["video_id"])
            message = tf.cond(
                same,
                lambda: tf.constant(""),
                lambda: _mismatch(path, fields, position, record, row),
            )
            check = tf.debugging.Assert(same, [message])
            with tf.control_dependencies([check]):
                index = fields["first_row"] + position
            return {
                **record,
                "teacher_logits": row["logits"],
                "teacher_repr": row["repr"],
                "index": index,
            }

        return pairs.map(pair).filter(lambda record: record["_emit"])


class SelectedRows:
    """A streamed cache that keeps only the rows `keep` accepts (a yt8m.FileJoin): SAKD trains on
    its selected samples, `keep(index)` -> bool on the cache row of each paired record. The
    filter runs after the pairing (every good record of a file is paired and checked first), so
    the frames of a record left out are decoded all the same, where the in-memory cache's id
    filter skips them."""

    def __init__(self, cache: StreamedTeacherCache, keep):
        self.cache = cache
        self.keep = keep
        self.padded_shapes = cache.padded_shapes

    def file_fields(self, files: Sequence[str]) -> dict[str, tf.Tensor]:
        return self.cache.file_fields(files)

    def join(
        self, path: tf.Tensor, fields: dict[str, tf.Tensor], records: tf.data.Dataset
    ) -> tf.data.Dataset:
        paired = self.cache.join(path, fields, records)
        return paired.filter(lambda record: self.keep(record["index"]))


def _end_marker(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """One element shaped like `dataset`'s (unknown dimensions 0), zeros, "_emit" False."""

    def zeros(spec: tf.TensorSpec) -> tf.Tensor:
        return tf.zeros([0 if d is None else d for d in spec.shape], spec.dtype)

    marker = tf.nest.map_structure(zeros, dataset.element_spec)
    return tf.data.Dataset.from_tensors(marker)


def _mismatch(path, fields, position, record, row) -> tf.Tensor:
    """The error of a record and a row that do not pair (the rare path)."""
    part = fields["part"]
    n = tf.strings.as_string(position)
    more = tf.strings.join(
        [
            path,
            " has more good records than the ",
            n,
            " rows of its teacher cache part ",
            part,
            "; video id ",
            display_id_tensor(record["video_id"]),
            " is the first without one",
        ]
    )
    fewer = tf.strings.join(
        [path, " has ", n, " good records, but its teacher cache part ", part, " has more rows"]
    )
    other = tf.strings.join(
        [
            path,
            ": its good record ",
            n,
            " has video id ",
            display_id_tensor(record["video_id"]),
            " but row ",
            n,
            " of its teacher cache part ",
            part,
            " is video id ",
            display_id_tensor(row["video_id"]),
        ]
    )
    what = tf.where(~row["_emit"], more, tf.where(~record["_emit"], fewer, other))
    return tf.strings.join(
        [
            what,
            ": the part was made from other records (the file changed, or other bad-record "
            f"skipping); {_MEMORY_HINT}",
        ]
    )


def open_teacher_cache(
    cache_dir: str,
    join: str,
    *,
    dataset: str,
    train_pattern: str,
) -> TeacherCache | StreamedTeacherCache:
    """The cache of a distillation run, streamed or in memory (`join`: auto, stream, memory).

    Args:
      cache_dir: the teacher cache.
      join: "memory" loads it; "stream" streams it or raises ValueError saying why it cannot;
        "auto" streams it where it can, else loads it (and logs why).
      dataset: the run's data family; only the YouTube-8M reader streams.
      train_pattern: the files the run trains on; each must be an input file of the cache.
    """
    if join == "memory":
        return TeacherCache.load(cache_dir)
    reason = None
    if dataset != "yt8m":
        reason = f"the {dataset} reader joins a teacher cache in memory"
    if reason is None:
        try:
            cache = StreamedTeacherCache.open(cache_dir)
            for path in list_files(train_pattern):
                cache.part_of(path)
            logging.info("Teacher cache %s: streamed with the input files", cache_dir)
            return cache
        except CannotStream as e:
            reason = str(e)
    if join == "stream":
        raise ValueError(f"--teacher_cache_join=stream: {reason}")
    logging.info("Teacher cache %s: in memory (%s)", cache_dir, reason)
    return TeacherCache.load(cache_dir)
