"""A run directory is never corrupted by a rerun: flags that change what is trained are refused,
naming them, before anything is written; --overwrite_run_dir deletes only a run, safely; what may
change (length, bookkeeping) is recorded in flags_history.json."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import tiny_run_config

from yt8m_kd.configs import FlagError
from yt8m_kd.training import runs
from yt8m_kd.training import strategy as strategy_lib


def _snapshot(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture
def teacher_copy(teacher_run, tmp_path):
    """A copy of the 5-step tiny teacher run (the checkpoint state holds relative paths)."""
    run_dir = tmp_path / "run"
    shutil.copytree(teacher_run, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def one_device():
    return strategy_lib.make_strategy("one_device")


def _teacher(tiny_yt8m, **overrides):
    options = {"max_steps": 5, "checkpoint_every_steps": 5, **overrides}
    return tiny_run_config("tiny_teacher.flags", tiny_yt8m, **options)


@pytest.mark.parametrize(
    "preset, overrides, words",
    [
        ("tiny_student_k6.flags", {}, ["model.k_frames: 0 -> 6"]),
        (
            "tiny_teacher.flags",
            {"cluster_size": 8, "hidden_size": 32, "seed": 3},
            ["model.cluster_size: 16 -> 8", "model.hidden_size: 64 -> 32", "train.seed: 0 -> 3"],
        ),
        (
            "tiny_teacher.flags",
            {"feature_sizes": [32, 48]},
            ["model.feature_sizes: (64, 16) -> (32, 48)"],
        ),
        (
            "tiny_teacher.flags",
            {"teacher_cache": "c"},
            ["distill: off -> on (--teacher_run_dir / --"],
        ),
        (
            "tiny_teacher.flags",
            {"sakd_ratio": 0.5, "teacher_cache": "c", "sakd": True},
            ["sakd: off"],
        ),
    ],
)
def test_other_flags_are_refused_before_anything_is_written(
    preset, overrides, words, teacher_copy, tiny_yt8m, one_device
):
    before = _snapshot(teacher_copy)
    config = tiny_run_config(preset, tiny_yt8m, max_steps=5, **overrides)
    with pytest.raises(FlagError) as error:
        runs.train_or_reuse(config, str(teacher_copy), one_device)
    message = str(error.value)
    assert message.startswith(f"{teacher_copy} holds a run with other flags")
    for word in words:
        assert word in message
    assert "--overwrite_run_dir" in message and "\n" not in message
    assert _snapshot(teacher_copy) == before  # flags.txt, checkpoints: untouched


def test_checkpoints_without_flags_are_refused(teacher_copy, tiny_yt8m, one_device):
    (teacher_copy / "flags.txt").unlink()
    with pytest.raises(FlagError, match="holds checkpoints but no flags.txt"):
        runs.train_or_reuse(_teacher(tiny_yt8m), str(teacher_copy), one_device)


def test_overwrite_deletes_a_run_only(teacher_copy, tiny_yt8m, tmp_path):
    config = _teacher(tiny_yt8m)
    # Not a run directory: left alone.
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FlagError, match="is not a run directory"):
        runs.clear_run_dir(config, str(other))
    assert (other / "keep.txt").read_text() == "mine"
    # A run that holds the run's own data: left alone.
    data = teacher_copy / "data"
    data.mkdir()
    (data / "train-0.tfrecord").write_bytes(b"")
    reading_it = tiny_run_config(
        "tiny_teacher.flags", tiny_yt8m, train_data_pattern=str(data / "train-*.tfrecord")
    )
    with pytest.raises(FlagError, match="which this run reads"):
        runs.clear_run_dir(reading_it, str(teacher_copy))
    assert (teacher_copy / "flags.txt").exists()
    # A run (and a leftover of an interrupted clear beside it): gone.
    (tmp_path / "run.overwritten").mkdir()
    runs.clear_run_dir(config, str(teacher_copy))
    assert not teacher_copy.exists() and not (tmp_path / "run.overwritten").exists()


def test_longer_run_is_recorded_in_the_history(teacher_copy, tiny_yt8m, one_device):
    config = _teacher(tiny_yt8m, max_steps=6, eval_every_steps=3)
    metrics, reused = runs.train_or_reuse(config, str(teacher_copy), one_device)
    assert (metrics["step"], metrics["resumed_from_step"], reused) == (6, 5, False)
    history = json.loads((teacher_copy / "flags_history.json").read_text())["invocations"]
    # The run's creation (the teacher fixture), then this invocation.
    assert [(e["new_run"], e["step"], e["changed"]) for e in history[:1]] == [(True, 0, {})]
    assert len(history) == 2
    entry = history[1]
    assert entry["changed"] == {"max_steps": [5, 6], "eval_every_steps": [0, 3]}
    assert entry["step"] == 5 and entry["new_run"] is False and entry["time"].endswith("+00:00")
    # The same flags again: a finished run, reused, nothing recorded.
    _, reused = runs.train_or_reuse(config, str(teacher_copy), one_device)
    assert reused
    again = json.loads((teacher_copy / "flags_history.json").read_text())["invocations"]
    assert again == history


def test_student_flagfile_on_a_teacher_copy_is_one_line(teacher_copy, tiny_yt8m, launcher):
    """The issue's case: --flagfile=models/tiny_student_k6.flags on a copy of a teacher run."""
    before = _snapshot(teacher_copy)
    result = launcher.run(
        "train.py",
        "--flagfile=models/tiny_student_k6.flags",
        "--max_frames=60",
        "--batch_size=8",
        "--max_steps=5",
        "--noprogress_bar",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={teacher_copy}",
    )
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == (
        f"train.py: error: {teacher_copy} holds a run with other flags "
        f"({teacher_copy}/flags.txt): model.k_frames: 0 -> 6; use another --run_dir, or "
        "--overwrite_run_dir to replace that run"
    )
    assert "Traceback" not in result.stderr
    assert _snapshot(teacher_copy) == before


def test_differences_name_renamed_flags(tiny_yt8m):
    """Fields whose flag has another name say which flag; the loss weights are named one by one."""
    a = tiny_run_config("tiny_distilled_k6.flags", tiny_yt8m, teacher_cache="c1")
    b = tiny_run_config("tiny_distilled_k6.flags", tiny_yt8m, teacher_cache="c2", w_pred=0.5)
    lines = runs.differences(a, b)
    assert len(lines) == 2
    assert lines[0].startswith("distill.teacher_cache_dir: '") and lines[0].endswith(
        "/c2' (--teacher_cache)"
    )
    assert lines[1] == "distill.weights.w_pred: 1.0 -> 0.5"
    # What may change never counts.
    assert runs.differences(a, a.replace(num_epochs=3)) == []


@pytest.mark.slow  # train.py in a subprocess, training 2 steps
def test_overwrite_run_dir_replaces_the_run(teacher_copy, tiny_yt8m, launcher):
    result = launcher.run(
        "train.py",
        "--flagfile=models/tiny_student_k6.flags",
        "--max_frames=60",
        "--batch_size=8",
        "--max_steps=2",
        "--noprogress_bar",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={teacher_copy}",
        "--overwrite_run_dir",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--k_frames=6" in (teacher_copy / "flags.txt").read_text().splitlines()
    assert sorted(p.name for p in (teacher_copy / "checkpoints").glob("*.index")) == [
        "ckpt-2.index"
    ]
    history = json.loads((teacher_copy / "flags_history.json").read_text())["invocations"]
    assert [(e["new_run"], e["step"]) for e in history] == [(True, 0)]
    assert not teacher_copy.with_name("run.overwritten").exists()
