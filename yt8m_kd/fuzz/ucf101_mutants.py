"""UCF101 fuzz mutants: frame records (the schema of `ucf101_prepare.make_record`, JPEG frames)
and frames folders with their split files, made valid and then mutated by one kind of `KINDS`
(records) or `FOLDER_KINDS` (frames folders).

Tiny videos (2..6 JPEG frames of 24x32 pixels, 4 classes) keep a mutant a few kilobytes; the
reader is run with clips of CLIP_FRAMES >= any short video's length, so it decodes every frame
and the oracle's per-frame checks apply to all of them (the 10,000-frame video is valid
throughout).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from PIL import Image

from yt8m_kd.data.ucf101_prepare import make_record
from yt8m_kd.data.ucf101_synthetic import CLASS_NAMES
from yt8m_kd.fuzz import mutants, tfrecord

FAMILY = "ucf101"
NUM_CLASSES = 4
CLASSES = CLASS_NAMES[:NUM_CLASSES]
CLIP_FRAMES = 8
IMAGE_SIZE = 16
RECORDS_PER_SHARD = (5, 2)  # the mutated shard, the intact one
VIDEOS_PER_FOLDER_SET = 4
LONG_VIDEO_FRAMES = 10_000
HUGE_ID_BYTES = 1 << 20

READER_OPTIONS = {"num_frames": CLIP_FRAMES, "image_size": IMAGE_SIZE, "num_classes": NUM_CLASSES}


def jpeg(rng: np.random.Generator, height: int = 24, width: int = 32) -> bytes:
    """A small valid JPEG: a random colour gradient."""
    base = rng.integers(0, 200, 3)
    ramp = np.linspace(0, 55, width)[None, :, None]
    pixels = np.clip(base + ramp + np.zeros((height, width, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


def good_frames(rng: np.random.Generator, num_frames: int | None = None) -> list[bytes]:
    if num_frames is None:
        num_frames = int(rng.integers(2, 7))
    return [jpeg(rng) for _ in range(num_frames)]


def good_record(rng: np.random.Generator, video_id: str) -> bytes:
    label = int(rng.integers(NUM_CLASSES))
    return make_record(video_id, label, CLASSES[label], good_frames(rng))


def _undecodable_jpeg(rng: np.random.Generator) -> bytes:
    """SOI, garbage, EOI: passes the marker check, fails in the decoder."""
    return b"\xff\xd8" + mutants.random_bytes(rng, int(rng.integers(8, 200))) + b"\xff\xd9"


def _truncated_jpeg(rng: np.random.Generator) -> bytes:
    data = jpeg(rng)
    return data[: int(rng.integers(2, len(data) - 2))]


# ------------------------------------------------------------------------------------ records
def _edit(record: bytes, edit: Callable[[tf.train.SequenceExample], None]) -> bytes:
    example = tf.train.SequenceExample.FromString(record)
    edit(example)
    return example.SerializeToString(deterministic=True)


def _replace_one(rng, records, make: Callable[[bytes], bytes]) -> bytes:
    records = list(records)
    target = int(rng.integers(len(records)))
    records[target] = make(records[target])
    return tfrecord.frame_all(records)


def _edit_one(rng, records, edit) -> bytes:
    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _set_context(name: str, kind: str, value):
    def edit(example):
        feature = example.context.feature[name]
        feature.Clear()
        getattr(feature, kind).value.append(value)

    return edit


def _huge_label(rng: np.random.Generator) -> int:
    """A label >= NUM_CLASSES; half of them 2**32 + a valid label, which a 32-bit cast of the
    label would turn into that valid label."""
    if rng.random() < 0.5:
        return (1 << 32) + int(rng.integers(NUM_CLASSES))
    return NUM_CLASSES + int(rng.integers(0, 1 << 62))


def _set_frame(rng, make_frame: Callable[[np.random.Generator], bytes]):
    def edit(example):
        steps = example.feature_lists.feature_list["frames"].feature
        steps[int(rng.integers(len(steps)))].bytes_list.value[0] = make_frame(rng)

    return edit


def _mixed_frame_sizes(rng):
    def edit(example):
        steps = example.feature_lists.feature_list["frames"].feature
        steps[int(rng.integers(1, len(steps)))].bytes_list.value[0] = jpeg(rng, 40, 30)

    return edit


def _clear_frames(remove_key: bool):
    def edit(example):
        if remove_key:
            del example.feature_lists.feature_list["frames"]
        else:
            del example.feature_lists.feature_list["frames"].feature[:]

    return edit


def _extra_features(example):
    example.context.feature["fps"].float_list.value.append(25.0)
    example.feature_lists.feature_list["flow"].feature.add().int64_list.value.extend([1, 2])


def _not_a_sequence_example(record: bytes) -> bytes:
    sequence = tf.train.SequenceExample.FromString(record)
    example = tf.train.Example()
    for key, value in sequence.context.feature.items():
        example.features.feature[key].CopyFrom(value)
    frames = [s.bytes_list.value[0] for s in sequence.feature_lists.feature_list["frames"].feature]
    example.features.feature["frames"].bytes_list.value.extend(frames)
    return example.SerializeToString(deterministic=True)


def _duplicate_ids(rng, records, ids):
    first, second = rng.choice(len(records), 2, replace=False)
    records = list(records)
    records[second] = _edit(records[second], _set_context("id", "bytes_list", ids[first]))
    return tfrecord.frame_all(records)


def _huge_id(rng) -> bytes:
    return b"h" + bytes(rng.integers(ord("a"), ord("z") + 1, HUGE_ID_BYTES - 1, dtype=np.uint8))


def _huge_id_bad(rng):
    def edit(example):
        _set_context("id", "bytes_list", _huge_id(rng))(example)
        _set_context("label", "int64_list", -1)(example)

    return edit


def _long_video(rng, records, ids):
    records = list(records)
    target = int(rng.integers(len(records)))
    frame = jpeg(rng, 8, 8)
    records[target] = make_record(ids[target].decode(), 0, CLASSES[0], [frame] * LONG_VIDEO_FRAMES)
    return tfrecord.frame_all(records)


def _wrong_feature_type(rng):
    choice = int(rng.integers(3))

    def edit(example):
        if choice == 0:
            _set_context("label", "bytes_list", b"1")(example)
        elif choice == 1:
            _set_context("id", "int64_list", 5)(example)
        else:
            step = example.feature_lists.feature_list["frames"].feature[0]
            step.bytes_list.value.append(b"second value")

    return edit


KINDS: dict[str, Callable] = {
    "flip_bytes_bad_crc": lambda rng, records, _ids: mutants.flip_bytes(
        rng, tfrecord.frame_all(records)
    ),
    "flip_bytes_valid_crc": lambda rng, records, _ids: mutants.flip_in_record(rng, records),
    "truncate": lambda rng, records, _ids: mutants.truncate(rng, tfrecord.frame_all(records)),
    "negative_label": lambda rng, records, _ids: _edit_one(
        rng, records, _set_context("label", "int64_list", -int(rng.integers(1, 1 << 40)))
    ),
    "huge_label": lambda rng, records, _ids: _edit_one(
        rng, records, _set_context("label", "int64_list", _huge_label(rng))
    ),
    "missing_label": lambda rng, records, _ids: _edit_one(
        rng, records, lambda e: e.context.feature.pop("label")
    ),
    "empty_frame_list": lambda rng, records, _ids: _edit_one(rng, records, _clear_frames(False)),
    "missing_frame_list": lambda rng, records, _ids: _edit_one(rng, records, _clear_frames(True)),
    "mixed_frame_sizes": lambda rng, records, _ids: _edit_one(
        rng, records, _mixed_frame_sizes(rng)
    ),
    "undecodable_jpeg": lambda rng, records, _ids: _edit_one(
        rng, records, _set_frame(rng, _undecodable_jpeg)
    ),
    "truncated_jpeg": lambda rng, records, _ids: _edit_one(
        rng, records, _set_frame(rng, _truncated_jpeg)
    ),
    "extra_features": lambda rng, records, _ids: _edit_one(rng, records, _extra_features),
    "duplicate_ids": _duplicate_ids,
    "empty_id": lambda rng, records, _ids: _edit_one(
        rng, records, _set_context("id", "bytes_list", b"")
    ),
    "huge_id": lambda rng, records, _ids: _edit_one(
        rng, records, _set_context("id", "bytes_list", _huge_id(rng))
    ),
    "huge_id_bad_record": lambda rng, records, _ids: _edit_one(rng, records, _huge_id_bad(rng)),
    "non_utf8_id": lambda rng, records, _ids: _edit_one(
        rng, records, _set_context("id", "bytes_list", b"\xff\xfe" + mutants.random_bytes(rng, 6))
    ),
    "zero_byte_file": lambda rng, records, _ids: b"",
    "random_bytes_file": lambda rng, records, _ids: mutants.random_bytes(
        rng, int(rng.integers(1, 4096))
    ),
    "example_not_sequence_example": lambda rng, records, _ids: _replace_one(
        rng, records, _not_a_sequence_example
    ),
    "long_video": _long_video,
    "wrong_feature_type": lambda rng, records, _ids: _edit_one(
        rng, records, _wrong_feature_type(rng)
    ),
}


def make_mutant(seed: int, kind: str, index: int) -> mutants.Mutant:
    """Records mutant `index` of `kind` (KINDS), or a frames-folder one (FOLDER_KINDS)."""
    if kind in FOLDER_KINDS:
        return make_folder_mutant(seed, kind, index)
    rng = mutants.rng_for(seed, FAMILY, kind, index)
    shards = []
    for shard, count in enumerate(RECORDS_PER_SHARD):
        ids = [f"v_{kind}-{index}-{shard}-{r}".encode() for r in range(count)]
        shards.append((ids, [good_record(rng, video_id.decode()) for video_id in ids]))
    (ids, records), (_, intact) = shards
    files = {
        "shard-0.tfrecord": KINDS[kind](rng, records, ids),
        "shard-1.tfrecord": tfrecord.frame_all(intact),
    }
    return mutants.Mutant(FAMILY, kind, index, files, source="shard-*.tfrecord")


# ------------------------------------------------------------------------------------ folders
def _folder_files(frames: list[bytes], prefix: str) -> dict[str, bytes]:
    return {f"{prefix}/frame_{i:05d}.jpg": data for i, data in enumerate(frames, start=1)}


def _drop_middle_frame(rng, frames):
    frames = dict(frames)
    names = sorted(frames)
    del frames[names[int(rng.integers(len(names) - 1))]]  # never only the last: that is no gap
    return frames


def _replace_frame(make):
    def mutate(rng, frames):
        frames = dict(frames)
        frames[sorted(frames)[int(rng.integers(len(frames)))]] = make(rng)
        return frames

    return mutate


FOLDER_KINDS: dict[str, Callable] = {
    # (rng, one video's {relative path: bytes}) -> its files after the mutation, or None: no folder
    "folder_missing_frame": _drop_middle_frame,
    "folder_undecodable_frame": _replace_frame(_undecodable_jpeg),
    "folder_truncated_frame": _replace_frame(_truncated_jpeg),
    "folder_zero_byte_frame": _replace_frame(lambda rng: b""),
    "folder_empty": lambda rng, frames: {},
    "folder_missing": lambda rng, frames: None,
    "folder_stray_files": lambda rng, frames: {
        **frames,
        **{next(iter(frames)).rsplit("/", 1)[0] + "/notes.txt": b"not a frame"},
    },
}


def make_folder_mutant(seed: int, kind: str, index: int) -> mutants.Mutant:
    """A frames root of VIDEOS_PER_FOLDER_SET listed videos, one of them mutated by `kind`."""
    rng = mutants.rng_for(seed, FAMILY, kind, index)
    files: dict[str, bytes] = {}
    empty_dirs, listed, lines = [], [], []
    target = int(rng.integers(VIDEOS_PER_FOLDER_SET))
    for video in range(VIDEOS_PER_FOLDER_SET):
        class_name = CLASSES[video % NUM_CLASSES]
        stem = f"v_{class_name}_g{index % 90 + 1:02d}_c{video + 1:02d}"
        folder = f"frames/{class_name}/{stem}"
        frames = _folder_files(good_frames(rng, int(rng.integers(3, 7))), folder)
        if video == target:
            frames = FOLDER_KINDS[kind](rng, frames)
            if frames == {}:
                empty_dirs.append(folder)
        if frames:
            files.update(frames)
        listed.append((folder, stem.encode()))
        lines.append(f"{class_name}/{stem}.avi\n")
    files["classInd.txt"] = "".join(f"{i} {name}\n" for i, name in enumerate(CLASSES, 1)).encode()
    files["testlist.txt"] = "".join(lines).encode()
    return mutants.Mutant(
        FAMILY,
        kind,
        index,
        files,
        source="frames",
        layout="folders",
        empty_dirs=tuple(empty_dirs),
        split_file="testlist.txt",
        class_index_file="classInd.txt",
        listed=tuple(listed),
    )


ALL_KINDS = (*KINDS, *FOLDER_KINDS)
