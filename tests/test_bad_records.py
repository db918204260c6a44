"""Bad input: strict mode names the file and the record, skip mode keeps the good ones and counts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import yt8m, yt8m_records
from yt8m_kd.data.synthetic import make_example

NAMES = ("rgb", "audio")
SIZES = (4, 2)
NUM_CLASSES = 5


def _frames(num_frames: int, rgb_size: int = 4, audio_size: int = 2, audio_frames=None):
    rng = np.random.default_rng(num_frames)
    audio_frames = num_frames if audio_frames is None else audio_frames
    return {
        "rgb": rng.integers(0, 256, (num_frames, rgb_size), dtype=np.uint8),
        "audio": rng.integers(0, 256, (audio_frames, audio_size), dtype=np.uint8),
    }


def _good(video_id: str) -> bytes:
    return make_example(video_id, [1], _frames(3))


# kind -> (record id, serialized bad record, words the message must contain)
BAD_RECORDS = {
    "missing_feature": (
        "no-audio",
        make_example("no-audio", [1], {"rgb": _frames(3)["rgb"]}),
        "audio",
    ),
    "bad_feature_size": (
        "short-rgb",
        make_example("short-rgb", [1], _frames(3, rgb_size=3)),
        "has 3 bytes, expected 4",
    ),
    "no_frames": (
        "empty",
        make_example("empty", [1], _frames(0)),
        "no frames",
    ),
    "label_out_of_range": (
        "label-five",
        make_example("label-five", [2, 5], _frames(3)),
        "label 5 out of range [0, 5)",
    ),
    "frame_count_mismatch": (
        "uneven",
        make_example("uneven", [1], _frames(4, audio_frames=3)),
        "rgb=4, audio=3",
    ),
}


def _write(path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _dataset(pattern, **kwargs):
    return yt8m.frame_dataset(
        pattern,
        batch_size=2,
        max_frames=4,
        num_classes=NUM_CLASSES,
        feature_names=NAMES,
        feature_sizes=SIZES,
        **kwargs,
    )


def _ids(dataset) -> list[str]:
    return [v.decode() for batch in dataset for v in batch["video_id"].numpy()]


def _truncated(tmp_path) -> str:
    path = _write(tmp_path / "truncated.tfrecord", [_good(f"t{i}") for i in range(3)])
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])  # cut inside the last record
    return path


def _corrupt(tmp_path) -> str:
    path = _write(tmp_path / "corrupt.tfrecord", [_good(f"c{i}") for i in range(3)])
    data = bytearray(open(path, "rb").read())
    record_size = len(data) // 3
    for offset in range(record_size + 20, record_size + 24):  # inside the second record's data
        data[offset] ^= 0xFF
    open(path, "wb").write(bytes(data))
    return path


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_strict_mode_names_file_record_and_problem(tmp_path, kind):
    record_id, record, words = BAD_RECORDS[kind]
    path = _write(tmp_path / f"shard-{kind}.tfrecord", [_good("ok"), record, _good("ok2")])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path))
    message = error.value.message
    assert path in message
    assert f"record id {record_id}:" in message
    assert words in message


@pytest.mark.parametrize("make", [_truncated, _corrupt])
def test_strict_mode_names_a_damaged_file(tmp_path, make):
    path = make(tmp_path)
    _write(tmp_path / "fine.tfrecord", [_good("fine")])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(str(tmp_path / "*.tfrecord")))
    assert f"bad YouTube-8M input file {path}" in error.value.message
    assert (
        "could not be read or parsed (a truncated or corrupt TFRecord file)" in error.value.message
    )


def test_skip_mode_keeps_good_records_and_counts_bad_ones(tmp_path):
    records = [_good("g0")]
    for i, (_, record, _) in enumerate(BAD_RECORDS.values(), start=1):
        records += [record, _good(f"g{i}")]
    records.append(make_example("negative", [-1], _frames(2)))
    _write(tmp_path / "a-mixed.tfrecord", records)
    _truncated(tmp_path)
    _corrupt(tmp_path)

    counter = yt8m.BadRecordCounter()
    dataset = _dataset(
        str(tmp_path / "*.tfrecord"), skip_bad_records=True, bad_record_counter=counter
    )
    ids = _ids(dataset)
    # The good records of the mixed file, and every intact one of the two damaged files: c2
    # comes after the damaged c1.
    assert sorted(ids) == sorted(["g0", "g1", "g2", "g3", "g4", "g5", "t0", "t1", "c0", "c2"])
    assert counter.counts() == {
        "corrupt_file": 2,
        "no_frames": 1,
        "missing_feature": 1,
        "frame_count_mismatch": 1,
        "bad_feature_size": 1,
        "label_out_of_range": 2,
        "empty_id": 0,
        "unparsable_record": 0,
        "total": 8,
        "lost_bytes": os.path.getsize(tmp_path / "corrupt.tfrecord") // 3
        + _good("t2").__len__()
        + 6,
        "lost_records": 2,
        "unlabelled": 0,
    }
    # A second pass counts again; reset() starts over.
    _ids(dataset)
    assert counter.counts()["total"] == 16
    counter.reset()
    assert counter.counts()["total"] == 0


def test_a_record_that_is_not_a_sequence_example(tmp_path):
    path = _write(tmp_path / "garbage.tfrecord", [_good("a"), b"not a SequenceExample", _good("b")])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path))
    start = len(_good("a")) + 16
    assert (
        f"bad YouTube-8M record in file {path} (bytes {start}-{start + 37}, after record id a): "
        "1 intact TFRecord(s) whose bytes are not a SequenceExample" in error.value.message
    )  # 21 + 16 bytes
    counter = yt8m.BadRecordCounter()
    assert _ids(_dataset(path, skip_bad_records=True, bad_record_counter=counter)) == ["a", "b"]
    assert counter.counts()["unparsable_record"] == 1 and counter.counts()["total"] == 1


def test_skipped_records_keep_batches_well_formed(tmp_path):
    _, bad, _ = BAD_RECORDS["label_out_of_range"]
    path = _write(tmp_path / "a.tfrecord", [bad, _good("a"), bad, _good("b"), _good("c")])
    batches = list(_dataset(path, skip_bad_records=True))  # no counter: still logged and skipped
    assert [b["video_id"].numpy().tolist() for b in batches] == [[b"a", b"b"], [b"c"]]
    good = _frames(3)
    expected = np.concatenate([good["rgb"], good["audio"]], 1)
    np.testing.assert_array_equal(batches[0]["frames"].numpy()[0, :3], expected)
    np.testing.assert_array_equal(batches[0]["labels"].numpy()[0], [0, 1, 0, 0, 0])


def test_find_corrupt_files(tmp_path):
    truncated, corrupt = _truncated(tmp_path), _corrupt(tmp_path)
    _write(tmp_path / "fine.tfrecord", [_good("fine")])
    _write(tmp_path / "garbage.tfrecord", [b"not a SequenceExample"])
    found = dict(yt8m.find_corrupt_files(str(tmp_path / "*.tfrecord")))
    assert sorted(found) == sorted([truncated, corrupt, str(tmp_path / "garbage.tfrecord")])
    assert found[truncated].startswith("truncated record at")
    assert found[corrupt].startswith("corrupted record at")
    assert "Invalid protocol message" in found[str(tmp_path / "garbage.tfrecord")]


def test_with_file_context_names_the_file(tmp_path):
    corrupt = _corrupt(tmp_path)
    bare = tf.errors.DataLossError(None, None, "corrupted record at 128")
    error = yt8m.with_file_context(bare, str(tmp_path / "*.tfrecord"))
    assert isinstance(error, tf.errors.DataLossError)
    assert "corrupted record at 128" in error.message and corrupt in error.message
    assert os.path.basename(corrupt) in str(error)


def _id_in(*ids):
    table = tf.constant(list(ids))
    return lambda video_id: tf.reduce_any(tf.equal(table, video_id))


def test_id_filter_keeps_the_wanted_records_and_skips_checks_of_the_others(tmp_path):
    _, bad, _ = BAD_RECORDS["bad_feature_size"]
    path = _write(tmp_path / "shard.tfrecord", [_good("a"), bad, _good("b"), _good("c")])
    # The bad record is not wanted: its frames are never checked, so strict mode does not fail.
    assert _ids(_dataset(path, id_filter=_id_in("a", "c"))) == ["a", "c"]
    # Wanted, it is checked as always.
    with pytest.raises(tf.errors.InvalidArgumentError, match="record id short-rgb"):
        _ids(_dataset(path, id_filter=_id_in("a", "short-rgb")))


def test_id_filter_reads_only_the_id_of_a_rejected_record(tmp_path):
    """A rejected record is parsed only as far as its id: bytes that are not a SequenceExample
    are still reported (the id cannot be read), but a record whose context is whole and whose
    feature lists are malformed is passed over unseen (its frames are never parsed)."""
    # A second feature_lists message (field 2) whose "rgb" list holds a Feature with a length
    # running past its list: the context parses, the frames of "rgb" do not.
    broken_lists = _good("c") + b"\x12\x0b\x0a\x09\x0a\x03rgb\x12\x02\x0a\x7f"
    assert yt8m_records.record_id(tf.constant(broken_lists)).numpy() == b"c"
    path = _write(
        tmp_path / "shard.tfrecord",
        [_good("a"), broken_lists, _good("b"), b"not a SequenceExample", _good("d")],
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="whose bytes are not a SequenceExample"
    ):
        _ids(_dataset(path))  # without a filter, the malformed lists are an unparsable record
    with pytest.raises(tf.errors.InvalidArgumentError, match="after record id b"):
        _ids(_dataset(path, id_filter=_id_in("a", "b", "d")))  # the garbage one, not the other
    counter = yt8m.BadRecordCounter()
    kept = _dataset(
        path, id_filter=_id_in("a", "b", "d"), skip_bad_records=True, bad_record_counter=counter
    )
    assert _ids(kept) == ["a", "b", "d"] and counter.counts()["unparsable_record"] == 1


@pytest.mark.parametrize("make", [_truncated, _corrupt])
def test_id_filter_still_reports_a_damaged_file(tmp_path, make):
    # The bytes of rejected records count too, so lost bytes are found with any filter.
    path = make(tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path, id_filter=_id_in("none of them")))
    assert f"bad YouTube-8M input file {path}" in error.value.message


def test_cache_file_replays_the_first_pass(tmp_path):
    path = _write(tmp_path / "shard.tfrecord", [_good(f"r{i}") for i in range(4)])
    cache = str(tmp_path / "cache" / "subset")
    os.makedirs(os.path.dirname(cache))
    dataset = _dataset(path, repeat=True, id_filter=_id_in("r1", "r3"), cache_file=cache)
    iterator = iter(dataset)
    first = [v.decode() for v in next(iterator)["video_id"].numpy()]
    assert first == ["r1", "r3"]
    second = [v.decode() for v in next(iterator)["video_id"].numpy()]  # completes the cache
    assert second == ["r1", "r3"]
    os.remove(path)  # later passes no longer read the input file
    assert [v.decode() for v in next(iterator)["video_id"].numpy()] == ["r1", "r3"]
    assert any(name.startswith("subset") for name in os.listdir(tmp_path / "cache"))


def test_error_message_drops_the_ops_a_distributed_iterator_adds():
    """What train.py catches from a strict reader under a strategy: the Assert's message followed
    by the ops the error passed through; the line keeps the message only (brackets inside it
    included)."""
    raw = (
        "Graph execution error:\n\nassertion failed: [bad YouTube-8M input file /d/a.tfrecord: "
        "bytes 1-9 of its 9 could not be read [x] (skip_bad_records=True skips and counts bad "
        "records)]\n\t [[{{function_node __inference_f_12}}{{node Assert/Assert}}]]\n"
        "\t [[MultiDeviceIteratorGetNextFromShard]]\n\t [[RemoteCall]]\n\t [[IteratorGetNext]] "
        "[Op:__inference_train_step_99]"
    )
    line = yt8m.error_message(tf.errors.InvalidArgumentError(None, None, raw))
    assert line == (
        "bad YouTube-8M input file /d/a.tfrecord: bytes 1-9 of its 9 could not be read [x] "
        "(skip_bad_records=True skips and counts bad records)"
    )
