"""The YouTube-8M frame-level record format: its one parser with the checks, and dequantization.

Record format (docs/yt8m-format-and-metrics.md): a `tf.train.SequenceExample` per video with
context `id` (the 2017 data name it `video_id`; both are read) and `labels` (int64, variable
length), and one feature list per feature name holding one bytes value of `feature_size` uint8 per
frame, quantized over [-2, 2]; `dequantize` maps them back to float32.

One parser. `parse_record` (one serialized record -> the record, its problem code and error
message) holds the parsing and every record check below; the tf.data reader
(`yt8m_kd.data.yt8m.frame_dataset`) runs it (in its two stages, see "How it works") and so does
the exported SavedModel (`yt8m_kd.export`, per record of a request, labels not read), so
training, the teacher cache and serving read a record alike.

Problem kinds (`PROBLEM_KINDS`; a problem's code, `PROBLEM_CODES`, is its 1-based position there,
0 meaning no problem):

  corrupt_file          a region of a file that holds no valid TFRecord: a truncated or
                        corrupt file (found by the reader, per damaged region, not by
                        parse_record)
  no_frames             no frames in any feature list
  missing_feature       a feature list absent or empty while another one has frames
  frame_count_mismatch  feature lists with different frame counts
  bad_feature_size      a frame whose bytes are not exactly the feature size
  label_out_of_range    a label < 0 or >= num_classes
  empty_id              neither context `id` nor `video_id` holds an id (checked first)
  unparsable_record     an intact TFRecord whose bytes are not a SequenceExample (found by the
                        reader: parse_record fails on it)

New kinds are appended, so that a kind's code never changes. Error messages show ids through
`display_id` (`display_id_tensor` in the graph): control characters and the bytes of a non-UTF-8
id escaped as \\xNN, an id over 100 bytes cut to its first 40 characters + "... (N bytes)".

How it works. Parsing uses defaults (an absent feature list parses as empty), and the frame bytes
are decoded only once their lengths are checked, so a well-formed SequenceExample never makes an op
fail; the caller turns a record's problem code into an error or a skip. parse_record is two
stages: the proto parse (`record_fields`, the only one that can fail) and the checks and frame
decoding (`checked_record`, most of the time); the reader runs them apart, to account for the
record's bytes and apply its `id_filter` in between, so that records it rejects are neither
checked nor decoded.

The reader's fast path. `yt8m.frame_dataset` passes `record_fields(..., fast=)`: a C++ op
(`yt8m_kd.data.native`) decodes the frames of a record in the canonical layout whose frames pass
every frame check, and checks its labels, without TensorFlow's per-frame strings; `checked_record`
then runs only the id and label checks on it. Any other record is parsed and checked as above, so
the records, codes and messages are the same with it and without it (docs/reader-fast-path.md).
The exported SavedModel parses without it.

Protobuf framing. TensorFlow's parser is lenient about a SequenceExample's framing: a nested length
that runs past its enclosing message is cut to it, and a few malformed fields are read past. In
the feature lists that is harmless: a frame read wrongly has the wrong size or count and fails a
check (tests/test_fuzz.py flips every bit of a record: each record the parser reads while protobuf
refuses it is read with the frames it was written with). In the context it is
not: a malformed `labels` list can be read as other labels. So `record_fields` also parses the
context with protobuf's own (strict) parser (`strict_context`, microseconds a record) and fails on
a record it refuses. Checking the whole record strictly would cost about three times the parse
itself (measured on 300-frame records: 1.2 vs 0.37 ms), so the frames are not.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import tensorflow as tf

from yt8m_kd.data import native

# Reference dequantization, max = 2, min = -2: x * (max - min) / 255 + (max - min) / 512 + min.
# The models' Dequantize layer (yt8m_kd.modeling.video_models) uses these constants too.
DEQUANTIZE_RANGE = 4.0
DEQUANTIZE_BIAS = -1.9921875
DEQUANTIZE_SCALE = DEQUANTIZE_RANGE / 255.0

# The kinds parse_record checks, in code order. New kinds go at the END of PROBLEM_KINDS, so that
# the codes of the existing ones keep their numbers.
_RECORD_KINDS = (
    "no_frames",
    "missing_feature",
    "frame_count_mismatch",
    "bad_feature_size",
    "label_out_of_range",
    "empty_id",
)
PROBLEM_KINDS = ("corrupt_file", *_RECORD_KINDS, "unparsable_record")
# 0 means no problem.
PROBLEM_CODES = {kind: code for code, kind in enumerate(PROBLEM_KINDS, start=1)}
# The order the checks run in: the first that fails names the problem. An empty id first: a
# record without an id cannot be named by it, whatever else is wrong with it.
_CHECK_ORDER = ("empty_id", *_RECORD_KINDS[:-1])

# Ids in error lines: longer ones are shown as their first _ID_SHOWN bytes and their length, so
# that a 1 MB id keeps an error on one short line.
MAX_ID_CHARS = 100
_ID_SHOWN = 40


def display_id(video_id: bytes | str) -> str:
    """A video id as error lines show it: printable, on one line, at most ~100 characters.

    Control characters and the bytes of an id that is not UTF-8 are escaped as \\xNN; an id
    longer than MAX_ID_CHARS bytes is cut to its first characters + "... (N bytes)". The same
    rules as `display_id_tensor`, which builds the ids of the in-graph messages.
    """
    raw = video_id.encode() if isinstance(video_id, str) else bytes(video_id)
    try:
        text, utf8 = raw.decode("utf-8"), True
    except UnicodeDecodeError:
        text, utf8 = "", False
    if utf8:
        shown = text[:_ID_SHOWN] if len(raw) > MAX_ID_CHARS else text
        escaped = "".join(
            c if ord(c) >= 32 and ord(c) != 127 else f"\\x{ord(c):02x}" for c in shown
        )
    else:
        shown_bytes = raw[:_ID_SHOWN] if len(raw) > MAX_ID_CHARS else raw
        escaped = "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in shown_bytes)
    return f"{escaped}... ({len(raw)} bytes)" if len(raw) > MAX_ID_CHARS else escaped


# byte -> itself when printable ASCII, else \xNN.
_BYTE_ESCAPES = [chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in range(256)]


def display_id_tensor(video_id: tf.Tensor) -> tf.Tensor:
    """`display_id` in the graph: [] string -> [] string. For error paths (it is not cheap)."""
    length = tf.strings.length(video_id)
    valid = tf.equal(
        tf.strings.unicode_transcode(video_id, "UTF-8", "UTF-8", errors="replace"), video_id
    )
    long = length > MAX_ID_CHARS

    def cut():
        # Whole characters of a UTF-8 id; bytes of any other.
        return tf.cond(
            valid,
            lambda: tf.strings.substr(video_id, 0, _ID_SHOWN, unit="UTF8_CHAR"),
            lambda: tf.strings.substr(video_id, 0, _ID_SHOWN),
        )

    shown = tf.cond(long, cut, lambda: video_id)
    values = tf.cast(tf.io.decode_raw(shown, tf.uint8), tf.int32)
    # The bytes of a UTF-8 id's non-ASCII characters stay (they print); control bytes never do.
    keep = ((values >= 32) & (values != 127)) & ((values < 127) | valid)
    pieces = tf.where(keep, tf.strings.bytes_split(shown), tf.gather(_BYTE_ESCAPES, values))
    escaped = tf.strings.reduce_join(pieces)
    suffix = tf.strings.join(["... (", tf.strings.as_string(length), " bytes)"])
    return tf.where(long, tf.strings.join([escaped, suffix]), escaped)


def dequantize(x: tf.Tensor) -> tf.Tensor:
    """uint8 YouTube-8M features -> float32: x * 4/255 - 1.9921875 (0 -> -1.9921875, 255 -> ~2.0078).

    The reference dequantization (docs/yt8m-format-and-metrics.md), the one place it is written:
    the models' first layer (`yt8m_kd.modeling.Dequantize`) and SAKD's interrupted inputs call
    it. In float32 arithmetic: a multiply by 4/255 rounded to float32, then the bias, so a value
    is within a few float32 ulps of the real x * 4/255 - 1.9921875.
    """
    return tf.cast(x, tf.float32) * DEQUANTIZE_SCALE + DEQUANTIZE_BIAS


# ------------------------------------------------------------------------------------ one record
def _frame_counts_text(names: Sequence[str], counts: Sequence[tf.Tensor]) -> tf.Tensor:
    parts = []
    for name, count in zip(names, counts, strict=True):
        parts += [f"{name}=", tf.strings.as_string(count), ", "]
    return tf.strings.join(parts[:-1])


def strict_context(serialized: tf.Tensor) -> tf.Tensor:
    """Fails (DataLossError or InvalidArgumentError) when protobuf's full parser refuses the
    context of a serialized SequenceExample: a malformed length or field, a feature name that is
    not UTF-8 (see the module docstring). Returns the number of context features."""
    context = tf.io.decode_proto(
        serialized, "tensorflow.SequenceExample", ["context"], [tf.string]
    ).values[0]
    checked = tf.io.decode_proto(
        context, "tensorflow.Features", ["feature"], [tf.string], sanitize=True
    )
    return tf.reduce_sum(checked.sizes)


def _id_features() -> dict[str, tf.io.FixedLenFeature]:
    return {
        "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
        "video_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def _video_id(context: dict[str, tf.Tensor], serialized: tf.Tensor) -> tf.Tensor:
    """Context `id`, else `video_id`; fails where protobuf refuses the context."""
    video_id = tf.where(context["id"] != "", context["id"], context["video_id"])
    # A data dependency on the check (a control dependency is pruned by TensorFlow's optimizer).
    return tf.where(strict_context(serialized) >= 0, video_id, "")


def record_id(serialized: tf.Tensor) -> tf.Tensor:
    """A record's video id, as `record_fields` reads it, from its context alone: the feature
    lists are skipped, not parsed (a few percent of a 300-frame record's parse). Fails as
    record_fields does on bytes that are not a SequenceExample at the top level or on a context
    protobuf refuses; a record whose feature lists alone are malformed is not noticed here."""
    context, _ = tf.io.parse_single_sequence_example(serialized, context_features=_id_features())
    return _video_id(context, serialized)


def record_fields(
    serialized: tf.Tensor,
    feature_names: Sequence[str],
    read_labels: bool = True,
    fast: tuple[Sequence[int], int, int | None] | None = None,
) -> dict[str, tf.Tensor]:
    """parse_record's first stage: a record's proto fields (video_id, labels, sequences). The
    only step that can fail: on bytes that are not a SequenceExample, or whose context protobuf
    refuses (`strict_context`). With read_labels=False the `labels` field is not parsed (and is
    empty), so whatever a record holds there is fine.

    fast: (feature_sizes, max_frames, num_classes) to decode the frames and check the labels with
    the native fast path (`yt8m_kd.data.native`, which must be loaded): the fields then hold
    `canonical` (its outputs) and `serialized` instead of `sequences`, and `checked_record` has
    TensorFlow parse the feature lists only of a record the fast path did not take. The same
    records and errors either way (docs/reader-fast-path.md)."""
    context_features = _id_features()
    if read_labels:
        context_features["labels"] = tf.io.VarLenFeature(tf.int64)
    fields = {}
    if fast is None:
        context, fields["sequences"] = tf.io.parse_single_sequence_example(
            serialized,
            context_features=context_features,
            sequence_features=_sequence_features(feature_names),
        )
    else:
        context, _ = tf.io.parse_single_sequence_example(
            serialized, context_features=context_features
        )
    fields["video_id"] = _video_id(context, serialized)
    fields["labels"] = context["labels"].values if read_labels else tf.zeros([0], tf.int64)
    if fast is not None:
        sizes, max_frames, num_classes = fast
        fields["canonical"] = native.canonical_frames(
            serialized, fields["labels"], feature_names, sizes, max_frames, num_classes
        )
        fields["serialized"] = serialized
    return fields


def _sequence_features(feature_names: Sequence[str]) -> dict:
    return {
        name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
        for name in feature_names
    }


@dataclasses.dataclass
class _Frames:
    """A record's frames as the checks see them, from TensorFlow's parse or the fast path.

    counts: per feature name, its number of frames; size_ok: per feature name, whether every
    frame has the feature's size (None: known to, the fast path's); lengths(): per feature name,
    the byte length of each frame (for the error message); decode(kept): the first `kept` frames,
    [kept, width] uint8; labels: the fast path's label check, which it made with the frames."""

    counts: list[tf.Tensor]
    size_ok: list[tf.Tensor] | None
    lengths: Callable[[], list[tf.Tensor]]
    decode: Callable[[tf.Tensor], tf.Tensor]
    # The fast path's label check: (all labels in range, multi-hot); None: checked here.
    labels: tuple[tf.Tensor, tf.Tensor] | None = None


def _parsed_frames(sequences: dict[str, tf.Tensor], names, sizes) -> _Frames:
    lengths = [tf.strings.length(sequences[name]) for name in names]

    def decode(kept):
        # decode_raw with fixed_length never fails; a bad record keeps 0 frames.
        rows = [
            tf.io.decode_raw(sequences[name][:kept], tf.uint8, fixed_length=size)
            for name, size in zip(names, sizes, strict=True)
        ]
        return tf.concat(rows, axis=1)

    return _Frames(
        counts=[tf.shape(sequences[name], out_type=tf.int32)[0] for name in names],
        size_ok=[tf.reduce_all(lens == size) for lens, size in zip(lengths, sizes, strict=True)],
        lengths=lambda: lengths,
        decode=decode,
    )


def _canonical_frames(canonical: dict[str, tf.Tensor], names, sizes) -> _Frames:
    count = canonical["num_frames"]
    return _Frames(
        counts=[count] * len(names),
        size_ok=None,
        lengths=lambda: [tf.fill([count], size) for size in sizes],
        decode=lambda kept: canonical["frames"][:kept],
        labels=(canonical["labels_ok"], canonical["multi_hot"]),
    )


def checked_record(
    fields: dict[str, tf.Tensor],
    *,
    max_frames: int,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    num_classes: int | None,
    where: str | tf.Tensor,
    wanted: tf.Tensor | None = None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """parse_record's second stage: proto fields -> (record, code, error). Never fails, except
    where record_fields left the feature lists to it (the fast path did not take the record) and
    TensorFlow's parser refuses them: then it fails as record_fields would have.

    wanted: [] bool; a record not wanted is not checked (code 0) and its frames are not decoded
    (0 frames): the reader's id_filter rejected it."""
    names, sizes = tuple(feature_names), tuple(int(s) for s in feature_sizes)
    check = functools.partial(
        _checked,
        fields["video_id"],
        fields["labels"],
        max_frames=max_frames,
        names=names,
        sizes=sizes,
        num_classes=num_classes,
        where=where,
        wanted=wanted,
    )
    if "canonical" not in fields:
        return check(_parsed_frames(fields["sequences"], names, sizes))

    def parsed():
        _, sequences = tf.io.parse_single_sequence_example(
            fields["serialized"], sequence_features=_sequence_features(names)
        )
        return check(_parsed_frames(sequences, names, sizes))

    canonical = fields["canonical"]
    return tf.cond(
        canonical["ok"], lambda: check(_canonical_frames(canonical, names, sizes)), parsed
    )


def _checked(
    video_id: tf.Tensor,
    labels: tf.Tensor,
    frames: _Frames,
    *,
    max_frames: int,
    names: tuple[str, ...],
    sizes: tuple[int, ...],
    num_classes: int | None,
    where: str | tf.Tensor,
    wanted: tf.Tensor | None,
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    counts = frames.counts
    count_tensor = tf.stack(counts)
    if num_classes is None:  # labels not checked
        labels_ok, multi_hot = None, None
    elif frames.labels is not None:
        labels_ok, multi_hot = frames.labels
    else:
        label_ok = (labels >= 0) & (labels < num_classes)
        labels_ok = tf.reduce_all(label_ok)
        # A label out of range adds 0 (at a clipped index); a label listed twice is still one.
        multi_hot = tf.minimum(
            tf.scatter_nd(
                tf.clip_by_value(labels, 0, num_classes - 1)[:, tf.newaxis],
                tf.cast(label_ok, tf.float32),
                [num_classes],
            ),
            1.0,
        )

    # The record checks in _CHECK_ORDER: the first that fails names the problem. Frames from the
    # fast path passed the frame checks (size_ok None): those are not built.
    checks = {"empty_id": tf.strings.length(video_id) > 0}
    if frames.size_ok is not None:
        checks.update(
            no_frames=tf.reduce_any(count_tensor > 0),
            missing_feature=tf.reduce_all(count_tensor > 0),
            frame_count_mismatch=tf.reduce_all(count_tensor == counts[0]),
            bad_feature_size=tf.reduce_all(tf.stack(frames.size_ok)),
        )
    if num_classes is not None:
        checks["label_out_of_range"] = labels_ok
    code = tf.constant(0, tf.int32)
    for kind in reversed(_CHECK_ORDER):
        if kind in checks:
            code = tf.where(checks[kind], code, PROBLEM_CODES[kind])
    if wanted is not None:
        code = tf.where(wanted, code, 0)
    frames_ok = (code == 0) | (code == PROBLEM_CODES["label_out_of_range"])
    if wanted is not None:
        frames_ok &= wanted

    def describe():
        counts_text = _frame_counts_text(names, counts)
        lengths = frames.lengths()
        # The first label out of range, for its message (no such label without num_classes).
        out_of_range = tf.zeros_like(labels, tf.int32)
        if num_classes is not None:
            out_of_range = tf.cast((labels < 0) | (labels >= num_classes), tf.int32)
        missing = tf.strings.reduce_join(
            tf.boolean_mask(tf.constant(names), count_tensor == 0), separator=", "
        )

        def bad_size_text():
            size_ok = [
                tf.reduce_all(lens == size) for lens, size in zip(lengths, sizes, strict=True)
            ]
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
            "empty_id": lambda: tf.constant(
                "an empty video id (neither context id nor video_id holds one)"
            ),
            "label_out_of_range": lambda: tf.strings.join(
                [
                    "label ",
                    tf.strings.as_string(tf.gather(labels, tf.argmax(out_of_range))),
                    f" out of range [0, {num_classes})",
                ]
            ),
        }
        problem = tf.switch_case(
            code - PROBLEM_CODES[_RECORD_KINDS[0]], [problems[kind] for kind in _RECORD_KINDS]
        )
        # No quotes around the id: tf.debugging.Assert would print them escaped.
        record = tf.strings.strip(tf.strings.join(["bad YouTube-8M record ", where]))
        shown_id = tf.cond(
            code == PROBLEM_CODES["empty_id"],
            lambda: tf.constant("(none)"),
            lambda: display_id_tensor(video_id),
        )
        return tf.strings.join([record, ", record id ", shown_id, ": ", problem])

    # The frames, decoded without a branch: a tf.cond here would pass the record's frame strings
    # into a function call, which measured half of a record's parse time.
    kept = tf.where(frames_ok, tf.minimum(counts[0], max_frames), 0)
    decoded = tf.ensure_shape(frames.decode(kept), [None, sum(sizes)])
    record = {
        "video_id": video_id,
        "frames": decoded,
        "num_frames": tf.shape(decoded, out_type=tf.int32)[0],
    }
    if num_classes is not None:
        record["labels"] = multi_hot
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
    native_decoder: bool = False,
) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
    """One serialized YouTube-8M record -> (record, code, error): THE record parser, the one of
    `yt8m.frame_dataset` (training, evaluation, the teacher cache) and of the exported SavedModel.

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
    native_decoder: decode canonical records' frames with the native op (`record_fields`'s
    `fast`; the reader's choice). Never in an exported SavedModel, whose graph must load without
    this project's op library.
    """
    fast = (feature_sizes, max_frames, num_classes) if native_decoder else None
    fields = record_fields(serialized, feature_names, num_classes is not None, fast=fast)
    return checked_record(
        fields,
        max_frames=max_frames,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        num_classes=num_classes,
        where=where,
    )
