"""The teacher cache on bad input: duplicate ids, corrupt files, and a SIGKILL while it is built."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import FEATURE_SIZES, MAX_FRAMES, NUM_CLASSES, REPO_ROOT

from yt8m_kd.data.synthetic import make_example, write_synthetic_yt8m
from yt8m_kd.distill.teacher_cache import TeacherCache, write_teacher_cache
from yt8m_kd.training.restore import restore_run


def _video(seed: int, num_frames: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.integers(0, 256, (num_frames, size), dtype=np.uint8)
        for name, size in zip(("rgb", "audio"), FEATURE_SIZES, strict=True)
    }


def _write(path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.fixture
def duplicate_files(tmp_path):
    """Two files: 'twin' in both (different frames), 'copy' in both (the same frames)."""
    first = _write(
        tmp_path / "a.tfrecord",
        [make_example("twin", [1], _video(1)), make_example("copy", [2], _video(3))],
    )
    second = _write(
        tmp_path / "b.tfrecord",
        [
            make_example("other", [1], _video(4)),
            make_example("twin", [1], _video(2)),
            make_example("copy", [2], _video(3)),
        ],
    )
    return str(tmp_path / "*.tfrecord"), first, second


def test_duplicate_ids_strict_names_both_files(teacher_run, duplicate_files, tmp_path):
    pattern, first, second = duplicate_files
    run = restore_run(teacher_run)
    dataset = run.frame_dataset(pattern, batch_size=2, source_files=True)
    with pytest.raises(ValueError) as error:
        write_teacher_cache(
            run.model, run.model_config, dataset, str(tmp_path / "cache"), metadata={}
        )
    assert str(error.value).startswith(
        f"video id twin appears twice in the data, in {first} and in {second} (different "
        "frames: two videos under one id): a teacher cache needs unique ids"
    )
    assert not (tmp_path / "cache" / "teacher_cache.json").exists()


def test_duplicate_ids_skipped_counted_and_listed(teacher_run, duplicate_files, tmp_path):
    pattern, first, second = duplicate_files
    run = restore_run(teacher_run)
    dataset = run.frame_dataset(pattern, batch_size=2, source_files=True)
    metadata = write_teacher_cache(
        run.model,
        run.model_config,
        dataset,
        str(tmp_path / "cache"),
        metadata={},
        skip_duplicates=True,
    )
    assert metadata["num_videos"] == 3
    assert metadata["bad_records"] == {"duplicate_id": 2, "total": 2}
    assert metadata["duplicate_ids"] == [
        {"video_id": "twin", "files": [first, second], "same_frames": False},
        {"video_id": "copy", "files": [first, second], "same_frames": True},
    ]
    cache = TeacherCache.load(str(tmp_path / "cache"))
    assert sorted(cache.video_ids.astype(bytes)) == [b"copy", b"other", b"twin"]


def _cache_teacher(teacher_run, pattern, output_dir, *extra) -> list[str]:
    return [
        sys.executable,
        os.path.join("launchers", "cache_teacher.py"),
        f"--teacher_run_dir={teacher_run}",
        f"--data_pattern={pattern}",
        f"--output_dir={output_dir}",
        "--noprogress_bar",
        *extra,
    ]


@pytest.mark.slow  # two launcher processes
def test_corrupt_input_file_strict_one_line_skip_counted(
    teacher_run, tiny_yt8m, tmp_path, launcher
):
    data = tmp_path / "data"
    data.mkdir()
    _, cut = (shutil.copy(path, data) for path in tiny_yt8m.train_files)
    raw = open(cut, "rb").read()
    starts = np.cumsum([0] + [len(r.numpy()) + 16 for r in tf.data.TFRecordDataset(cut)])
    open(cut, "wb").write(raw[: len(raw) // 2])
    # The cut falls inside record `whole`: the `whole` records before it stay whole.
    whole = int(np.searchsorted(starts, len(raw) // 2, side="right")) - 1
    pattern = str(data / "train-*.tfrecord")
    strict = launcher.run(
        "cache_teacher.py", *_cache_teacher(teacher_run, pattern, tmp_path / "c1")[2:]
    )
    assert strict.returncode == 1
    line = launcher.last_stderr_line(strict)
    assert line.startswith(f"cache_teacher.py: error: bad YouTube-8M input file {cut}: bytes ")
    assert "Traceback" not in strict.stderr and "{{" not in line
    skip = launcher.run(
        "cache_teacher.py",
        *_cache_teacher(teacher_run, pattern, tmp_path / "c2", "--skip_bad_records")[2:],
    )
    assert skip.returncode == 0, skip.stderr[-2000:]
    printed = json.loads(skip.stdout.strip().splitlines()[-1])
    assert printed["bad_records"]["corrupt_file"] == 1
    assert printed["bad_records"]["lost_bytes"] == len(raw) // 2 - int(starts[whole])
    # Every record that was whole is cached: those of the good file and those before the cut.
    assert printed["num_videos"] == 16 + whole


@pytest.mark.slow
def test_sigkill_while_caching_leaves_no_complete_cache(teacher_run, tmp_path, launcher):
    root = tmp_path / "data"
    write_synthetic_yt8m(
        str(root),
        split="train",
        num_shards=4,
        videos_per_shard=64,
        num_classes=NUM_CLASSES,
        feature_sizes=FEATURE_SIZES,
        min_frames=20,
        max_frames=MAX_FRAMES,
        seed=1,
    )
    pattern = str(root / "train-*.tfrecord")
    cache_dir = tmp_path / "cache"
    args = _cache_teacher(teacher_run, pattern, cache_dir, "--batch_size=1")
    process = subprocess.Popen(
        args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # Killed once the part of the second input file is complete (has its marker).
    deadline = time.time() + 120
    while not (cache_dir / "teacher-00001.json").exists() and time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (cache_dir / "teacher-00001.json").exists()
    assert not (cache_dir / "teacher-00003.json").exists()
    assert not (cache_dir / "teacher_cache.json").exists()  # killed mid-way: no json

    # A student refuses the cache with one line.
    student = launcher.run(
        "train.py",
        "--flagfile=models/tiny_distilled_k6.flags",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--noprogress_bar",
        f"--train_data_pattern={pattern}",
        f"--teacher_cache={cache_dir}",
        f"--run_dir={tmp_path / 'student'}",
        "--max_steps=1",
    )
    assert student.returncode == 1
    line = launcher.last_stderr_line(student)
    assert line.startswith(f"train.py: error: --teacher_cache: teacher cache {cache_dir} is ")
    assert "incomplete: " in line and "input files cached (missing: " in line
    assert "Traceback" not in student.stderr

    # A rerun skips the complete parts and completes the cache.
    rerun = launcher.run("cache_teacher.py", *args[2:], timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # Parts 0 and 1, and part 2 if it was finished before the kill.
    assert re.search(r"skipping [23] input files whose parts are complete: ", rerun.stderr)
    assert TeacherCache.load(str(cache_dir)).num_videos == 256
