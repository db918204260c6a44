"""An ensemble of teachers in one teacher cache (launchers/cache_teacher.py with several
--teacher_run_dir runs): the stored logits are exactly those of the averaged probabilities, the
repr the mean, a student trains from it, and teachers or plans that do not fit are refused."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_run_config
from test_cache_shards import NUM_CLASSES, _cache_args, _rows, _shard

from yt8m_kd import flags as yflags
from yt8m_kd.distill import ensemble

# Probabilities are compared in float64 from float32 logits: a stored logit z is one float32
# rounding away from the exact log-odds, so sigmoid(z) is within ~|z| * 2^-24 * p(1-p) of p.
PROBABILITY_TOLERANCE = 1e-6


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------ combining
def _teacher_logits(seed: int) -> list[np.ndarray]:
    """Three teachers' float32 logits [4, 6], with confident classes where a float32 p is 0 or 1."""
    rng = np.random.default_rng(seed)
    logits = [rng.normal(0.0, 4.0, (4, 6)).astype(np.float32) for _ in range(3)]
    logits[0][0, :3] = [60.0, -60.0, 1e30]  # sigmoid rounds to 1 and 0 in float32
    logits[1][0, :3] = [70.0, -80.0, 1e30]
    logits[2][0, :3] = [40.0, -90.0, 3e38]
    return logits


def test_multi_label_logits_are_the_log_odds_of_the_mean_sigmoid():
    logits = _teacher_logits(0)
    stored = ensemble.combine_logits(logits, single_label=False).numpy()
    assert stored.dtype == np.float32 and np.all(np.isfinite(stored))
    want = np.mean([_sigmoid(z) for z in logits], axis=0)
    np.testing.assert_allclose(_sigmoid(stored), want, rtol=0, atol=PROBABILITY_TOLERANCE)
    # Where the mean rounds to 0 or 1 in float32 the log-odds are still exact:
    # p = 1 - mean_t exp(-z_t) near 1, so -log(1 - p) = -log(mean_t exp(-z_t)).
    np.testing.assert_allclose(stored[0, 0], -np.log(np.mean(np.exp(-np.float64([60, 70, 40])))))
    np.testing.assert_allclose(stored[0, 1], np.log(np.mean(np.exp(np.float64([-60, -80, -90])))))
    # One teacher: its own logits back.
    np.testing.assert_allclose(
        ensemble.combine_logits(logits[1:2], single_label=False).numpy(), logits[1], rtol=1e-6
    )


def test_single_label_logits_are_the_log_of_the_mean_softmax():
    logits = _teacher_logits(1)
    stored = ensemble.combine_logits(logits, single_label=True).numpy()
    assert stored.dtype == np.float32 and np.all(np.isfinite(stored))
    want = np.mean([_softmax(z) for z in logits], axis=0)
    np.testing.assert_allclose(_softmax(stored), want, rtol=0, atol=PROBABILITY_TOLERANCE)
    # log p itself, not only up to a constant: softmax(log p) = p because the p sum to 1.
    np.testing.assert_allclose(np.exp(stored.astype(np.float64)).sum(axis=-1), 1.0, rtol=1e-6)


def test_infinite_teacher_logits_give_finite_stored_logits():
    infinite = [np.full((1, 2), np.inf, np.float32), np.full((1, 2), np.inf, np.float32)]
    stored = ensemble.combine_logits(infinite, single_label=False).numpy()
    np.testing.assert_array_equal(stored, np.finfo(np.float32).max)


def test_reprs_are_averaged_when_widths_agree_else_the_first():
    rng = np.random.default_rng(2)
    reprs = [rng.normal(size=(3, 5)).astype(np.float32) for _ in range(2)]
    assert ensemble.repr_mode([5, 5]) == "mean" and ensemble.repr_mode([5, 8]) == "first"
    np.testing.assert_allclose(
        ensemble.combine_reprs(reprs, "mean").numpy(), (reprs[0] + reprs[1]) / 2, rtol=1e-6
    )
    wider = rng.normal(size=(3, 8)).astype(np.float32)
    np.testing.assert_array_equal(ensemble.combine_reprs([reprs[0], wider], "first"), reprs[0])


@pytest.mark.parametrize(
    "field, change, shown",
    [
        ("num_classes", {"model": {"num_classes": 10}}, "num_classes=32, b has num_classes=10"),
        ("feature_sizes", {"model": {"feature_sizes": (64, 8)}}, "feature_sizes=64,16, b has"),
        ("max_frames", {"data": {"max_frames": 30}}, "max_frames=60, b has max_frames=30"),
    ],
)
def test_teachers_that_read_other_data_are_refused(field, change, shown, tiny_yt8m):
    first = tiny_run_config("tiny_teacher.flags", tiny_yt8m)
    other = first.replace(
        **{
            section: dataclasses.replace(getattr(first, section), **values)
            for section, values in change.items()
        }
    )
    ensemble.check_teachers([("a", first), ("a2", first)])  # the same: accepted
    with pytest.raises(ValueError) as error:
        ensemble.check_teachers([("a", first), ("b", other)])
    message = str(error.value)
    assert "\n" not in message
    assert f"must agree on {field}: a has {field}=" in message and shown in message


# ------------------------------------------------------------------------- the launcher
@pytest.fixture(scope="module")
def second_teacher(tiny_yt8m, tmp_path_factory) -> str:
    """Another tiny teacher: other seed, so other outputs."""
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.runs import train_or_reuse

    run_dir = str(tmp_path_factory.mktemp("teacher2"))
    config = tiny_run_config(
        "tiny_teacher.flags", tiny_yt8m, max_steps=3, checkpoint_every_steps=3, seed=1
    )
    train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    return run_dir


def _cache(launcher, teacher_runs: str, pattern: str, output_dir: str, *extra):
    result = launcher.run(
        "cache_teacher.py", *_cache_args(teacher_runs, pattern, output_dir, *extra)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def caches(teacher_run, second_teacher, tiny_yt8m, launcher, tmp_path_factory) -> dict:
    """Each teacher's own cache, and their ensemble's built by two shards, with a rerun of
    another ensemble between them (refused)."""
    root = tmp_path_factory.mktemp("ensemble")
    pattern = tiny_yt8m.train_pattern
    both = f"{teacher_run},{second_teacher}"
    out = {name: str(root / name) for name in ("t1", "t2", "ensemble")}
    _cache(launcher, teacher_run, pattern, out["t1"])
    _cache(launcher, second_teacher, pattern, out["t2"])
    _shard(launcher, both, pattern, out["ensemble"], 0, 2)
    # Another ensemble with the same first teacher: only the list of runs differs.
    refused = _shard(launcher, f"{teacher_run},{teacher_run}", pattern, out["ensemble"], 1, 2)
    last = _shard(launcher, both, pattern, out["ensemble"], 1, 2)
    assert last.returncode == 0, last.stderr[-3000:]
    return {**out, "refused": refused, "both": both}


@pytest.mark.slow  # four launcher processes and a teacher trained
def test_ensemble_cache_holds_the_exact_combination(caches, teacher_run, second_teacher):
    one, two, both = _rows(caches["t1"]), _rows(caches["t2"]), _rows(caches["ensemble"])
    np.testing.assert_array_equal(both["video_id"], one["video_id"])
    np.testing.assert_array_equal(two["video_id"], one["video_id"])
    assert len(both["video_id"]) == 32
    want = (_sigmoid(one["logits"]) + _sigmoid(two["logits"])) / 2
    got = _sigmoid(both["logits"])
    difference = np.abs(got - want).max()
    print(f"max |sigmoid(stored) - mean sigmoid| = {difference:.3g}")
    assert difference < PROBABILITY_TOLERANCE
    assert np.abs(one["logits"] - two["logits"]).max() > 0.01  # two different teachers
    want_repr = (one["repr"].astype(np.float64) + two["repr"]) / 2
    repr_difference = np.abs(both["repr"] - want_repr).max()
    print(f"max |repr - mean repr| = {repr_difference:.3g}")
    np.testing.assert_allclose(both["repr"], want_repr, rtol=1e-6, atol=1e-7)

    with open(os.path.join(caches["ensemble"], "teacher_cache.json")) as f:
        metadata = json.load(f)
    runs = [os.path.abspath(teacher_run), os.path.abspath(second_teacher)]
    assert metadata["teacher_run_dir"] == runs[0]  # existing readers see the first teacher
    assert metadata["teacher_run_dirs"] == runs
    assert [os.path.dirname(c) for c in metadata["checkpoints"]] == [
        os.path.join(run, "checkpoints") for run in runs
    ]
    assert metadata["checkpoint"] == metadata["checkpoints"][0]
    assert metadata["ensemble"]["num_teachers"] == 2
    assert metadata["ensemble"]["probabilities"] == "sigmoid"
    assert metadata["ensemble"]["repr"] == "mean"
    assert metadata["num_classes"] == NUM_CLASSES and metadata["num_videos"] == 32
    assert len(metadata["teacher_model_configs"]) == 2
    # One teacher: today's json, without the ensemble's keys.
    with open(os.path.join(caches["t1"], "teacher_cache.json")) as f:
        assert not {"teacher_run_dirs", "checkpoints", "ensemble"} & set(json.load(f))


@pytest.mark.slow  # the caches fixture
def test_another_ensemble_is_refused_by_the_plan(caches, launcher, teacher_run, second_teacher):
    refused = caches["refused"]
    assert refused.returncode == 1
    line = launcher.last_stderr_line(refused)
    assert line.startswith("cache_teacher.py: error: --output_dir=")
    runs = [os.path.abspath(teacher_run), os.path.abspath(second_teacher)]
    assert (
        "holds a teacher cache planned with another ensemble of teacher runs (--teacher_run_dir): "
        f"{runs!r} there, {[runs[0], runs[0]]!r} now (teacher_plan.json)"
    ) in line
    assert "Traceback" not in refused.stderr


@pytest.mark.slow  # the caches fixture and a student trained
def test_a_student_distills_from_an_ensemble_cache(caches, tiny_yt8m, tmp_path):
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.runs import train_or_reuse

    config = tiny_run_config(
        "tiny_distilled_k6.flags",
        tiny_yt8m,
        max_steps=3,
        checkpoint_every_steps=3,
        teacher_cache=caches["ensemble"],
    )
    metrics, reused = train_or_reuse(
        config, str(tmp_path), strategy_lib.make_strategy("one_device")
    )
    assert not reused and metrics["step"] == 3
    for name in ("label_loss", "l_pred", "l_rep", "loss"):
        assert np.isfinite(metrics["train"][name])
    assert metrics["train"]["l_pred"] > 0
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))


def test_teachers_of_other_class_counts_are_refused_in_one_line(
    teacher_run, tiny_yt8m, launcher, tmp_path
):
    # A run directory whose flags.txt says 10 classes: refused before any model is built.
    other = tmp_path / "teacher10"
    other.mkdir()
    flags_txt = open(os.path.join(teacher_run, yflags.FLAGS_FILE)).read()
    assert f"--num_classes={NUM_CLASSES}\n" in flags_txt
    (other / yflags.FLAGS_FILE).write_text(
        flags_txt.replace(f"--num_classes={NUM_CLASSES}\n", "--num_classes=10\n")
    )
    result = launcher.run(
        "cache_teacher.py",
        *_cache_args(f"{teacher_run},{other}", tiny_yt8m.train_pattern, str(tmp_path / "c")),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert launcher.last_stderr_line(result) == (
        "cache_teacher.py: error: --teacher_run_dir: the teachers of an ensemble must agree on "
        f"num_classes: {teacher_run} has num_classes={NUM_CLASSES}, {other} has num_classes=10"
    )
    assert not os.path.exists(tmp_path / "c")
    shutil.rmtree(other)


def test_one_checkpoint_for_two_teachers_is_refused_in_one_line(
    teacher_run, tiny_yt8m, launcher, tmp_path
):
    result = launcher.run(
        "cache_teacher.py",
        *_cache_args(
            f"{teacher_run},{teacher_run}",
            tiny_yt8m.train_pattern,
            str(tmp_path / "c"),
            "--checkpoint=ckpt-5",
        ),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert launcher.last_stderr_line(result) == (
        "cache_teacher.py: error: --checkpoint=ckpt-5: 1 checkpoint for 2 teacher runs "
        f"(--teacher_run_dir={teacher_run},{teacher_run}): give one per run, comma-separated (an "
        "empty item: that run's latest), or none"
    )
    assert not os.path.exists(tmp_path / "c")
