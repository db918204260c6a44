"""Shared fixtures: tiny synthetic YouTube-8M data made once per session, and a launcher runner."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The size of the data every launcher test reads: 2 shards x 16 videos per split, 32 classes,
# 64 + 16 features per frame, 20 to 60 frames per video.
NUM_CLASSES = 32
FEATURE_SIZES = (64, 16)
MAX_FRAMES = 60


@dataclasses.dataclass(frozen=True)
class TinyData:
    root: Path
    train_files: tuple[str, ...]
    eval_files: tuple[str, ...]

    @property
    def train_pattern(self) -> str:
        return str(self.root / "train-*.tfrecord")

    @property
    def eval_pattern(self) -> str:
        return str(self.root / "validate-*.tfrecord")


@pytest.fixture(scope="session")
def tiny_yt8m(tmp_path_factory) -> TinyData:
    """Synthetic train and validate shards in the tiny preset's format, written once."""
    from yt8m_kd.data.synthetic import write_synthetic_yt8m

    root = tmp_path_factory.mktemp("tiny_yt8m")
    files = {}
    for split in ("train", "validate"):
        files[split] = tuple(
            write_synthetic_yt8m(
                str(root),
                split=split,
                num_shards=2,
                videos_per_shard=16,
                num_classes=NUM_CLASSES,
                feature_sizes=FEATURE_SIZES,
                min_frames=20,
                max_frames=MAX_FRAMES,
                seed=0,
            )
        )
    return TinyData(root, files["train"], files["validate"])


@pytest.fixture(scope="session")
def tiny_train_args() -> list[str]:
    """train.py flags of the tiny teacher preset at test size (add data, run dir and steps)."""
    return [
        "--flagfile=models/tiny_teacher.flags",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--noprogress_bar",
    ]


def run_launcher(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs launchers/<script> with this interpreter from the repository root; never raises on a
    non-zero exit (the tests look at the code and stderr)."""
    return subprocess.run(
        [sys.executable, os.path.join("launchers", script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of every row of the markdown tables in `text` (headers included, the |---|
    separator rows left out), stripped: what a results.md table says, whatever its padding."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not set(line.strip()) <= set("|:- ")
    ]


def has_row(text: str, *cells: str) -> bool:
    """Whether a markdown table row of `text` starts with `cells`."""
    return any(row[: len(cells)] == list(cells) for row in markdown_rows(text))


def last_stderr_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def launcher():
    """`launcher.run(script, *args)` and `launcher.last_stderr_line(result)`."""
    return _Launcher()


class _Launcher:
    repo_root = REPO_ROOT
    run = staticmethod(run_launcher)
    last_stderr_line = staticmethod(last_stderr_line)


# ------------------------------------------------------------------ teacher run and teacher cache
def tiny_run_config(preset: str, tiny_yt8m: TinyData, **overrides):
    """The RunConfig of a models/ preset at the tiny data's size, flags overridden by name."""
    from yt8m_kd import flags as yflags

    return yflags.read_flagfile(
        str(REPO_ROOT / "models" / preset),
        **{
            "train_data_pattern": tiny_yt8m.train_pattern,
            "max_frames": MAX_FRAMES,
            "batch_size": 8,
            "progress_bar": False,
            **overrides,
        },
    )


def tiny_configs(preset: str, tiny_yt8m: TinyData, **overrides):
    """(ModelConfig, TrainConfig, DataConfig) of a models/ preset at the tiny data's size."""
    config = tiny_run_config(preset, tiny_yt8m, **overrides)
    return config.model, config.train, config.data


@pytest.fixture(scope="session")
def teacher_run(tiny_yt8m, tmp_path_factory):
    """A briefly trained tiny teacher run directory (flags.txt + checkpoint)."""
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.runs import train_or_reuse

    run_dir = str(tmp_path_factory.mktemp("teacher"))
    config = tiny_run_config("tiny_teacher.flags", tiny_yt8m, max_steps=5, checkpoint_every_steps=5)
    train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    return run_dir


@pytest.fixture(scope="session")
def teacher_cache(teacher_run, tiny_yt8m, tmp_path_factory):
    """The teacher's outputs over the tiny training set (a teacher cache directory)."""
    from yt8m_kd.distill.teacher_cache import write_teacher_cache
    from yt8m_kd.training.restore import restore_run

    run = restore_run(teacher_run)
    dataset = run.frame_dataset(tiny_yt8m.train_pattern, batch_size=8)
    cache_dir = str(tmp_path_factory.mktemp("cache"))
    write_teacher_cache(
        run.model,
        run.model_config,
        dataset,
        cache_dir,
        metadata={"teacher_run_dir": teacher_run, "data_pattern": tiny_yt8m.train_pattern},
    )
    return cache_dir


def checkpoint_weights(run_dir: str, prefixes: tuple[str, ...] = ("model/",)) -> dict:
    """name -> value of the variables under `prefixes` in a run's latest checkpoint (optimizer
    slots left out)."""
    import tensorflow as tf

    checkpoints = os.path.join(run_dir, "checkpoints")
    reader = tf.train.load_checkpoint(checkpoints)
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(checkpoints)
        if name.startswith(prefixes) and "OPTIMIZER_SLOT" not in name
    }


def run_test_script(name: str, *args: str, timeout: float = 600) -> dict:
    """Runs tests/scripts/<name> in its own process (logical CPUs must be set before TensorFlow
    starts) and returns the JSON report on its last line of stdout."""
    import json

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def mirrored_vs_one_device(data_root, steps: int, out_dir, teacher_run: str | None = None) -> dict:
    """The JSON report of tests/scripts/mirrored_vs_one_device.py."""
    args = [str(data_root), str(steps), str(out_dir)] + ([teacher_run] if teacher_run else [])
    return run_test_script("mirrored_vs_one_device.py", *args, timeout=300)


@pytest.fixture(scope="session")
def distilled_student_run(tiny_yt8m, teacher_cache, tmp_path_factory):
    """A briefly trained random-k (k=6) student run distilled from the teacher cache, with a
    narrower repr than the teacher's, so that its checkpoint also holds a projection head."""
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.runs import train_or_reuse

    run_dir = str(tmp_path_factory.mktemp("distilled_student"))
    config = tiny_run_config(
        "tiny_distilled_k6.flags",
        tiny_yt8m,
        max_steps=4,
        checkpoint_every_steps=4,
        hidden_size=32,
        frame_selection="random",
        teacher_cache=teacher_cache,
    )
    train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    return run_dir


LOAD_SAVED_MODEL = Path(__file__).parent / "scripts" / "load_saved_model.py"


def serve_in_fresh_process(
    export_dir: str, record_files, frames, num_frames, batch_size: int, tmp_path, timeout=300
) -> tuple[dict, dict]:
    """Feeds an export's two signatures in a Python process that does not import yt8m_kd
    (tests/scripts/load_saved_model.py): the records of `record_files`, file after file, and
    `frames` / `num_frames`. Returns (the signatures it found, its outputs as arrays)."""
    import json

    import numpy as np

    frames_npz = tmp_path / "frames.npz"
    np.savez(frames_npz, frames=frames, num_frames=num_frames)
    output_npz = tmp_path / "served.npz"
    result = subprocess.run(
        [
            sys.executable,
            str(LOAD_SAVED_MODEL),
            str(export_dir),
            str(output_npz),
            "--records",
            *[str(f) for f in record_files],
            f"--batch_size={batch_size}",
            f"--frames_npz={frames_npz}",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,  # nothing of the repository on the path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    signatures = json.loads(result.stdout.strip().splitlines()[-1])
    return signatures, dict(np.load(output_npz))
