"""YouTube-8M frame-level TFRecords -> batches of the batch contract (docs/design.md), in tf.data.

Record format (docs/yt8m-format-and-metrics.md): a `tf.train.SequenceExample` per video with
context `id` (the 2017 data name it `video_id`; both are read) and `labels` (int64, variable
length), and one feature list per feature name holding one bytes value of `feature_size` uint8 per
frame. Batches hold

  video_id    [B] string
  frames      [B, max_frames, sum(feature_sizes)] uint8: the features concatenated per frame in
              `feature_names` order, cut after max_frames, zero-padded at the end. They stay uint8
              (4x fewer bytes through the host); the model dequantizes on the device.
  num_frames  [B] int32 = min(frames in the record, max_frames)
  labels      [B, num_classes] float32 multi-hot

Pipeline: file list -> shard by file (input_context) -> interleaved per-file reads -> parse and
validate -> shuffle -> repeat -> padded batch -> prefetch.

One parser. `parse_record` (one serialized record -> the record, its problem code and error
message) holds the parsing and every record check below; `frame_dataset` runs it (in its two
stages, see "How it works") and so does the exported SavedModel (`yt8m_kd.export`, per record of
a request, labels not read), so training, the teacher cache and serving read a record alike.

Bad input. Every record is checked and a problem is either an error that names the file and the
record id (default) or, with `skip_bad_records=True`, a logged warning naming both, the record
dropped and counted by kind in a `BadRecordCounter`; never silent. Kinds (`PROBLEM_KINDS`):

  corrupt_file          bytes of a file that could not be read or parsed: a truncated or
                        corrupt TFRecord file, or a record that is not a SequenceExample
                        (counted once per file and pass)
  no_frames             no frames in any feature list
  missing_feature       a feature list absent or empty while another one has frames
  frame_count_mismatch  feature lists with different frame counts
  bad_feature_size      a frame whose bytes are not exactly the feature size
  label_out_of_range    a label < 0 or >= num_classes

How it works. Parsing uses defaults (an absent feature list parses as empty), and the frame bytes
are decoded only once their lengths are checked, so a well-formed SequenceExample never makes an op
fail; a problem code per record then drives a `tf.debugging.Assert` (strict mode: an
InvalidArgumentError) or a counting filter (skip mode). parse_record is two stages: the proto parse
(`_record_fields`, the only one that can fail) and the checks and frame decoding
(`_checked_record`, most of the time); between them the reader accounts for the record's bytes and
applies `id_filter`, so that records it rejects are neither checked nor decoded.
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

# Reference dequantization, max = 2, min = -2: x * (max - min) / 255 + (max - min) / 512 + min.
# The models' Dequantize layer (yt8m_kd.modeling.video_models) uses these constants too.
DEQUANTIZE_RANGE = 4.0
DEQUANTIZE_BIAS = -1.9921875
DEQUANTIZE_SCALE = DEQUANTIZE_RANGE / 255.0

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

_RECORD_KINDS = (
    "no_frames",
    "missing_feature",
    "frame_count_mismatch",
    "bad_feature_size",
    "label_out_of_range",
)
PROBLEM_KINDS = ("corrupt_file", *_RECORD_KINDS)
_CODE = {kind: code for code, kind in enumerate(PROBLEM_KINDS, start=1)}  # 0 means no problem


def dequantize(x: tf.Tensor) -> tf.Tensor:
    """uint8 YouTube-8M features -> float32: x * 4/255 - 1.9921875 (0 -> -1.9921875, 255 -> ~2.0078).

    The reference dequantization (docs/yt8m-format-and-metrics.md), the one place it is written:
    the models' first layer (`yt8m_kd.modeling.Dequantize`) and SAKD's interrupted inputs call
    it. In float32 arithmetic: a multiply by 4/255 rounded to float32, then the bias, so a value
    is within a few float32 ulps of the real x * 4/255 - 1.9921875.
    """
    return tf.cast(x, tf.float32) * DEQUANTIZE_SCALE + DEQUANTIZE_BIAS


class BadRecordCounter:
    """Counts skipped records per problem kind, in a host variable updated inside tf.data.

    Usage:
      counter = BadRecordCounter()
      dataset = frame_dataset(pattern, batch_size=32, skip_bad_records=True,
                              bad_record_counter=counter)
      ...
      counter.counts()  # {"corrupt_file": 0, ..., "label_out_of_range": 2, "total": 2}
    """

    def __init__(self, name: str = "bad_records"):
        if tf.distribute.has_strategy():
            # A distributed variable would be mirrored onto the accelerators, out of tf.data's
            # reach on the host.
            raise ValueError("create the BadRecordCounter outside strategy.scope()")
        with tf.init_scope(), tf.device("/CPU:0"):
            self._counts = tf.Variable(
                tf.zeros([len(PROBLEM_KINDS)], tf.int64), trainable=False, name=name
            )

    def add(self, code: tf.Tensor) -> tf.Operation:
        """Adds one to the kind with problem code `code` (1-based, as in PROBLEM_KINDS)."""
        one_hot = tf.one_hot(tf.cast(code, tf.int32) - 1, len(PROBLEM_KINDS), dtype=tf.int64)
        return self._counts.assign_add(one_hot, read_value=False)

    def counts(self) -> dict[str, int]:
        """Skipped records per kind (files for corrupt_file), and their "total"."""
        values = [int(v) for v in self._counts.numpy()]
        result = dict(zip(PROBLEM_KINDS, values, strict=True))
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


# ------------------------------------------------------------------------------------ one record
def _frame_counts_text(names: Sequence[str], counts: Sequence[tf.Tensor]) -> tf.Tensor:
    parts = []
    for name, count in zip(names, counts, strict=True):
        parts += [f"{name}=", tf.strings.as_string(count), ", "]
    return tf.strings.join(parts[:-1])


def _record_fields(
    serialized: tf.Tensor, feature_names: Sequence[str], read_labels: bool = True
) -> dict[str, tf.Tensor]:
    """parse_record's first stage: a record's proto fields (video_id, labels, sequences). The
    only step that can fail: on bytes that are not a SequenceExample. With read_labels=False the
    `labels` field is not parsed (and is empty), so whatever a record holds there is fine."""
    context_features = {
        "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "video_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    if read_labels:
        context_features["labels"] = tf.io.VarLenFeature(tf.int64)
    context, sequences = tf.io.parse_single_sequence_example(
        serialized,
        context_features=context_features,
        sequence_features={
            name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
            for name in feature_names
        },
    )
    return {
        "video_id": tf.where(context["id"] != "", context["id"], context["video_id"]),
        "labels": context["labels"].values if read_labels else tf.zeros([0], tf.int64),
        "sequences": sequences,
    }


def _checked_record(
    fields: dict[str, tf.Tensor],
    *,
    max_frames: int,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    num_classes: int | None,
    where: str | tf.Tensor,
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """parse_record's second stage: proto fields -> (record, code, error). Never fails."""
    names, sizes = tuple(feature_names), tuple(int(s) for s in feature_sizes)
    video_id, labels, sequences = fields["video_id"], fields["labels"], fields["sequences"]
    counts = [tf.shape(sequences[name], out_type=tf.int32)[0] for name in names]
    lengths = [tf.strings.length(sequences[name]) for name in names]
    size_ok = [tf.reduce_all(lens == size) for lens, size in zip(lengths, sizes, strict=True)]
    count_tensor = tf.stack(counts)
    if num_classes is None:  # labels not checked
        label_ok = tf.ones_like(labels, tf.bool)
    else:
        label_ok = (labels >= 0) & (labels < num_classes)

    # The record checks in _RECORD_KINDS order: the first that fails names the problem.
    checks = {
        "no_frames": tf.reduce_any(count_tensor > 0),
        "missing_feature": tf.reduce_all(count_tensor > 0),
        "frame_count_mismatch": tf.reduce_all(count_tensor == counts[0]),
        "bad_feature_size": tf.reduce_all(tf.stack(size_ok)),
    }
    if num_classes is not None:
        checks["label_out_of_range"] = tf.reduce_all(label_ok)
    code = tf.constant(0, tf.int32)
    for kind in reversed(_RECORD_KINDS):
        if kind in checks:
            code = tf.where(checks[kind], code, _CODE[kind])
    frames_ok = (code == 0) | (code == _CODE["label_out_of_range"])

    def describe():
        counts_text = _frame_counts_text(names, counts)
        missing = tf.strings.reduce_join(
            tf.boolean_mask(tf.constant(names), count_tensor == 0), separator=", "
        )

        def bad_size_text():
            feature = tf.argmin(tf.stack(size_ok))  # the first False
            # The first frame of each feature of the wrong size; a trailing 0 keeps argmax off
            # an empty tensor.
            bad_frame = tf.stack(
                [
                    tf.argmax(tf.concat([tf.cast(lens != size, tf.int32), [0]], axis=0))
                    for lens, size in zip(lengths, sizes, strict=True)
                ]
            )
            bad_length = tf.stack(
                [
                    tf.gather(tf.concat([lens, [0]], axis=0), frame)
                    for lens, frame in zip(lengths, tf.unstack(bad_frame), strict=True)
                ]
            )
            return tf.strings.join(
                [
                    "a frame with the wrong number of bytes (feature ",
                    tf.gather(names, feature),
                    ": frame ",
                    tf.strings.as_string(tf.gather(bad_frame, feature)),
                    " has ",
                    tf.strings.as_string(tf.gather(bad_length, feature)),
                    " bytes, expected ",
                    tf.strings.as_string(tf.gather(sizes, feature)),
                    ")",
                ]
            )

        problems = {
            "no_frames": lambda: tf.constant(
                f"no frames (feature lists {', '.join(names)} absent or empty)"
            ),
            "missing_feature": lambda: tf.strings.join(
                ["feature list absent or empty: ", missing, " (frames: ", counts_text, ")"]
            ),
            "frame_count_mismatch": lambda: tf.strings.join(
                ["feature lists have different frame counts (", counts_text, ")"]
            ),
            "bad_feature_size": bad_size_text,
            "label_out_of_range": lambda: tf.strings.join(
                [
                    "label ",
                    tf.strings.as_string(tf.gather(labels, tf.argmin(tf.cast(label_ok, tf.int32)))),
                    f" out of range [0, {num_classes})",
                ]
            ),
        }
        problem = tf.switch_case(
            code - _CODE[_RECORD_KINDS[0]], [problems[kind] for kind in _RECORD_KINDS]
        )
        # No quotes around the id: tf.debugging.Assert would print them escaped.
        record = tf.strings.strip(tf.strings.join(["bad YouTube-8M record ", where]))
        return tf.strings.join([record, ", record id ", video_id, ": ", problem])

    def decode():
        rows = [tf.io.decode_raw(sequences[name][:max_frames], tf.uint8) for name in names]
        return tf.concat(rows, axis=1)  # [n, width]: the features of a frame side by side

    width = sum(sizes)
    frames = tf.cond(frames_ok, decode, lambda: tf.zeros([0, width], tf.uint8))
    frames = tf.ensure_shape(frames, [None, width])
    record = {
        "video_id": video_id,
        "frames": frames,
        "num_frames": tf.shape(frames, out_type=tf.int32)[0],
    }
    if num_classes is not None:
        valid_labels = tf.boolean_mask(labels, label_ok)
        multi_hot = tf.scatter_nd(
            valid_labels[:, tf.newaxis], tf.ones_like(valid_labels, tf.float32), [num_classes]
        )
        record["labels"] = tf.minimum(multi_hot, 1.0)  # a label listed twice is still one label
    error = tf.cond(code == 0, lambda: tf.constant(""), describe)
    return record, code, error


def parse_record(
    serialized: tf.Tensor,
    *,
    max_frames: int,
    feature_names: Sequence[str] = ("rgb", "audio"),
    feature_sizes: Sequence[int] = (1024, 128),
    num_classes: int | None = None,
    where: str | tf.Tensor = "",
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """One serialized YouTube-8M record -> (record, code, error): THE record parser, the one of
    `frame_dataset` (training, evaluation, the teacher cache) and of the exported SavedModel.

    record: video_id [] string (context `id`, else `video_id`), frames [n, sum(feature_sizes)]
      uint8 (the features concatenated per frame in feature_names order, n = min(frames,
      max_frames), not padded; n = 0 for a record whose frames are bad), num_frames [] int32 = n,
      and with num_classes: labels [num_classes] float32 multi-hot.
    code: [] int32, 0 for a good record, else the 1-based index of its problem in PROBLEM_KINDS
      (the record checks of the module docstring, the first that fails; labels are checked only
      with num_classes: without, a record's labels are not even parsed).
    error: [] string, "" for a good record, else "bad YouTube-8M record <where>, record id <id>:
      <problem>", e.g. where = "in file <path>".

    Only bytes that are not a SequenceExample make it fail (InvalidArgumentError, when run); every
    other problem is a code. Runs in a graph (tf.data map, tf.function, tf.map_fn) or eagerly.
    """
    fields = _record_fields(serialized, feature_names, read_labels=num_classes is not None)
    return _checked_record(
        fields,
        max_frames=max_frames,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        num_classes=num_classes,
        where=where,
    )


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
        return _record_fields(serialized, feature_names), num_bytes, is_sentinel

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
            record, code, error = _checked_record(proto, **parser_options, where=where)
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
            record["_code"] = tf.where(damaged, _CODE["corrupt_file"], code)
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
