"""UCF101 bad input, every problem kind in strict mode (one line naming the file or folder and the
video) and in skip mode (the bad video dropped, logged and counted by kind, every good one read).

Data are made here, small: 4 classes, 24x32 JPEGs of a flat grey level, clips of T = 4 frames
cropped to 16 x 16.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.configs import DataConfig, ModelConfig
from yt8m_kd.data import ucf101, ucf101_prepare, videos, yt8m

CLASSES = ("Archery", "Bowling", "Diving", "Fencing")
T, S = 4, 16


@functools.cache
def _jpeg(level: int, height: int = 24, width: int = 32) -> bytes:
    return tf.io.encode_jpeg(np.full((height, width, 3), level, np.uint8), quality=95).numpy()


def _undecodable_jpeg() -> bytes:
    """SOI, bytes that are no JPEG segment, EOI: the markers pass, the decoder fails."""
    good = _jpeg(100)
    return good[:2] + np.random.default_rng(0).bytes(len(good) - 4) + good[-2:]


def _record(video_id: str, label: int = 0, frames=None) -> bytes:
    frames = [_jpeg(40)] * 6 if frames is None else frames
    return ucf101_prepare.make_record(video_id, label, CLASSES[label % 4], frames)


def _without_label(serialized: bytes) -> bytes:
    example = tf.train.SequenceExample.FromString(serialized)
    del example.context.feature["label"]
    return example.SerializeToString()


def _good(i: int) -> bytes:
    return _record(f"v_Good_g{i:02d}_c01", i % 4, [_jpeg(10 * i + 5)] * (3 + i % 5))


# kind -> (video id, its record, the problem its error line names)
BAD_RECORDS = {
    "no_frames": ("v_Empty_g01_c01", _record("v_Empty_g01_c01", frames=[]), "no frames"),
    "empty_id": ("", _record(""), "empty video id"),
    "label_out_of_range": (
        "v_Label_g01_c01",
        _record("v_Label_g01_c01", 7),
        "label 7 outside [0, 4)",
    ),
    "bad_jpeg": (
        "v_Random_g01_c01",
        _record("v_Random_g01_c01", frames=[_jpeg(1), b"\x00" * 300, _jpeg(1)]),
        "frame 2 is not a complete JPEG (no SOI/EOI marker)",
    ),
    "frame_size_mismatch": (
        "v_Sizes_g01_c01",
        _record("v_Sizes_g01_c01", frames=[_jpeg(9), _jpeg(9, 40, 48), _jpeg(9)]),
        "frames of different sizes (frame 1 is 32x24, frame 2 is 48x40)",
    ),
}
# More records of the same kinds, with other causes.
MORE_BAD_RECORDS = {
    "label_out_of_range": (
        "v_NoLabel_g01_c01",
        _without_label(_record("v_NoLabel_g01_c01")),
        "label -1 outside [0, 4)",
    ),
    "bad_jpeg": (
        "v_Undecodable_g01_c01",
        _record("v_Undecodable_g01_c01", frames=[_jpeg(3), _jpeg(3), _undecodable_jpeg()]),
        "frame 3 does not decode as a JPEG",
    ),
}
CUT_JPEG = (
    "v_Cut_g01_c01",
    _record("v_Cut_g01_c01", frames=[_jpeg(2), _jpeg(2)[:-40]]),
    "frame 2 is not a complete JPEG",
)


def _write(path: Path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _class_index(tmp_path: Path) -> str:
    path = tmp_path / "classInd.txt"
    path.write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(CLASSES)))
    return str(path)


def _dataset(source, tmp_path: Path, **kwargs) -> tf.data.Dataset:
    options = dict(
        batch_size=3,
        num_frames=T,
        image_size=S,
        training=False,
        class_index_file=_class_index(tmp_path),
    )
    return ucf101.frame_dataset(source, **{**options, **kwargs})


def _ids(dataset) -> list[bytes]:
    return [video_id for batch in dataset for video_id in batch["video_id"].numpy()]


def _strict_error(dataset) -> tuple[list[bytes], str]:
    """(ids read before the error, the error's message on one line)."""
    ids = []
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for batch in dataset:
            ids += list(batch["video_id"].numpy())
    return ids, yt8m.error_message(error.value)


def _counter() -> yt8m.BadRecordCounter:
    return yt8m.BadRecordCounter(kinds=ucf101.UCF101_PROBLEM_KINDS)


def _expected_counts(lost_bytes: int = 0, lost_records: int = 0, **counts: int) -> dict[str, int]:
    expected = dict.fromkeys(ucf101.UCF101_PROBLEM_KINDS, 0)
    expected.update(counts)
    expected["total"] = sum(counts.values())
    # The counter's counts beside the kinds: what damaged regions lost (salvage in skip mode), and
    # unlabelled records, which the UCF101 reader does not count (a missing label is an error).
    expected.update(lost_bytes=lost_bytes, lost_records=lost_records, unlabelled=0)
    return expected


# ------------------------------------------------------------------------------------ records
ALL_BAD = [
    *[(kind, *value) for kind, value in BAD_RECORDS.items()],
    *[(kind, *value) for kind, value in MORE_BAD_RECORDS.items()],
    ("bad_jpeg", *CUT_JPEG),
]


@pytest.mark.parametrize(
    "kind, video_id, record, problem", ALL_BAD, ids=[f"{c[0]}-{c[1]}" for c in ALL_BAD]
)
def test_strict_names_file_record_and_video(tmp_path, kind, video_id, record, problem):
    path = _write(tmp_path / "bad.tfrecord", [_good(0), record, _good(1)])
    _, message = _strict_error(_dataset(path, tmp_path))
    shown = video_id or "(empty id)"
    assert f"bad UCF101 input: file {path}, record 1, video {shown}: {problem}" in message
    assert "skip_bad_records=True skips" in message and "\n" not in message
    assert "node" not in message and "function_node" not in message  # no TensorFlow graph noise


def test_skip_keeps_every_good_record_and_counts_each_kind(tmp_path, capfd):
    records, good_ids = [], []
    for i, (_, _, bad, _) in enumerate(ALL_BAD):
        records += [_good(i), bad]
        good_ids.append(f"v_Good_g{i:02d}_c01".encode())
    path = _write(tmp_path / "mixed.tfrecord", records)
    counter = _counter()
    ids = _ids(_dataset(path, tmp_path, skip_bad_records=True, bad_record_counter=counter))
    assert sorted(ids) == sorted(good_ids)
    assert counter.counts() == _expected_counts(
        no_frames=1, empty_id=1, label_out_of_range=2, bad_jpeg=3, frame_size_mismatch=1
    )
    logged = capfd.readouterr().err
    for _, video_id, _, problem in ALL_BAD:
        shown = video_id or "(empty id)"
        assert f"video {shown}: {problem}" in logged
    assert logged.count(f"skipping bad UCF101 input: file {path}, record ") == len(ALL_BAD)


def test_skip_in_training_with_shuffle_repeat_and_a_seed(tmp_path):
    """Both kinds of checks (of whole records, before the shuffle, and of decoded frames, after
    it) in a training pipeline: one pass holds every good clip, the bad ones never."""
    good = [_good(i) for i in range(6)]
    path = _write(tmp_path / "train.tfrecord", good[:3] + [BAD_RECORDS["no_frames"][1]] + good[3:])
    undecodable = _write(tmp_path / "undecodable.tfrecord", [MORE_BAD_RECORDS["bad_jpeg"][1]])
    counter = _counter()
    dataset = _dataset(
        [path, undecodable],
        tmp_path,
        training=True,
        shuffle=True,
        seed=4,
        skip_bad_records=True,
        bad_record_counter=counter,
        batch_size=1,
    )
    ids = [batch["video_id"].numpy()[0] for batch in dataset]
    assert sorted(ids) == sorted(f"v_Good_g{i:02d}_c01".encode() for i in range(6))
    assert counter.counts() == _expected_counts(no_frames=1, bad_jpeg=1)


def _damaged_files(tmp_path: Path) -> dict[str, tuple[str, int, int]]:
    """name -> (path, good records before the damage, good records in all)."""
    good = [_good(i) for i in range(4)]
    truncated = _write(tmp_path / "truncated.tfrecord", good)
    with open(truncated, "rb+") as f:
        f.truncate(os.path.getsize(truncated) - 100)  # into the last record
    flipped = _write(tmp_path / "flipped.tfrecord", good)
    data = bytearray(Path(flipped).read_bytes())
    last_start = len(data) - (len(good[-1]) + 16)
    data[last_start + 12 + 40] ^= 0xFF  # a byte of the last record's data: its CRC fails
    Path(flipped).write_bytes(bytes(data))
    # A TFRecord with a valid CRC whose data are not a SequenceExample, between good ones.
    not_a_record = _write(tmp_path / "not_a_record.tfrecord", [good[0], b"no proto", good[1]])
    return {
        "truncated": (truncated, 3, 3),
        "flipped": (flipped, 3, 3),
        "not_a_record": (not_a_record, 1, 2),
    }


@pytest.mark.parametrize("name", ["truncated", "flipped", "not_a_record"])
def test_corrupt_file_strict_names_the_file_after_its_good_records(tmp_path, name):
    path, good_before, _ = _damaged_files(tmp_path)[name]
    ids, message = _strict_error(_dataset(path, tmp_path, batch_size=1))
    assert len(ids) == good_before
    size = os.path.getsize(path)
    assert f"bad UCF101 input: file {path}: " in message
    assert " bytes could not be read or parsed" in message and f"of its {size} bytes" in message
    assert "corrupted record at" not in message


def test_corrupt_files_skip_keeps_their_good_records_and_counts_each_file(tmp_path):
    files = _damaged_files(tmp_path)
    whole = _write(tmp_path / "whole.tfrecord", [_good(7), _good(8)])
    counter = _counter()
    dataset = _dataset(
        [path for path, _, _ in files.values()] + [whole],
        tmp_path,
        skip_bad_records=True,
        bad_record_counter=counter,
    )
    ids = _ids(dataset)
    assert len(ids) == sum(good for _, _, good in files.values()) + 2
    assert ids.count(b"v_Good_g00_c01") == 3 and ids.count(b"v_Good_g07_c01") == 1
    # The flipped and the truncated file each lose their last record (its header is intact),
    # the truncated one 100 bytes shorter.
    last_record = len(_good(3)) + 16
    assert counter.counts() == _expected_counts(
        corrupt_file=3, lost_bytes=2 * last_record - 100, lost_records=2
    )


def test_a_counter_of_other_kinds_is_refused(tmp_path):
    path = _write(tmp_path / "good.tfrecord", [_good(0)])
    with pytest.raises(ValueError, match="UCF101_PROBLEM_KINDS"):
        _dataset(path, tmp_path, skip_bad_records=True, bad_record_counter=yt8m.BadRecordCounter())


def test_ids_in_error_lines_are_short_and_valid_utf8(tmp_path):
    long_id = "v_" + "x" * 1_000_000
    record = ucf101_prepare.make_record(long_id, 0, "Archery", [])
    _, message = _strict_error(_dataset(_write(tmp_path / "long.tfrecord", [record]), tmp_path))
    assert "video v_" + "x" * 198 + "...: no frames" in message and len(message) < 1000

    example = tf.train.SequenceExample.FromString(record)
    example.context.feature["id"].bytes_list.value[0] = b"v_\xff\xfe_g01_c01"
    path = _write(tmp_path / "latin.tfrecord", [example.SerializeToString()])
    _, message = _strict_error(_dataset(path, tmp_path))
    assert "video v_\ufffd\ufffd_g01_c01: no frames" in message


def test_a_10000_frame_video_is_read_in_full(tmp_path):
    """Every frame j shows grey level j // 40: the segment centres of 10,000 frames (1250, 3750,
    6250, 8750) give levels 31, 93, 156, 218."""
    frames = [_jpeg(j // 40) for j in range(10_000)]
    path = _write(tmp_path / "long.tfrecord", [_record("v_Long_g01_c01", 1, frames), _good(0)])
    started = time.perf_counter()
    clips = {
        batch["video_id"].numpy()[0]: batch for batch in _dataset(path, tmp_path, batch_size=1)
    }
    assert time.perf_counter() - started < 60
    clip = clips[b"v_Long_g01_c01"]
    assert int(clip["num_frames"][0]) == T and int(clip["labels"][0]) == 1
    levels = clip["frames"][0].numpy().reshape(T, -1).mean(axis=1)
    np.testing.assert_allclose(levels, [31, 93, 156, 218], atol=1.5)
    assert b"v_Good_g00_c01" in clips


# ------------------------------------------------------------------------------------ folders
def _frames_dir(tmp_path: Path) -> tuple[str, str]:
    """A frames root of 6 good videos and 5 bad ones, and its split file."""
    root = tmp_path / "frames"
    lines = []

    def video(name: str, frames: dict[int, bytes] | None) -> None:
        label = len(lines) % 4
        lines.append(f"{CLASSES[label]}/{name}.avi {label + 1}\n")
        if frames is None:
            return
        folder = root / CLASSES[label] / name
        folder.mkdir(parents=True)
        for number, jpeg in frames.items():
            (folder / f"frame_{number:05d}.jpg").write_bytes(jpeg)

    for i in range(6):
        video(f"v_Good_g{i:02d}_c01", {j: _jpeg(20 * i) for j in range(1, 4 + i)})
    video("v_Missing_g01_c01", None)
    video("v_Emptied_g01_c01", {})
    video("v_Gap_g01_c01", {1: _jpeg(5), 2: _jpeg(5), 4: _jpeg(5)})
    video("v_Random_g01_c01", {1: _jpeg(5), 2: b"\x00" * 300, 3: _jpeg(5)})
    video("v_Undecodable_g01_c01", {1: _jpeg(5), 2: _undecodable_jpeg()})
    split = tmp_path / "trainlist01.txt"
    split.write_text("".join(lines))
    return str(root), str(split)


FOLDER_PROBLEMS = {
    "v_Missing_g01_c01": ("no_frames", "no frames (the folder does not exist)"),
    "v_Emptied_g01_c01": ("no_frames", "no frames (no frame_*.jpg files in the folder)"),
    "v_Gap_g01_c01": (
        "missing_frame",
        "frames not numbered 1, 2, ..., n: frame 3 missing (frame_00004.jpg in its place)",
    ),
    "v_Random_g01_c01": ("bad_jpeg", "frame 2 is not a complete JPEG (no SOI/EOI marker)"),
    "v_Undecodable_g01_c01": ("bad_jpeg", "frame 2 does not decode as a JPEG"),
}


@pytest.mark.parametrize("video_id", list(FOLDER_PROBLEMS))
def test_folder_strict_names_the_folder_and_video(tmp_path, video_id):
    root, split = _frames_dir(tmp_path)
    one = tmp_path / "one.txt"
    line = next(line for line in Path(split).read_text().splitlines() if video_id in line)
    one.write_text(line + "\n")
    _, message = _strict_error(_dataset(root, tmp_path, split_file=str(one)))
    folder = os.path.join(root, line.split("/")[0], video_id)
    _, problem = FOLDER_PROBLEMS[video_id]
    assert f"bad UCF101 input: folder {folder}, video {video_id}: {problem}" in message


def test_folder_skip_reads_every_good_video_and_counts(tmp_path):
    root, split = _frames_dir(tmp_path)
    counter = _counter()
    ids = _ids(
        _dataset(
            root, tmp_path, split_file=split, skip_bad_records=True, bad_record_counter=counter
        )
    )
    assert sorted(ids) == [f"v_Good_g{i:02d}_c01".encode() for i in range(6)]
    assert counter.counts() == _expected_counts(no_frames=2, missing_frame=1, bad_jpeg=2)


# ------------------------------------------------------------------------------------ a run
def test_read_videos_passes_skip_mode_and_the_family_counter(tmp_path):
    path = _write(tmp_path / "mixed.tfrecord", [_good(0), BAD_RECORDS["empty_id"][1], _good(1)])
    data = DataConfig(dataset="ucf101", max_frames=T, skip_bad_records=True)
    model = ModelConfig(image_size=S, num_classes=4)
    counter = videos.bad_record_counter(data)
    assert counter.kinds == ucf101.UCF101_PROBLEM_KINDS
    assert videos.bad_record_counter(DataConfig()).kinds == yt8m.PROBLEM_KINDS
    dataset = videos.read_videos(
        data, model, path, batch_size=4, training=False, bad_record_counter=counter
    )
    assert sorted(_ids(dataset)) == [b"v_Good_g00_c01", b"v_Good_g01_c01"]
    assert counter.counts()["empty_id"] == 1 and counter.counts()["total"] == 1


@pytest.mark.slow  # two train.py processes (about 20 s each)
def test_train_launcher_skips_and_records_the_count_or_fails_in_one_line(tmp_path, launcher):
    good = [_good(i) for i in range(8)]
    bad_id, bad, problem = MORE_BAD_RECORDS["bad_jpeg"]
    train = _write(tmp_path / "train.tfrecord", good[:5] + [bad] + good[5:])
    flags = (
        "--flagfile=models/ucf101_teacher.flags",
        f"--train_data_pattern={train}",
        f"--class_index_file={_class_index(tmp_path)}",
        "--num_classes=4",
        f"--max_frames={T}",
        "--batch_size=4",
        "--max_steps=3",
        "--eval_every_steps=0",
        "--noprogress_bar",
    )
    result = launcher.run("train.py", *flags, "--skip_bad_records", f"--run_dir={tmp_path / 'a'}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["step"] == 3
    # Training repeats its data and reads ahead: the bad clip is counted once per pass read.
    assert metrics["bad_records"]["bad_jpeg"] >= 1
    assert metrics["bad_records"]["total"] == metrics["bad_records"]["bad_jpeg"]
    assert f"video {bad_id}: {problem}" in result.stderr

    result = launcher.run("train.py", *flags, f"--run_dir={tmp_path / 'b'}")
    assert result.returncode == 1
    line = launcher.last_stderr_line(result)
    assert line.startswith("train.py: error: "), result.stderr[-3000:]
    assert f"bad UCF101 input: file {train}, record 5, video {bad_id}: {problem}" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "b" / "metrics.json").exists()
