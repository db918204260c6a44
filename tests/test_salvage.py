"""Skip mode reads on after a damaged region of a file; CRC32C as TensorFlow writes it; empty ids,
ids in error lines and records without labels."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import tfrecords, yt8m, yt8m_records
from yt8m_kd.data.synthetic import make_example

NAMES = ("rgb", "audio")
SIZES = (4, 2)
NUM_CLASSES = 5


def _good(video_id: str | bytes, labels=(1,)) -> bytes:
    rng = np.random.default_rng(len(video_id))
    frames = {
        name: rng.integers(0, 256, (3, size), dtype=np.uint8)
        for name, size in zip(NAMES, SIZES, strict=True)
    }
    return make_example(video_id, list(labels), frames)


def _write(path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _offsets(records) -> list[int]:
    """The file offset of each record, and the file size last."""
    offsets = [0]
    for record in records:
        offsets.append(offsets[-1] + len(record) + 16)
    return offsets


def _dataset(pattern, **kwargs):
    return yt8m.frame_dataset(
        pattern,
        batch_size=4,
        max_frames=4,
        num_classes=NUM_CLASSES,
        feature_names=NAMES,
        feature_sizes=SIZES,
        **kwargs,
    )


def _ids(dataset) -> list[str]:
    return [v.decode() for batch in dataset for v in batch["video_id"].numpy()]


# ------------------------------------------------------------------------------------ CRC32C
def test_crc32c_known_vector_and_tensorflows_headers(tmp_path):
    import google_crc32c

    assert google_crc32c.value(b"123456789") == 0xE3069283
    records = [b"", b"x", b"hello world" * 100]
    data = open(_write(tmp_path / "a.tfrecord", records), "rb").read()
    offset = 0
    for record in records:
        length, length_crc = struct.unpack_from("<QI", data, offset)
        assert length == len(record)
        assert tfrecords.masked_crc32c(data[offset : offset + 8]) == length_crc
        (data_crc,) = struct.unpack_from("<I", data, offset + 12 + length)
        assert tfrecords.masked_crc32c(record) == data_crc
        offset += 16 + length
    assert offset == len(data)


def test_salvage_resynchronises_after_a_bad_header(tmp_path):
    records = [b"r%d" % i * (5 + i) for i in range(6)]
    offsets = _offsets(records)
    data = bytearray(open(_write(tmp_path / "a.tfrecord", records), "rb").read())
    data[offsets[1] + 2] ^= 0x40  # record 1's length
    data[offsets[3] + 14] ^= 0x01  # record 3's data
    found = tfrecords.salvage_records(bytes(data))
    assert [r for _, r in found.records] == [records[0], records[2], records[4], records[5]]
    assert [o for o, _ in found.records] == [offsets[0], offsets[2], offsets[4], offsets[5]]
    assert found.lost == [
        tfrecords.LostRegion(offsets[1], offsets[2], None),  # where record 2 starts again
        tfrecords.LostRegion(offsets[3], offsets[4], 1),  # a valid header: one record
    ]
    # From a later boundary, offsets stay file offsets.
    tail = tfrecords.salvage_records(bytes(data[offsets[4] :]), base=offsets[4])
    assert tail.records == found.records[2:] and tail.lost == []


# ------------------------------------------------------------------------------------ the reader
def test_skip_mode_reads_every_intact_record_after_damage(tmp_path, capfd):
    records = [_good(f"v{i}") for i in range(8)]
    offsets = _offsets(records)
    data = bytearray(open(_write(tmp_path / "d.tfrecord", records), "rb").read())
    data[offsets[1] + 9] ^= 0xFF  # record 1's length CRC: resynchronise on record 2
    data[offsets[5] + 30] ^= 0x10  # record 5's data: one record lost
    path = tmp_path / "d.tfrecord"
    path.write_bytes(bytes(data[: offsets[8] - 7]))  # and record 7 cut short
    counter = yt8m.BadRecordCounter()
    ids = _ids(_dataset(str(path), skip_bad_records=True, bad_record_counter=counter))
    assert ids == ["v0", "v2", "v3", "v4", "v6"]
    counts = counter.counts()
    assert counts["corrupt_file"] == 3 and counts["total"] == 3
    assert counts["lost_records"] == 2  # record 5, record 7 (its header is intact); 1: unknown
    assert counts["lost_bytes"] == (offsets[2] - offsets[1]) + (offsets[6] - offsets[5]) + (
        offsets[8] - 7 - offsets[7]
    )
    err = capfd.readouterr().err
    for start, end in [(offsets[1], offsets[2]), (offsets[5], offsets[6])]:
        assert f"bad YouTube-8M input file {path}: bytes {start}-{end} of its" in err
    assert f"bytes {offsets[7]}-{offsets[8] - 7} of its {offsets[8] - 7}" in err
    # Strict mode: one error naming the file, after the records before the damage.
    dataset = yt8m.frame_dataset(
        str(path), batch_size=1, max_frames=4, num_classes=NUM_CLASSES, feature_sizes=SIZES
    )
    iterator = iter(dataset)
    assert next(iterator)["video_id"].numpy().tolist() == [b"v0"]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        next(iterator)
    assert f"bad YouTube-8M input file {path}: bytes {offsets[1]}-" in error.value.message


def test_intact_files_never_reach_the_salvage_code(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("salvage ran on an intact file")

    monkeypatch.setattr(tfrecords, "salvage_records", fail)
    path = _write(tmp_path / "a.tfrecord", [_good(f"v{i}") for i in range(5)])
    assert _ids(_dataset(path, skip_bad_records=True)) == [f"v{i}" for i in range(5)]


def test_unparsable_records_are_counted_and_the_next_ones_read(tmp_path):
    records = [b"\xff\xff", _good("a"), b"not a proto", b"\xff" * 9, _good("b"), b"tail junk"]
    path = _write(tmp_path / "u.tfrecord", records)
    counter = yt8m.BadRecordCounter()
    assert _ids(_dataset(path, skip_bad_records=True, bad_record_counter=counter)) == ["a", "b"]
    assert counter.counts()["unparsable_record"] == 4
    assert counter.counts()["total"] == 4
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path))
    offsets = _offsets(records)
    assert (
        f"bad YouTube-8M record in file {path} (bytes 0-{offsets[1]}, the first records of the "
        "file): 1 intact TFRecord(s) whose bytes are not a SequenceExample"
    ) in error.value.message


# ------------------------------------------------------------------------------------ ids
def test_empty_ids_are_bad_records(tmp_path):
    path = _write(tmp_path / "e.tfrecord", [_good("a"), _good(""), _good("b")])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path))
    offset = _offsets([_good("a")])[1]
    assert (
        f"bad YouTube-8M record in file {path} (record 1 at byte {offset}), record id (none): "
        "an empty video id" in error.value.message
    )
    counter = yt8m.BadRecordCounter()
    assert _ids(_dataset(path, skip_bad_records=True, bad_record_counter=counter)) == ["a", "b"]
    assert counter.counts()["empty_id"] == 1
    # Existing kinds keep their codes; new ones come last.
    assert yt8m_records.PROBLEM_KINDS[:6] == (
        "corrupt_file",
        "no_frames",
        "missing_feature",
        "frame_count_mismatch",
        "bad_feature_size",
        "label_out_of_range",
    )


DISPLAYED = {
    b"plain-id_1": "plain-id_1",
    b"line\nbreak": "line\\x0abreak",
    b"caf\xc3\xa9": "café",
    b"bad\xff\xfeutf8": "bad\\xff\\xfeutf8",
    b"x" * 101: "x" * 40 + "... (101 bytes)",
    "é".encode() * 60: "é" * 40 + "... (120 bytes)",
    b"\xff" * 1000: "\\xff" * 40 + "... (1000 bytes)",
}


@pytest.mark.parametrize("raw", list(DISPLAYED), ids=range(len(DISPLAYED)))
def test_display_id_in_python_and_in_the_graph(raw):
    assert yt8m_records.display_id(raw) == DISPLAYED[raw]
    shown = yt8m_records.display_id_tensor(tf.constant(raw)).numpy().decode()
    assert shown == DISPLAYED[raw]


def test_a_1mb_non_utf8_id_gives_one_short_error_line(tmp_path):
    huge = b"\xfe\n" + b"v" * (1 << 20)
    path = _write(tmp_path / "h.tfrecord", [_good(huge, labels=[7])])
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _ids(_dataset(path))
    line = yt8m.error_message(error.value)
    assert len(line) < 400 and "\n" not in line
    assert "record id \\xfe\\x0avvv" in line and f"... ({len(huge)} bytes): label 7 out" in line
    assert "{{" not in line and "[Op:" not in line and "node " not in line


# ------------------------------------------------------------------------------------ labels
def test_records_without_labels_are_read_counted_and_named(tmp_path, capfd):
    path = _write(
        tmp_path / "l.tfrecord", [_good("a"), _good("nolabel", labels=()), _good("b", [])]
    )
    counter = yt8m.BadRecordCounter()
    batches = list(_dataset(path, bad_record_counter=counter))
    assert _ids(batches) == ["a", "nolabel", "b"]
    np.testing.assert_array_equal(batches[0]["labels"].numpy()[1], np.zeros(NUM_CLASSES))
    assert counter.counts()["unlabelled"] == 2 and counter.counts()["total"] == 0
    assert counter.unlabelled_example() == f"record id nolabel in file {path}"
    assert counter.unlabelled_warning().startswith("records without labels: 2 read (e.g. ")
    assert capfd.readouterr().err.count("a record without labels (record id nolabel") == 1
