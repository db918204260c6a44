"""Distillation training mode: frozen teacher, teacher cache vs online teacher, projection head."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import mirrored_vs_one_device, tiny_configs

from yt8m_kd.configs import DistillationWeights, DistillConfig
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.distillation import DistillationTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")


def _weights(model):
    return [v.numpy().copy() for v in model.weights]


def _distill(tiny_yt8m, run_dir, distill_config, steps=6, preset="tiny_student_k6.flags", **kw):
    model_config, train_config, data_config = tiny_configs(
        preset, tiny_yt8m, max_steps=steps, checkpoint_every_steps=steps, **kw
    )
    trainer = DistillationTrainer(
        model_config,
        train_config,
        data_config,
        str(run_dir),
        strategy_lib.make_strategy("one_device"),
        distill_config,
    )
    return trainer


def test_teacher_is_frozen_bit_for_bit(tiny_yt8m, teacher_run, tmp_path):
    trainer = _distill(tiny_yt8m, tmp_path, DistillConfig(teacher_run_dir=teacher_run))
    teacher_before = _weights(trainer.teacher)
    student_before = _weights(trainer.model)
    results = trainer.fit()
    assert results["step"] == 6
    # Every teacher variable, batch-norm moving statistics included, is bit-identical.
    for before, after in zip(teacher_before, _weights(trainer.teacher), strict=True):
        np.testing.assert_array_equal(before, after)
    assert any("moving_mean" in v.path for v in trainer.teacher.weights)
    # ... while the student did train.
    moved = [
        not np.array_equal(b, a)
        for b, a in zip(student_before, _weights(trainer.model), strict=True)
    ]
    assert sum(moved) > len(moved) // 2
    # The teacher's variables are not the optimizer's.
    teacher_ids = {id(v) for v in trainer.teacher.weights}
    assert not teacher_ids & {id(v) for v in trainer.trainable_variables}
    for name in ("label_loss", "l_pred", "l_rep", "distill_loss", "loss"):
        assert np.isfinite(results["train"][name])
    assert results["train"]["l_pred"] > 0 and results["train"]["l_rep"] > 0


def test_cache_and_online_teacher_give_the_same_student(
    tiny_yt8m, teacher_run, teacher_cache, tmp_path
):
    online = _distill(tiny_yt8m, tmp_path / "online", DistillConfig(teacher_run_dir=teacher_run))
    online.fit()
    cached = _distill(
        tiny_yt8m, tmp_path / "cached", DistillConfig(teacher_cache_dir=teacher_cache)
    )
    assert cached.teacher is None  # the cache replaces the teacher: it is never built or run
    cached.fit()
    diffs = [
        np.max(np.abs(a - b))
        for a, b in zip(_weights(online.model), _weights(cached.model), strict=True)
    ]
    # Same seeds, deterministic uniform-k selection: the two differ only by float round-off
    # (the online teacher's outputs are recomputed inside the step).
    assert max(diffs) < 1e-5, max(diffs)


def test_projection_feeds_l_rep_when_widths_differ(tiny_yt8m, teacher_run, tmp_path):
    trainer = _distill(
        tiny_yt8m, tmp_path, DistillConfig(teacher_run_dir=teacher_run), hidden_size=32
    )
    assert trainer.projection is not None
    assert tuple(trainer.projection.kernel.shape) == (32, 64)  # student H -> teacher H
    before = trainer.projection.kernel.numpy().copy()
    trainer.fit()
    assert not np.array_equal(before, trainer.projection.kernel.numpy())  # it trains
    # ... it is checkpointed with the run, and it is no part of the student model.
    names = [name for name, _ in tf.train.list_variables(trainer.manager.latest_checkpoint)]
    assert any(name.startswith("projection/") for name in names)
    assert not any("rep_projection" in v.path for v in trainer.model.weights)


def test_no_projection_without_l_rep(tiny_yt8m, teacher_run, tmp_path):
    config = DistillConfig(teacher_run_dir=teacher_run, weights=DistillationWeights(w_rep=0.0))
    trainer = _distill(tiny_yt8m, tmp_path, config, hidden_size=32)
    assert trainer.projection is None


def test_teacher_of_another_class_count_is_refused(tiny_yt8m, teacher_run, tmp_path):
    with pytest.raises(ValueError, match="classes"):
        _distill(tiny_yt8m, tmp_path, DistillConfig(teacher_run_dir=teacher_run), num_classes=16)


@pytest.mark.slow
def test_mirrored_distillation_matches_one_device(tiny_yt8m, teacher_run, tmp_path):
    report = mirrored_vs_one_device(tiny_yt8m.root, 6, tmp_path / "runs", teacher_run)
    assert report["replicas"] == [1, 2]
    assert report["initial_diff"] == 0.0
    assert report["final_diff"] < 1e-4
    assert report["max_update"] > 1e-2
