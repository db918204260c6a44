"""YouTube-8M fuzz mutants: two small shards of valid records (written with the project's own
`synthetic.make_example`), the first one mutated by one kind of `KINDS`.

Small widths (16 + 8 features, 2..8 frames, 8 classes) keep a mutant a few kilobytes, except the
kinds whose point is size (a 1 MB id, a 10,000-frame video). Record-level mutations parse a valid
record's proto, change it and serialise it again, so the file's framing and CRCs stay valid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from yt8m_kd.data.synthetic import make_example
from yt8m_kd.fuzz import mutants, tfrecord

FAMILY = "yt8m"
FEATURE_NAMES = ("rgb", "audio")
FEATURE_SIZES = (16, 8)
NUM_CLASSES = 8
MAX_FRAMES = 20
RECORDS_PER_SHARD = (6, 3)  # the mutated shard, the intact one
LONG_VIDEO_FRAMES = 10_000
HUGE_ID_BYTES = 1 << 20

# What the reader is given besides the files (frame_dataset keyword arguments).
READER_OPTIONS = {
    "max_frames": MAX_FRAMES,
    "num_classes": NUM_CLASSES,
    "feature_names": FEATURE_NAMES,
    "feature_sizes": FEATURE_SIZES,
}


def good_record(rng: np.random.Generator, video_id: bytes, num_frames: int | None = None) -> bytes:
    """A valid record: random frames, 1..3 labels in range."""
    if num_frames is None:
        num_frames = int(rng.integers(2, 9))
    features = {
        name: rng.integers(0, 256, (num_frames, size), dtype=np.uint8)
        for name, size in zip(FEATURE_NAMES, FEATURE_SIZES, strict=True)
    }
    labels = sorted({int(x) for x in rng.integers(0, NUM_CLASSES, int(rng.integers(1, 4)))})
    return make_example(video_id, labels, features)


def _edit(record: bytes, edit: Callable[[tf.train.SequenceExample], None]) -> bytes:
    """The record's proto, changed by `edit` and serialised again."""
    example = tf.train.SequenceExample.FromString(record)
    edit(example)
    return example.SerializeToString(deterministic=True)


def _set_id(example: tf.train.SequenceExample, video_id: bytes) -> None:
    feature = example.context.feature["id"]
    feature.Clear()
    feature.bytes_list.value.append(video_id)


def _huge_label(rng: np.random.Generator) -> int:
    """A label >= NUM_CLASSES; half of them 2**32 + a valid label (a 32-bit cast would wrap)."""
    if rng.random() < 0.5:
        return (1 << 32) + int(rng.integers(NUM_CLASSES))
    return NUM_CLASSES + int(rng.integers(0, 1 << 62))


def _add_label(label: int):
    return lambda example: example.context.feature["labels"].int64_list.value.append(label)


# ------------------------------------------------------------------------------------ kinds
# Each kind: (rng, the first shard's valid records, their ids) -> the first shard's bytes.
def _replace_one(rng, records, make: Callable[[bytes], bytes]) -> bytes:
    records = list(records)
    target = int(rng.integers(len(records)))
    records[target] = make(records[target])
    return tfrecord.frame_all(records)


def _wrong_frame_size(rng, records, _ids):
    name = FEATURE_NAMES[int(rng.integers(len(FEATURE_NAMES)))]

    def edit(example):
        steps = example.feature_lists.feature_list[name].feature
        step = steps[int(rng.integers(len(steps)))].bytes_list
        value = step.value[0]
        delta = int(rng.integers(1, 5))
        step.value[0] = value[:-delta] if rng.random() < 0.5 else value + bytes(delta)

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _empty_feature_list(rng, records, _ids):
    names = FEATURE_NAMES if rng.random() < 0.5 else (FEATURE_NAMES[int(rng.integers(2))],)

    def edit(example):
        for name in names:  # the key stays, with no frames
            del example.feature_lists.feature_list[name].feature[:]

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _missing_feature_list(rng, records, _ids):
    names = FEATURE_NAMES if rng.random() < 0.5 else (FEATURE_NAMES[int(rng.integers(2))],)

    def edit(example):
        for name in names:
            del example.feature_lists.feature_list[name]

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _frame_count_mismatch(rng, records, _ids):
    name = FEATURE_NAMES[int(rng.integers(2))]

    def edit(example):
        del example.feature_lists.feature_list[name].feature[-1]

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _extra_features(rng, records, _ids):
    def edit(example):
        example.context.feature["language"].bytes_list.value.append(b"en")
        example.context.feature["score"].float_list.value.extend([0.5, 1.5])
        depth = example.feature_lists.feature_list["depth"].feature
        depth.add().int64_list.value.extend([1, 2, 3])
        depth.add().bytes_list.value.extend([b"a", b"bc"])

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _duplicate_ids(rng, records, ids):
    first, second = rng.choice(len(records), 2, replace=False)
    records = list(records)
    records[second] = _edit(records[second], lambda e: _set_id(e, ids[first]))
    return tfrecord.frame_all(records)


def _empty_id(rng, records, _ids):
    def edit(example):
        if rng.random() < 0.5:
            del example.context.feature["id"]
        else:
            _set_id(example, b"")

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _huge_id(rng) -> bytes:
    return b"h" + bytes(rng.integers(ord("a"), ord("z") + 1, HUGE_ID_BYTES - 1, dtype=np.uint8))


def _huge_id_good(rng, records, _ids):
    return _replace_one(rng, records, lambda r: _edit(r, lambda e: _set_id(e, _huge_id(rng))))


def _huge_id_bad(rng, records, _ids):
    def edit(example):
        _set_id(example, _huge_id(rng))
        _add_label(NUM_CLASSES)(example)

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _non_utf8_id(rng, records, _ids):
    video_id = b"\xff\xfe" + mutants.random_bytes(rng, 6) + b"\xc3"
    return _replace_one(rng, records, lambda r: _edit(r, lambda e: _set_id(e, video_id)))


def _not_a_sequence_example(rng, records, _ids):
    def to_example(record):
        sequence = tf.train.SequenceExample.FromString(record)
        example = tf.train.Example()
        for key, value in sequence.context.feature.items():
            example.features.feature[key].CopyFrom(value)
        for name in FEATURE_NAMES:  # the frames as one bytes list per feature
            frames = [
                s.bytes_list.value[0] for s in sequence.feature_lists.feature_list[name].feature
            ]
            example.features.feature[name].bytes_list.value.extend(frames)
        return example.SerializeToString(deterministic=True)

    return _replace_one(rng, records, to_example)


def _long_video(rng, records, ids):
    records = list(records)
    target = int(rng.integers(len(records)))
    records[target] = good_record(rng, ids[target], num_frames=LONG_VIDEO_FRAMES)
    return tfrecord.frame_all(records)


def _wrong_feature_type(rng, records, _ids):
    choice = int(rng.integers(3))

    def edit(example):
        context = example.context.feature
        if choice == 0:  # labels as strings
            context["labels"].Clear()
            context["labels"].bytes_list.value.append(b"3")
        elif choice == 1:  # the id as a number
            context["id"].Clear()
            context["id"].int64_list.value.append(7)
        else:  # a frame as numbers
            step = example.feature_lists.feature_list[FEATURE_NAMES[0]].feature[0]
            step.Clear()
            step.int64_list.value.extend([1, 2])

    return _replace_one(rng, records, lambda r: _edit(r, edit))


def _video_id_key(rng, records, _ids):
    def edit(example):
        video_id = example.context.feature["id"].bytes_list.value[0]
        del example.context.feature["id"]
        example.context.feature["video_id"].bytes_list.value.append(video_id)

    return _replace_one(rng, records, lambda r: _edit(r, edit))


KINDS: dict[str, Callable] = {
    "flip_bytes_bad_crc": lambda rng, records, _ids: mutants.flip_bytes(
        rng, tfrecord.frame_all(records)
    ),
    "flip_bytes_valid_crc": lambda rng, records, _ids: mutants.flip_in_record(rng, records),
    "truncate": lambda rng, records, _ids: mutants.truncate(rng, tfrecord.frame_all(records)),
    "wrong_frame_size": _wrong_frame_size,
    "negative_label": lambda rng, records, _ids: _replace_one(
        rng, records, lambda r: _edit(r, _add_label(-int(rng.integers(1, 1 << 40))))
    ),
    "huge_label": lambda rng, records, _ids: _replace_one(
        rng, records, lambda r: _edit(r, _add_label(_huge_label(rng)))
    ),
    "empty_feature_list": _empty_feature_list,
    "missing_feature_list": _missing_feature_list,
    "frame_count_mismatch": _frame_count_mismatch,
    "extra_features": _extra_features,
    "duplicate_ids": _duplicate_ids,
    "empty_id": _empty_id,
    "huge_id": _huge_id_good,
    "huge_id_bad_record": _huge_id_bad,
    "non_utf8_id": _non_utf8_id,
    "zero_byte_file": lambda rng, records, _ids: b"",
    "random_bytes_file": lambda rng, records, _ids: mutants.random_bytes(
        rng, int(rng.integers(1, 4096))
    ),
    "example_not_sequence_example": _not_a_sequence_example,
    "long_video": _long_video,
    "wrong_feature_type": _wrong_feature_type,
    "video_id_key": _video_id_key,
}


def make_mutant(seed: int, kind: str, index: int) -> mutants.Mutant:
    """Mutant `index` of `kind` (one of KINDS), deterministic in (seed, kind, index)."""
    rng = mutants.rng_for(seed, FAMILY, kind, index)
    shards = []
    for shard, count in enumerate(RECORDS_PER_SHARD):
        ids = [f"{kind}-{index}-{shard}-{r}".encode() for r in range(count)]
        shards.append((ids, [good_record(rng, video_id) for video_id in ids]))
    (ids, records), (_, intact) = shards
    files = {
        "shard-0.tfrecord": KINDS[kind](rng, records, ids),
        "shard-1.tfrecord": tfrecord.frame_all(intact),
    }
    return mutants.Mutant(FAMILY, kind, index, files, source="shard-*.tfrecord")
