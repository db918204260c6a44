"""UCF101 reader: a tf.data pipeline of clips, from frame records or a frames directory.

Sources: the frame records of `ucf101_prepare.write_split_records` (schema there), or a frames
root of `ucf101_splits.frames_folder` folders with a split file and classInd.txt.

Pipeline (`frame_dataset`) batches, the batch contract of docs/design.md:

  video_id    [B] string
  frames      [B, T, S, S, 3] uint8, T = num_frames, S = image_size; a video with n < T frames
              gives its n frames in order followed by T - n all-zero frames
  num_frames  [B] int32 = min(n, T)
  labels      [B] int32, 0-based

Temporal sampling, over the whole video (n frames), split into T equal segments
[floor(i n / T), floor((i + 1) n / T)): eval takes each segment's centre floor((2i + 1) n / 2T)
(the `uniform` rule of sampling.py), training one random frame per segment (TSN, Wang et al.
2016). Only the T chosen JPEGs are decoded. Spatial: resize so that the short side is
`resize_short_side` (default round(S * 256 / 224): 112 -> 128, 224 -> 256; bilinear with
antialiasing), then eval takes the centre S x S crop and training one random crop and a random
horizontal flip, the same for every frame of a clip. The few-frame student's k frames are picked
from these T later, by `sampling.select_frames`.

Bad input. Every video is checked, and a problem is either a tf.errors.InvalidArgumentError of
one line (default) or, with `skip_bad_records=True`, a logged warning, the video dropped and
counted by kind in a `yt8m.BadRecordCounter(kinds=UCF101_PROBLEM_KINDS)`; never silent. Both name
the records file and the record's position in it (0-based, in file order, a damaged region
counting as one), or the
frames folder, and the video id: "bad UCF101 input: file <path>, record 3, video <id>: <problem>"
(an id is shown cut to 200 bytes, invalid UTF-8 replaced). Problem kinds, in code order
(`UCF101_PROBLEM_KINDS`):

  corrupt_file         bytes of a records file that could not be read or parsed: a damaged
                       region (truncated or corrupt TFRecord framing), counted once per region
                       with the bytes and (where countable) records it lost, or a record that is
                       not a SequenceExample of this schema, counted once per record; in skip mode
                       every intact record after the damage is read all the same
  no_frames            a record without frames; a listed frames folder that is missing or holds
                       no frame_*.jpg
  missing_frame        a frames folder whose frames are not numbered 1, 2, ..., n (a gap), or a
                       frame file that cannot be read
  empty_id             a record whose id is empty (a folder's id is its split-file name)
  label_out_of_range   a label outside [0, num_classes) (when the classes are known), or a record
                       without a label (read as -1)
  bad_jpeg             a frame that is not a complete JPEG (it does not start with the SOI marker
                       FFD8 and end with the EOI marker FFD9: random bytes, a cut file), or that
                       keeps both markers but does not decode
  frame_size_mismatch  sampled frames of one video with different sizes

When they are found. A record's checks up to bad_jpeg's markers cover all its frames and run when
it is read, before the shuffle buffer (and before `cache_file`), so they do not depend on the
sampling; so do a folder's listing checks. The decoder checks only the frames a clip samples, when
the clip is made: a JPEG that keeps its markers but does not decode, a frame file that vanished
or a size mismatch is found only if a clip samples that frame (in training, a different sample
every pass). With repeat=True a bad video is counted on every pass that meets it (its record or
folder checks only on the first pass with `cache_file`); videos an `id_filter` rejects are not
checked. `parse_eval_clip` (serving) makes the same checks, ids and optionally labels left out.

How it works. Per-record checks are ops that cannot fail, giving a problem code; the caller turns
it into an assertion (strict) or a counting filter (skip). Two kinds of failure happen inside
TensorFlow ops, and tf.data cannot catch an error in-graph, so each runs inside a dataset followed
by `ignore_errors()`: (1) a records file is read by `record_files.parsed_file`, shared with the
YouTube-8M reader: numbered items in file order, a damaged region as a corrupt_file item after the
file's earlier records (in skip mode read on by `tfrecords.salvage_records`, which resynchronises on
the next valid TFRecord header), a record that does not parse as a gap reported with the item after
it. (2) A clip's frames are read and decoded inside a one-element dataset with a fallback element
after it; only when that fails are the frames tried one by one, to name the first bad one and the
problem.

Limits. Only uncompressed TFRecords. A file cut exactly at a record boundary reads as a shorter
valid file. A file-level problem names the file and its bytes, not a record. Salvaging reads the
rest of a damaged file into host memory. A bad split file raises
`ucf101_splits.SplitFileError` when the pipeline is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf
from absl import logging

from yt8m_kd.data import record_files, tfrecords
from yt8m_kd.data.ucf101_splits import (
    FRAME_PATTERN,
    frames_folder,
    read_class_index,
    read_split,
    video_stem,
)
from yt8m_kd.data.yt8m import BadRecordCounter, list_files
from yt8m_kd.data.yt8m_records import strict_context

UCF101_PROBLEM_KINDS = (
    "corrupt_file",
    "no_frames",
    "missing_frame",
    "empty_id",
    "label_out_of_range",
    "bad_jpeg",
    "frame_size_mismatch",
)
# A problem's code is its 1-based position in UCF101_PROBLEM_KINDS; 0 means no problem.
UCF101_PROBLEM_CODES = {kind: code for code, kind in enumerate(UCF101_PROBLEM_KINDS, start=1)}

# Short side before cropping = image size * 256 / 224, the usual ImageNet-style ratio.
_RESIZE_RATIO = 256 / 224

# Files read at once by the records pipeline; fixed, so that the record order does not depend on
# the machine (as in yt8m.py).
_DEFAULT_CYCLE_LENGTH = 16

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"

# The frame files of a folder: FRAME_PATTERN with a number of at most 9 digits (an int32).
_FRAME_NAME = r"frame_[0-9]{1,9}\.jpg"

# Error lines show at most this many bytes of a video id.
_MAX_SHOWN_ID_BYTES = 200

_CONTEXT_FEATURES = {
    "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "class_name": tf.io.FixedLenFeature([], tf.string, default_value=""),
}
_SEQUENCE_FEATURES = {"frames": tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)}


@dataclasses.dataclass(frozen=True)
class _ClipSettings:
    num_frames: int  # T
    image_size: int  # S
    resize_short_side: int
    num_classes: int | None
    training: bool
    random_flip: bool = True
    check_labels: bool = True  # serving reads records whose labels are unknown
    check_ids: bool = True  # serving leaves ids to its caller


def _settings(
    num_frames: int,
    image_size: int,
    resize_short_side: int | None,
    num_classes: int | None,
    training: bool,
) -> _ClipSettings:
    if num_frames < 1 or image_size < 1:
        raise ValueError(f"num_frames and image_size must be >= 1, got {num_frames}, {image_size}")
    if resize_short_side is None:
        resize_short_side = round(image_size * _RESIZE_RATIO)
    if resize_short_side < image_size:
        raise ValueError(
            f"resize_short_side {resize_short_side} is smaller than the crop size {image_size}"
        )
    return _ClipSettings(num_frames, image_size, resize_short_side, num_classes, training)


def sample_frame_indices(
    n: tf.Tensor, num_frames: int, training: bool, seed: tf.Tensor | None = None
) -> tf.Tensor:
    """[min(n, T)] int32 frame indices, increasing (see the module docstring).

    Eval: the centre of each of T equal segments. Training: one uniform random frame per segment,
    drawn with `seed` (a shape-[2] stateless seed). n < T: 0 .. n-1.
    """
    n = tf.cast(n, tf.int32)
    i = tf.range(num_frames, dtype=tf.int32)
    if training:
        start, end = (i * n) // num_frames, ((i + 1) * n) // num_frames
        u = tf.random.stateless_uniform([num_frames], seed=seed)
        offset = tf.cast(u * tf.cast(end - start, tf.float32), tf.int32)
        picked = start + tf.minimum(offset, tf.maximum(end - start - 1, 0))
    else:
        picked = ((2 * i + 1) * n) // (2 * num_frames)
    return tf.where(n >= num_frames, picked, i)[: tf.minimum(n, num_frames)]


# ------------------------------------------------------------------------------------ problems
# A check: (kind, ok, problem text). The text is a function, built only for a failing check.
_Check = tuple[str, tf.Tensor, Callable[[], tf.Tensor]]


def _first_problem(checks: Sequence[_Check]) -> tuple[tf.Tensor, tf.Tensor]:
    """(code, problem text) of the first failing check, in the order given; (0, "") if none."""
    first = tf.constant(len(checks), tf.int32)  # the position of the first failing check
    for position in reversed(range(len(checks))):
        first = tf.where(checks[position][1], first, position)
    codes = tf.constant([UCF101_PROBLEM_CODES[kind] for kind, _, _ in checks] + [0], tf.int32)
    problem = tf.switch_case(
        first, [text for _, _, text in checks], default=lambda: tf.constant("")
    )
    return tf.gather(codes, first), problem


def _shown_id(video_id: tf.Tensor) -> tf.Tensor:
    """A video id as an error line shows it: valid UTF-8, at most _MAX_SHOWN_ID_BYTES bytes."""
    text = tf.strings.unicode_transcode(video_id, "UTF-8", "UTF-8", errors="replace")
    cut = tf.strings.substr(text, 0, _MAX_SHOWN_ID_BYTES)
    # Cutting may split a character: transcode again.
    cut = tf.strings.unicode_transcode(cut, "UTF-8", "UTF-8", errors="replace")
    shown = tf.where(tf.strings.length(text) > _MAX_SHOWN_ID_BYTES, cut + "...", text)
    return tf.where(video_id == "", tf.constant("(empty id)"), shown)


def _error_line(where: tf.Tensor, video_id: tf.Tensor, problem: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(
        ["bad UCF101 input: ", where, ", video ", _shown_id(video_id), ": ", problem]
    )


def _with_problem(
    element: dict[str, tf.Tensor], code: tf.Tensor, error: tf.Tensor
) -> dict[str, tf.Tensor]:
    """`element` with its problem code and error line in the private `_code` and `_error`."""
    return {**element, "_code": code, "_error": error}


def _is_complete_jpeg(encoded: tf.Tensor) -> tf.Tensor:
    """[m] bool: whether each encoded frame starts with SOI and ends with EOI."""
    length = tf.strings.length(encoded)
    head = tf.strings.substr(encoded, tf.zeros_like(length), tf.fill(tf.shape(length), 2))
    tail = tf.strings.substr(encoded, tf.maximum(length - 2, 0), tf.fill(tf.shape(length), 2))
    return (length >= 4) & tf.equal(head, _JPEG_SOI) & tf.equal(tail, _JPEG_EOI)


def _first_false(flags: tf.Tensor) -> tf.Tensor:
    """Index of the first False of a [m] bool tensor (0 when there is none, or m == 0)."""
    return tf.argmin(tf.concat([tf.cast(flags, tf.int32), [0]], axis=0), output_type=tf.int32)


def _frame_number(indices: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
    """The 1-based frame number of indices[position], as text."""
    return tf.strings.as_string(tf.gather(indices, position) + 1)


def _record_checks(
    settings: _ClipSettings, video_id: tf.Tensor, label: tf.Tensor, frames: tf.Tensor
) -> list[_Check]:
    """The checks of a record that need no decoding, over all its frames."""
    checks: list[_Check] = [
        ("no_frames", tf.size(frames) > 0, lambda: tf.constant("no frames")),
    ]
    if settings.check_ids:
        checks.append(("empty_id", video_id != "", lambda: tf.constant("empty video id")))
    if settings.check_labels:
        checks.append(_label_check(settings, label))
    complete = _is_complete_jpeg(frames)
    checks.append(
        (
            "bad_jpeg",
            tf.reduce_all(complete),
            lambda: tf.strings.join(
                [
                    "frame ",
                    tf.strings.as_string(_first_false(complete) + 1),
                    " is not a complete JPEG (no SOI/EOI marker)",
                ]
            ),
        )
    )
    return checks


def _label_check(settings: _ClipSettings, label: tf.Tensor) -> _Check:
    ok = label >= 0
    if settings.num_classes is not None:
        ok &= label < settings.num_classes
    range_text = f" outside [0, {settings.num_classes})" if settings.num_classes else " (negative)"
    return (
        "label_out_of_range",
        ok,
        lambda: tf.strings.join(["label ", tf.strings.as_string(label), range_text]),
    )


# ------------------------------------------------------------------------------------ guarded ops
def _guarded(attempt: Callable[[], tf.Tensor], fallback: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(attempt(), True), or (fallback, False) when an op inside attempt fails.

    The attempt runs inside a one-element dataset followed by ignore_errors(), with the fallback
    as the next element: the first element that comes through is the answer.
    """
    tried = tf.data.Dataset.from_tensors(0).map(lambda _: (attempt(), True)).ignore_errors()
    fallen = tf.data.Dataset.from_tensors((fallback, False))
    return tried.concatenate(fallen).take(1).get_single_element()


def _decode(encoded: tf.Tensor) -> tf.Tensor:
    """[m] JPEGs -> [m, h, w, 3] uint8 (fails on a bad JPEG or mixed sizes)."""
    return tf.map_fn(
        lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
        encoded,
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )


def _frame_status(read_frames, index: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """(read, complete, decodes, [h, w]) of one frame, found without failing."""
    encoded, read = _guarded(lambda: read_frames(index[tf.newaxis])[0], tf.constant(b""))
    complete = read & _is_complete_jpeg(encoded[tf.newaxis])[0]

    def decoded_size():
        return _guarded(
            lambda: tf.shape(tf.io.decode_jpeg(encoded, channels=3), out_type=tf.int32)[:2],
            tf.zeros([2], tf.int32),
        )

    size, decodes = tf.cond(
        complete, decoded_size, lambda: (tf.zeros([2], tf.int32), tf.constant(False))
    )
    return read, complete, decodes, size


def _size_text(sizes: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
    size = tf.strings.as_string(tf.gather(sizes, position))
    return tf.strings.join([size[1], "x", size[0]])  # width x height


def _diagnose(read_frames, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(code, problem) of a clip whose frames failed to read or decode: frame by frame."""
    read, complete, decodes, sizes = tf.map_fn(
        lambda index: _frame_status(read_frames, index),
        indices,
        fn_output_signature=(tf.bool, tf.bool, tf.bool, tf.TensorSpec([2], tf.int32)),
    )
    first_unread = _first_false(read)
    first_incomplete = _first_false(complete)
    first_undecoded = _first_false(decodes)
    same_size = tf.reduce_all(tf.equal(sizes, sizes[:1]), axis=1)
    first_other_size = _first_false(same_size)
    code, problem = _first_problem(
        [
            (
                "missing_frame",
                tf.reduce_all(read),
                lambda: tf.strings.join(
                    ["frame ", _frame_number(indices, first_unread), " cannot be read"]
                ),
            ),
            (
                "bad_jpeg",
                tf.reduce_all(complete) & tf.reduce_all(decodes),
                lambda: tf.cond(
                    tf.reduce_all(complete),
                    lambda: tf.strings.join(
                        [
                            "frame ",
                            _frame_number(indices, first_undecoded),
                            " does not decode as a JPEG",
                        ]
                    ),
                    lambda: tf.strings.join(
                        [
                            "frame ",
                            _frame_number(indices, first_incomplete),
                            " is not a complete JPEG (no SOI/EOI marker)",
                        ]
                    ),
                ),
            ),
            (
                "frame_size_mismatch",
                tf.reduce_all(same_size),
                lambda: tf.strings.join(
                    [
                        "frames of different sizes (frame ",
                        _frame_number(indices, 0),
                        " is ",
                        _size_text(sizes, 0),
                        ", frame ",
                        _frame_number(indices, first_other_size),
                        " is ",
                        _size_text(sizes, first_other_size),
                        ")",
                    ]
                ),
            ),
        ]
    )
    # Every frame passed one by one but not together: name the clip, not a frame.
    code = tf.where(code == 0, UCF101_PROBLEM_CODES["bad_jpeg"], code)
    problem = tf.where(problem == "", tf.constant("its frames cannot be decoded"), problem)
    return code, problem


# ------------------------------------------------------------------------------------ clips
def _decoded_frames(
    settings: _ClipSettings,
    read_frames: Callable[[tf.Tensor], tf.Tensor],
    n: tf.Tensor,
    indices: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(images [m, h, w, 3] uint8, code, problem) of the frames at `indices`; on a problem the
    images are an empty [0, S, S, 3], which the resizing and cropping below pass through."""
    s = settings.image_size
    empty = tf.zeros([0, s, s, 3], tf.uint8)

    def attempt():
        encoded = read_frames(indices)
        # decode_jpeg also decodes PNG, GIF, BMP and WebP: only complete JPEGs pass.
        markers = tf.debugging.Assert(tf.reduce_all(_is_complete_jpeg(encoded)), ["not a JPEG"])
        with tf.control_dependencies([markers]):
            return _decode(encoded)

    def read_and_decode():
        images, ok = _guarded(attempt, empty)
        code, problem = tf.cond(
            ok,
            lambda: (tf.constant(0, tf.int32), tf.constant("")),
            lambda: _diagnose(read_frames, indices),
        )
        return images, code, problem

    def no_frames():
        return empty, tf.constant(UCF101_PROBLEM_CODES["no_frames"]), tf.constant("no frames")

    return tf.cond(n > 0, read_and_decode, no_frames)


def _make_clip(
    settings: _ClipSettings,
    read_frames: Callable[[tf.Tensor], tf.Tensor],
    n: tf.Tensor,
    video_id: tf.Tensor,
    label: tf.Tensor,
    where: tf.Tensor,
    seed: tf.Tensor | None,
) -> dict[str, tf.Tensor]:
    """The clip of one video of n frames, read_frames(indices) -> their encoded JPEGs; with the
    decoding problems (`_code`, `_error`) of the frames it samples."""
    s, t = settings.image_size, settings.num_frames
    if seed is not None:
        time_seed, top_seed, left_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
    else:
        time_seed = top_seed = left_seed = flip_seed = None
    indices = sample_frame_indices(n, t, settings.training, time_seed)
    images, code, problem = _decoded_frames(settings, read_frames, n, indices)  # [m, h, w, 3]

    height, width = tf.shape(images)[1], tf.shape(images)[2]
    short = tf.cast(tf.minimum(height, width), tf.float64)
    scale = settings.resize_short_side / short
    new_height = tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32)
    new_width = tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32)
    images = tf.image.resize(images, [new_height, new_width], method="bilinear", antialias=True)

    # One window and one flip for the whole clip: the frames stay aligned in time.
    if settings.training:
        top = tf.random.stateless_uniform(
            [], top_seed, minval=0, maxval=new_height - s + 1, dtype=tf.int32
        )
        left = tf.random.stateless_uniform(
            [], left_seed, minval=0, maxval=new_width - s + 1, dtype=tf.int32
        )
    else:
        top, left = (new_height - s) // 2, (new_width - s) // 2
    images = images[:, top : top + s, left : left + s, :]
    if settings.training and settings.random_flip:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        images = tf.cond(flip, lambda: tf.reverse(images, axis=[2]), lambda: images)
    images = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
    valid = tf.shape(images)[0]
    images = tf.pad(images, [[0, t - valid], [0, 0], [0, 0], [0, 0]])
    clip = {
        "video_id": video_id,
        "frames": tf.ensure_shape(images, [t, s, s, 3]),
        "num_frames": valid,
        "labels": tf.cast(label, tf.int32),
    }
    error = tf.cond(
        code == 0, lambda: tf.constant(""), lambda: _error_line(where, video_id, problem)
    )
    return _with_problem(clip, code, error)


# ------------------------------------------------------------------------------------ records
def record_fields(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """A frame record's fields: video_id, label (int64, -1 when absent), frames [n] (JPEGs).
    Fails on bytes that are not a SequenceExample of the schema, or whose context protobuf's
    own parser refuses (`yt8m_records.strict_context`: TensorFlow's parser is lenient there)."""
    context, sequences = tf.io.parse_single_sequence_example(
        serialized, context_features=_CONTEXT_FEATURES, sequence_features=_SEQUENCE_FEATURES
    )
    # A data dependency on the check (a control dependency is pruned by TensorFlow's optimizer).
    video_id = tf.where(strict_context(serialized) >= 0, context["id"], "")
    return {"video_id": video_id, "label": context["label"], "frames": sequences["frames"]}


def _checked_record(
    settings: _ClipSettings, fields: dict[str, tf.Tensor], where: tf.Tensor
) -> dict[str, tf.Tensor]:
    """fields + where, with the problem of the record's checks (`_code`, `_error`)."""
    code, problem = _first_problem(
        _record_checks(settings, fields["video_id"], fields["label"], fields["frames"])
    )
    error = tf.cond(
        code == 0, lambda: tf.constant(""), lambda: _error_line(where, fields["video_id"], problem)
    )
    return _with_problem({"where": where, **fields}, code, error)


def _record_clip(
    settings: _ClipSettings, record: dict[str, tf.Tensor], seed: tf.Tensor | None
) -> dict[str, tf.Tensor]:
    frames = record["frames"]
    return _make_clip(
        settings,
        lambda indices: tf.gather(frames, indices),
        tf.shape(frames, out_type=tf.int32)[0],
        record["video_id"],
        record["label"],
        record["where"],
        seed,
    )


def _damaged_file_message(path: tf.Tensor, offset: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(
        [
            "bad UCF101 input: file ",
            path,
            ": from byte ",
            tf.strings.as_string(offset),
            ", ",
            tf.strings.as_string(size - offset),
            " of its ",
            tf.strings.as_string(size),
            " bytes could not be read or parsed (a truncated or corrupt TFRecord file)",
        ]
    )


def _lost_region_message(path: str, region: tfrecords.LostRegion, size: int) -> str:
    records = "records lost unknown" if region.records is None else f"{region.records} lost"
    after = "to the end of the file" if region.end == size else f"reading on at byte {region.end}"
    return (
        f"bad UCF101 input: file {path}: bytes {region.start}-{region.end}, "
        f"{region.end - region.start} of its {size} bytes could not be read or parsed "
        f"(a truncated or corrupt TFRecord file; records: {records}), {after}"
    )


def _unparsable_message(path, gap, start, end, size, previous_id):
    after = record_files.after_record(previous_id, "after video", _shown_id)
    return tf.strings.join(
        [
            "bad UCF101 input: file ",
            path,
            ": bytes ",
            tf.strings.as_string(start),
            "-",
            tf.strings.as_string(end),
            after,
            ", ",
            tf.strings.as_string(end - start),
            " of its ",
            tf.strings.as_string(size),
            " bytes could not be read or parsed (",
            tf.strings.as_string(gap),
            " intact TFRecord(s) that are not UCF101 frame records)",
        ]
    )


_MESSAGES = record_files.FileMessages(
    damaged=_damaged_file_message,
    lost_region=_lost_region_message,
    unparsable=_unparsable_message,
)


def _make_file_reader(settings: _ClipSettings, deterministic: bool, salvage: bool, id_filter=None):
    """(path, size) -> the checked records of one file and its damage: lost regions as
    corrupt_file elements (with `salvage`, read on after them), unparsable records as a gap
    (`_gap`) on the element after them (`record_files.parsed_file`)."""

    def read_file(path: tf.Tensor, size: tf.Tensor) -> tf.data.Dataset:
        elements = record_files.parsed_file(
            path,
            size,
            parse=record_fields,
            salvage=salvage,
            corrupt_code=UCF101_PROBLEM_CODES["corrupt_file"],
            messages=_MESSAGES,
            deterministic=deterministic,
        )

        def kept(item, fields):
            keep = item["code"] == record_files.RECORD
            if id_filter is not None:
                keep &= tf.cast(id_filter(fields["video_id"]), tf.bool)
            return keep

        def wanted(_index, item, fields, gap, _gap_error):
            problem = (item["code"] != record_files.RECORD) & (item["code"] != record_files.END)
            return kept(item, fields) | problem | (gap > 0)

        def check(index, item, fields, gap, gap_error):
            where = tf.strings.join(["file ", path, ", record ", tf.strings.as_string(index)])
            record = _checked_record(settings, fields, where)
            keep = kept(item, fields)
            is_damage = (item["code"] != record_files.RECORD) & (item["code"] != record_files.END)
            record["_keep"] = keep
            record["_code"] = tf.where(keep, record["_code"], tf.where(is_damage, item["code"], 0))
            record["_error"] = tf.where(keep, record["_error"], item["error"])
            record["_gap"] = gap
            record["_gap_error"] = gap_error
            record["_lost_bytes"] = item["lost_bytes"]
            record["_lost_records"] = item["lost_records"]
            return record

        return elements.filter(wanted).map(
            check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )

    return read_file


# ------------------------------------------------------------------------------------ folders
def _frame_paths(folder: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(paths, names, numbers) of a folder's frame files, in frame-number order."""
    listed = tf.io.matching_files(tf.strings.join([folder, "/", FRAME_PATTERN]))
    names = tf.strings.regex_replace(listed, r".*/", "")
    is_frame = tf.strings.regex_full_match(names, _FRAME_NAME)
    listed, names = tf.boolean_mask(listed, is_frame), tf.boolean_mask(names, is_frame)
    numbers = tf.strings.to_number(
        tf.strings.regex_replace(names, r"frame_([0-9]+)\.jpg", r"\1"), tf.int32
    )
    order = tf.argsort(numbers, stable=True)
    return tf.gather(listed, order), tf.gather(names, order), tf.gather(numbers, order)


def _checked_folder(
    settings: _ClipSettings, folder: tf.Tensor, video_id: tf.Tensor, label: tf.Tensor
) -> dict[str, tf.Tensor]:
    """A listed video's folder, with the problem of its listing (`_code`, `_error`)."""
    _, names, numbers = _frame_paths(folder)
    n = tf.size(numbers)
    numbered = tf.equal(numbers, tf.range(1, n + 1))
    gap = _first_false(numbered)

    def no_frames_text():
        exists = tf.size(tf.io.matching_files(folder)) > 0
        return tf.where(
            exists,
            tf.constant(f"no frames (no {FRAME_PATTERN} files in the folder)"),
            tf.constant("no frames (the folder does not exist)"),
        )

    checks: list[_Check] = [
        ("no_frames", n > 0, no_frames_text),
        (
            "missing_frame",
            tf.reduce_all(numbered),
            lambda: tf.strings.join(
                [
                    "frames not numbered 1, 2, ..., n: frame ",
                    tf.strings.as_string(gap + 1),
                    " missing (",
                    tf.gather(names, gap),
                    " in its place)",
                ]
            ),
        ),
    ]
    if settings.check_labels:
        checks.append(_label_check(settings, tf.cast(label, tf.int64)))
    code, problem = _first_problem(checks)
    where = tf.strings.join(["folder ", folder])
    error = tf.cond(
        code == 0, lambda: tf.constant(""), lambda: _error_line(where, video_id, problem)
    )
    element = {"folder": folder, "video_id": video_id, "label": tf.cast(label, tf.int64)}
    return _with_problem(element, code, error)


def _folder_clip(
    settings: _ClipSettings, element: dict[str, tf.Tensor], seed: tf.Tensor | None
) -> dict[str, tf.Tensor]:
    folder = element["folder"]
    paths, _, _ = _frame_paths(folder)

    def read(indices):
        return tf.map_fn(tf.io.read_file, tf.gather(paths, indices), fn_output_signature=tf.string)

    return _make_clip(
        settings,
        read,
        tf.shape(paths, out_type=tf.int32)[0],
        element["video_id"],
        element["label"],
        tf.strings.join(["folder ", folder]),
        seed,
    )


# ------------------------------------------------------------------------------------ policy
_SKIP_HINT = " (skip_bad_records=True skips and counts bad records)"


def _strict(element: dict[str, tf.Tensor], hint: str = _SKIP_HINT) -> dict[str, tf.Tensor]:
    """`element`, or an InvalidArgumentError of its `_error` (+ hint) when it has a problem (of
    records read from a file: first its `_gap_error`, when records before it did not parse)."""
    checks = []
    if "_gap" in element:
        checks.append(
            tf.debugging.Assert(
                element["_gap"] == 0, [tf.strings.join([element["_gap_error"], hint])]
            )
        )
    with tf.control_dependencies(checks):
        check = tf.debugging.Assert(
            element["_code"] == 0, [tf.strings.join([element["_error"], hint])]
        )
    with tf.control_dependencies([check]):
        return {key: tf.identity(value) for key, value in element.items()}


def _make_skip_filter(counter: BadRecordCounter | None):
    """Keeps the good elements; logs and counts the problems (records from a file: also the
    unparsable records before one, as corrupt_file, and the bytes a damaged region lost)."""

    def keep(element):
        def skip_gap():
            line = tf.strings.join(["skipping ", element["_gap_error"]])
            ops = [tf.print(line, output_stream=logging.warning)]
            if counter is not None:
                ops.append(counter.add(UCF101_PROBLEM_CODES["corrupt_file"], element["_gap"]))
            with tf.control_dependencies(ops):
                return tf.constant(True)

        def skip():
            line = tf.strings.join(["skipping ", element["_error"]])
            ops = [tf.print(line, output_stream=logging.warning)]
            if counter is not None:
                ops.append(counter.add(element["_code"]))
                if "_lost_bytes" in element:
                    ops.append(counter.add_lost(element["_lost_bytes"], element["_lost_records"]))
            with tf.control_dependencies(ops):
                return tf.constant(False)

        gap_done = tf.constant(True)
        if "_gap" in element:
            gap_done = tf.cond(element["_gap"] > 0, skip_gap, lambda: tf.constant(True))
        with tf.control_dependencies([gap_done]):
            good = tf.cond(element["_code"] == 0, lambda: tf.constant(True), skip)
        return good & element["_keep"] if "_keep" in element else good

    return keep


def _public(element: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {key: value for key, value in element.items() if not key.startswith("_")}


def _enforce(
    dataset: tf.data.Dataset, skip_bad_records: bool, counter: BadRecordCounter | None
) -> tf.data.Dataset:
    """Elements with a problem: an error (strict) or dropped and counted (skip)."""
    if skip_bad_records:
        dataset = dataset.filter(_make_skip_filter(counter))
    else:
        dataset = dataset.map(_strict)
        if "_keep" in dataset.element_spec:
            dataset = dataset.filter(lambda element: element["_keep"])
    return dataset.map(_public)


def _check_counter(counter: BadRecordCounter | None) -> None:
    if counter is not None and tuple(counter.kinds) != UCF101_PROBLEM_KINDS:
        raise ValueError(
            f"the bad-record counter counts {', '.join(counter.kinds)}; UCF101 needs "
            "BadRecordCounter(kinds=UCF101_PROBLEM_KINDS) (videos.bad_record_counter)"
        )


# ------------------------------------------------------------------------------------ public
def parse_eval_clip(
    serialized: tf.Tensor,
    num_frames: int,
    image_size: int,
    resize_short_side: int | None = None,
    num_classes: int | None = None,
    check_labels: bool = True,
) -> dict[str, tf.Tensor]:
    """The eval clip of one serialized frame record, in pure TensorFlow (usable in a SavedModel).

    The same ops as `frame_dataset(..., training=False)`, so the two agree exactly. With
    check_labels=False a record without a label (or with any label) is read as well: serving.
    Ids are not checked (an empty one passes).

    Returns:
      {"video_id": scalar string, "frames": [num_frames, image_size, image_size, 3] uint8,
       "num_frames": scalar int32, "labels": scalar int32}.
    Raises (when run): InvalidArgumentError "bad UCF101 input: record, video <id>: <problem>" for
      a record with a problem of the module docstring; bytes that are not a SequenceExample fail
      in TensorFlow's parser.
    """
    settings = dataclasses.replace(
        _settings(num_frames, image_size, resize_short_side, num_classes, training=False),
        check_labels=check_labels,
        check_ids=False,
    )
    record = _checked_record(settings, record_fields(serialized), tf.constant("record"))
    record = _strict(record, hint="")  # before decoding
    clip = _strict(_record_clip(settings, record, seed=None), hint="")
    return _public(clip)


def _is_frames_dir(source: str | Sequence[str]) -> bool:
    return isinstance(source, str) and tf.io.gfile.isdir(source)


def frame_dataset(
    source: str | Sequence[str],
    *,
    batch_size: int,
    num_frames: int,
    image_size: int,
    training: bool,
    class_index_file: str | None = None,
    split_file: str | None = None,
    num_classes: int | None = None,
    resize_short_side: int | None = None,
    shuffle: bool = False,
    shuffle_buffer: int = 256,
    repeat: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    id_filter: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache_file: str | None = None,
    random_flip: bool = True,
    skip_bad_records: bool = False,
    bad_record_counter: BadRecordCounter | None = None,
) -> tf.data.Dataset:
    """Batches of UCF101 clips (see the module docstring for the batch, sampling and errors).

    Args:
      source: a glob pattern of frame-record shards (or a sequence of patterns), or a frames root
        directory (<root>/<ClassFolder>/<video stem>/frame_*.jpg), which needs split_file and
        class_index_file.
      batch_size: clips per batch of this input pipeline.
      num_frames: T, frames per clip.
      image_size: S, the side of the square crop.
      training: random frame per segment, random crop and flip; otherwise segment centres and the
        centre crop.
      class_index_file: classInd.txt. For records it is optional and gives num_classes.
      split_file: a trainlist or testlist file; only (and required) for a frames directory.
      num_classes: labels must lie in [0, num_classes); default: from the class index file, else
        only negative labels are errors.
      resize_short_side: short side before cropping (default round(S * 256 / 224)).
      shuffle: shuffle the files and records (records: in a buffer of shuffle_buffer records,
        each holding all JPEGs of a video, before decoding; a frames directory: the whole video
        list).
      repeat: repeat forever.
      seed: seeds the shuffles and the training randomness; with a seed the batches are
        reproducible; without one a shuffled pipeline may also read in a nondeterministic order.
      drop_remainder: drop a last partial batch.
      input_context: with more than one input pipeline, this pipeline reads only every
        num_input_pipelines-th file (records) or video (frames directory), from its
        input_pipeline_id on.
      id_filter: video id (scalar string) -> bool: keeps only the videos it accepts (SAKD's
        selected subset), before they are checked or any frame is decoded.
      cache_file: with repeat=True, the (filtered, checked) records or folders of the first pass
        are cached in this file and later passes read them from it instead of all input files;
        the clips are still decoded and augmented anew every pass. A new name per pipeline.
      random_flip: training flips a clip horizontally with probability 1/2 (right for UCF101's
        actions; wrong where left and right are different classes, as in the synthetic set).
      skip_bad_records: skip a bad video (logged, counted) instead of raising an error.
      bad_record_counter: where skipped videos are counted: a
        `BadRecordCounter(kinds=UCF101_PROBLEM_KINDS)`.

    Raises:
      FileNotFoundError: a pattern matches no file.
      ValueError: bad sizes, a frames directory without split files (or records with one), fewer
        files than input pipelines, a counter of other kinds.
      SplitFileError: a bad line in a split file.
    Errors raised while iterating (strict mode): tf.errors.InvalidArgumentError naming the file
    (and record) or folder and the video id (the file only, for a truncated or corrupt file).
    """
    _check_counter(bad_record_counter)
    if class_index_file is not None and num_classes is None:
        num_classes = len(read_class_index(class_index_file))
    settings = dataclasses.replace(
        _settings(num_frames, image_size, resize_short_side, num_classes, training),
        random_flip=random_flip,
    )
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    deterministic = not shuffle or seed is not None

    if _is_frames_dir(source):
        if split_file is None or class_index_file is None:
            raise ValueError(
                f"{source} is a frames directory: give split_file and class_index_file"
            )
        listed = read_split(split_file, read_class_index(class_index_file))
        if not listed:
            raise ValueError(f"{split_file} lists no videos")
        folders = [frames_folder(source, relative) for relative, _ in listed]
        ids = [video_stem(relative) for relative, _ in listed]
        labels = [label for _, label in listed]
        dataset = tf.data.Dataset.from_tensor_slices((folders, ids, labels))
        if pipelines > 1:
            dataset = dataset.shard(pipelines, pipeline_id)
        if id_filter is not None:
            dataset = dataset.filter(lambda _folder, video_id, _label: id_filter(video_id))
        dataset = dataset.map(
            lambda folder, video_id, label: _checked_folder(settings, folder, video_id, label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        make_clip = _folder_clip
        shuffle_size = len(listed)  # folder names are small: shuffle the whole list
    else:
        if split_file is not None:
            raise ValueError("split_file is only for a frames directory; records hold one split")
        files = list_files(source)
        if pipelines > 1:
            if len(files) < pipelines:
                raise ValueError(
                    f"{len(files)} files match {source!r}, fewer than the {pipelines} input "
                    "pipelines that each read whole files"
                )
            files = files[pipeline_id::pipelines]
        # (path, size) pairs: the size lets a reader tell a cut-short file from a whole one.
        sizes = [tf.io.gfile.stat(path).length for path in files]
        dataset = tf.data.Dataset.from_tensor_slices(
            (tf.constant(files), tf.constant(sizes, tf.int64))
        )
        if shuffle:
            dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.interleave(
            _make_file_reader(settings, deterministic, skip_bad_records, id_filter),
            cycle_length=min(len(files), _DEFAULT_CYCLE_LENGTH),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
        make_clip = _record_clip
        shuffle_size = shuffle_buffer
    # The checks of whole videos, before the shuffle buffer and the cache.
    dataset = _enforce(dataset, skip_bad_records, bad_record_counter)
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    if shuffle:
        dataset = dataset.shuffle(shuffle_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if training:
        # One stateless seed per clip (zipped after repeat: every epoch draws new ones), so that
        # parallel decoding stays reproducible under a seed.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds)
        dataset = dataset.map(
            lambda element, clip_seed: make_clip(settings, element, clip_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        dataset = dataset.map(
            lambda element: make_clip(settings, element, None),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    # The checks of the frames a clip decodes.
    dataset = _enforce(dataset, skip_bad_records, bad_record_counter)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
