"""A training run killed with SIGKILL (no chance to save) resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf


def _checkpoint_step(checkpoint_dir) -> int:
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        return 0
    return int(re.fullmatch(r".*ckpt-(\d+)", latest).group(1))


@pytest.mark.slow
def test_resume_after_sigkill(tiny_yt8m, tiny_train_args, launcher, tmp_path):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    args = [
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        "--checkpoint_every_steps=5",
    ]
    log = (tmp_path / "first.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, os.path.join("launchers", "train.py"), *args, "--max_steps=400"],
        cwd=launcher.repo_root,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts slowly
        while not ((checkpoints / "checkpoint").exists() and _checkpoint_step(checkpoints) >= 5):
            assert process.poll() is None, (tmp_path / "first.stderr").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert not (run_dir / "metrics.json").exists()  # killed long before the end

    # What survived the kill: the latest checkpoint the state file names (a save cut short by the
    # kill leaves at most stray data files, never a half-written state file).
    killed_at = _checkpoint_step(checkpoints)
    assert killed_at >= 5 and killed_at % 5 == 0 and killed_at < 400

    result = launcher.run("train.py", *args, f"--max_steps={killed_at + 10}")
    assert result.returncode == 0, result.stderr[-3000:]
    # The optimizer's step counter (the global step) came back with the checkpoint.
    assert f"ckpt-{killed_at}: resuming at step {killed_at}" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == killed_at
    assert metrics["step"] == killed_at + 10
    assert metrics["train"]["steps"] == 10
    assert (checkpoints / f"ckpt-{killed_at + 10}.index").exists()
    assert _checkpoint_step(checkpoints) == killed_at + 10


# ------------------------------------------------------------------- SIGTERM and SIGINT: saved
def _train_until_signalled(launcher, args, checkpoints, signal_number, log_path) -> tuple[int, str]:
    """Starts train.py, waits for its first checkpoint (training is under way), sends the signal;
    returns (its exit status, its stderr)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join("launchers", "train.py"), *args],
            cwd=launcher.repo_root,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 180
            while not (checkpoints / "checkpoint").exists():
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 180 s"
                time.sleep(0.05)
            os.kill(process.pid, signal_number)
            status = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return status, log_path.read_text()


_STOPPED = re.compile(
    r"train\.py: stopped by (SIGTERM|SIGINT) at step (\d+); checkpoint saved; "
    r"rerun the same command to resume"
)


def _check_stopped(status, stderr, signal_number, checkpoints) -> int:
    """The one line and status of a signalled run; returns the step it saved."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 128 + signal_number, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    match = _STOPPED.fullmatch(lines[-1])
    assert match and match.group(1) == signal.Signals(signal_number).name, lines[-1]
    stopped_at = int(match.group(2))
    assert _checkpoint_step(checkpoints) == stopped_at  # saved at the step, and it is the latest
    return stopped_at


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_a_rerun_resumes_there(
    signal_number, tiny_yt8m, tiny_train_args, launcher, tmp_path
):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    args = [
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        "--checkpoint_every_steps=3",
    ]
    status, stderr = _train_until_signalled(
        launcher, [*args, "--max_steps=100000"], checkpoints, signal_number, tmp_path / "log"
    )
    stopped_at = _check_stopped(status, stderr, signal_number, checkpoints)
    assert stopped_at >= 3

    result = launcher.run("train.py", *args, f"--max_steps={stopped_at + 2}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ckpt-{stopped_at}: resuming at step {stopped_at}" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == stopped_at
    assert metrics["step"] == stopped_at + 2 and metrics["train"]["steps"] == 2


@pytest.mark.slow
def test_sigterm_during_sakd_resumes_with_the_same_selection(
    tiny_yt8m, teacher_cache, launcher, tmp_path
):
    run_dir = tmp_path / "sakd"
    checkpoints = run_dir / "checkpoints"
    # 16 of the 32 videos selected once: 2 steps per epoch, a checkpoint at every epoch's end.
    args = [
        "--flagfile=models/tiny_sakd_k6.flags",
        "--max_frames=60",
        "--batch_size=8",
        "--noprogress_bar",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--teacher_cache={teacher_cache}",
        f"--run_dir={run_dir}",
        "--sakd_ratio=0.5",
        "--sakd_selection_interval=1000",
    ]
    status, stderr = _train_until_signalled(
        launcher, [*args, "--num_epochs=1000"], checkpoints, signal.SIGTERM, tmp_path / "log"
    )
    stopped_at = _check_stopped(status, stderr, signal.SIGTERM, checkpoints)
    selection = run_dir / "sakd" / "selection_epoch0000.txt"
    selected = selection.read_text()
    assert len(selected.split()) == 16

    # Two more epochs than were finished: the rerun goes on with the selection it had.
    epochs = stopped_at // 2 + 2
    result = launcher.run("train.py", *args, f"--num_epochs={epochs}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ckpt-{stopped_at}: resuming at step {stopped_at}" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == stopped_at
    assert metrics["step"] == 2 * epochs
    assert not any("difficulty_pass" in epoch for epoch in metrics["epochs"])  # no new selection
    assert sorted(p.name for p in (run_dir / "sakd").glob("selection_*.txt")) == [selection.name]
    assert selection.read_text() == selected
