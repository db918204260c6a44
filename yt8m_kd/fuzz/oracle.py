"""The fuzz oracle: which records of a set of files are good and which are bad, decided without
the readers.

Records: the TFRecord framing is walked in pure Python (`tfrecord.split_records`, resynchronising
after damage), each intact record is parsed with protobuf (`tf.train.SequenceExample` is the
generated protobuf class, not TensorFlow's parsing op) and checked against the documented schema
and record checks:

- the schema the readers' parse op enforces (a record that breaks it cannot be parsed): a context
  feature read as one value (YouTube-8M `id` / `video_id`; UCF101 `id`, `label`, `class_name`)
  holds, when present, exactly one value of its type; YouTube-8M `labels`, when present, is an
  int64 list (or no list); every frame of a read feature list is one bytes value;
- an empty video id (neither `id` nor `video_id`) is bad: it would become an empty row of a
  predictions CSV (issue 11);
- YouTube-8M, the record checks of `yt8m_kd.data.yt8m_records` in its order: no_frames,
  missing_feature, frame_count_mismatch, bad_feature_size, label_out_of_range;
- UCF101, the checks of `yt8m_kd.data.ucf101`: no frames, a label outside [0, num_classes) (a
  record without a label has label -1), a frame that is not a complete JPEG (SOI ... EOI) or does
  not decode, and frames of one video that differ in size;
- UCF101 frames folders: a listed video whose folder is missing, holds no frames, has a gap in its
  frame_00001.jpg, frame_00002.jpg, ... numbering, or a frame that is bad as above.

A byte flip that leaves a record that passes all of this is a good record: its content changed,
which a reader cannot know. The context is parsed strictly (protobuf refuses a malformed field or a
feature name that is not UTF-8, and so do the readers); a record whose feature lists protobuf
refuses only for their framing, which TensorFlow's parser reads leniently, is `tolerated` (see
"wire format" below). A Feature or context that holds fields its type does not have, and a context
entry with a name and no value, are what the readers' parse op refuses. Duplicate ids are good
records here: both are read; reporting them is the job of what writes ids out (infer.py's CSV). JPEG decoding uses TensorFlow's decoder (the one
training uses) eagerly, outside any pipeline; everything else is plain Python.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence

import tensorflow as tf

from yt8m_kd.fuzz import tfrecord

_FRAME_NAME = re.compile(r"frame_(\d+)\.jpg")


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """One bad record (or damaged region) of a file, as the oracle sees it."""

    path: str  # the file, or for a frames folder the folder
    video_id: bytes | None  # None where the record cannot be identified
    problem: str
    record_level: bool  # a parsed record that fails a check (counted by kind, named by id)


@dataclasses.dataclass
class Expected:
    """What a correct reader gives for a set of files."""

    good_ids: list[bytes] = dataclasses.field(default_factory=list)  # in file order
    bad: list[BadRecord] = dataclasses.field(default_factory=list)
    # Records a reader may read or refuse: protobuf refuses only their feature lists' framing,
    # which TensorFlow's parser reads leniently, and as it reads them they pass every check
    # (`_with_clamped_feature_lists`).
    tolerated: list[BadRecord] = dataclasses.field(default_factory=list)

    @property
    def record_bad(self) -> int:
        return sum(b.record_level for b in self.bad)

    @property
    def file_bad_range(self) -> tuple[int, int]:
        """(min, max) a skip counter may count for damage below the record level: at least one
        per damaged file, at most one per damaged region or unparseable record."""
        events = [b for b in self.bad if not b.record_level]
        return len({b.path for b in events}), len(events)


# ------------------------------------------------------------------------------------ schema
@dataclasses.dataclass(frozen=True)
class Schema:
    """The part of a family's parse spec the oracle checks (see the module docstring)."""

    scalar_context: dict  # name -> "bytes_list" | "int64_list": exactly one value when present
    list_context: dict  # name -> kind: any number of values (or no kind) when present
    feature_lists: tuple[str, ...]  # each frame exactly one bytes value


YT8M_SCHEMA = Schema(
    scalar_context={"id": "bytes_list", "video_id": "bytes_list"},
    list_context={"labels": "int64_list"},
    feature_lists=("rgb", "audio"),
)
UCF101_SCHEMA = Schema(
    scalar_context={"id": "bytes_list", "label": "int64_list", "class_name": "bytes_list"},
    list_context={},
    feature_lists=("frames",),
)


def _values(feature: tf.train.Feature, kind: str) -> list:
    return list(getattr(feature, kind).value)


def _has_unknown_fields(message) -> bool:
    """Whether a Feature (or the context's Features) holds fields its type does not have (the
    readers' parse op refuses it)."""
    known = type(message)()
    known.CopyFrom(message)
    known.DiscardUnknownFields()
    return known.ByteSize() != message.ByteSize()


def schema_problem(example: tf.train.SequenceExample, schema: Schema) -> str | None:
    """Why the readers' parse op would refuse this record, or None."""
    if _has_unknown_fields(example.context):
        return "the context holds fields Features does not have"
    context = example.context.feature
    for name in (*schema.scalar_context, *schema.list_context):
        if name in context and _has_unknown_fields(context[name]):
            return f"context {name} holds fields no Feature has"
    for name, kind in schema.scalar_context.items():
        if name in context:
            feature = context[name]
            if feature.WhichOneof("kind") != kind or len(_values(feature, kind)) != 1:
                return f"context {name} is not one {kind} value"
    for name, kind in schema.list_context.items():
        if name in context and context[name].WhichOneof("kind") not in (None, kind):
            return f"context {name} is not an {kind}"
    lists = example.feature_lists.feature_list
    for name in schema.feature_lists:
        if name in lists:
            for step in lists[name].feature:
                if step.WhichOneof("kind") != "bytes_list" or len(step.bytes_list.value) != 1:
                    return f"a frame of feature list {name} is not one bytes value"
                if _has_unknown_fields(step):
                    return f"a frame of feature list {name} holds fields no Feature has"
    return None


def _parse(data: bytes) -> tuple[tf.train.SequenceExample | None, bool]:
    """(the record as protobuf parses it, False); where protobuf refuses only the framing of the
    feature lists, (the record with them read as TensorFlow's parser reads them, True); (None,
    False) when it is no SequenceExample."""
    example = tf.train.SequenceExample()
    try:
        example.ParseFromString(data)
        if not _context_entries_complete(data):
            return None, False
        return example, False
    except Exception:  # protobuf's DecodeError, or a RuntimeWarning-turned-error on bad UTF-8
        try:
            example.ParseFromString(_with_clamped_feature_lists(data))
            return example, True
        except Exception:  # noqa: BLE001  (not a SequenceExample at all)
            return None, False


# ------------------------------------------------------------------------------------ wire format
# TensorFlow's parser reads the feature lists of a SequenceExample leniently: a nested length that
# runs past its enclosing message is cut to that message, or read as an upper bound (seen in the
# fuzz campaign, yt8m-flip_bytes_valid_crc-00946: a BytesList length of 108 in a Feature of 12
# bytes, read as the 8-byte frame it holds). The readers rely on that parser for the frames (a
# frame read wrongly fails the size and count checks; tests/test_fuzz.py sweeps every single-bit
# flip of a small record to show that a record the reader reads while protobuf refuses it is read
# with the values it was written with) and check the context strictly (yt8m_records.strict_context). So
# a record whose feature-list framing alone is malformed is `tolerated`: read or refused, both
# are right. The oracle recognises that form, `_with_clamped_feature_lists` (every length cut to
# its message, a Feature's length read as an upper bound, then parsed by protobuf); a record of another form protobuf refuses is bad. The context
# is parsed as it stands: a context protobuf refuses (a malformed labels list, a feature name that
# is not UTF-8) makes the record bad. Wire format: a field is a varint tag (number << 3 | type) and a
# value: type 0 a varint, 1 eight bytes, 2 a varint length and that many bytes, 5 four bytes.
_LENGTH_DELIMITED = 2
# The messages inside SequenceExample.feature_lists (field 2): field number -> the message it holds.
_SUBMESSAGES = {
    "FeatureLists": {1: "FeatureListEntry"},
    "FeatureListEntry": {2: "FeatureList"},
    "FeatureList": {1: "Feature"},
    "Feature": {},  # its lists (bytes, float, int64) are left as they are
}


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset, shift = offset + 1, shift + 7
        if byte < 0x80:
            return value, offset


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: bytes, clamp: bool = False):
    """(field number, the field's bytes, its value's bytes for type 2 else None) of each field;
    with clamp, a length past the end of `data` is cut to it."""
    offset = 0
    while offset < len(data):
        start = offset
        tag, offset = _varint(data, offset)
        number, wire_type = tag >> 3, tag & 7
        payload = None
        if wire_type == 0:
            _, offset = _varint(data, offset)
        elif wire_type in (1, 5):
            offset += 8 if wire_type == 1 else 4
        elif wire_type == _LENGTH_DELIMITED:
            length, offset = _varint(data, offset)
            if clamp:
                length = min(length, len(data) - offset)
            payload, offset = data[offset : offset + length], offset + length
        else:
            raise ValueError("unsupported wire type")
        if offset > len(data):
            raise ValueError("field past the end")
        yield number, data[start:offset], payload


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH_DELIMITED) + _encode_varint(len(payload)) + payload


def _context_entries_complete(data: bytes) -> bool:
    """Whether every entry of the context's feature map holds a value (field 2): TensorFlow's
    parser refuses an entry of a name alone, which protobuf reads as an empty Feature."""
    for number, _, context in _fields(data):
        if number == 1 and context is not None:
            for _, _, entry in _fields(context):
                if entry is None or not any(n == 2 for n, _, _ in _fields(entry)):
                    return False
    return True


def _features_read_on(data: bytes) -> bytes:
    """A FeatureList's features as TensorFlow reads them: a Feature's length is an upper bound, its
    one field (its list) is read and the next Feature starts where that field ends."""
    out, offset = [], 0
    while offset < len(data):
        tag, offset = _varint(data, offset)
        if tag != 1 << 3 | _LENGTH_DELIMITED:
            raise ValueError("not a Feature")
        length, offset = _varint(data, offset)
        bound = min(offset + length, len(data))
        inner = next(_fields(data[offset:bound], clamp=True), None)
        out.append(_field(1, inner[1] if inner else b""))
        offset += len(inner[1]) if inner else 0
    return b"".join(out)


def _clamped(data: bytes, message: str) -> bytes:
    """`data`, a `message` of _SUBMESSAGES, re-encoded with every nested length cut to its
    enclosing message (see above)."""
    if message == "FeatureList":
        data = _features_read_on(data)
    out = []
    for number, raw, payload in _fields(data, clamp=True):
        if payload is not None:
            inner = _SUBMESSAGES[message].get(number)
            raw = _field(number, _clamped(payload, inner) if inner else payload)
        out.append(raw)
    return b"".join(out)


def _with_clamped_feature_lists(data: bytes) -> bytes:
    """A SequenceExample's bytes with its feature lists (field 2) read as TensorFlow reads them."""
    out = []
    for number, raw, payload in _fields(data):
        if number == 2 and payload is not None:
            raw = _field(number, _clamped(payload, "FeatureLists"))
        out.append(raw)
    return b"".join(out)


def _scalar(example: tf.train.SequenceExample, name: str, kind: str, default):
    context = example.context.feature
    return _values(context[name], kind)[0] if name in context else default


# ------------------------------------------------------------------------------------ YouTube-8M
def yt8m_record_problem(
    example: tf.train.SequenceExample,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    num_classes: int,
) -> str | None:
    """The first record check of yt8m_records (in its order) a parsed record fails, or None."""
    lists = example.feature_lists.feature_list
    frames = {
        name: [step.bytes_list.value[0] for step in lists[name].feature] if name in lists else []
        for name in feature_names
    }
    counts = [len(frames[name]) for name in feature_names]
    if not any(counts):
        return "no_frames"
    if not all(counts):
        return "missing_feature"
    if len(set(counts)) > 1:
        return "frame_count_mismatch"
    for name, size in zip(feature_names, feature_sizes, strict=True):
        if any(len(value) != size for value in frames[name]):
            return "bad_feature_size"
    labels = (
        _values(example.context.feature["labels"], "int64_list")
        if "labels" in (example.context.feature)
        else []
    )
    if any(not 0 <= label < num_classes for label in labels):
        return "label_out_of_range"
    return None


def _files_expected(
    paths: Sequence[str],
    schema: Schema,
    verdict: Callable[[tf.train.SequenceExample], tuple[bytes, str | None]],
) -> Expected:
    """The verdict on record files of either family: a damaged region or a record that does not
    parse as the family's SequenceExample is a bad record without an id; every other record is
    good or bad by `verdict(example) -> (video id, problem or None)`, an empty id being bad."""
    expected = Expected()
    for path in paths:
        with open(path, "rb") as f:
            framed = tfrecord.split_records(f.read())
        for start, end in framed.damaged:
            expected.bad.append(BadRecord(path, None, f"damaged bytes {start}..{end}", False))
        for data in framed.records:
            example, lenient = _parse(data)
            if example is None or schema_problem(example, schema) is not None:
                expected.bad.append(BadRecord(path, None, "unparseable record", False))
                continue
            video_id, problem = verdict(example)
            if problem is None and not video_id:
                problem = "empty_id"
            if lenient and problem:  # refused as unparsable or counted by its problem
                expected.bad.append(BadRecord(path, None, "feature lists framed wrongly", False))
            elif lenient:  # read, or refused as unparsable
                expected.tolerated.append(BadRecord(path, video_id, "feature lists framed", False))
            elif problem is None:
                expected.good_ids.append(video_id)
            else:
                expected.bad.append(BadRecord(path, video_id, problem, True))
    return expected


def yt8m_expected(
    paths: Sequence[str],
    *,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    num_classes: int,
) -> Expected:
    """The oracle's verdict on YouTube-8M record files."""

    def verdict(example):
        video_id = _scalar(example, "id", "bytes_list", b"") or _scalar(
            example, "video_id", "bytes_list", b""
        )
        return video_id, yt8m_record_problem(example, feature_names, feature_sizes, num_classes)

    schema = dataclasses.replace(YT8M_SCHEMA, feature_lists=tuple(feature_names))
    return _files_expected(paths, schema, verdict)


# ------------------------------------------------------------------------------------ UCF101
def _decoded_shape(jpeg: bytes) -> tuple[int, int] | None:
    """(height, width) of a JPEG that TensorFlow's decoder decodes, else None."""
    try:
        image = tf.io.decode_jpeg(jpeg, channels=3)
    except tf.errors.OpError:
        return None
    return int(image.shape[0]), int(image.shape[1])


def jpeg_problem(jpegs: Sequence[bytes]) -> str | None:
    """Why a video's JPEG frames cannot be read (the ucf101 reader's checks), or None."""
    size = None
    shapes: dict[bytes, tuple[int, int] | None] = {}  # a long video repeats its frames
    for number, jpeg in enumerate(jpegs, start=1):
        if len(jpeg) < 4 or not (jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")):
            return f"frame {number} is not a complete JPEG"
        if jpeg not in shapes:
            shapes[jpeg] = _decoded_shape(jpeg)
        shape = shapes[jpeg]
        if shape is None:
            return f"frame {number} does not decode"
        if size is not None and shape != size:
            return f"frame {number} is {shape}, frame 1 {size}"
        size = shape
    return None


def ucf101_record_problem(example: tf.train.SequenceExample, num_classes: int) -> str | None:
    lists = example.feature_lists.feature_list
    jpegs = [s.bytes_list.value[0] for s in lists["frames"].feature] if "frames" in lists else []
    if not jpegs:
        return "no frames"
    label = _scalar(example, "label", "int64_list", -1)
    if not 0 <= label < num_classes:
        return f"label {label} out of range"
    return jpeg_problem(jpegs)


def ucf101_expected(paths: Sequence[str], *, num_classes: int) -> Expected:
    """The oracle's verdict on UCF101 frame-record files."""

    def verdict(example):
        video_id = _scalar(example, "id", "bytes_list", b"")
        return video_id, ucf101_record_problem(example, num_classes)

    return _files_expected(paths, UCF101_SCHEMA, verdict)


def folder_problem(folder: str) -> str | None:
    """Why a video's frames folder cannot be read as its frames, or None."""
    if not os.path.isdir(folder):
        return "no folder"
    numbered = sorted(
        int(match.group(1)) for name in os.listdir(folder) if (match := _FRAME_NAME.fullmatch(name))
    )
    if not numbered:
        return "no frames"
    if numbered != list(range(1, len(numbered) + 1)):
        return "a gap in the frame numbering"
    jpegs = []
    for number in numbered:
        with open(os.path.join(folder, f"frame_{number:05d}.jpg"), "rb") as f:
            jpegs.append(f.read())
    return jpeg_problem(jpegs)


def ucf101_folders_expected(folders: Sequence[tuple[str, bytes]]) -> Expected:
    """The oracle's verdict on the listed videos of a frames root: (folder, video id) pairs."""
    expected = Expected()
    for folder, video_id in folders:
        problem = folder_problem(folder)
        if problem is None:
            expected.good_ids.append(video_id)
        else:
            expected.bad.append(BadRecord(folder, video_id, problem, True))
    return expected
