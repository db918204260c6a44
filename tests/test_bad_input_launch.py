"""train.py on bad training data: one error line naming the file (and record), or skip and count."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data.synthetic import make_example

BAD_ID = "bad-label-video"


def _copy_train_shards(tiny_yt8m, directory):
    directory.mkdir()
    return [shutil.copy(path, directory) for path in tiny_yt8m.train_files]


@pytest.fixture
def shards_with_bad_label(tiny_yt8m, tmp_path):
    """The training shards plus one shard holding a good record and one with label 32 >= 32."""
    directory = tmp_path / "data"
    _copy_train_shards(tiny_yt8m, directory)
    rng = np.random.default_rng(0)
    frames = {
        "rgb": rng.integers(0, 256, (30, 64), dtype=np.uint8),
        "audio": rng.integers(0, 256, (30, 16), dtype=np.uint8),
    }
    bad_path = directory / "train-bad.tfrecord"
    with tf.io.TFRecordWriter(str(bad_path)) as writer:
        writer.write(make_example("good-video", [3], frames))
        writer.write(make_example(BAD_ID, [3, 32], frames))
    return str(directory / "train-*.tfrecord"), str(bad_path)


@pytest.fixture
def shards_with_truncated_file(tiny_yt8m, tmp_path):
    """The training shards, the second one cut in the middle."""
    directory = tmp_path / "data"
    _, cut = _copy_train_shards(tiny_yt8m, directory)
    with open(cut, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    return str(directory / "train-*.tfrecord"), cut


def _train(launcher, tiny_train_args, pattern, run_dir, *extra):
    return launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={pattern}",
        f"--run_dir={run_dir}",
        *extra,
    )


def test_bad_label_stops_the_run_naming_file_and_record(
    shards_with_bad_label, tiny_train_args, launcher, tmp_path
):
    pattern, bad_path = shards_with_bad_label
    # More steps than the data has records: the bad record is read whatever the shuffle order.
    result = _train(launcher, tiny_train_args, pattern, tmp_path / "run", "--max_steps=20")
    assert result.returncode != 0
    line = launcher.last_stderr_line(result)
    assert line.startswith("train.py: error: "), result.stderr[-3000:]
    assert bad_path in line
    assert f"record id {BAD_ID}" in line
    assert "label 32 out of range [0, 32)" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_label_is_skipped_and_counted(
    shards_with_bad_label, tiny_train_args, launcher, tmp_path
):
    pattern, bad_path = shards_with_bad_label
    run_dir = tmp_path / "run"
    result = _train(
        launcher, tiny_train_args, pattern, run_dir, "--max_steps=6", "--skip_bad_records"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Logged, not silent: "skipping "bad YouTube-8M record in file <path>, record id <id>: ...""
    skipped = [line for line in result.stderr.splitlines() if "skipping" in line]
    assert any(bad_path in line and f"record id {BAD_ID}" in line for line in skipped)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 6
    bad = metrics["bad_records"]
    assert bad["label_out_of_range"] >= 1
    assert bad["total"] >= 1
    assert bad["total"] == sum(count for kind, count in bad.items() if kind != "total")
    assert bad["corrupt_file"] == 0


def test_truncated_file_stops_the_run_naming_the_file(
    shards_with_truncated_file, tiny_train_args, launcher, tmp_path
):
    pattern, cut = shards_with_truncated_file
    result = _train(launcher, tiny_train_args, pattern, tmp_path / "run", "--max_steps=20")
    assert result.returncode != 0
    line = launcher.last_stderr_line(result)
    assert line.startswith("train.py: error: "), result.stderr[-3000:]
    assert f"bad YouTube-8M input file {cut}" in line
    assert "could not be read or parsed" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_truncated_file_is_skipped_and_counted(
    shards_with_truncated_file, tiny_train_args, launcher, tmp_path
):
    pattern, cut = shards_with_truncated_file
    run_dir = tmp_path / "run"
    result = _train(
        launcher, tiny_train_args, pattern, run_dir, "--max_steps=6", "--skip_bad_records"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = [line for line in result.stderr.splitlines() if "skipping" in line]
    assert any(f"bad YouTube-8M input file {cut}" in line for line in skipped)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 6
    bad = metrics["bad_records"]
    assert bad["corrupt_file"] >= 1
    assert bad["total"] >= 1
    assert bad["label_out_of_range"] == 0
