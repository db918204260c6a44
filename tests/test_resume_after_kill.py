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
        deadline = time.monotonic() + 60
        while not ((checkpoints / "checkpoint").exists() and _checkpoint_step(checkpoints) >= 5):
            assert process.poll() is None, (tmp_path / "first.stderr").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
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
