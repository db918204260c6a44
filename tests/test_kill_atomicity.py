"""SIGKILL during SAKD selection and during export leaves nothing a later step takes for complete.

Each test starts the real launcher in a subprocess, polls for a file that marks a moment of its
work (no hook in the library), kills it there with SIGKILL, and checks what is left: a rerun of
the same command completes correctly, and what reads the output either works on a complete one
or refuses it with one line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parent.parent


def _kill_when(command: list[str], ready: Callable[[], bool], log: Path, timeout: float = 150):
    """Runs launchers/`command`, SIGKILLs it as soon as `ready()` holds; fails if it ends first."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, f"ended before the moment: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no moment within {timeout} s"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _checkpoint_step(run_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


# ------------------------------------------------------------------------------ SAKD selection
# 32 training videos, half selected: 2 steps an epoch; selections before epochs 0 and 2.
EPOCHS, STEPS_PER_EPOCH = 4, 2


def _sakd_command(tiny_yt8m, teacher_run, teacher_cache, run_dir: Path) -> list[str]:
    return [
        "launchers/train.py",
        "--flagfile=models/tiny_sakd_k6.flags",
        "--max_frames=60",
        "--batch_size=8",
        "--noprogress_bar",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--teacher_run_dir={teacher_run}",
        f"--teacher_cache={teacher_cache}",
        f"--num_epochs={EPOCHS}",
        "--sakd_ratio=0.5",
        "--sakd_selection_interval=2",
        "--checkpoint_every_steps=1",
        f"--run_dir={run_dir}",
    ]


@pytest.mark.slow
def test_sigkill_during_sakd_selection(tiny_yt8m, teacher_run, teacher_cache, tmp_path):
    run_dir = tmp_path / "sakd"
    sakd_dir = run_dir / "sakd"
    command = _sakd_command(tiny_yt8m, teacher_run, teacher_cache, run_dir)
    moments = {
        # the first selection is written, nothing trained or checkpointed yet
        "first selection": lambda: (sakd_dir / "selection_epoch0000.txt").exists(),
        # epoch 1 is checkpointed: the second difficulty pass and selection are running
        "second difficulty pass": lambda: _checkpoint_step(run_dir) >= 2 * STEPS_PER_EPOCH,
        # the second selection's ids are written, its summary perhaps not
        "second selection": lambda: (sakd_dir / "selection_epoch0002.txt").exists(),
    }
    for name, moment in moments.items():
        _kill_when(command, moment, tmp_path / f"{name}.log")
        assert not (run_dir / "metrics.json").exists(), name
        # Whatever the kill left in sakd/ is whole: every file there parses completely.
        for path in sakd_dir.glob("selection_epoch*.json"):
            json.loads(path.read_text())
    result = _run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == EPOCHS * STEPS_PER_EPOCH
    # Killed in the second selection, before epoch 2 was checkpointed: the rerun went on from
    # the end of epoch 1 and redid that selection.
    assert metrics["resumed_from_step"] == 2 * STEPS_PER_EPOCH
    assert [e["epoch"] for e in metrics["epochs"]] == [2, 3]
    # Each selection's files are complete and agree: its summary counts its ids ...
    for epoch in (0, 2):
        ids = (sakd_dir / f"selection_epoch{epoch:04d}.txt").read_text().split()
        summary = json.loads((sakd_dir / f"selection_epoch{epoch:04d}.json").read_text())
        assert len(ids) == len(set(ids)) == summary["num_selected"] == 16, epoch
        assert summary["epoch"] == epoch
    # ... and the last one is the selection the checkpointed SAKD state trained on.
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("sakd/selected")]
    assert len(names) == 1, names
    assert int(reader.get_tensor(names[0]).sum()) == 16
    assert not (sakd_dir / "cache").exists()


# --------------------------------------------------------------------------------------- export
def _export_command(run_dir: str, export_dir: Path, *more: str) -> list[str]:
    return ["launchers/export.py", f"--run_dir={run_dir}", f"--export_dir={export_dir}", *more]


def _infer(export_dir: Path, tiny_yt8m, output: Path) -> subprocess.CompletedProcess:
    return _run(
        [
            "launchers/infer.py",
            f"--saved_model={export_dir}",
            f"--input_data_pattern={tiny_yt8m.eval_files[0]}",
            f"--output_file={output}",
            "--noprogress_bar",
        ]
    )


@pytest.mark.slow
def test_sigkill_during_export(tiny_yt8m, teacher_run, tmp_path):
    export_dir = tmp_path / "export"
    partial = tmp_path / "export.partial"
    moments = {
        "started writing": lambda: partial.exists(),
        "graph written": lambda: (partial / "saved_model.pb").exists(),
    }
    for name, moment in moments.items():
        _kill_when(_export_command(teacher_run, export_dir), moment, tmp_path / f"{name}.log")
        assert not export_dir.exists(), name  # nothing at the export's path
    # What a reader given the leftover sees: a refusal on one line, never a prediction.
    result = _infer(partial, tiny_yt8m, tmp_path / "partial.csv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert _last_line(result).startswith("infer.py: error: "), result.stderr[-2000:]
    assert str(partial) in _last_line(result)
    assert not (tmp_path / "partial.csv").exists()
    result = _infer(export_dir, tiny_yt8m, tmp_path / "missing.csv")
    assert (
        _last_line(result) == f"infer.py: error: --saved_model={export_dir} holds no saved_model.pb"
    )

    # The same command again: a complete export (the leftover is cleared), which serves.
    result = _run(_export_command(teacher_run, export_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not partial.exists()
    result = _infer(export_dir, tiny_yt8m, tmp_path / "export.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "export.csv").read_text().splitlines()
    assert rows[0] == "VideoId,LabelConfidencePairs" and len(rows) == 1 + 16
