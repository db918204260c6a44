"""UCF101 data: split files, the synthetic set, frame extraction, frame records and the pipeline.

One tiny synthetic set (8 classes x 3 groups x 1 clip, 64x48, 24-40 frames) is written, extracted
and packed once per module; the tests read it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import sampling, ucf101, ucf101_prepare, ucf101_splits
from yt8m_kd.data import ucf101_synthetic as synth

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 7
NUM_GROUPS = 3  # split k tests on group k
T = 8  # frames per clip
S = 32  # crop size


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory) -> synth.SyntheticUcf101:
    root = tmp_path_factory.mktemp("ucf101")
    return synth.make_synthetic_ucf101(
        str(root), num_groups=NUM_GROUPS, clips_per_group=1, seed=SEED
    )


@pytest.fixture(scope="module")
def frames_dir(synthetic_set, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("frames"))
    summary = ucf101_prepare.extract_videos(synthetic_set.video_dir, out, progress=False)
    assert summary["extracted"] == len(synthetic_set.videos) and summary["failed"] == 0
    return out


@pytest.fixture(scope="module")
def records(synthetic_set, frames_dir, tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("records"))
    return ucf101_prepare.write_split_records(
        frames_dir,
        synthetic_set.split_file("train", 1),
        synthetic_set.class_index_file,
        out,
        num_shards=2,
    )


def _write(path: Path, text: str) -> str:
    path.write_bytes(text.encode())
    return str(path)


def _batches(dataset) -> dict[bytes, dict[str, np.ndarray]]:
    """Every clip of a dataset by video id."""
    clips = {}
    for batch in dataset:
        for i, video_id in enumerate(batch["video_id"].numpy()):
            clips[video_id] = {key: value[i].numpy() for key, value in batch.items()}
    return clips


# ------------------------------------------------------------------------------------ split files
def test_read_class_index_accepts_crlf_and_blank_lines(tmp_path):
    path = _write(
        tmp_path / "classInd.txt", "1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n\r\n3 Archery\r\n"
    )
    assert ucf101_splits.read_class_index(path) == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("1 A\n2 B\nthree C\n", 3, "expected '<index> <ClassName>'"),
        ("1 A\n3 B\n", 2, "class index 3, expected 2"),
        ("1 A\n2 B\n3 A\n", 3, "listed twice"),
        ("1 A B\n", 1, "expected '<index> <ClassName>'"),
    ],
)
def test_read_class_index_names_file_and_line(tmp_path, text, line, fragment):
    path = _write(tmp_path / "classInd.txt", text)
    with pytest.raises(ucf101_splits.SplitFileError) as error:
        ucf101_splits.read_class_index(path)
    assert f"{path}, line {line}:" in str(error.value)
    assert fragment in str(error.value)


def test_read_class_index_empty_file(tmp_path):
    path = _write(tmp_path / "classInd.txt", "\n")
    with pytest.raises(ucf101_splits.SplitFileError, match="no classes"):
        ucf101_splits.read_class_index(path)


def test_read_split_train_and_test_lists(tmp_path):
    classes = ["ApplyEyeMakeup", "HandstandPushups"]
    train = _write(
        tmp_path / "trainlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n",
    )
    test = _write(
        tmp_path / "testlist01.txt",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n\n"
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\n",
    )
    assert ucf101_splits.read_split(train, classes) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
        ("HandstandPushups/v_HandStandPushups_g08_c01.avi", 1),
    ]
    # Test lists carry no label: it is the folder (which, as in UCF101, may be spelled
    # differently from the file name).
    assert ucf101_splits.read_split(test, classes) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
        ("HandstandPushups/v_HandStandPushups_g01_c01.avi", 1),
    ]
    assert ucf101_splits.video_stem("HandstandPushups/v_HandStandPushups_g01_c01.avi") == (
        "v_HandStandPushups_g01_c01"
    )


@pytest.mark.parametrize(
    "line, fragment",
    [
        (
            "B/v_B_g01_c01.avi 1",
            "label 1 (A) does not match the folder of B/v_B_g01_c01.avi (B, 2)",
        ),
        ("C/v_C_g01_c01.avi", "folder 'C' of C/v_C_g01_c01.avi is not a class"),
        ("A/v_A_g01_c01.avi 3", "label '3' is not a class index 1..2"),
        ("A/v_A_g01_c01.avi one", "label 'one' is not a class index 1..2"),
        ("v_A_g01_c01.avi 1", "expected '<ClassName>/<video>.avi'"),
        ("A/v_A_g01_c01.avi 1 2", "expected '<ClassName>/<video>.avi'"),
        ("A/v_A_g02_c01.avi 1", "A/v_A_g02_c01.avi listed twice"),
    ],
)
def test_read_split_errors_name_file_and_line(tmp_path, line, fragment):
    path = _write(tmp_path / "trainlist01.txt", f"A/v_A_g02_c01.avi 1\n\n{line}\n")
    with pytest.raises(ucf101_splits.SplitFileError) as error:
        ucf101_splits.read_split(path, ["A", "B"])
    assert f"{path}, line 3: " in str(error.value)
    assert fragment in str(error.value)


# ------------------------------------------------------------------------------------ synthetic set
def test_split_test_groups_follow_the_official_pattern():
    assert [synth.split_test_groups(s, 25) for s in (1, 2, 3)] == [
        list(range(1, 8)),
        list(range(8, 15)),
        list(range(15, 22)),
    ]
    assert [synth.split_test_groups(s, 6) for s in (1, 2, 3)] == [[1, 2], [3, 4], [5, 6]]
    assert [synth.split_test_groups(s, 3) for s in (1, 2, 3)] == [[1], [2], [3]]
    with pytest.raises(ValueError, match="at least 3 groups"):
        synth.split_test_groups(1, 2)


def test_synthetic_set_has_the_official_layout(synthetic_set):
    root = Path(synthetic_set.root)
    names = list(synth.CLASS_NAMES)
    class_lines = (root / "ucfTrainTestlist" / "classInd.txt").read_text().splitlines()
    assert class_lines == [f"{i} {name}" for i, name in enumerate(names, start=1)]
    expected = {f"{name}/v_{name}_g{group:02d}_c01.avi" for name in names for group in (1, 2, 3)}
    found = {str(p.relative_to(root / "UCF-101")) for p in (root / "UCF-101").glob("*/*.avi")}
    assert found == expected == set(synthetic_set.videos)

    train_line = re.compile(r"(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.avi (\d+)")
    test_line = re.compile(r"(\w+)/v_(\w+)_g(\d\d)_c(\d\d)\.avi")
    for split in (1, 2, 3):
        train = (root / "ucfTrainTestlist" / f"trainlist{split:02d}.txt").read_text().splitlines()
        test = (root / "ucfTrainTestlist" / f"testlist{split:02d}.txt").read_text().splitlines()
        train_groups, test_groups = set(), set()
        for line in train:
            match = train_line.fullmatch(line)
            assert match, line
            folder, name, group, _, label = match.groups()
            assert folder == name and names[int(label) - 1] == folder
            train_groups.add(int(group))
        for line in test:
            match = test_line.fullmatch(line)
            assert match, line
            test_groups.add(int(match.group(3)))
        assert test_groups == {split} and train_groups == {1, 2, 3} - {split}
        listed = [line.split()[0] for line in train + test]
        assert sorted(listed) == sorted(expected)  # every video exactly once per split
        parsed = ucf101_splits.read_split(synthetic_set.split_file("test", split), names)
        assert all(names[label] == path.split("/")[0] for path, label in parsed)


def test_render_clip_is_deterministic_and_varies():
    a = synth.render_clip("ShuttleVertical", np.random.default_rng([1, 2]))
    b = synth.render_clip("ShuttleVertical", np.random.default_rng([1, 2]))
    c = synth.render_clip("ShuttleVertical", np.random.default_rng([1, 3]))
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.frames.shape[1:] == (48, 64, 3) and 24 <= len(a.frames) <= 40
    assert len(a.frames) != len(c.frames) or not np.array_equal(a.frames, c.frames)


@pytest.mark.parametrize("backward", ["SlideLeft", "SlideUp", "FlashBottomRightFirst"])
def test_paired_classes_are_each_other_played_backwards(backward):
    partner = synth.TIME_REVERSED[backward]
    assert synth.TIME_REVERSED[partner] == backward
    for seed in range(3):
        clip = synth.render_clip(backward, np.random.default_rng(seed))
        reference = synth.render_clip(partner, np.random.default_rng(seed))
        np.testing.assert_array_equal(clip.frames, reference.frames[::-1])
        # Hence the same frames as a set: no single frame or bag of frames tells them apart.
        np.testing.assert_array_equal(
            np.sort(clip.frames, axis=0), np.sort(reference.frames, axis=0)
        )


def _square_centres(frames: np.ndarray) -> np.ndarray:
    """[n, 2] brightness-weighted (x, y) centre of the square per frame, from the pixels alone."""
    # Square channels are >= 150, background channels <= 70 plus noise (std <= 25).
    weight = np.clip(frames.astype(np.float64).min(axis=-1) - 110.0, 0.0, None)  # [n, h, w]
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    total = weight.sum(axis=(1, 2))
    return np.stack([(weight * xs).sum((1, 2)) / total, (weight * ys).sum((1, 2)) / total], 1)


def test_classes_need_temporal_order_and_speed():
    def clips(name, count=24):
        return [synth.render_clip(name, np.random.default_rng([99, i])) for i in range(count)]

    right, left = clips("SlideRight"), clips("SlideLeft")

    # Order-free features: the time-averaged frame. A nearest-centroid classifier trained on half
    # the clips stays near chance on the other half...
    def mean_frame(clip):
        return clip.frames.astype(np.float64).mean(axis=0).ravel()

    train_r = np.mean([mean_frame(c) for c in right[:12]], axis=0)
    train_l = np.mean([mean_frame(c) for c in left[:12]], axis=0)
    held_out = [(mean_frame(c), 0) for c in right[12:]] + [(mean_frame(c), 1) for c in left[12:]]
    correct = sum(
        int(np.linalg.norm(x - train_l) < np.linalg.norm(x - train_r)) == label
        for x, label in held_out
    )
    assert correct / len(held_out) <= 0.75
    # ... while the direction of motion, read from the pixels in time order, is always right.
    for clip, sign in [(c, 1) for c in right] + [(c, -1) for c in left]:
        x = _square_centres(clip.frames)[:, 0]
        assert np.sign(x[-1] - x[0]) == sign
        np.testing.assert_allclose(
            x, np.rint(clip.track[:, 0]) + (clip.square_size - 1) / 2, atol=0.3
        )

    # Shuttles visit the same positions as slides but travel at least twice as far in a video.
    def path_length(clip):
        x = _square_centres(clip.frames)[:, 0]
        return np.abs(np.diff(x)).sum() / (clip.frames.shape[2] - clip.square_size)  # / room

    shortest_shuttle = min(path_length(c) for c in clips("ShuttleHorizontal"))
    longest_slide = max(path_length(c) for c in right + left)
    assert longest_slide < 0.95 and shortest_shuttle > 1.75

    # Flashes: top-left third first, bottom-right third last.
    for clip in clips("FlashTopLeftFirst", 8):
        first, last = _square_centres(clip.frames[[0, -1]])
        assert np.all(first < [64 / 3, 48 / 3]) and np.all(last > [2 * 64 / 3, 2 * 48 / 3])


# ------------------------------------------------------------------------------------ extraction
def _frame_names(folder) -> list[str]:
    return sorted(os.listdir(folder))


def _decode(path) -> np.ndarray:
    return tf.io.decode_jpeg(tf.io.read_file(str(path))).numpy()


def test_extraction_writes_every_frame_in_order(synthetic_set, frames_dir):
    for relative, n in zip(synthetic_set.videos, synthetic_set.num_frames, strict=True):
        folder = ucf101_splits.frames_folder(frames_dir, relative)
        assert _frame_names(folder) == [f"frame_{i:05d}.jpg" for i in range(1, n + 1)]
    assert not list(Path(frames_dir).glob(f"*/*{ucf101_splits.PARTIAL_SUFFIX}"))
    # The square is where the generator put it, frame by frame (time order and pixels survive).
    name = "SlideRight"
    clip = synth.render_clip(
        name, np.random.default_rng([SEED, synth.CLASS_NAMES.index(name), 1, 1])
    )
    folder = ucf101_splits.frames_folder(frames_dir, f"{name}/v_{name}_g01_c01.avi")
    decoded = np.stack([_decode(os.path.join(folder, f)) for f in _frame_names(folder)])
    assert decoded.shape == clip.frames.shape
    np.testing.assert_allclose(_square_centres(decoded), _square_centres(clip.frames), atol=1.0)


def test_extraction_fps_and_short_side(synthetic_set, frames_dir, tmp_path):
    relative = synthetic_set.videos[0]
    n = synthetic_set.num_frames[0]
    only = [relative]
    full = ucf101_splits.frames_folder(frames_dir, relative)

    half = ucf101_prepare.extract_videos(
        synthetic_set.video_dir, str(tmp_path / "half"), fps=12.5, videos=only, progress=False
    )
    folder = ucf101_splits.frames_folder(str(tmp_path / "half"), relative)
    assert half["frames_written"] == (n + 1) // 2 == len(os.listdir(folder))
    for j, name in enumerate(_frame_names(folder)):  # frame j is source frame 2j, same bytes
        assert (
            Path(folder, name).read_bytes() == Path(full, f"frame_{2 * j + 1:05d}.jpg").read_bytes()
        )

    double = ucf101_prepare.extract_videos(
        synthetic_set.video_dir, str(tmp_path / "double"), fps=50, videos=only, progress=False
    )
    assert double["frames_written"] == 2 * n

    small = ucf101_prepare.extract_videos(
        synthetic_set.video_dir, str(tmp_path / "small"), short_side=24, videos=only, progress=False
    )
    folder = ucf101_splits.frames_folder(str(tmp_path / "small"), relative)
    assert small["frames_written"] == n
    assert _decode(os.path.join(folder, "frame_00001.jpg")).shape == (24, 32, 3)


def test_corrupt_videos_are_logged_counted_and_skipped(synthetic_set, tmp_path, caplog):
    videos = tmp_path / "UCF-101"
    for relative in synthetic_set.videos[:3]:
        (videos / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(synthetic_set.video_dir, relative), videos / relative)
    (videos / "Broken").mkdir()
    (videos / "Broken" / "v_Broken_g01_c01.avi").write_bytes(np.random.default_rng(0).bytes(4000))
    whole = Path(synthetic_set.video_dir, synthetic_set.videos[0]).read_bytes()
    (videos / "Broken" / "v_Broken_g01_c02.avi").write_bytes(whole[: len(whole) // 2])

    with caplog.at_level(logging.ERROR):
        summary = ucf101_prepare.extract_videos(
            str(videos), str(tmp_path / "frames"), progress=False
        )
    assert summary["failed"] == 2 and summary["extracted"] == 3
    assert summary["failed_videos"] == [
        "Broken/v_Broken_g01_c01.avi",
        "Broken/v_Broken_g01_c02.avi",
    ]
    assert summary["frames_written"] == sum(synthetic_set.num_frames[:3])
    for name in ("v_Broken_g01_c01.avi", "v_Broken_g01_c02.avi"):
        assert any(name in record.getMessage() for record in caplog.records)
    assert os.listdir(tmp_path / "frames" / "Broken") == []  # no half-written folders
    assert "2 failed (Broken/v_Broken_g01_c01.avi, Broken/v_Broken_g01_c02.avi)" in (
        ucf101_prepare.format_extraction_summary(summary)
    )


def test_interrupted_extraction_resumes(synthetic_set, tmp_path, monkeypatch):
    out = tmp_path / "frames"
    videos = list(synthetic_set.videos[:4])
    real_decode = ucf101_prepare.decode_video
    calls = []

    def interrupted_decode(path, fps=None, short_side=None):
        calls.append(path)
        for i, image in enumerate(real_decode(path, fps, short_side)):
            if len(calls) == 3 and i == 5:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the third video
            yield image

    monkeypatch.setattr(ucf101_prepare, "decode_video", interrupted_decode)
    with pytest.raises(KeyboardInterrupt):
        ucf101_prepare.extract_videos(
            synthetic_set.video_dir, str(out), videos=videos, progress=False
        )
    monkeypatch.setattr(ucf101_prepare, "decode_video", real_decode)
    done = [ucf101_splits.frames_folder(str(out), relative) for relative in videos[:2]]
    assert all(os.path.isdir(folder) for folder in done)
    assert not os.path.exists(ucf101_splits.frames_folder(str(out), videos[2]))
    assert not os.path.exists(ucf101_splits.frames_folder(str(out), videos[3]))

    # A kill -9 leaves a .partial folder behind; it never counts as done.
    partial = ucf101_splits.frames_folder(str(out), videos[3]) + ucf101_splits.PARTIAL_SUFFIX
    os.makedirs(partial)
    Path(partial, "frame_00001.jpg").write_bytes(b"half")
    stamps = {path: os.stat(path).st_mtime_ns for folder in done for path in Path(folder).iterdir()}

    summary = ucf101_prepare.extract_videos(
        synthetic_set.video_dir, str(out), videos=videos, progress=False
    )
    assert (summary["skipped"], summary["extracted"], summary["failed"]) == (2, 2, 0)
    assert summary["frames_written"] == sum(synthetic_set.num_frames[2:4])
    assert {path: os.stat(path).st_mtime_ns for path in stamps} == stamps  # not rewritten
    assert not os.path.exists(partial)
    for relative, n in zip(videos, synthetic_set.num_frames, strict=False):
        assert len(os.listdir(ucf101_splits.frames_folder(str(out), relative))) == n


# ------------------------------------------------------------------------------------ records
def test_records_round_trip(synthetic_set, frames_dir, records):
    assert [os.path.basename(p) for p in records["shards"]] == [
        "trainlist01-00000-of-00002.tfrecord",
        "trainlist01-00001-of-00002.tfrecord",
    ]
    listed = ucf101_splits.read_split(synthetic_set.split_file("train", 1), synth.CLASS_NAMES)
    assert records["videos"] == len(listed) == 16
    found = {}
    for shard, path in enumerate(records["shards"]):
        for serialized in tf.data.TFRecordDataset(path):
            context, sequences = tf.io.parse_single_sequence_example(
                serialized,
                context_features={
                    "id": tf.io.FixedLenFeature([], tf.string),
                    "label": tf.io.FixedLenFeature([], tf.int64),
                    "class_name": tf.io.FixedLenFeature([], tf.string),
                },
                sequence_features={"frames": tf.io.FixedLenSequenceFeature([], tf.string)},
            )
            found[context["id"].numpy().decode()] = (
                shard,
                int(context["label"]),
                context["class_name"].numpy().decode(),
                [bytes(f) for f in sequences["frames"].numpy()],
            )
    for position, (relative, label) in enumerate(listed):
        shard, record_label, class_name, frames = found[ucf101_splits.video_stem(relative)]
        assert shard == position % 2  # dealt in turn
        assert record_label == label and class_name == synth.CLASS_NAMES[label]
        folder = ucf101_splits.frames_folder(frames_dir, relative)
        assert frames == [Path(folder, f).read_bytes() for f in _frame_names(folder)]
    assert records["frames"] == sum(len(f[3]) for f in found.values())


def test_records_missing_frames_error_or_skip(synthetic_set, frames_dir, tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(frames_dir, frames)
    gone = "SlideUp/v_SlideUp_g02_c01.avi"
    shutil.rmtree(ucf101_splits.frames_folder(str(frames), gone))
    args = (str(frames), synthetic_set.split_file("train", 1), synthetic_set.class_index_file)
    with pytest.raises(FileNotFoundError, match=re.escape(gone)):
        ucf101_prepare.write_split_records(*args, str(tmp_path / "a"))
    assert os.listdir(tmp_path / "a") == []  # no half-written shards
    summary = ucf101_prepare.write_split_records(*args, str(tmp_path / "b"), skip_missing=True)
    assert summary["missing"] == 1 and summary["missing_videos"] == [gone]
    assert summary["videos"] == 15


# ------------------------------------------------------------------------------------ pipeline
def test_sample_frame_indices():
    def indices(n, t, training=False, seed=(1, 2)):
        return list(
            ucf101.sample_frame_indices(tf.constant(n), t, training, tf.constant(seed)).numpy()
        )

    assert indices(30, 8) == [(2 * i + 1) * 30 // 16 for i in range(8)]
    assert indices(5, 8) == [0, 1, 2, 3, 4]
    assert indices(5, 8, training=True) == [0, 1, 2, 3, 4]
    assert indices(8, 8, training=True) == list(range(8))
    draws = [indices(30, 8, training=True, seed=(s, 0)) for s in range(20)]
    for picked in draws:  # one frame inside each of the 8 segments
        assert all(i * 30 // 8 <= p < (i + 1) * 30 // 8 for i, p in enumerate(picked))
    assert len({tuple(p) for p in draws}) > 10
    assert indices(30, 8, training=True, seed=(3, 4)) == indices(30, 8, training=True, seed=(3, 4))


def _eval_records(records, synthetic_set, **overrides):
    kwargs = dict(
        batch_size=5,
        num_frames=T,
        image_size=S,
        training=False,
        class_index_file=synthetic_set.class_index_file,
    )
    kwargs.update(overrides)
    return ucf101.frame_dataset(records["shards"], **kwargs)


def test_eval_batches_shapes_and_determinism(records, synthetic_set):
    dataset = _eval_records(records, synthetic_set)
    batch = next(iter(dataset))
    assert batch["video_id"].dtype == tf.string and batch["video_id"].shape == [5]
    assert batch["frames"].dtype == tf.uint8 and batch["frames"].shape == [5, T, S, S, 3]
    assert batch["num_frames"].dtype == tf.int32 and list(batch["num_frames"].numpy()) == [T] * 5
    assert batch["labels"].dtype == tf.int32
    first, second = _batches(dataset), _batches(dataset)
    assert len(first) == 16
    for video_id, clip in first.items():
        for key in clip:
            np.testing.assert_array_equal(clip[key], second[video_id][key])
    lengths = dict(zip(synthetic_set.videos, synthetic_set.num_frames, strict=True))
    labels = dict(ucf101_splits.read_split(synthetic_set.split_file("train", 1), synth.CLASS_NAMES))
    for relative, label in labels.items():
        assert first[ucf101_splits.video_stem(relative).encode()]["labels"] == label
        assert lengths[relative] >= T


def test_short_videos_are_zero_padded(records, synthetic_set, frames_dir):
    long_t = 48  # longer than every video (24-40 frames)
    clips = _batches(_eval_records(records, synthetic_set, num_frames=long_t))
    lengths = dict(zip(synthetic_set.videos, synthetic_set.num_frames, strict=True))
    for relative, n in lengths.items():
        clip = clips.get(ucf101_splits.video_stem(relative).encode())
        if clip is None:  # a test-split video
            continue
        assert clip["num_frames"] == n
        assert not clip["frames"][n:].any()
        assert clip["frames"][:n].reshape(n, -1).max(axis=1).min() > 0
    # All frames in order: frame i of the clip is frame i of the video, centre-cropped.
    relative = "SlideDown/v_SlideDown_g02_c01.avi"
    clip = clips[ucf101_splits.video_stem(relative).encode()]
    folder = ucf101_splits.frames_folder(frames_dir, relative)
    centres = [
        _square_centres(_decode(os.path.join(folder, f))[None])[0] for f in _frame_names(folder)
    ]
    ys = np.array(centres)[:, 1]
    assert np.all(np.diff(ys) >= 0)  # the square moves down
    clip_ys = _square_centres(clip["frames"][: clip["num_frames"]])[:, 1]
    assert np.all(np.diff(clip_ys) >= -0.5)


def test_folder_and_records_give_the_same_eval_batches(records, synthetic_set, frames_dir):
    from_records = _batches(_eval_records(records, synthetic_set))
    from_folders = _batches(
        ucf101.frame_dataset(
            frames_dir,
            batch_size=3,
            num_frames=T,
            image_size=S,
            training=False,
            split_file=synthetic_set.split_file("train", 1),
            class_index_file=synthetic_set.class_index_file,
        )
    )
    assert from_folders.keys() == from_records.keys()
    for video_id, clip in from_records.items():
        for key in clip:
            np.testing.assert_array_equal(clip[key], from_folders[video_id][key])


def test_parse_eval_clip_equals_the_eval_dataset(records, synthetic_set):
    expected = _batches(_eval_records(records, synthetic_set, resize_short_side=40))

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(serialized):  # as inside a SavedModel signature
        return ucf101.parse_eval_clip(serialized, T, S, resize_short_side=40, num_classes=8)

    count = 0
    for path in records["shards"]:
        for serialized in tf.data.TFRecordDataset(path):
            clip = {key: value.numpy() for key, value in serve(serialized).items()}
            assert clip["frames"].shape == (T, S, S, 3)
            reference = expected[clip["video_id"]]
            for key in clip:
                np.testing.assert_array_equal(clip[key], reference[key])
            count += 1
    assert count == len(expected) == 16


def _pattern_record(path: Path, num_frames: int = 10) -> None:
    """A record whose frames are all the same asymmetric image (a horizontal ramp)."""
    x = np.arange(64, dtype=np.float64)[None, :, None]
    image = np.broadcast_to(x * 4, (48, 64, 3)).astype(np.uint8)
    jpeg = tf.io.encode_jpeg(image, quality=100).numpy()
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(ucf101_prepare.make_record("v_Ramp_g01_c01", 0, "Ramp", [jpeg] * num_frames))


def test_training_crop_and_flip_are_shared_by_the_frames_of_a_clip(tmp_path):
    path = tmp_path / "ramp.tfrecord"
    _pattern_record(path)
    dataset = ucf101.frame_dataset(
        str(path), batch_size=1, num_frames=4, image_size=S, training=True, repeat=True, seed=3
    )
    clips = [batch["frames"][0].numpy() for batch in dataset.take(24)]
    flipped = 0
    for clip in clips:
        for frame in clip[1:]:  # identical source frames -> identical cropped frames
            np.testing.assert_array_equal(frame, clip[0])
        ramp = clip[0, :, :, 0].astype(np.int64).mean(axis=0)
        assert np.all(np.diff(ramp) > 0) or np.all(np.diff(ramp) < 0)
        flipped += int(ramp[0] > ramp[-1])
    assert 0 < flipped < len(clips)  # both flips happen
    assert len({clip[0, 0, :, 0].tobytes() for clip in clips}) > 4  # the window moves


def test_no_flip_when_random_flip_is_off(tmp_path):
    path = tmp_path / "ramp.tfrecord"
    _pattern_record(path)
    dataset = ucf101.frame_dataset(
        str(path),
        batch_size=1,
        num_frames=4,
        image_size=S,
        training=True,
        repeat=True,
        seed=3,
        random_flip=False,
    )
    for batch in dataset.take(24):
        ramp = batch["frames"][0, 0, :, :, 0].numpy().astype(np.int64).mean(axis=0)
        assert np.all(np.diff(ramp) > 0)  # left to right, as recorded


def test_training_is_reproducible_with_a_seed(records, synthetic_set):
    def first_batches(seed):
        dataset = _eval_records(records, synthetic_set, training=True, shuffle=True, seed=seed)
        return [batch for batch, _ in zip(dataset, range(2), strict=False)]

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())
    assert any(not np.array_equal(x["frames"], y["frames"]) for x, y in zip(a, c, strict=True))


def test_input_context_shards_files(records, synthetic_set):
    ids = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        ids.append(set(_batches(_eval_records(records, synthetic_set, input_context=context))))
    assert ids[0].isdisjoint(ids[1]) and len(ids[0] | ids[1]) == 16
    context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0)
    with pytest.raises(ValueError, match="fewer than the 3 input pipelines"):
        _eval_records(records, synthetic_set, input_context=context)


def test_bad_arguments(records, synthetic_set, frames_dir):
    with pytest.raises(ValueError, match="smaller than the crop size"):
        _eval_records(records, synthetic_set, resize_short_side=S - 1)
    with pytest.raises(ValueError, match="give split_file and class_index_file"):
        ucf101.frame_dataset(frames_dir, batch_size=1, num_frames=T, image_size=S, training=False)
    with pytest.raises(FileNotFoundError, match="no file matches"):
        ucf101.frame_dataset(
            frames_dir + "/nothing-*.tfrecord",
            batch_size=1,
            num_frames=T,
            image_size=S,
            training=False,
        )


def _first_error(dataset) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in dataset:
            pass
    return str(error.value)


@pytest.mark.parametrize(
    "frames, label, fragment",
    [
        ([], 0, "video v_Bad_g01_c01: no frames"),
        (["good"] * 3, 8, "video v_Bad_g01_c01: label 8 outside [0, 8)"),
        (["good"] * 3, -1, "video v_Bad_g01_c01: label -1 outside [0, 8)"),
        (["good", "random", "good"], 0, "video v_Bad_g01_c01: frame 2 is not a complete JPEG"),
        (["good", "good", "truncated"], 0, "video v_Bad_g01_c01: frame 3 is not a complete JPEG"),
    ],
)
def test_bad_records_name_file_and_video(tmp_path, synthetic_set, frames, label, fragment):
    good = tf.io.encode_jpeg(np.full((48, 64, 3), 90, np.uint8)).numpy()
    kinds = {"good": good, "random": np.random.default_rng(0).bytes(600), "truncated": good[:-40]}
    path = tmp_path / "bad.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(
            ucf101_prepare.make_record("v_Bad_g01_c01", label, "Bad", [kinds[f] for f in frames])
        )
    message = _first_error(
        ucf101.frame_dataset(
            str(path),
            batch_size=1,
            num_frames=3,
            image_size=S,
            training=False,
            class_index_file=synthetic_set.class_index_file,
        )
    )
    assert f"file {path}" in message and fragment in message


def test_missing_frame_folder_names_the_folder(synthetic_set, frames_dir, tmp_path):
    split = _write(tmp_path / "testlist09.txt", "SlideUp/v_SlideUp_g09_c01.avi\n")
    message = _first_error(
        ucf101.frame_dataset(
            frames_dir,
            batch_size=1,
            num_frames=T,
            image_size=S,
            training=False,
            split_file=split,
            class_index_file=synthetic_set.class_index_file,
        )
    )
    folder = os.path.join(frames_dir, "SlideUp", "v_SlideUp_g09_c01")
    assert f"folder {folder}, video v_SlideUp_g09_c01: no frames" in message


def test_select_frames_picks_student_frames_from_image_clips(records, synthetic_set):
    batch = next(iter(_eval_records(records, synthetic_set, num_frames=12)))
    batch_num_frames = tf.constant([12, 12, 4, 2, 12], tf.int32)  # pretend some are short
    picked, num_frames = sampling.select_frames(batch["frames"], batch_num_frames, 3, "uniform")
    assert picked.dtype == tf.uint8 and picked.shape == [5, 3, S, S, 3]
    assert list(num_frames.numpy()) == [3, 3, 3, 2, 3]
    np.testing.assert_array_equal(picked[0].numpy(), tf.gather(batch["frames"][0], [2, 6, 10]))
    assert not picked[3, 2].numpy().any()  # padding of the 2-frame video


# ------------------------------------------------------------------------------------ scripts
def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, os.path.join("data_scripts", name), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_scripts_end_to_end(tmp_path):
    out = tmp_path / "set"
    result = _script(
        "make_synthetic_ucf101.py",
        f"--output_dir={out}",
        "--num_classes=2",
        "--num_groups=3",
        "--clips_per_group=1",
        "--min_frames=8",
        "--max_frames=10",
    )
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("UCF-101/*/*.avi"))) == 6
    result = _script(
        "extract_ucf101_frames.py",
        f"--video_dir={out / 'UCF-101'}",
        f"--output_dir={out / 'frames'}",
        "--noprogress_bar",
        "--short_side=32",
    )
    assert result.returncode == 0, result.stderr
    assert "6 videos extracted" in result.stdout and "0 failed" in result.stdout
    lists = out / "ucfTrainTestlist"
    result = _script(
        "ucf101_to_tfrecord.py",
        f"--frames_dir={out / 'frames'}",
        f"--split_file={lists / 'testlist02.txt'}",
        f"--class_index_file={lists / 'classInd.txt'}",
        f"--output_dir={out / 'records'}",
        "--num_shards=1",
        "--noprogress_bar",
    )
    assert result.returncode == 0, result.stderr
    assert "testlist02: 2 videos" in result.stdout
    assert (out / "records" / "testlist02-00000-of-00001.tfrecord").exists()
    (lists / "bad.txt").write_text("SlideRight/v_SlideRight_g01_c01.avi 2\n")
    result = _script(
        "ucf101_to_tfrecord.py",
        f"--frames_dir={out / 'frames'}",
        f"--split_file={lists / 'bad.txt'}",
        f"--class_index_file={lists / 'classInd.txt'}",
        f"--output_dir={out / 'records'}",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ucf101_to_tfrecord.py: error: ") and "bad.txt, line 1" in last
