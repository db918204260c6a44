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
the file and the record id (default) or, with `skip_bad_records=True`, a logged warning naming
both, the record dropped and counted by kind (`PROBLEM_KINDS`) in a `BadRecordCounter`; never
silent. A `corrupt_file` problem is counted once per file and pass.

How it works. A problem code per record drives a `tf.debugging.Assert` (strict mode: an
InvalidArgumentError) or a counting filter (skip mode). The reader runs parse_record's two stages
apart (`record_fields`, the proto parse, and `checked_record`, the checks and frame decoding);
between them it accounts for the record's bytes and applies `id_filter`, so that records it
rejects are neither checked nor decoded.
File-level damage needs more: TensorFlow's DataLossError ("corrupted record at 128") does not name
the file, and tf.data cannot catch an error in-graph. So each file is read and parsed as its own
TFRecordDataset followed by `ignore_errors()` (on a read error TFRecordDataset gives up the file; on
a parse error one record is dropped) and then one sentinel element, while a `scan` adds up the bytes
of the records that came through (a record takes its length + 16 bytes on disk). When the sentinel
finds fewer bytes than the file's size (tf.io.gfile.stat, when the pipeline is built), it turns
into a `corrupt_file` record whose error names the file and the bytes lost; in strict mode it
raises once the file's earlier records have been yielded. The records before the damage are kept.

Limits. Only uncompressed TFRecords (the YouTube-8M format). A file cut exactly at a record boundary
reads as a shorter valid file. A file-level error names the file but not the record. Under
prefetching the counter runs slightly ahead of the batches consumed, and with `repeat=True` it counts
again on every pass. Create the counter outside any `strategy.scope()`; its variable lives on the
host CPU, where tf.data runs. `find_corrupt_files` lists the damaged files of a pattern with
TensorFlow's own messages, e.g. for a data check before a long run.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Callable, Sequence

import tensorflow as tf
from absl import logging

from yt8m_kd.data.yt8m_records import (
    PROBLEM_CODES,
    PROBLEM_KINDS,
    checked_record,
    record_fields,
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
)


def error_message(error: BaseException) -> str:
    """An error's message without the graph context TensorFlow wraps around it, on one line."""
    message = getattr(error, "message", None) or str(error)
    return " ".join(_TF_ERROR_NOISE.sub("", message).split())


# File systems tf.io.gfile has without plugins.
_NATIVE_SCHEMES = ("", "file", "gs", "ram")


class BadRecordCounter:
    """Counts skipped records per problem kind, in a host variable updated inside tf.data.

    Usage:
      counter = BadRecordCounter()
      dataset = frame_dataset(pattern, batch_size=32, skip_bad_records=True,
                              bad_record_counter=counter)
      ...
      counter.counts()  # {"corrupt_file": 0, ..., "label_out_of_range": 2, "total": 2}

    `kinds` are the problem kinds of the data family, in code order (code i counts kind i - 1):
    YouTube-8M's PROBLEM_KINDS by default.
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

    def add(self, code: tf.Tensor) -> tf.Operation:
        """Adds one to the kind with problem code `code` (1-based, as in `kinds`)."""
        one_hot = tf.one_hot(tf.cast(code, tf.int32) - 1, len(self.kinds), dtype=tf.int64)
        return self._counts.assign_add(one_hot, read_value=False)

    def counts(self) -> dict[str, int]:
        """Skipped records per kind (files for corrupt_file), and their "total"."""
        values = [int(v) for v in self._counts.numpy()]
        result = dict(zip(self.kinds, values, strict=True))
        result["total"] = sum(values)
        return result

    def reset(self) -> None:
        self._counts.assign(tf.zeros_like(self._counts))


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
def _make_file_reader(parser_options: dict, deterministic: bool, id_filter=None):
    """(path, size) -> the records of one file, parsed by parse_record's two stages with private
    `_code` and `_error`, followed by one `corrupt_file` record when some of the file's bytes
    could not be read or parsed (see the module docstring). Between the stages each record's
    bytes are accounted for and, with `id_filter`, records it rejects are dropped: before their
    checks and frame decoding, which cost most of the parsing time."""
    feature_names = parser_options["feature_names"]

    def fields(serialized, is_sentinel):
        num_bytes = tf.cast(tf.strings.length(serialized), tf.int64) + _TFRECORD_OVERHEAD_BYTES
        return record_fields(serialized, feature_names), num_bytes, is_sentinel

    def read_file(path: tf.Tensor, size: tf.Tensor) -> tf.data.Dataset:
        # ignore_errors: a read error ends this file's TFRecordDataset, a parse error drops one
        # record; both leave bytes unaccounted for, which the sentinel below reports.
        parsed = tf.data.TFRecordDataset(path).map(
            lambda s: fields(s, False),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        parsed = parsed.ignore_errors()
        sentinel = tf.data.Dataset.from_tensors(b"").map(lambda s: fields(s, True))
        where = tf.strings.join(["in file ", path])

        def account(consumed_bytes, element):
            proto, num_bytes, is_sentinel = element
            damaged = is_sentinel & tf.not_equal(consumed_bytes, size)
            lost_bytes = size - consumed_bytes
            consumed_bytes += tf.where(is_sentinel, tf.constant(0, tf.int64), num_bytes)
            return consumed_bytes, (proto, is_sentinel, damaged, lost_bytes)

        def wanted(proto, is_sentinel, damaged, _lost_bytes):
            keep = ~is_sentinel
            if id_filter is not None:
                keep &= tf.cast(id_filter(proto["video_id"]), tf.bool)
            return keep | damaged

        def to_record(proto, _is_sentinel, damaged, lost_bytes):
            record, code, error = checked_record(proto, **parser_options, where=where)
            file_error = tf.strings.join(
                [
                    "bad YouTube-8M input file ",
                    path,
                    ": ",
                    tf.strings.as_string(lost_bytes),
                    " of its ",
                    tf.strings.as_string(size),
                    " bytes could not be read or parsed (a truncated or corrupt TFRecord file,"
                    " or records that are not SequenceExamples)",
                ]
            )
            record["_code"] = tf.where(damaged, PROBLEM_CODES["corrupt_file"], code)
            record["_error"] = tf.where(damaged, file_error, error)
            return record

        elements = parsed.concatenate(sentinel).scan(tf.constant(0, tf.int64), account)
        return elements.filter(wanted).map(
            to_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )

    return read_file


def _strict(record):
    check = tf.debugging.Assert(
        record["_code"] == 0,
        [
            tf.strings.join(
                [record["_error"], " (skip_bad_records=True skips and counts bad records)"]
            )
        ],
    )
    with tf.control_dependencies([check]):
        return {key: tf.identity(value) for key, value in record.items()}


def _make_skip_filter(counter: BadRecordCounter | None):
    def keep(record):
        def skip():
            ops = [
                tf.print("skipping", record["_error"], output_stream=logging.warning, summarize=-1)
            ]
            if counter is not None:
                ops.append(counter.add(record["_code"]))
            with tf.control_dependencies(ops):
                return tf.constant(False)

        return tf.cond(record["_code"] == 0, lambda: tf.constant(True), skip)

    return keep


def _public(record):
    return {key: value for key, value in record.items() if not key.startswith("_")}


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
    id_filter: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache_file: str | None = None,
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
      id_filter: video id (scalar string) -> bool: keeps only the records it accepts (SAKD trains
        on a selected subset). It runs right after the proto parse, before the record checks and
        the frame decoding; the frames of a rejected record are not checked.
      cache_file: with repeat=True, the checked records of the first pass are written to this
        file (tf.data cache) and later passes read them from it instead of reading and parsing
        the input files again: SAKD's epochs over a selected subset read only that subset. Use a
        new file name per pipeline (a cache left by an interrupted pass is incomplete).

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
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(files), tf.constant(_file_sizes(files), tf.int64))
    )
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
    dataset = dataset.interleave(
        _make_file_reader(parser_options, deterministic, id_filter),
        cycle_length=cycle_length,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if skip_bad_records:
        dataset = dataset.filter(_make_skip_filter(bad_record_counter))
    else:
        dataset = dataset.map(_strict)
    dataset = dataset.map(_public)
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
        },
        drop_remainder=drop_remainder,
    )
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
