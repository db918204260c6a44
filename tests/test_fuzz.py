"""The fuzzing harness (yt8m_kd/fuzz, issue 11): its TFRecord framing and oracle against known
cases, its outcome classes on answers that break the guarantee, its hang and crash detection, and
a seeded subset of the campaign, one mutant of every kind of both families, through the readers
(the full campaign: benchmarks/fuzz_records.py)."""

from __future__ import annotations

import collections
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf.message import DecodeError

from yt8m_kd.data import yt8m_records
from yt8m_kd.fuzz import campaign, entry_points, oracle, tfrecord, ucf101_mutants, yt8m_mutants
from yt8m_kd.fuzz.worker import id_key

SEED = 11


# ------------------------------------------------------------------------------------ framing
def test_framing_is_byte_identical_to_tensorflows_writer(tmp_path):
    records = [b"", b"a", bytes(range(256)) * 3]
    path = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    with open(path, "rb") as f:
        assert f.read() == tfrecord.frame_all(records)


def test_split_records_resynchronises_after_a_damaged_frame():
    records = [bytes([i]) * (10 + i) for i in range(5)]
    content = bytearray(tfrecord.frame_all(records))
    second = len(tfrecord.frame(records[0]))
    content[second + 14] ^= 0x40  # inside the second record's data: its data CRC fails
    framed = tfrecord.split_records(bytes(content))
    assert framed.records == (records[0], *records[2:])
    assert framed.damaged == ((second, second + len(tfrecord.frame(records[1]))),)

    cut = tfrecord.split_records(tfrecord.frame_all(records)[:-3])
    assert cut.records == tuple(records[:4]) and len(cut.damaged) == 1


# ------------------------------------------------------------------------------------ mutants
def test_mutants_are_reproducible_and_vary_with_the_index():
    first = yt8m_mutants.make_mutant(SEED, "flip_bytes_bad_crc", 3)
    assert first.files == yt8m_mutants.make_mutant(SEED, "flip_bytes_bad_crc", 3).files
    assert first.files != yt8m_mutants.make_mutant(SEED, "flip_bytes_bad_crc", 4).files
    folder = ucf101_mutants.make_mutant(SEED, "folder_missing_frame", 0)
    assert folder.files == ucf101_mutants.make_mutant(SEED, "folder_missing_frame", 0).files


def _verdict(family: str, kind: str, tmp_path) -> oracle.Expected:
    mutant = campaign.make_mutant(family, SEED, kind, 0)
    return campaign.expected_of(mutant, mutant.write(str(tmp_path)))


@pytest.mark.parametrize(
    "family, kind, good, problems",
    [
        ("yt8m", "extra_features", 9, []),
        ("yt8m", "duplicate_ids", 9, []),
        ("yt8m", "long_video", 9, []),
        ("yt8m", "wrong_frame_size", 8, ["bad_feature_size"]),
        ("yt8m", "frame_count_mismatch", 8, ["frame_count_mismatch"]),
        ("yt8m", "huge_label", 8, ["label_out_of_range"]),
        ("yt8m", "empty_id", 8, ["empty_id"]),
        ("yt8m", "example_not_sequence_example", 8, ["no_frames"]),
        ("yt8m", "wrong_feature_type", 8, ["unparseable record"]),
        ("yt8m", "zero_byte_file", 3, []),
        ("ucf101", "undecodable_jpeg", 6, ["does not decode"]),
        ("ucf101", "truncated_jpeg", 6, ["is not a complete JPEG"]),
        ("ucf101", "mixed_frame_sizes", 6, ["frame 1 (24, 32)"]),
        ("ucf101", "missing_label", 6, ["label -1 out of range"]),
        ("ucf101", "folder_missing_frame", 3, ["a gap in the frame numbering"]),
        ("ucf101", "folder_stray_files", 4, []),
    ],
)
def test_oracle_verdicts(family, kind, good, problems, tmp_path):
    expected = _verdict(family, kind, tmp_path)
    assert len(expected.good_ids) == good
    assert len(expected.bad) == len(problems)
    for bad, problem in zip(expected.bad, problems, strict=True):
        assert problem in bad.problem


def test_oracle_finds_the_damage_of_a_truncated_file(tmp_path):
    expected = _verdict("yt8m", "truncate", tmp_path)
    assert [bad.record_level for bad in expected.bad] == [False]
    assert expected.bad[0].path.endswith("shard-0.tfrecord")
    assert expected.file_bad_range == (1, 1)


# ------------------------------------------------------------------------------------ classes
def _one_record_verdict(data: bytes, tmp_path) -> oracle.Expected:
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(tfrecord.frame_all([data]))
    return oracle.yt8m_expected(
        [str(path)],
        feature_names=yt8m_mutants.FEATURE_NAMES,
        feature_sizes=yt8m_mutants.FEATURE_SIZES,
        num_classes=yt8m_mutants.NUM_CLASSES,
    )


def _record(labels=(1, 6)) -> bytes:
    example = tf.train.SequenceExample()
    example.context.feature["id"].bytes_list.value.append(b"vid-0")
    example.context.feature["labels"].int64_list.value.extend(labels)
    for name, size in zip(yt8m_mutants.FEATURE_NAMES, yt8m_mutants.FEATURE_SIZES, strict=True):
        for frame in range(3):
            value = bytes([frame]) * size
            example.feature_lists.feature_list[name].feature.add().bytes_list.value.append(value)
    return example.SerializeToString()


def _read(data: bytes) -> tuple | None:
    """What the readers' parser makes of a record: (id, frames, labels), or None if it refuses."""
    try:
        record, code, _ = yt8m_records.parse_record(
            tf.constant(data),
            max_frames=100,
            feature_names=yt8m_mutants.FEATURE_NAMES,
            feature_sizes=yt8m_mutants.FEATURE_SIZES,
            num_classes=yt8m_mutants.NUM_CLASSES,
        )
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError):
        return None
    if int(code):
        return None
    return tuple(np.asarray(record[k].numpy()).tobytes() for k in ("video_id", "frames", "labels"))


def test_a_context_protobuf_refuses_is_a_bad_record_for_the_oracle_and_the_reader(tmp_path):
    """The campaign's findings yt8m-flip_bytes_valid_crc-00463 and -00484: a flip made a feature
    name that is not UTF-8 (context `labels` -> `labe\x89s`; a feature_lists key). TensorFlow's
    parser reads the first as a record without labels; protobuf refuses both, and so now do the
    oracle and the reader (yt8m_records.strict_context). A malformed labels list, which
    TensorFlow's parser reads as other labels (a packed length of 0 for [1, 6] reads as []), is
    refused too."""
    good = _record()
    assert _read(good) is not None
    not_utf8 = good.replace(b"labels", b"labe\x89s")
    packed = good.replace(b"\x1a\x04\x0a\x02\x01\x06", b"\x1a\x04\x0a\x00\x01\x06")
    assert packed != good
    for data in (not_utf8, packed):
        with pytest.raises(DecodeError):
            tf.train.SequenceExample.FromString(data)
        verdict = _one_record_verdict(data, tmp_path)
        assert not verdict.good_ids and not verdict.tolerated and len(verdict.bad) == 1
        assert _read(data) is None


def test_feature_list_framing_tensorflow_reads_leniently_is_tolerated(tmp_path):
    """The campaign's finding yt8m-flip_bytes_valid_crc-00946: a frame's BytesList length runs
    past its Feature. Protobuf refuses the record; TensorFlow's parser reads it with the frame as
    written. The oracle calls it tolerated (read or refused, both right), and the reader reads it
    with the values the record was written with."""
    good = _record()
    frame = b"\x0a\x0c\x0a\x0a\x0a\x08" + bytes([2]) * 8  # the third audio frame's Feature
    assert good.count(frame) == 1
    data = good.replace(frame, b"\x0a\x0c\x0a\x6c\x0a\x08" + bytes([2]) * 8)
    with pytest.raises(DecodeError):
        tf.train.SequenceExample.FromString(data)
    verdict = _one_record_verdict(data, tmp_path)
    assert not verdict.good_ids and not verdict.bad
    assert [t.video_id for t in verdict.tolerated] == [b"vid-0"]
    assert _read(data) == _read(good)
    worker = campaign.Worker(120, str(tmp_path / "log"))
    try:
        mutants = [campaign.make_mutant("yt8m", 0, "flip_bytes_valid_crc", i) for i in (463, 946)]
        results = campaign.run_mutants(mutants, [worker], str(tmp_path))
    finally:
        worker.close()
    for result in results:
        assert not result.forbidden and result.good_read_skip == result.good_written > 0


def test_every_single_bit_flip_of_a_record_is_judged_alike_by_oracle_and_reader(tmp_path):
    """Every one of the 8 x len(record) single-bit flips of a record (the TFRecord CRC made valid):
    the oracle's verdict and the reader's parser agree, and a tolerated record the reader reads
    (protobuf refuses its feature-list framing) is read with the values it was written with. This
    is what lets the readers trust TensorFlow's parser for the frames (yt8m_records docstring)."""
    good = _record()
    written = _read(good)
    outcomes = collections.Counter()
    for position in range(len(good)):
        for bit in range(8):
            data = bytearray(good)
            data[position] ^= 1 << bit
            verdict, read = _one_record_verdict(bytes(data), tmp_path), _read(bytes(data))
            if verdict.tolerated:
                assert read in (None, written), (position, bit)
                outcomes["tolerated, " + ("read as written" if read else "refused")] += 1
            else:
                assert (read is not None) == bool(verdict.good_ids), (position, bit)
                outcomes["good" if verdict.good_ids else "bad"] += 1
    assert sum(outcomes.values()) == 8 * len(good)
    # Each class occurs: the sweep exercises what it claims to.
    assert all(outcomes[c] for c in ("good", "bad", "tolerated, read as written")), outcomes


def _expected() -> oracle.Expected:
    bad = oracle.BadRecord("/data/shard-0.tfrecord", b"vid-2", "label_out_of_range", True)
    return oracle.Expected(good_ids=[b"vid-0", b"vid-1"], bad=[bad])


def _answer(outcome="ok", message="", ids=(b"vid-0", b"vid-1"), total=1):
    return {
        "outcome": outcome,
        "message": message,
        "ids": [id_key(v) for v in ids],
        "counts": {"total": total},
    }


GOOD_ERROR = "prog: error: bad record in file /data/shard-0.tfrecord, record id vid-2: label 9"


@pytest.mark.parametrize(
    "mode, answer, classes",
    [
        ("strict", _answer("error", GOOD_ERROR, ids=[b"vid-0"]), ["strict_error"]),
        ("strict", _answer(), ["bad_record_accepted"]),
        ("strict", _answer("error", "prog: error: corrupted record at 12"), ["error_without_file"]),
        (
            "strict",
            _answer("error", "prog: error: bad record in file /data/shard-0.tfrecord: label 9"),
            ["error_without_record_id"],
        ),
        (
            "strict",
            _answer("error", GOOD_ERROR + " [[{{node Assert}}]]"),
            ["error_with_node_names"],
        ),
        ("strict", _answer("error", GOOD_ERROR + "x" * 2000), ["error_too_long"]),
        ("strict", _answer("error", GOOD_ERROR, ids=[b"vid-2"]), ["bad_record_accepted"]),
        ("strict", _answer("traceback", "TypeError: x"), ["traceback"]),
        ("skip", _answer(), ["skip_exact"]),
        ("skip", _answer(ids=[b"vid-0"]), ["good_record_dropped"]),
        ("skip", _answer(ids=[b"vid-0", b"vid-1", b"vid-2"]), ["bad_record_accepted"]),
        ("skip", _answer(total=0), ["bad_record_not_counted"]),
        ("skip", _answer(total=3), ["count_too_high"]),
        ("skip", _answer("error", GOOD_ERROR), ["error_in_skip_mode"]),
        ("skip", _answer("hang"), ["hang"]),
    ],
)
def test_classify_names_every_broken_guarantee(mode, answer, classes):
    assert campaign.classify(_expected(), mode, answer) == classes


def test_classify_a_clean_mutant_in_strict_mode():
    clean = oracle.Expected(good_ids=[b"a", b"a", b"b"])
    assert campaign.classify(clean, "strict", _answer(ids=[b"a", b"b", b"a"])) == ["strict_clean"]
    assert campaign.classify(clean, "strict", _answer(ids=[b"a", b"b"])) == ["good_record_dropped"]
    assert campaign.classify(clean, "strict", _answer("error", "prog: error: x", ids=[b"a"])) == [
        "error_on_good_input"
    ]


def test_worker_hang_and_crash_are_caught(tmp_path):
    hang = campaign.Worker(1.0, str(tmp_path / "log"), [sys.executable, "-c", "input(); input()"])
    assert hang.ask({})["outcome"] == "hang"
    crash = campaign.Worker(30.0, str(tmp_path / "log"), [sys.executable, "-c", "input()"])
    answer = crash.ask({})
    assert answer["outcome"] == "crash" and "exit status 0" in answer["message"]


def test_launch_classes():
    expected = _expected()

    def result(rc, stderr):
        return type("Result", (), {"returncode": rc, "stderr": stderr})()

    classify = entry_points.classify_launch
    line = "infer.py: error: bad record in file /data/shard-0.tfrecord: x"
    assert classify("infer.py", result(1, "log\n" + line + "\n"), expected, False) == (
        "one_line_error"
    )
    assert classify("infer.py", result(0, ""), expected, False) == "bad_record_accepted"
    assert classify("train.py", result(0, ""), expected, False) == "ok"
    assert classify("infer.py", result(1, "Traceback (most recent call last):\n"), expected, False)
    assert classify("infer.py", result(1, "infer.py: error: x\n"), expected, False) == (
        "error_without_file"
    )
    assert classify("infer.py", None, expected, False) == "hang"
    noisy = "train.py: error: /data/shard-0.tfrecord: x [[RemoteCall]] [[IteratorGetNext]]"
    assert classify("train.py", result(1, noisy), expected, False) == "error_with_node_names"

    # Records the readers accept but a launcher writing ids must refuse: a repeated id
    # (cache_teacher.py, infer.py), a non-UTF-8 id (infer.py's CSV).
    files = ["/data/shard-1.tfrecord"]
    repeated = oracle.Expected(good_ids=[b"a", b"b", b"a"])
    named = "cache_teacher.py: error: video id 'a' in /data/shard-1.tfrecord and ..."
    assert classify("cache_teacher.py", result(1, named), repeated, False, files) == (
        "one_line_error"
    )
    assert classify("cache_teacher.py", result(0, ""), repeated, False, files) == (
        "bad_record_accepted"
    )
    assert classify(
        "cache_teacher.py", result(1, "cache_teacher.py: error: x"), repeated, False, files
    ) == ("error_without_file")
    latin = oracle.Expected(good_ids=[b"v\xff"])
    assert entry_points.launcher_problems("infer.py", latin) == ["non-UTF-8 id b'v\\xff'"]
    assert entry_points.launcher_problems("cache_teacher.py", latin) == []
    assert entry_points.launcher_problems("train.py", repeated) == []


# ------------------------------------------------------------------------------------ the subset
def _forbidden_report(results) -> str:
    found = collections.defaultdict(list)
    for r in results:
        for mode, classes in r.classes.items():
            for c in campaign.c_list(classes):
                found[f"{r.family} {r.kind} {mode}"].append(f"{c}: {r.messages[mode][:160]}")
    return "\n".join(f"{k}: {v}" for k, v in sorted(found.items()))


def test_every_mutant_kind_of_both_families_has_an_allowed_outcome(tmp_path):
    """The guarantee of issue 11 on one seeded mutant of every kind (50 mutants), strict and skip
    mode: one-line errors naming file and record, or every good record read and every bad one
    skipped and counted; never a traceback, hang, crash, accepted bad or dropped good record."""
    counts = {family: len(campaign.kinds(family)) for family in campaign.FAMILIES}
    results = campaign.run_campaign(counts, seed=SEED, timeout_s=120, root=str(tmp_path))
    assert len(results) == sum(counts.values())
    assert {r.kind for r in results} == {k for f in counts for k in campaign.kinds(f)}
    assert not any(r.forbidden for r in results), _forbidden_report(results)
    summary = campaign.summarize(results, 0.0)
    for family in campaign.FAMILIES:
        good = summary["families"][family]["skip_mode_good_records"]
        assert good["read"] == good["written"] > 0, family


def test_ucf101_skip_mode_reads_the_good_records_after_a_damaged_region(tmp_path):
    """A byte flip that breaks a record's CRC in a UCF101 shard: the records after it are read
    (the reader resynchronises, as the YouTube-8M reader does)."""
    (result,) = campaign.run_campaign(
        {"ucf101": len(campaign.kinds("ucf101"))},
        seed=SEED,
        timeout_s=120,
        root=str(tmp_path),
        kinds_only=["flip_bytes_bad_crc"],
    )
    assert result.good_read_skip == result.good_written > 0
    assert not result.forbidden


@pytest.mark.slow
@pytest.mark.parametrize("family, kind", [("yt8m", "truncate"), ("ucf101", "truncate")])
def test_a_bad_mutant_through_train_py(family, kind, tmp_path):
    """train.py (one step) over a truncated shard (damage that the first read meets), in strict
    and skip mode: exit 0 or one `train.py: error:` line naming the file, without TensorFlow's
    node names; never a traceback."""
    mutant = campaign.make_mutant(family, SEED, kind, 0)
    base = mutant.write(str(tmp_path))
    expected = campaign.expected_of(mutant, base)
    for skip in (False, True):
        command = entry_points.train_command(mutant, base, str(tmp_path / f"run{skip}"), skip)
        result = entry_points.launch("train.py", command, timeout_s=600)
        outcome = entry_points.classify_launch("train.py", result, expected, skip)
        assert outcome in entry_points.ALLOWED, (skip, result and result.stderr[-2000:])
