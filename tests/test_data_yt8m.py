"""YouTube-8M frame reader: records with known bytes come out exactly, padded, cut and sharded."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import yt8m, yt8m_records
from yt8m_kd.data.synthetic import make_example
from yt8m_kd.modeling import Dequantize

NAMES = ("rgb", "audio")
SIZES = (4, 2)
NUM_CLASSES = 6


def _video(rng: np.random.Generator, num_frames: int) -> dict[str, np.ndarray]:
    return {
        name: rng.integers(0, 256, size=(num_frames, size), dtype=np.uint8)
        for name, size in zip(NAMES, SIZES, strict=True)
    }


def _write(path: str, records: list[bytes]) -> str:
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def _read(pattern, **kwargs) -> list[dict[str, np.ndarray]]:
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("num_classes", NUM_CLASSES)
    kwargs.setdefault("feature_names", NAMES)
    kwargs.setdefault("feature_sizes", SIZES)
    return [
        {key: value.numpy() for key, value in batch.items()}
        for batch in yt8m.frame_dataset(pattern, **kwargs)
    ]


def _ids(batches) -> list[str]:
    return [v.decode() for batch in batches for v in batch["video_id"]]


def _write_shards(tmp_path, num_files: int, per_file: int) -> str:
    rng = np.random.default_rng(0)
    for f in range(num_files):
        records = [
            make_example(f"f{f}r{r}", [r % NUM_CLASSES], _video(rng, 3 + r))
            for r in range(per_file)
        ]
        _write(str(tmp_path / f"train-{f:05d}-of-{num_files:05d}.tfrecord"), records)
    return str(tmp_path / "train-*.tfrecord")


def test_frames_are_the_recorded_bytes_cut_and_padded(tmp_path):
    rng = np.random.default_rng(1)
    short, long = _video(rng, 5), _video(rng, 11)
    path = _write(
        str(tmp_path / "a.tfrecord"),
        [make_example("short", [1, 4], short), make_example("long", [0, 5, 5], long)],
    )
    (batch,) = _read(path, max_frames=8)

    assert batch["frames"].dtype == np.uint8
    assert batch["frames"].shape == (2, 8, 6)
    assert batch["video_id"].tolist() == [b"short", b"long"]
    assert batch["num_frames"].tolist() == [5, 8]
    assert batch["num_frames"].dtype == np.int32
    # rgb then audio per frame; the short video zero-padded at the end, the long one cut at 8.
    np.testing.assert_array_equal(
        batch["frames"][0, :5], np.concatenate([short["rgb"], short["audio"]], 1)
    )
    np.testing.assert_array_equal(batch["frames"][0, 5:], np.zeros((3, 6), np.uint8))
    np.testing.assert_array_equal(
        batch["frames"][1], np.concatenate([long["rgb"], long["audio"]], 1)[:8]
    )
    # Multi-hot, a label listed twice counted once.
    np.testing.assert_array_equal(batch["labels"], [[0, 1, 0, 0, 1, 0], [1, 0, 0, 0, 0, 1]])
    assert batch["labels"].dtype == np.float32


def test_feature_order_follows_feature_names(tmp_path):
    video = _video(np.random.default_rng(2), 3)
    path = _write(str(tmp_path / "a.tfrecord"), [make_example("v", [0], video)])
    (batch,) = _read(path, max_frames=3, feature_names=("audio", "rgb"), feature_sizes=(2, 4))
    np.testing.assert_array_equal(
        batch["frames"][0], np.concatenate([video["audio"], video["rgb"]], 1)
    )


def test_dequantize_is_the_reference_formula():
    x = np.arange(256, dtype=np.uint8)
    got = yt8m_records.dequantize(tf.constant(x)).numpy()
    assert got.dtype == np.float32
    expected = x.astype(np.float64) * 4.0 / 255.0 - 1.9921875
    np.testing.assert_allclose(got, expected, rtol=0, atol=5e-7)  # two float32 ulps at 2
    assert got[0] == -1.9921875 and abs(got[255] - 2.0078125) < 5e-7
    # The same float32 arithmetic, bit for bit.
    f32 = np.float32
    np.testing.assert_array_equal(got, x.astype(f32) * f32(4 / 255) - f32(1.9921875))
    # What the models see: their first layer is this formula, bit for bit.
    np.testing.assert_array_equal(Dequantize()(x).numpy(), got)


@pytest.mark.parametrize("id_key", ["id", "video_id"])
def test_both_id_keys(tmp_path, id_key):
    video = _video(np.random.default_rng(3), 2)
    path = _write(str(tmp_path / "a.tfrecord"), [make_example("abc", [2], video, id_key=id_key)])
    (batch,) = _read(path)
    assert batch["video_id"].tolist() == [b"abc"]
    assert batch["num_frames"].tolist() == [2]


def test_multi_shard_reads_every_record_in_a_fixed_order(tmp_path):
    pattern = _write_shards(tmp_path, num_files=3, per_file=4)
    first, second = _ids(_read(pattern)), _ids(_read(pattern))
    assert sorted(first) == sorted(f"f{f}r{r}" for f in range(3) for r in range(4))
    assert first == second
    # A list of patterns works too, and duplicates are read once.
    both = _ids(_read([pattern, str(tmp_path / "train-00000-*")]))
    assert sorted(both) == sorted(first)


def test_shuffle_with_a_seed_is_reproducible(tmp_path):
    pattern = _write_shards(tmp_path, num_files=3, per_file=8)
    kwargs = dict(shuffle=True, shuffle_buffer=64, seed=5)
    first, second = _ids(_read(pattern, **kwargs)), _ids(_read(pattern, **kwargs))
    other = _ids(_read(pattern, shuffle=True, shuffle_buffer=64, seed=6))
    assert first == second
    assert first != other
    assert sorted(first) == sorted(other) == sorted(_ids(_read(pattern)))
    assert first != _ids(_read(pattern))


def test_input_context_shards_by_file(tmp_path):
    pattern = _write_shards(tmp_path, num_files=4, per_file=3)
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    ids = _ids(_read(pattern, input_context=context))
    assert sorted(ids) == sorted(f"f{f}r{r}" for f in (1, 3) for r in range(3))
    with pytest.raises(ValueError, match="fewer than the 8 input pipelines"):
        yt8m.frame_dataset(
            pattern,
            batch_size=2,
            input_context=tf.distribute.InputContext(8, 0, 8),
            feature_sizes=SIZES,
        )


def test_repeat_and_drop_remainder_give_static_batches(tmp_path):
    pattern = _write_shards(tmp_path, num_files=1, per_file=5)
    dataset = yt8m.frame_dataset(
        pattern,
        batch_size=3,
        max_frames=7,
        num_classes=NUM_CLASSES,
        feature_sizes=SIZES,
        repeat=True,
        drop_remainder=True,
    )
    assert dataset.element_spec["frames"].shape.as_list() == [3, 7, 6]
    assert dataset.element_spec["labels"].shape.as_list() == [3, NUM_CLASSES]
    ids = _ids([{k: v.numpy() for k, v in b.items()} for b in dataset.take(4)])
    assert ids == [f"f0r{r % 5}" for r in range(12)]


def test_no_matching_file_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        yt8m.frame_dataset(pattern, batch_size=2)


def test_a_scheme_tensorflow_lacks_needs_tensorflow_io(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_io", None)  # import fails as when not installed
    with pytest.raises(ImportError, match=r"tensorflow-io.*2\.18"):
        yt8m.frame_dataset("s3://bucket/train-*.tfrecord", batch_size=2)


def test_local_file_scheme_is_native(tmp_path):
    pattern = _write_shards(tmp_path, num_files=1, per_file=2)
    assert len(_ids(_read("file://" + os.path.abspath(pattern)))) == 2


def _varied_records(rng: np.random.Generator, prefix: str, count: int) -> list[tuple]:
    """(id, labels, features, serialized) of `count` records of 1 to 20 frames."""
    records = []
    for r in range(count):
        video = _video(rng, int(rng.integers(1, 21)))
        labels = sorted(
            {int(v) for v in rng.integers(0, NUM_CLASSES, size=int(rng.integers(0, 4)))}
        )
        records.append((f"{prefix}{r}", labels, video, make_example(f"{prefix}{r}", labels, video)))
    return records


def test_many_records_per_file_come_out_exactly(tmp_path):
    # Many records per file, of varied sizes, so that the byte accounting and the item numbering
    # run over many records.
    rng = np.random.default_rng(7)
    written = {}
    for f in range(2):
        records = _varied_records(rng, f"f{f}-", 37)
        _write(str(tmp_path / f"train-{f}.tfrecord"), [record[3] for record in records])
        written.update({record[0]: record for record in records})
    batches = _read(str(tmp_path / "train-*.tfrecord"), batch_size=5, max_frames=16)
    read = [
        (video_id.decode(), batch["frames"][row], batch["num_frames"][row], batch["labels"][row])
        for batch in batches
        for row, video_id in enumerate(batch["video_id"])
    ]
    assert sorted(video_id for video_id, *_ in read) == sorted(written)
    for video_id, frames, num_frames, labels in read:
        _, want_labels, video, _ = written[video_id]
        want = np.concatenate([video["rgb"], video["audio"]], 1)[:16]
        assert num_frames == len(want)
        np.testing.assert_array_equal(frames[: len(want)], want)
        np.testing.assert_array_equal(frames[len(want) :], 0)
        np.testing.assert_array_equal(np.flatnonzero(labels), want_labels)


def test_a_bad_record_after_many_is_named_by_its_byte_offset(tmp_path):
    rng = np.random.default_rng(8)
    good = [record[3] for record in _varied_records(rng, "g", 35)]
    bad = make_example("bad-one", [NUM_CLASSES], _video(rng, 2))
    path = _write(str(tmp_path / "a.tfrecord"), [*good, bad])
    # A record takes its length + 16 bytes of TFRecord framing on disk.
    offset = sum(len(record) + 16 for record in good)
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        _read(path)
    message = yt8m.error_message(raised.value)
    assert f"in file {path} (record 35 at byte {offset}), record id bad-one: label" in message
    # Skipped: every good record is read, the bad one counted.
    counter = yt8m.BadRecordCounter()
    ids = _ids(_read(path, skip_bad_records=True, bad_record_counter=counter))
    assert ids == [f"g{r}" for r in range(35)]
    assert counter.counts()["label_out_of_range"] == 1
