"""launchers/train.py and launchers/evaluate.py end to end, as subprocesses on tiny data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd import flags as yflags

TRAIN_SCALARS = {"loss", "learning_rate", "examples_per_sec"}
EVAL_SCALARS = {"gap", "map", "hit_at_one", "perr"}
EVAL_METRICS = ("gap", "map", "hit_at_one", "perr")


# ------------------------------------------------------------------------------------ bad flags
# case -> (flags added to a valid command line, whether --run_dir is given, words of the error)
BAD_FLAGS = {
    "k_frames_above_max_frames": (["--k_frames=61"], True, ["--k_frames=61", "--max_frames=60"]),
    "train_pattern_matches_nothing": (
        ["--train_data_pattern={root}/nothing-*.tfrecord"],
        True,
        ["--train_data_pattern=", "nothing-*.tfrecord", "matches no file"],
    ),
    "missing_run_dir": ([], False, ["--run_dir is required"]),
    "nan_learning_rate": (
        ["--base_learning_rate=nan"],
        True,
        ["flag --base_learning_rate=nan: must be a finite number"],
    ),
    "feature_names_sizes_mismatch": (
        ["--feature_sizes=64"],
        True,
        ["--feature_names", "--feature_sizes"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags_fail_at_start_with_one_line(
    case, tiny_yt8m, tiny_train_args, launcher, tmp_path
):
    extra, with_run_dir, words = BAD_FLAGS[case]
    run_dir = tmp_path / "run"
    args = [*tiny_train_args, f"--train_data_pattern={tiny_yt8m.train_pattern}", "--max_steps=2"]
    if with_run_dir:
        args.append(f"--run_dir={run_dir}")
    args += [flag.format(root=tiny_yt8m.root) for flag in extra]
    result = launcher.run("train.py", *args)

    assert result.returncode != 0
    line = launcher.last_stderr_line(result)
    assert line.startswith("train.py: error: "), result.stderr[-2000:]
    for word in words:
        assert word in line
    assert "Traceback" not in result.stderr
    # Failed before any work: no trainer, no run directory, nothing on stdout.
    assert "Training in" not in result.stderr
    assert not run_dir.exists()
    assert result.stdout.strip() == ""


def test_unknown_strategy_fails_at_start(tiny_yt8m, tiny_train_args, launcher, tmp_path):
    run_dir = tmp_path / "run"
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=2",
        "--strategy=bogus",
    )
    assert result.returncode != 0
    # absl's own enum check, before main(): "FATAL Flags parsing error: flag --strategy=bogus: value
    # should be one of <one_device|mirrored|multi_worker>".
    error_lines = [line for line in result.stderr.splitlines() if "--strategy" in line]
    assert error_lines, result.stderr[-2000:]
    assert "bogus" in error_lines[0] and "one_device" in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


# ------------------------------------------------------------------------------------ a short run
def _scalars(event_dir: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value} of every TensorBoard event file in event_dir (TF2 writes tensors)."""
    values: dict[str, dict[int, float]] = {}
    files = sorted(event_dir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {event_dir}"
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                values.setdefault(value.tag, {})[event.step] = number
    return values


@pytest.fixture(scope="module")
def short_run(tiny_yt8m, tiny_train_args, launcher, tmp_path_factory):
    """One train.py run of 6 steps with checkpoints every 3 steps and a final evaluation."""
    run_dir = tmp_path_factory.mktemp("short_run") / "run"
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=6",
        "--checkpoint_every_steps=3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_short_run_leaves_a_complete_run_directory(short_run):
    run_dir, result = short_run

    # flags.txt re-parses to the flags of the run.
    run_config = yflags.read_run_config(str(run_dir))
    assert run_config.train.max_steps == 6
    assert run_config.train.batch_size == 8
    assert run_config.data.max_frames == 60
    assert run_config.train.checkpoint_every_steps == 3
    assert f"--run_dir={run_dir}" in (run_dir / "flags.txt").read_text().splitlines()

    # Checkpoints at the 3rd and 6th step, the latest being the 6th.
    checkpoints = run_dir / "checkpoints"
    for step in (3, 6):
        assert (checkpoints / f"ckpt-{step}.index").exists()
    assert tf.train.latest_checkpoint(str(checkpoints)) == str(checkpoints / "ckpt-6")

    # TensorBoard scalars: training at the last step, evaluation at the last step.
    train = _scalars(run_dir / "train")
    assert TRAIN_SCALARS <= set(train)
    assert 6 in train["loss"] and np.isfinite(train["loss"][6]) and train["loss"][6] > 0
    assert train["learning_rate"][6] == pytest.approx(1e-3)  # the preset's, no decay yet
    assert train["examples_per_sec"][6] > 0
    evaluation = _scalars(run_dir / "eval")
    assert EVAL_SCALARS <= set(evaluation)
    for name in EVAL_SCALARS:
        assert 0.0 <= evaluation[name][6] <= 1.0

    # metrics.json: the final evaluation, step, bad-record counts; stdout prints the same.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 6
    assert metrics["resumed_from_step"] == 0
    assert metrics["train"]["steps"] == 6
    for name in EVAL_METRICS:
        assert 0.0 <= metrics["eval"][name] <= 1.0
        assert evaluation[name][6] == pytest.approx(metrics["eval"][name], abs=1e-6)
    assert metrics["eval"]["num_videos"] == 32
    assert metrics["bad_records"]["total"] == 0
    assert set(metrics["bad_records"]) >= {"corrupt_file", "label_out_of_range", "total"}
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["step"] == 6
    assert printed["eval"]["gap"] == pytest.approx(metrics["eval"]["gap"], abs=1e-9)


def test_evaluate_reproduces_the_training_evaluation(short_run, launcher):
    run_dir, _ = short_run
    result = launcher.run("evaluate.py", f"--run_dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]

    printed = json.loads(result.stdout.strip().splitlines()[-1])
    written = json.loads((run_dir / "eval_metrics.json").read_text())
    assert printed == written
    assert printed["checkpoint"] == str(run_dir / "checkpoints" / "ckpt-6")
    assert printed["bad_records"]["total"] == 0
    assert printed["eval"]["num_videos"] == 32
    # The same checkpoint on the same records: the metrics the training run wrote.
    trained = json.loads((run_dir / "metrics.json").read_text())["eval"]
    for name in EVAL_METRICS:
        assert printed["eval"][name] == pytest.approx(trained[name], abs=1e-6), name


def test_checkpoint_holds_every_model_weight(short_run):
    """Every weight of the model (both NeXtVLAD branches and their batch-norm statistics
    included) is restored from the run's checkpoint by a model-only tf.train.Checkpoint, as
    evaluate.py restores it."""
    import keras

    from yt8m_kd.modeling import build_video_model

    run_dir, _ = short_run
    config = yflags.read_run_config(str(run_dir)).model
    checkpoint = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    models = []
    for seed in (1, 2):  # two different random initialisations
        keras.utils.set_random_seed(seed)
        model = build_video_model(config)
        tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
        models.append(model)
    differ = [
        a.path
        for a, b in zip(models[0].weights, models[1].weights, strict=True)
        if not np.array_equal(a.numpy(), b.numpy())
    ]
    # Batch-norm moving means start at zero and move during training: restored, they are not 0.
    still_zero = [
        w.path for w in models[0].weights if "moving_mean" in w.path and not np.any(w.numpy())
    ]
    assert differ == [] and still_zero == [], (
        f"weights left at their random initialisation: {differ}; "
        f"moving means left at zero: {still_zero}"
    )


def test_second_run_resumes_from_the_latest_checkpoint(
    short_run, tiny_yt8m, tiny_train_args, launcher, tmp_path
):
    source, _ = short_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)  # the checkpoint state file holds relative paths
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=9",
        "--checkpoint_every_steps=3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming at step 6" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 6
    assert metrics["step"] == 9
    assert metrics["train"]["steps"] == 3
    checkpoints = run_dir / "checkpoints"
    assert tf.train.latest_checkpoint(str(checkpoints)) == str(checkpoints / "ckpt-9")
    assert yflags.read_run_config(str(run_dir)).train.max_steps == 9
    # The resumed run logs its own steps after the first run's.
    assert 9 in _scalars(run_dir / "train")["loss"]
