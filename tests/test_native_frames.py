"""The reader's native fast path (yt8m_kd/data/native, docs/reader-fast-path.md): the op takes
exactly the canonical records and decodes their frames as TensorFlow's parser does; the reader
gives the same records, problem codes and errors with it as without it, on every single-bit flip
of a record and on files with bad records; and where the op cannot be built the reader falls
back to TensorFlow's parser with a warning."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import native, yt8m, yt8m_records
from yt8m_kd.data.synthetic import make_example

NAMES, SIZES = ("rgb", "audio"), (8, 4)
NUM_CLASSES = 10

needs_native = pytest.mark.skipif(native.load() is None, reason="no C++ compiler here")


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def _frame(value: bytes) -> bytes:
    return _field(0x0A, _field(0x0A, _field(0x0A, value)))  # Feature{bytes_list{value}}


def _entry(name: str, frames: list[bytes]) -> bytes:
    return _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, b"".join(map(_frame, frames))))


def _raw_entry(name: str, feature_list: bytes) -> bytes:
    return _field(0x0A, _field(0x0A, name.encode()) + _field(0x12, feature_list))


def _context(video_id: bytes = b"vid", labels=(1, 3)) -> bytes:
    example = tf.train.SequenceExample()
    example.context.feature["id"].bytes_list.value.append(video_id)
    example.context.feature["labels"].int64_list.value.extend(labels)
    return example.context.SerializeToString()


def _frames(count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.integers(0, 256, (count, size), dtype=np.uint8)
        for name, size in zip(NAMES, SIZES, strict=True)
    }


def _hand_record(entries: list[bytes], context: bytes | None = None) -> bytes:
    return _field(0x0A, _context() if context is None else context) + _field(
        0x12, b"".join(entries)
    )


def _op(record: bytes, max_frames: int = 100, names=NAMES, sizes=SIZES):
    out = native.canonical_frames(
        tf.constant(record), tf.zeros([0], tf.int64), names, sizes, max_frames, None
    )
    return bool(out["ok"]), out["frames"].numpy(), int(out["num_frames"])


def _tf_frames(record: bytes, max_frames: int = 100) -> np.ndarray:
    parsed, code, _ = yt8m_records.parse_record(
        tf.constant(record), max_frames=max_frames, feature_names=NAMES, feature_sizes=SIZES
    )
    assert int(code) == 0
    return parsed["frames"].numpy()


# ------------------------------------------------------------------------------------ the op
@needs_native
@pytest.mark.parametrize("count, max_frames", [(1, 100), (5, 100), (7, 3), (300, 300)])
def test_canonical_records_decode_as_tensorflows_parser_does(count, max_frames):
    record = make_example("vid", [1, 2], _frames(count))
    ok, frames, num_frames = _op(record, max_frames)
    assert ok and num_frames == count
    assert frames.shape == (min(count, max_frames), sum(SIZES))
    np.testing.assert_array_equal(frames, _tf_frames(record, max_frames))


@needs_native
def test_feature_lists_in_any_order_and_long_frames_are_canonical():
    # make_example writes the map sorted (audio first); rgb first here. Frames of 200 bytes have
    # two-byte lengths at every level.
    frames = [bytes([i]) * 8 for i in range(4)], [bytes([9 - i]) * 4 for i in range(4)]
    record = _hand_record([_entry("rgb", frames[0]), _entry("audio", frames[1])])
    ok, decoded, count = _op(record)
    assert ok and count == 4
    np.testing.assert_array_equal(decoded, _tf_frames(record))
    wide = make_example("v", [], {"rgb": np.full((2, 200), 7, np.uint8)})
    ok, decoded, count = _op(wide, 10, ["rgb"], [200])
    assert ok and count == 2 and decoded.shape == (2, 200) and int(decoded.max()) == 7


@needs_native
@pytest.mark.parametrize(
    "labels, labels_ok, hot", [([], True, []), ([2, 0, 2], True, [0, 2]), ([1, 4, -1], False, [1])]
)
def test_the_op_checks_labels_and_makes_the_multi_hot(labels, labels_ok, hot):
    out = native.canonical_frames(
        tf.constant(b""), tf.constant(labels, tf.int64), NAMES, SIZES, 10, 4
    )
    assert bool(out["labels_ok"]) == labels_ok
    np.testing.assert_array_equal(out["multi_hot"].numpy(), np.isin(np.arange(4), hot))


def _non_canonical() -> dict[str, bytes]:
    rgb = [b"r" * 8] * 3
    audio = [b"a" * 4] * 3
    good = [_entry("rgb", rgb), _entry("audio", audio)]
    body = b"".join(good)
    two_values = _field(0x0A, _field(0x0A, _field(0x0A, audio[0]) + _field(0x0A, b"")))
    return {
        "empty": b"",
        "garbage": b"\xff\x00\x13 not a proto",
        "no frames": _hand_record([]),
        "missing feature": _hand_record(good[:1]),
        "frame count mismatch": _hand_record([good[0], _entry("audio", audio[:2])]),
        "bad frame size": _hand_record([_entry("rgb", [b"r" * 7, *rgb[1:]]), good[1]]),
        "empty feature list": _hand_record([_entry("rgb", []), _entry("audio", [])]),
        "feature list not requested": _hand_record([*good, _entry("depth", [b"d"])]),
        "feature list repeated": _hand_record([*good, good[1]]),
        "context after the feature lists": _field(0x12, body) + _field(0x0A, _context()),
        "no context": _field(0x12, body),
        "trailing bytes": _hand_record(good) + b"\x00",
        "length past the end": _hand_record(good)[:-1],
        "a frame with two values": _hand_record([good[0], _raw_entry("audio", two_values * 3)]),
        "an int64 frame": _hand_record(
            [good[0], _raw_entry("audio", _field(0x0A, _field(0x1A, _field(0x0A, b"\x01"))) * 3)]
        ),
    }


@needs_native
@pytest.mark.parametrize("case", sorted(_non_canonical()))
def test_anything_else_is_left_to_tensorflows_parser(case):
    ok, frames, count = _op(_non_canonical()[case])
    assert not ok and frames.shape == (0, sum(SIZES)) and count == 0


# ------------------------------------------------------------------------------------ the reader
def _parser(native_decoder: bool):
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def parse(serialized):
        record, code, error = yt8m_records.parse_record(
            serialized,
            max_frames=100,
            feature_names=NAMES,
            feature_sizes=SIZES,
            num_classes=NUM_CLASSES,
            where="in test",
            native_decoder=native_decoder,
        )
        return record, code, error

    def outcome(data: bytes):
        try:
            record, code, error = parse(tf.constant(data))
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError):
            return "refused"
        return (
            int(code),
            error.numpy(),
            record["video_id"].numpy(),
            record["frames"].numpy().tobytes(),
            int(record["num_frames"]),
            record["labels"].numpy().tobytes(),
        )

    return outcome


@needs_native
def test_every_single_bit_flip_parses_alike_with_and_without_the_fast_path():
    """8 x len(record) mutants: the same outcome (refused, or the same code, error, id, frames and
    labels) either way; the fast path takes the mutants it can, and they include bad ones."""
    good = make_example("vid-0", [1, 6], _frames(3))
    with_fast, without = _parser(True), _parser(False)
    taken, outcomes = 0, set()
    for position in range(len(good)):
        for bit in range(8):
            data = bytearray(good)
            data[position] ^= 1 << bit
            fast = with_fast(bytes(data))
            assert fast == without(bytes(data)), (position, bit)
            outcomes.add("refused" if fast == "refused" else fast[0])
            taken += _op(bytes(data))[0]
    assert taken > 0.5 * 8 * len(good)  # flips in frame values and the context are canonical
    # Refused records, good ones, and codes for frame problems and context problems all occur.
    codes = yt8m_records.PROBLEM_CODES
    assert {"refused", 0, codes["missing_feature"], codes["label_out_of_range"]} <= outcomes


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _records_with_bad_ones() -> list[bytes]:
    records = [make_example(f"v{i}", [i % NUM_CLASSES], _frames(2 + i, seed=i)) for i in range(12)]
    records[3] = make_example("v3", [99], _frames(2))  # label out of range
    records[5] = make_example("v5", [1], {"rgb": _frames(2)["rgb"]})  # missing feature
    records[8] = b"not a SequenceExample"
    records[10] = _hand_record([_entry("rgb", [b"r" * 7]), _entry("audio", [b"a" * 4])])
    return records


def _batches(path, native_decoder, **kwargs):
    dataset = yt8m.frame_dataset(
        path,
        batch_size=4,
        max_frames=6,
        num_classes=NUM_CLASSES,
        feature_names=NAMES,
        feature_sizes=SIZES,
        native_decoder=native_decoder,
        **kwargs,
    )
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


@needs_native
def test_frame_dataset_gives_the_same_batches_and_counts_with_the_fast_path(tmp_path):
    path = _write(tmp_path / "mixed.tfrecord", _records_with_bad_ones())
    counts = {}
    runs = {}
    for fast in (True, False):
        counter = yt8m.BadRecordCounter()
        runs[fast] = _batches(path, fast, skip_bad_records=True, bad_record_counter=counter)
        counts[fast] = counter.counts()
    assert len(runs[True]) == len(runs[False]) == 2  # 8 good records
    for a, b in zip(runs[True], runs[False], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert counts[True] == counts[False]
    assert sum(counts[True].values()) >= 4

    strict_errors = {}
    for fast in (True, False):
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            _batches(path, fast)
        strict_errors[fast] = yt8m.error_message(raised.value)
    assert strict_errors[True] == strict_errors[False]
    assert "record id v3" in strict_errors[True] and path in strict_errors[True]


# ------------------------------------------------------------------------ the whole-file read
def _whole_file(path, max_frames=6):
    """(records, resume point) of the whole-file fast path over one file."""
    size = tf.constant(os.path.getsize(path), tf.int64)
    dataset, token = native.records_dataset(
        tf.constant(str(path)), size, NAMES, SIZES, max_frames, NUM_CLASSES
    )
    records = [{k: v.numpy() for k, v in record.items()} for record in dataset]
    point = {k: v.numpy() for k, v in native.resume_point(token).items()}
    return records, point


def _general(data: bytes, max_frames=6):
    record, code, _ = yt8m_records.parse_record(
        tf.constant(data),
        max_frames=max_frames,
        feature_names=NAMES,
        feature_sizes=SIZES,
        num_classes=NUM_CLASSES,
    )
    return {k: v.numpy() for k, v in record.items()}, int(code)


def _good(i: int, **kwargs) -> bytes:
    return make_example(f"v{i}", [i % NUM_CLASSES, 7], _frames(2 + i % 9, seed=i), **kwargs)


@needs_native
def test_the_whole_file_read_gives_the_records_of_the_general_parse(tmp_path):
    records = [_good(i) for i in range(10)] + [_good(10, id_key="video_id")]
    got, point = _whole_file(_write(tmp_path / "good.tfrecord", records))
    assert point["index"] == -1  # read to the end: nothing left to the general pipeline
    assert len(got) == len(records)
    for record, data in zip(got, records, strict=True):
        expected, code = _general(data)
        assert code == 0 and record.pop("_emit")
        assert record.keys() == expected.keys()
        for key in record:
            np.testing.assert_array_equal(record[key], expected[key])


@needs_native
def test_every_single_bit_flip_the_whole_file_read_takes_parses_alike(tmp_path):
    """8 x len(record) mutants, each alone in a file: the whole-file read either takes it, and
    then the general parse gives it code 0 and the same record, or leaves it (resume point: the
    file's first record) to the general pipeline."""
    good = make_example("vid-0", [1, 6], _frames(3))
    taken = 0
    for position in range(len(good)):
        for bit in range(8):
            data = bytearray(good)
            data[position] ^= 1 << bit
            got, point = _whole_file(_write(tmp_path / "one.tfrecord", [bytes(data)]))
            if not got:
                assert point["index"] == 0 and point["offset"] == 0, (position, bit)
                assert point["previous_id"] == b""
                continue
            taken += 1
            assert point["index"] == -1
            expected, code = _general(bytes(data))
            assert code == 0, (position, bit)
            for key in expected:
                np.testing.assert_array_equal(got[0][key], expected[key], err_msg=f"{position}")
    # Every flip of a frame value (3 frames of 8 + 4 bytes) or of the id (5 bytes) is taken,
    # and so are some flips of the labels; flips of lengths and tags are not.
    assert 8 * (3 * sum(SIZES) + 5) <= taken < 8 * len(good)


def _offsets(records) -> list[int]:
    """Each record's byte offset in its file: a record takes its length + 16 bytes."""
    return list(np.cumsum([0] + [len(r) + 16 for r in records]))


def _left_to_the_general_pipeline() -> dict[str, bytes]:
    """Records the whole-file read does not take: bad ones, and good ones in another layout."""
    example = tf.train.SequenceExample.FromString(_good(5))
    example.context.feature["mean_rgb"].float_list.value.append(0.5)
    unpacked_labels = _field(
        0x0A, _field(0x0A, b"labels") + _field(0x12, _field(0x1A, b"\x08\x05"))
    ) + _field(0x0A, _field(0x0A, b"id") + _field(0x12, _field(0x0A, _field(0x0A, b"v5"))))
    return {
        "unparsable": b"not a SequenceExample",
        "label out of range": make_example("v5", [99], _frames(2)),
        "no labels": make_example("v5", [], _frames(2)),
        "empty id": make_example("", [1], _frames(2)),
        "missing feature": make_example("v5", [1], {"rgb": _frames(2)["rgb"]}),
        "another context feature": example.SerializeToString(),
        "labels not packed": _hand_record(
            [_entry("rgb", [b"r" * 8]), _entry("audio", [b"a" * 4])], unpacked_labels
        ),
    }


@needs_native
@pytest.mark.parametrize("case", sorted(_left_to_the_general_pipeline()))
def test_the_whole_file_read_stops_at_the_first_record_it_does_not_take(tmp_path, case):
    records = [_good(i) for i in range(5)]
    records += [_left_to_the_general_pipeline()[case]] + [_good(i) for i in range(6, 9)]
    got, point = _whole_file(_write(tmp_path / "mixed.tfrecord", records))
    assert [r["video_id"] for r in got] == [f"v{i}".encode() for i in range(5)]
    assert point["index"] == 5 and point["offset"] == _offsets(records)[5]
    assert point["previous_id"] == b"v4"


@needs_native
@pytest.mark.parametrize("damage", ["crc", "cut in a record", "cut after a record", "grown"])
def test_a_damaged_file_is_left_to_the_general_pipeline_where_the_damage_starts(tmp_path, damage):
    records = [_good(i) for i in range(6)]
    path = _write(tmp_path / "damaged.tfrecord", records)
    offsets = _offsets(records)
    data = bytearray(open(path, "rb").read())
    size = len(data)
    if damage == "crc":
        data[offsets[3] + 20] ^= 0xFF  # a byte of record 3's data: its CRC fails
    elif damage == "cut in a record":
        data = data[: offsets[4] + 30]
    elif damage == "cut after a record":
        data = data[: offsets[4]]
    else:
        # A record written to it after the pipeline was built (it took the size before).
        data += open(_write(tmp_path / "more.tfrecord", [_good(6)]), "rb").read()
    with open(path, "wb") as f:
        f.write(bytes(data))
    dataset, token = native.records_dataset(
        tf.constant(path), tf.constant(size, tf.int64), NAMES, SIZES, 6, NUM_CLASSES
    )
    got = [record["video_id"].numpy() for record in dataset]
    point = native.resume_point(token)
    if damage == "grown":  # read to its end, as TensorFlow's reader would
        assert len(got) == 7 and int(point["index"]) == -1
        return
    stop = 3 if damage == "crc" else 4
    assert len(got) == stop and int(point["index"]) == stop
    assert int(point["offset"]) == offsets[stop]


def _damaged_files(tmp_path) -> dict[str, str]:
    """Files with damage and bad records at the start, the middle and the end."""
    files = {}
    mixed = _records_with_bad_ones()
    files["bad records"] = _write(tmp_path / "mixed.tfrecord", mixed)
    files["bad first"] = _write(
        tmp_path / "first.tfrecord", [mixed[8]] + [_good(i) for i in range(4)]
    )
    files["bad last"] = _write(
        tmp_path / "last.tfrecord", [_good(i) for i in range(4)] + [mixed[3]]
    )
    good = [_good(i) for i in range(7)]
    offsets = _offsets(good)
    path = _write(tmp_path / "crc.tfrecord", good)
    data = bytearray(open(path, "rb").read())
    data[offsets[2] + 40] ^= 0x10
    open(path, "wb").write(bytes(data))
    files["corrupt middle"] = path
    path = _write(tmp_path / "cut.tfrecord", good)
    open(path, "r+b").truncate(offsets[5] + 9)
    files["cut short"] = path
    return files


@needs_native
@pytest.mark.parametrize(
    "case", ["bad records", "bad first", "bad last", "corrupt middle", "cut short"]
)
def test_frame_dataset_reads_damaged_files_alike_with_the_whole_file_read(tmp_path, case):
    """Skip mode: the same batches and counts; strict mode: the same error; with the fast path
    (the whole-file read, then the general pipeline from where it stopped) and without it."""
    path = _damaged_files(tmp_path)[case]
    runs, counts, errors = {}, {}, {}
    for fast in (True, False):
        counter = yt8m.BadRecordCounter()
        runs[fast] = _batches(path, fast, skip_bad_records=True, bad_record_counter=counter)
        counts[fast] = counter.counts()
        with pytest.raises(tf.errors.InvalidArgumentError) as raised:
            _batches(path, fast)
        errors[fast] = yt8m.error_message(raised.value)
    assert len(runs[True]) == len(runs[False]) > 0
    for a, b in zip(runs[True], runs[False], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert counts[True] == counts[False] and sum(counts[True].values()) > 0
    assert errors[True] == errors[False] and path in errors[True]


# ------------------------------------------------------------------------------------ building
def test_without_a_compiler_the_reader_parses_with_tensorflow(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("YT8M_KD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_state", {})
    with pytest.raises(native.BuildError, match="no-such-compiler"):
        native.build()
    assert native.load() is None and native.load() is None
    path = _write(tmp_path / "good.tfrecord", [make_example("v", [1], _frames(2))])
    (batch,) = _batches(path, None)
    assert batch["video_id"].tolist() == [b"v"]
    with pytest.raises(native.BuildError, match="not available"):
        _batches(path, True)


def test_the_switch_turns_the_fast_path_off(monkeypatch):
    monkeypatch.setenv("YT8M_KD_NATIVE", "0")
    monkeypatch.setattr(native, "_state", {})
    assert not native.enabled() and native.load() is None


@needs_native
def test_the_library_is_built_once_per_source_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("YT8M_KD_CACHE_DIR", str(tmp_path / "cache"))
    first = native.build()
    modified = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == modified
    assert first.is_relative_to(tmp_path / "cache")


@needs_native
def test_python_m_builds_it_ahead_of_time(tmp_path):
    env = {**os.environ, "YT8M_KD_CACHE_DIR": str(tmp_path / "cache")}
    built = subprocess.run(
        [sys.executable, "-m", "yt8m_kd.data.native"], env=env, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    path = built.stdout.strip().rsplit(" ", 1)[-1]
    assert path.endswith("yt8m_frames.so") and os.path.exists(path)
    assert path.startswith(str(tmp_path / "cache"))
    off = subprocess.run(
        [sys.executable, "-m", "yt8m_kd.data.native"],
        env={**env, "YT8M_KD_NATIVE": "0"},
        capture_output=True,
        text=True,
    )
    assert off.returncode == 0 and "off" in off.stdout
