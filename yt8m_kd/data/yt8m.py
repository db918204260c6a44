"""YouTube-8M frame-level TFRecords -> batches of the batch contract (docs/design.md), in tf.data.

The records themselves (their format, the one parser `parse_record` with its checks, the problem
kinds, dequantization) are `yt8m_kd.data.yt8m_records`. Batches hold

  video_id    [B] string
  frames      [B, max_frames, sum(feature_sizes)] uint8: the features concatenated per frame in
              `feature_names` order, cut after max_frames, zero-padded at the end. They stay uint8
              (4x fewer bytes through the host); the model dequantizes on the device.
  num_frames  [B] int32 = min(frames in the record, max_frames)
  labels      [B, num_classes] float32 multi-hot

Pipeline: file list -> shard by file (input_context) -> interleaved per-file reads -> parse and
validate -> shuffle -> repeat -> padded batch -> prefetch. Also here: `list_files` (the files of
glob patterns; tensorflow-io for s3:// and hdfs://) and `error_message` (a TensorFlow error's
message on one line).

Bad input. Every record is checked (`parse_record`) and a problem is either an error that names
the file and the record (its position, and its id shortened and escaped by `display_id`) (default)
or, with `skip_bad_records=True`, a logged warning naming both, the record dropped and counted by
kind (`PROBLEM_KINDS`) in a `BadRecordCounter`; never silent. A record whose bytes are an intact
TFRecord but not a SequenceExample is an `unparsable_record`, named by its byte range and the id
before it. A damaged region of a file (bytes TensorFlow's reader cannot read) is an error naming the
file and the byte range (strict, after the file's earlier records), or, in skip mode, one
`corrupt_file` line and count per damaged region, with its bytes and (where countable) records
in the counter, and every intact record after it read all the same (`tfrecords.salvage_records`).
Records without labels are read and counted ("unlabelled"; the first is logged).

How it works. Where the native op library loads (`yt8m_kd.data.native`, the default) and the
reader reads labels without an `id_filter` or `source_files`, a file is first read by a native
dataset (`native.records_dataset`): TensorFlow's TFRecord reader and a one-pass parse, with no
tf.data function per record, emitting the records that are in the canonical layout and have no
problem. At the first record it does not take (or a read error, or a cut) it stops, and the rest
of the file goes through the general pipeline below, from that record's index and byte offset, so
every problem is found, reported and counted as without it (docs/reader-fast-path.md).

The general pipeline. Each file is read by `record_files.item_batches` (shared with the UCF101
reader): its own TFRecordDataset with `ignore_errors()` (at a read error it gives up the file), its
records followed by an end element; a `scan` over them gives every record its byte offset (a record
takes its length + 16 bytes on disk) and its index in the file, so the end element knows whether
the file was read to its end (its size from tf.io.gfile.stat, when the pipeline is built). Only
then, for a damaged file, does more run: in skip mode a py_function reads the file from the damage
point, resynchronising on valid TFRecord headers (CRC32C checked), and returns the records it finds
and one item per lost region; in strict mode one `corrupt_file` item. Intact files never reach it.
Each item is then parsed and checked in one parallel map (`record_fields`, the proto parse, then
`checked_record`, the checks and frame decoding; with an `id_filter`, first the id alone,
`record_id`, and the rest only for a record the filter keeps: a rejected record is read no further
than its context, so one whose feature lists alone are malformed passes unnoticed); the parse is
the only step that can fail, and `ignore_errors()` drops such a record, leaving a hole in the item
indices. A scan over the file's items in order (`_make_settle`) reports such a hole as an
`unparsable_record` with the next item, and turns each problem into an error (strict mode: a
`tf.debugging.Assert`) or a log line and a count (skip mode), counts records without labels, and
marks the records to keep for a filter. Per record this is four tf.data function calls (the byte
accounting, the parse, the scan, the filter) where a bare parse pipeline has one, and the
whole-file read none; everything else runs per batch (benchmarks/yt8m_benchmark.py measures it).

Limits. Only uncompressed TFRecords (the YouTube-8M format). A file cut exactly at a record boundary
reads as a shorter valid file. Salvaging reads the rest of a damaged file into host memory. TF logs
its own "Invalid protocol message" warning (without the file) before the reader's line for an
unparsable record. Under prefetching the counter runs slightly ahead of the batches consumed, and
with `repeat=True` it counts again on every pass. Create the counter outside any
`strategy.scope()`; its variables live on the host CPU, where tf.data runs. `find_corrupt_files`
lists the damaged files of a pattern with TensorFlow's own messages, e.g. for a data check before
a long run.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import tensorflow as tf
from absl import logging

from yt8m_kd.data import native, record_files, tfrecords
from yt8m_kd.data.yt8m_records import (
    PROBLEM_CODES,
    PROBLEM_KINDS,
    checked_record,
    display_id_tensor,
    record_fields,
    record_id,
)

# TFRecord framing around each record's data: uint64 length, uint32 length CRC, uint32 data CRC.
_TFRECORD_OVERHEAD_BYTES = 16

# With num_parallel_reads=AUTOTUNE, files read at once. A fixed number (not the CPU count) keeps
# the record order of an unshuffled pipeline the same on every machine.
_DEFAULT_CYCLE_LENGTH = 16

# The graph context TensorFlow wraps around an op's message: "{{function_node ...}}", "[Op:...]".
# A node inside a function (a tf.map_fn's loop) reads "[[{{function_node ...}}{{node ...}}]]".
_TF_ERROR_NOISE = re.compile(
    r"\[\[(\{\{function_node [^}]*\}\})*\{\{node [^]]*\]\]"
    r"|\{\{function_node [^}]*\}\}|\[Op:[^\]]*\]( name:)?"
    # The ops an error passed through on its way out of a distributed iterator:
    # "[[MultiDeviceIteratorGetNextFromShard]] [[RemoteCall]] [[IteratorGetNext]]".
    r"|\[\[[\w/.:-]+\]\]"
)
# What tf.data puts before the message of an op that failed inside one of its functions.
_TF_DATA_CONTEXT = re.compile(
    r"Error in user-defined function passed to \S+ transformation with iterator: \S+: "
)
# tf.debugging.Assert's message: "assertion failed: [<its data, C-escaped>]".
_ASSERTION = re.compile(r"assertion failed: \[(.*)\]", re.DOTALL)


def error_message(error: BaseException) -> str:
    """An error's message on one line, without the graph context TensorFlow wraps around it: of a
    failed tf.debugging.Assert (the reader's strict mode), just its message, unescaped."""
    message = getattr(error, "message", None) or str(error)
    message = _TF_DATA_CONTEXT.sub("", _TF_ERROR_NOISE.sub("", message))
    assertion = _ASSERTION.search(message)
    if assertion:
        # Assert C-escapes the strings it prints (a backslash doubled, a non-ASCII byte as \NNN).
        escaped = assertion.group(1).strip().encode("utf-8", "backslashreplace")
        message = codecs.escape_decode(escaped)[0].decode("utf-8", "replace")
    return " ".join(message.split())


# File systems tf.io.gfile has without plugins.
_NATIVE_SCHEMES = ("", "file", "gs", "ram")


class BadRecordCounter:
    """Counts skipped records per problem kind, in host variables updated inside tf.data.

    Usage:
      counter = BadRecordCounter()
      dataset = frame_dataset(pattern, batch_size=32, skip_bad_records=True,
                              bad_record_counter=counter)
      ...
      counter.counts()  # {"corrupt_file": 0, ..., "label_out_of_range": 2, "total": 2,
                        #  "lost_bytes": 0, "lost_records": 0, "unlabelled": 0}

    `kinds` are the problem kinds of the data family, in code order (code i counts kind i - 1):
    YouTube-8M's PROBLEM_KINDS by default. Besides the kinds (and their "total"), it counts the
    bytes of damaged file regions and the records they held where known ("lost_bytes",
    "lost_records": a region whose record count is unknown adds none), and the good records
    read without labels ("unlabelled": read, not skipped; the first one is logged, and
    `unlabelled_example()` names its file and id).
    """

    def __init__(self, name: str = "bad_records", kinds: Sequence[str] = PROBLEM_KINDS):
        if tf.distribute.has_strategy():
            # A distributed variable would be mirrored onto the accelerators, out of tf.data's
            # reach on the host.
            raise ValueError("create the BadRecordCounter outside strategy.scope()")
        self.kinds = tuple(kinds)
        with tf.init_scope(), tf.device("/CPU:0"):
            self._counts = tf.Variable(
                tf.zeros([len(self.kinds)], tf.int64), trainable=False, name=name
            )
            # lost bytes, lost records, unlabelled records
            self._extra = tf.Variable(
                tf.zeros([3], tf.int64), trainable=False, name=f"{name}_extra"
            )
            self._example = tf.Variable("", trainable=False, name=f"{name}_unlabelled_example")

    def add(self, code: tf.Tensor, count: tf.Tensor | int = 1) -> tf.Operation:
        """Adds `count` to the kind with problem code `code` (1-based, as in `kinds`)."""
        one_hot = tf.one_hot(tf.cast(code, tf.int32) - 1, len(self.kinds), dtype=tf.int64)
        return self._counts.assign_add(one_hot * tf.cast(count, tf.int64), read_value=False)

    def add_lost(self, num_bytes: tf.Tensor, num_records: tf.Tensor) -> tf.Operation:
        """Adds the bytes of a damaged region and the records it held (0 when unknown)."""
        values = tf.stack([tf.cast(num_bytes, tf.int64), tf.cast(num_records, tf.int64), 0])
        return self._extra.assign_add(values, read_value=False)

    def add_unlabelled(self, path: tf.Tensor, video_id: tf.Tensor) -> tf.Operation:
        """Counts a record without labels; the first one is logged (once per counter)."""
        first = tf.equal(self._extra[2], 0)

        def note_first():
            where = tf.strings.join(["record id ", display_id_tensor(video_id), " in file ", path])
            message = tf.strings.join(
                [
                    "a record without labels (",
                    where,
                    "): fine for unlabelled test data, but in training or evaluation such "
                    "records count as all-negative; see bad_records['unlabelled'] for their number",
                ]
            )
            with tf.control_dependencies([tf.print(message, output_stream=logging.warning)]):
                return self._example.assign(where, read_value=False)

        with tf.control_dependencies([tf.cond(first, note_first, tf.no_op)]):
            return self._extra.assign_add(tf.constant([0, 0, 1], tf.int64), read_value=False)

    def counts(self) -> dict[str, int]:
        """Skipped records per kind (damaged regions for corrupt_file) and their "total", then
        "lost_bytes", "lost_records" and "unlabelled" (see the class docstring)."""
        values = [int(v) for v in self._counts.numpy()]
        result = dict(zip(self.kinds, values, strict=True))
        result["total"] = sum(values)
        extra = [int(v) for v in self._extra.numpy()]
        result.update(lost_bytes=extra[0], lost_records=extra[1], unlabelled=extra[2])
        return result

    def unlabelled_example(self) -> str:
        """The first record read without labels ("record id X in file Y"), "" if none."""
        return self._example.numpy().decode(errors="replace")

    def unlabelled_warning(self) -> str | None:
        """One line for a launcher to print after a pass that read records without labels."""
        count = int(self._extra[2])
        if not count:
            return None
        return (
            f"records without labels: {count} read (e.g. {self.unlabelled_example()}); "
            "in training or evaluation they count as all-negative"
        )

    def reset(self) -> None:
        self._counts.assign(tf.zeros_like(self._counts))
        self._extra.assign(tf.zeros_like(self._extra))
        self._example.assign("")


# ------------------------------------------------------------------------------------ file list
def _scheme(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else ""


def _ensure_filesystem(pattern: str) -> None:
    """Loads tensorflow-io for schemes TensorFlow lacks (s3://, hdfs://), or fails clearly."""
    scheme = _scheme(pattern)
    if scheme in _NATIVE_SCHEMES:
        return
    try:
        import tensorflow_io  # noqa: F401  (registers its file systems with tf.io.gfile)
    except Exception as e:  # ImportError, or its native ops failing to load
        raise ImportError(_filesystem_message(pattern, scheme)) from e


def _filesystem_message(pattern: str, scheme: str) -> str:
    return (
        f"cannot read {pattern!r}: TensorFlow {tf.__version__} has no '{scheme}://' file system; "
        "it comes from the tensorflow-io package, which is abandoned upstream and whose native ops do "
        "not load on TensorFlow >= 2.18 (pip install 'yt8m-kd[s3]' only helps with TensorFlow "
        "<= 2.17). Copy the data to local disk or gs://, which TensorFlow reads natively."
    )


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted, de-duplicated files matching one glob pattern or several.

    Raises:
      FileNotFoundError: a pattern matches no file (the message names the pattern).
      ImportError: a scheme TensorFlow lacks and tensorflow-io cannot provide.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    if not patterns:
        raise FileNotFoundError("no file pattern given")
    files: set[str] = set()
    for pattern in patterns:
        _ensure_filesystem(pattern)
        try:
            matches = tf.io.gfile.glob(pattern)
        except tf.errors.UnimplementedError as e:
            raise ImportError(_filesystem_message(pattern, _scheme(pattern))) from e
        except tf.errors.NotFoundError:
            matches = []
        if not matches:
            raise FileNotFoundError(f"no file matches the pattern {pattern!r}")
        files.update(matches)
    return sorted(files)


def _file_sizes(files: Sequence[str]) -> list[int]:
    # Remote stats are slow one by one; a thread pool overlaps them.
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        return list(pool.map(lambda path: tf.io.gfile.stat(path).length, files))


# ------------------------------------------------------------------------------------ reading
def _lost_region_message(path: str, region: tfrecords.LostRegion, size: int) -> str:
    records = "records lost unknown" if region.records is None else f"{region.records} lost"
    after = "to the end of the file" if region.end == size else f"reading on at byte {region.end}"
    return (
        f"bad YouTube-8M input file {path}: bytes {region.start}-{region.end} of its {size} "
        f"hold no valid TFRecord (a truncated or corrupt file; records: {records}), {after}"
    )


def _damaged_file_message(path: tf.Tensor, offset: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(
        [
            "bad YouTube-8M input file ",
            path,
            ": bytes ",
            tf.strings.as_string(offset),
            "-",
            tf.strings.as_string(size),
            " of its ",
            tf.strings.as_string(size),
            " could not be read or parsed (a truncated or corrupt TFRecord file)",
        ]
    )


def _unparsable_message(path, gap, start, end, size, previous_id):
    del size  # the byte range says where
    after = record_files.after_record(previous_id, "after record id", display_id_tensor)
    return tf.strings.join(
        [
            "bad YouTube-8M record in file ",
            path,
            " (bytes ",
            tf.strings.as_string(start),
            "-",
            tf.strings.as_string(end),
            after,
            "): ",
            tf.strings.as_string(gap),
            " intact TFRecord(s) whose bytes are not a SequenceExample",
        ]
    )


_MESSAGES = record_files.FileMessages(
    damaged=_damaged_file_message,
    lost_region=_lost_region_message,
    unparsable=_unparsable_message,
)


_SKIP_HINT = " (skip_bad_records=True skips and counts bad records)"


class FileJoin(Protocol):
    """Per-file data joined onto a file's records inside the reader, before files are
    interleaved (a teacher cache stored per input file: yt8m_kd.distill.cache_stream).

    `file_fields(files)` is called once when the pipeline is built, with this pipeline's files in
    order; it returns tensors with one row per file ([F, ...]) that travel with each file through
    the file shuffle. `join(path, fields, records)` gets a file's good records in file order
    (after the checks; the public fields and "_emit", all True) and that file's rows of the
    fields, and returns the records with `padded_shapes` fields added ("_emit" kept: the reader
    drops it per batch)."""

    padded_shapes: dict[str, list[int]]

    def file_fields(self, files: Sequence[str]) -> dict[str, tf.Tensor]: ...

    def join(
        self, path: tf.Tensor, fields: dict[str, tf.Tensor], records: tf.data.Dataset
    ) -> tf.data.Dataset: ...


def _make_file_reader(
    parser_options: dict,
    native_decoder: bool,
    deterministic: bool,
    skip_bad_records: bool,
    counter: BadRecordCounter | None,
    id_filter=None,
    source_files: bool = False,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    file_join: FileJoin | None = None,
):
    """(path, size[, file_join's fields]) -> the good records of one file (with "_emit": keep
    it; joined with `file_join`'s data), its problems reported on the way: an error (strict) or a
    logged, counted skip (`skip_bad_records`).

    With the native decoder, labels read, and no id_filter nor source_files: the whole-file fast
    read (`native.records_dataset`), then the general pipeline from where it stopped. The general
    pipeline runs four tf.data functions (a function call costs about 30 us on a 2-core
    machine): the byte accounting (`record_files.item_batches`, which reads the file and gives
    each record its offset, then the file's lost regions and end), the parse and checks
    (`record_fields`, `checked_record`: in parallel; a record that does not parse is dropped),
    a scan that finds such holes (`_make_settle`) and raises, or logs and counts, each problem,
    and a filter on its verdict."""
    feature_names = parser_options["feature_names"]
    width = sum(parser_options["feature_sizes"])
    fast = None
    if native_decoder:
        fast = tuple(parser_options[k] for k in ("feature_sizes", "max_frames", "num_classes"))

    # The whole-file fast path: the common case of training and evaluation reads.
    whole_file = (
        native_decoder
        and id_filter is None
        and not source_files
        and parser_options["num_classes"] is not None
    )

    def general(path: tf.Tensor, size: tf.Tensor, start=None) -> tf.data.Dataset:
        """The general pipeline over a file, from its start or from `start` (a
        `native.resume_point`: the first record the whole-file fast path did not take)."""
        items = record_files.item_batches(
            path,
            size,
            salvage=skip_bad_records,
            corrupt_code=PROBLEM_CODES["corrupt_file"],
            messages=_MESSAGES,
            start=None if start is None else (start["index"], start["offset"]),
        ).unbatch()

        def checked(serialized, where, wanted):
            # The proto parse is the only step that can fail: such records leave holes in the
            # item indices.
            fields = record_fields(serialized, feature_names, fast=fast)
            record, code, error = checked_record(
                fields, **parser_options, where=where, wanted=wanted
            )
            return record, code, error, tf.size(fields["labels"])

        def rejected(video_id):
            # What checked() gives a record it does not want: no frames, no problem.
            record = {
                "video_id": video_id,
                "frames": tf.zeros([0, width], tf.uint8),
                "num_frames": tf.constant(0, tf.int32),
                "labels": tf.zeros([parser_options["num_classes"]], tf.float32),
            }
            return record, tf.constant(0, tf.int32), tf.constant(""), tf.constant(0, tf.int32)

        def parse_and_check(item):
            is_record = item["code"] == record_files.RECORD
            where = tf.strings.join(
                [
                    "in file ",
                    path,
                    " (record ",
                    tf.strings.as_string(item["index"]),
                    " at byte ",
                    tf.strings.as_string(item["offset"]),
                    ")",
                ]
            )
            if id_filter is None:
                keep = is_record
                record, code, error, num_labels = checked(item["serialized"], where, keep)
            else:
                # The id first, from the context alone: a record the id_filter rejects (most of
                # them, in SAKD's epochs over a selection) is not parsed further, checked nor
                # decoded.
                video_id = record_id(item["serialized"])
                keep = is_record & tf.cast(id_filter(video_id), tf.bool)
                record, code, error, num_labels = tf.cond(
                    keep,
                    lambda: checked(item["serialized"], where, True),
                    lambda: rejected(video_id),
                )
            problem = (item["code"] != record_files.RECORD) & (item["code"] != record_files.END)
            record.update(
                _index=item["index"],
                _offset=item["offset"],
                _end=item["end"],
                _is_record=is_record,
                _keep=keep,
                _code=tf.where(keep, code, tf.where(problem, item["code"], 0)),
                _error=tf.where(keep, error, item["error"]),
                _lost_bytes=item["lost_bytes"],
                _lost_records=item["lost_records"],
                _unlabelled=keep & (code == 0) & (num_labels == 0),
            )
            return record

        parsed = items.map(
            parse_and_check, num_parallel_calls=num_parallel_calls, deterministic=deterministic
        ).ignore_errors()
        settle = _make_settle(path, size, skip_bad_records, counter, source_files)
        if start is None:
            first = (tf.constant(0, tf.int64), tf.constant(0, tf.int64), tf.constant(""))
        else:  # the record before `start` was the fast path's: its end and id
            first = (start["index"], start["offset"], start["previous_id"])
        return parsed.scan(first, settle).filter(lambda record: record["_emit"])

    def read_file(path: tf.Tensor, size: tf.Tensor, join_fields=None) -> tf.data.Dataset:
        if whole_file:
            # The file's good records up to the first one the fast path does not take, then the
            # general pipeline from there (nothing when the whole file was read): the same
            # records and problems as the general pipeline over the whole file.
            records, token = native.records_dataset(
                path,
                size,
                feature_names,
                parser_options["feature_sizes"],
                parser_options["max_frames"],
                parser_options["num_classes"],
            )
            rest = (
                tf.data.Dataset.from_tensors(token)
                .map(native.resume_point)
                .filter(lambda point: point["index"] >= 0)
                .flat_map(lambda point: general(path, size, point))
            )
            records = records.concatenate(rest)
        else:
            records = general(path, size)
        if file_join is not None:
            records = file_join.join(path, join_fields, records)
        return records

    return read_file


def _make_settle(path, size, skip_bad_records, counter, source_files):
    """The scan function over a file's parsed items: finds the records that did not parse (a
    hole in the indices, reported with the item after it), raises (strict) or logs and counts
    (skip) every problem in file order, counts records without labels, and returns the public
    fields with "_emit"."""

    def gap_error(gap, record, previous_end, previous_id):
        return _unparsable_message(path, gap, previous_end, record["_offset"], size, previous_id)

    def strict(gap, record, previous_end, previous_id):
        message = tf.cond(
            gap > 0,
            lambda: gap_error(gap, record, previous_end, previous_id),
            lambda: record["_error"],
        )
        check = tf.debugging.Assert(
            (gap == 0) & (record["_code"] == 0), [tf.strings.join([message, _SKIP_HINT])]
        )
        with tf.control_dependencies([check]):
            return tf.identity(record["_keep"])

    def skip(gap, record, previous_end, previous_id):
        def skip_gap():
            ops = [
                tf.print(
                    "skipping",
                    gap_error(gap, record, previous_end, previous_id),
                    output_stream=logging.warning,
                )
            ]
            if counter is not None:
                ops.append(counter.add(PROBLEM_CODES["unparsable_record"], gap))
            with tf.control_dependencies(ops):
                return tf.constant(True)

        def skip_record():
            ops = [tf.print("skipping", record["_error"], output_stream=logging.warning)]
            if counter is not None:
                ops.append(counter.add(record["_code"]))
                ops.append(counter.add_lost(record["_lost_bytes"], record["_lost_records"]))
            with tf.control_dependencies(ops):
                return tf.constant(False)

        gap_done = tf.cond(gap > 0, skip_gap, lambda: tf.constant(True))
        with tf.control_dependencies([gap_done]):
            good = tf.cond(record["_code"] == 0, lambda: tf.constant(True), skip_record)
        return good & record["_keep"]

    report = skip if skip_bad_records else strict

    def slow(gap, record, previous_end, previous_id):
        """A problem, or a record without labels: the rare path."""
        emit = tf.cond(
            (gap > 0) | (record["_code"] != 0),
            lambda: report(gap, record, previous_end, previous_id),
            lambda: record["_keep"],
        )
        if counter is None:
            return emit

        def count_unlabelled():
            with tf.control_dependencies([counter.add_unlabelled(path, record["video_id"])]):
                return tf.identity(emit)

        return tf.cond(emit & record["_unlabelled"], count_unlabelled, lambda: emit)

    def settle(state, record):
        next_index, previous_end, previous_id = state
        gap = record["_index"] - next_index
        rare = (gap > 0) | (record["_code"] != 0)
        if counter is not None:
            rare |= record["_unlabelled"]
        emit = tf.cond(
            rare,
            lambda: slow(gap, record, previous_end, previous_id),
            lambda: record["_keep"],
        )
        state = (
            record["_index"] + 1,
            record["_end"],
            tf.where(record["_is_record"], record["video_id"], previous_id),
        )
        public = {key: value for key, value in record.items() if not key.startswith("_")}
        if source_files:
            public["source_file"] = path
        return state, {**public, "_emit": emit}

    return settle


def frame_dataset(
    file_pattern: str | Sequence[str],
    *,
    batch_size: int,
    max_frames: int = 300,
    num_classes: int = 3862,
    feature_names: Sequence[str] = ("rgb", "audio"),
    feature_sizes: Sequence[int] = (1024, 128),
    shuffle: bool = False,
    shuffle_buffer: int = 1024,
    repeat: bool = False,
    seed: int | None = None,
    skip_bad_records: bool = False,
    bad_record_counter: BadRecordCounter | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    num_parallel_reads: int = tf.data.AUTOTUNE,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    id_filter: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache_file: str | None = None,
    source_files: bool = False,
    file_join: FileJoin | None = None,
    native_decoder: bool | None = None,
) -> tf.data.Dataset:
    """Batches of YouTube-8M frame records (see the module docstring for the batch and errors).

    Args:
      file_pattern: a glob pattern or a sequence of them (local, gs://; s3:// and hdfs:// need
        tensorflow-io).
      batch_size: records per batch of this input pipeline (with a distribution strategy, the
        caller passes input_context.get_per_replica_batch_size(global_batch_size)).
      max_frames: frames kept per video; later frames are cut, shorter videos zero-padded.
      num_classes: width of the multi-hot labels; a label outside [0, num_classes) is a bad record.
      feature_names, feature_sizes: feature lists to read, concatenated per frame in this order.
      shuffle: shuffle the file order and the records (in a buffer of shuffle_buffer records).
      repeat: repeat forever.
      seed: shuffle seed; with a seed the order is reproducible, without one the reads of a
        shuffled pipeline are also allowed to be nondeterministic (faster).
      skip_bad_records: skip bad records (logged, counted) instead of raising an error.
      bad_record_counter: where skipped records are counted.
      drop_remainder: drop a last partial batch (static batch size).
      input_context: with more than one input pipeline, this pipeline reads only the files
        input_pipeline_id, input_pipeline_id + num_input_pipelines, ... of the sorted file list.
      num_parallel_reads: files read at once (AUTOTUNE: min(16, number of files)).
      num_parallel_calls: records parsed and checked at once, per file read (AUTOTUNE: as many
        as tf.data finds worth it; the parse is most of the reader's work).
      id_filter: video id (scalar string) -> bool: keeps only the records it accepts (SAKD trains
        on a selected subset). It runs on the id alone, read from the record's context
        (`yt8m_records.record_id`); a rejected record is neither parsed further, checked nor
        decoded.
      cache_file: with repeat=True, the checked records of the first pass are written to this
        file (tf.data cache) and later passes read them from it instead of reading and parsing
        the input files again: SAKD's epochs over a selected subset read only that subset. Use a
        new file name per pipeline (a cache left by an interrupted pass is incomplete).
      source_files: batches also hold `source_file` [B] string, the file of each record (for
        messages that name it, e.g. the teacher cache's duplicate ids).
      file_join: per-file data zipped onto each file's good records before the files are
        interleaved (`FileJoin`; a teacher cache streamed from its per-file parts). Not with
        id_filter: the join pairs every good record of a file with a row.
      native_decoder: decode the frames of canonical records with the native fast path
        (`yt8m_kd.data.native`; the same records and errors, fewer microseconds). None: where it
        can be built and YT8M_KD_NATIVE is not 0; True: required (BuildError if it cannot be
        built); False: TensorFlow's parser alone.

    Raises:
      FileNotFoundError: a pattern matches no file.
      ValueError: fewer files than input pipelines, or mismatched feature names and sizes.
      ImportError: an s3:// or hdfs:// pattern without a working tensorflow-io.
    Errors raised while iterating (strict mode): tf.errors.InvalidArgumentError naming the file and
    record id (or the file, for a truncated or corrupt file).
    """
    if len(feature_names) != len(feature_sizes):
        raise ValueError(
            f"feature_names {tuple(feature_names)} and feature_sizes {tuple(feature_sizes)} "
            "differ in length"
        )
    if file_join is not None and id_filter is not None:
        raise ValueError("frame_dataset: file_join pairs every good record, so no id_filter")
    files = list_files(file_pattern)
    if input_context is not None and input_context.num_input_pipelines > 1:
        num_pipelines = input_context.num_input_pipelines
        if len(files) < num_pipelines:
            raise ValueError(
                f"{len(files)} files match {file_pattern!r}, fewer than the {num_pipelines} input "
                "pipelines that each read whole files"
            )
        files = files[input_context.input_pipeline_id :: num_pipelines]
    deterministic = not shuffle or seed is not None

    # [files] -> (path, size) pairs; the size lets a reader tell a cut-short file from a whole one.
    slices = (tf.constant(files), tf.constant(_file_sizes(files), tf.int64))
    if file_join is not None:
        slices += (file_join.file_fields(files),)
    dataset = tf.data.Dataset.from_tensor_slices(slices)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    cycle_length = min(
        len(files),
        _DEFAULT_CYCLE_LENGTH if num_parallel_reads == tf.data.AUTOTUNE else num_parallel_reads,
    )
    parser_options = {
        "max_frames": max_frames,
        "feature_names": tuple(feature_names),
        "feature_sizes": tuple(int(s) for s in feature_sizes),
        "num_classes": num_classes,
    }
    if native_decoder is None:
        native_decoder = native.load() is not None
    elif native_decoder and native.load() is None:
        raise native.BuildError(
            "frame_dataset(native_decoder=True): the native frame decoder is not available "
            "(YT8M_KD_NATIVE=0, or it could not be built: see the warning above)"
        )
    dataset = dataset.interleave(
        _make_file_reader(
            parser_options,
            native_decoder,
            deterministic,
            skip_bad_records,
            bad_record_counter,
            id_filter,
            source_files,
            num_parallel_calls,
            file_join,
        ),
        cycle_length=cycle_length,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    width = sum(int(s) for s in feature_sizes)
    # Records carry only their own frames; padding to max_frames happens per batch, which keeps
    # the shuffle buffer small for short videos.
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes={
            "video_id": [],
            "frames": [max_frames, width],
            "num_frames": [],
            "labels": [num_classes],
            **({"source_file": []} if source_files else {}),
            **(file_join.padded_shapes if file_join is not None else {}),
            "_emit": [],
        },
        drop_remainder=drop_remainder,
    )
    # Per batch, not per record: a tf.data function call per record costs (see _make_file_reader).
    dataset = dataset.map(lambda batch: {k: v for k, v in batch.items() if k != "_emit"})
    return dataset.prefetch(tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------ diagnosis
def find_corrupt_files(
    file_pattern: str | Sequence[str],
    feature_names: Sequence[str] = ("rgb", "audio"),
) -> list[tuple[str, str]]:
    """(path, message) for every file that cannot be read to its end or parsed.

    A diagnostic for when an error escaped the pipeline without a file name (a record whose bytes
    are not a SequenceExample). Reads every file once; per-record checks stay in `frame_dataset`.
    """
    sequence_features = {
        name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
        for name in feature_names
    }
    context_features = {"labels": tf.io.VarLenFeature(tf.int64)}

    def record_bytes(serialized):
        context, _ = tf.io.parse_single_sequence_example(
            serialized, context_features=context_features, sequence_features=sequence_features
        )
        # The label count is returned (and summed) only so that the parse op is not pruned.
        num_bytes = tf.cast(tf.strings.length(serialized), tf.int64) + _TFRECORD_OVERHEAD_BYTES
        return num_bytes, tf.size(context["labels"].values, out_type=tf.int64)

    def add(total, element):
        return total[0] + element[0], total[1] + element[1]

    problems = []
    for path in list_files(file_pattern):
        size = tf.io.gfile.stat(path).length
        records = tf.data.TFRecordDataset(path).map(record_bytes)
        zero = tf.constant(0, tf.int64)
        try:
            consumed, _ = records.reduce((zero, zero), add)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            problems.append((path, error_message(e)))
            continue
        if int(consumed) != size:
            problems.append((path, f"read {int(consumed)} of {size} bytes"))
    return problems


def with_file_context(
    error: tf.errors.OpError, file_pattern: str | Sequence[str]
) -> tf.errors.OpError:
    """The error of the same type, its message extended with the files `find_corrupt_files`
    finds; for a launcher to re-raise when a read error does not say which file it came from."""
    found = find_corrupt_files(file_pattern)
    where = "; ".join(f"{path}: {message}" for path, message in found) or "no bad file found"
    return type(error)(error.node_def, error.op, f"{error.message} [files: {where}]")
