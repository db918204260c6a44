"""Faults while training and at every entry point: file-system errors, a diverged run, signals.

Every expected fault ends in one `prog: error: ...` line (exit 1) naming what is at fault, or, for
SIGINT/SIGTERM, in one `prog: stopped by ...` line with the signal's exit status (130, 143).
File-system faults use a path under a regular file (`file/sub`), which fails for root too (a
chmod'ed directory does not stop root, and the test suite may run as root).
"""

from __future__ import annotations

import errno
import os
import signal

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_configs

from yt8m_kd import cli, metrics
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.loop import (
    NonFiniteLossError,
    SignalStop,
    Trainer,
    TrainingStopped,
    checkpoint_step,
)


# ---------------------------------------------------------------------------- cli.guarded
def _exit_of(error: BaseException) -> SystemExit:
    """The SystemExit that cli.guarded makes of a main raising `error`."""

    def main(argv):
        raise error

    with pytest.raises(SystemExit) as exit_info:
        cli.guarded(main)(["prog"])
    return exit_info.value


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/runs/a/metrics.json"),
            "/runs/a/metrics.json: No space left on device; free some disk space",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/run"),
            "/ro/run: Permission denied; make it writable",
        ),
        (
            NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/sub/x.csv"),
            "/f/sub/x.csv: Not a directory; the path or a directory above it is a regular file",
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/out"),
            "/out: Is a directory; give the path of a file",
        ),
        (
            tf.errors.FailedPreconditionError(None, None, "/f is not a directory"),
            "/f is not a directory; the path or a directory above it is a regular file",
        ),
        (
            tf.errors.PermissionDeniedError(None, None, "/ro/ckpt-3_temp; Permission denied"),
            "/ro/ckpt-3_temp; Permission denied; make it writable",
        ),
        (
            tf.errors.ResourceExhaustedError(None, None, "/full/events; No space left on device"),
            "/full/events; No space left on device; free some disk space",
        ),
        (
            NonFiniteLossError("non-finite loss at step 3: loss=nan"),
            "non-finite loss at step 3: loss=nan",
        ),
        (metrics.NonFinitePredictionsError("2 of 8 videos"), "2 of 8 videos"),
    ],
)
def test_guarded_turns_file_system_errors_into_one_line(error, expected):
    code = _exit_of(error).code
    assert isinstance(code, str) and "\n" not in code
    assert code.startswith(f"{os.path.basename(os.sys.argv[0])}: error: ")
    assert expected in code


@pytest.mark.parametrize("signal_number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_guarded_exits_with_the_signal_status(signal_number, status, capsys):
    stop = TrainingStopped(signal_number)
    stop.step, stop.checkpoint_step = 37, 37
    assert _exit_of(stop).code == status
    name = signal.Signals(signal_number).name
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            f": stopped by {name} at step 37; checkpoint saved; rerun the same command to resume"
        )
    )


def test_unexpected_errors_still_raise():
    with pytest.raises(KeyError):
        _exit_of(KeyError("a bug keeps its traceback"))


# ---------------------------------------------------------------------------- signals
def test_signal_stop_installs_handlers_only_inside_and_restores_them():
    # What was there before (SIGINT: Python's default_int_handler, or SIG_IGN in a process that
    # a non-interactive shell started in the background).
    before = signal.getsignal(signal.SIGTERM)
    before_int = signal.getsignal(signal.SIGINT)
    stop = SignalStop()
    with stop:
        os.kill(os.getpid(), signal.SIGTERM)  # handled at once: Python runs it before returning
        assert stop.received == signal.SIGTERM
        with pytest.raises(TrainingStopped) as stopped:
            stop.check()
        assert stopped.value.exit_status == 143
        # A second signal during a save is ignored (the save finishes); at other times it stops.
        stop.saving = True
        os.kill(os.getpid(), signal.SIGINT)
        stop.saving = False
        with pytest.raises(TrainingStopped):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is before_int


# ---------------------------------------------------------------------------- metrics
def test_evaluation_refuses_non_finite_scores():
    predictions = np.full((3, 4), 0.5, np.float32)
    predictions[1, 2] = np.nan
    predictions[2, 0] = np.inf
    labels = np.zeros((3, 4), np.int64)
    with pytest.raises(metrics.NonFinitePredictionsError, match="^2 of 3 videos have NaN"):
        metrics.EvaluationAccumulator(4, top_k=2).update(predictions, labels)
    with pytest.raises(metrics.NonFinitePredictionsError, match="^2 of 3 videos"):
        metrics.AccuracyAccumulator(4).update(predictions, np.zeros(3, np.int64))
    with pytest.raises(metrics.NonFinitePredictionsError):
        metrics.global_average_precision(predictions, labels, top_k=2)


# ---------------------------------------------------------------------------- in-process trainer
def _trainer(tiny_yt8m, run_dir, **overrides) -> Trainer:
    configs = tiny_configs("tiny_teacher.flags", tiny_yt8m, log_every_steps=1000, **overrides)
    return Trainer(*configs, str(run_dir), strategy_lib.make_strategy("one_device"))


def _latest_step(trainer: Trainer) -> int | None:
    latest = tf.train.latest_checkpoint(trainer.manager.directory)
    return checkpoint_step(latest) if latest else None


def test_diverged_run_stops_without_saving_its_step(tiny_yt8m, tmp_path):
    # The repro: a learning rate of 1e8 makes the weights non-finite within a few steps.
    trainer = _trainer(
        tiny_yt8m, tmp_path, base_learning_rate=1e8, max_steps=50, checkpoint_every_steps=1
    )
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit()
    message = str(error.value)
    assert "\n" not in message and message.startswith("non-finite ")
    stopped_at = trainer.step
    kept = _latest_step(trainer)
    assert kept is not None and kept < stopped_at
    assert f"the last checkpoint (step {kept}, " in message
    assert f"after step {stopped_at}" in message or f"at step {stopped_at}:" in message
    # The checkpoint left as latest holds finite weights only.
    reader = tf.train.load_checkpoint(trainer.manager.latest_checkpoint)
    for name, _ in tf.train.list_variables(trainer.manager.latest_checkpoint):
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name


def test_faults_in_a_step_keep_the_last_good_checkpoint(tiny_yt8m, tmp_path):
    """One trainer (one traced step), three faults in turn, each fit resuming from the last:
    a bad record at step 4 and Ctrl-C during step 6 save the step they stopped at; a NaN loss at
    step 9 saves nothing, and the error names the step, the terms and the checkpoint kept."""
    trainer = _trainer(tiny_yt8m, tmp_path, max_steps=50, checkpoint_every_steps=1000)
    train_step, fault = trainer._train_step, {}
    sigint_before = signal.getsignal(signal.SIGINT)

    def faulty(iterator, num_steps):
        assert int(num_steps) == 1  # --steps_per_loop=1: the step a fault names is the one run
        step = trainer.step + 1  # the step about to run (each fault happens once)
        if fault.get("bad_record") == step:
            del fault["bad_record"]
            raise tf.errors.InvalidArgumentError(None, None, "bad record")
        if fault.get("sigint") == step:
            del fault["sigint"]
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the step runs: it finishes first
        outputs = dict(train_step(iterator, num_steps))
        if fault.get("nan") == step:  # what a diverged step returns
            outputs["label_loss"] = tf.constant(np.nan)
            outputs["finite"] = tf.constant(False)
        return outputs

    trainer._train_step = faulty
    fault["bad_record"] = 4
    with pytest.raises(tf.errors.InvalidArgumentError):
        trainer.fit()
    assert trainer.step == 3 and _latest_step(trainer) == 3

    fault["sigint"] = 6
    with pytest.raises(TrainingStopped) as stopped:
        trainer.fit()
    assert stopped.value.step == 6 and stopped.value.checkpoint_step == 6
    assert stopped.value.exit_status == 130
    assert _latest_step(trainer) == 6
    assert signal.getsignal(signal.SIGINT) is sigint_before  # restored after fit

    fault["nan"] = 9
    with pytest.raises(NonFiniteLossError) as error:
        trainer.fit()
    message = str(error.value)
    assert message.startswith("non-finite loss at step 9: loss=")
    assert " label_loss=nan " in message and " grad_norm=" in message
    assert "the last checkpoint (step 6, " in message
    assert _latest_step(trainer) == 6  # neither step 9 nor the steps before it since 6


# ---------------------------------------------------------------------------- entry points
@pytest.fixture()
def regular_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a directory\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("where", ["run_dir_is_a_file", "run_dir_under_a_file"])
def test_train_run_dir_that_cannot_be_made(
    where, regular_file, tiny_yt8m, tiny_train_args, launcher
):
    run_dir = regular_file if where == "run_dir_is_a_file" else regular_file / "sub"
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=2",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = launcher.last_stderr_line(result)
    assert line.startswith("train.py: error: ") and str(regular_file) in line
    assert "the path or a directory above it is a regular file" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args",
    [
        ("evaluate.py", ["--run_dir={run}", "--eval_data_pattern={data}", "--output_json={out}"]),
        (
            "infer.py",
            [
                "--run_dir={run}",
                "--input_data_pattern={data}",
                "--output_file={out}",
                "--noprogress_bar",
            ],
        ),
        ("export.py", ["--run_dir={run}", "--export_dir={out}"]),
        (
            "cache_teacher.py",
            [
                "--teacher_run_dir={run}",
                "--data_pattern={data}",
                "--output_dir={out}",
                "--noprogress_bar",
            ],
        ),
        ("plot.py", ["--run_dirs={run}", "--output_dir={out}"]),
    ],
)
def test_outputs_under_a_regular_file(script, args, regular_file, teacher_run, tiny_yt8m, launcher):
    out = regular_file / "sub" / "out"
    values = {"run": teacher_run, "data": tiny_yt8m.eval_pattern, "out": out}
    result = launcher.run(script, *[a.format(**values) for a in args])
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    line = launcher.last_stderr_line(result)
    assert line.startswith(f"{script}: error: ") and str(regular_file) in line, line


def test_ctrl_c_outside_training_is_one_line(capsys):
    assert _exit_of(KeyboardInterrupt()).code == 130
    assert capsys.readouterr().err.strip().endswith(": interrupted by SIGINT")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_is_one_line_naming_the_file():
    """A real ENOSPC from TensorFlow's file layer (what checkpoints, summaries and metrics.json
    are written with): /dev/full accepts no byte, for root too."""

    def main(argv):
        with tf.io.gfile.GFile("/dev/full", "w") as f:
            f.write("{}" * 1000)

    with pytest.raises(SystemExit) as exit_info:
        cli.guarded(main)(["prog"])
    assert exit_info.value.code.endswith(
        "error: /dev/full; No space left on device; free some disk space or write elsewhere"
    )
