"""SAKD training: difficulty passes, selection, epochs over the selected subset, resume."""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_configs

from yt8m_kd.configs import DistillConfig, SAKDConfig
from yt8m_kd.data import yt8m_records
from yt8m_kd.distill import sakd
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.sakd_trainer import SAKDTrainer

BATCH = 8


def _sakd(tiny_yt8m, teacher_cache, run_dir, num_epochs, **sakd):
    configs = tiny_configs("tiny_distilled_k6.flags", tiny_yt8m, checkpoint_every_steps=1000)
    return SAKDTrainer(
        *configs,
        str(run_dir),
        strategy_lib.make_strategy("one_device"),
        DistillConfig(teacher_cache_dir=teacher_cache),
        SAKDConfig(**sakd),
        num_epochs,
    )


def _state(trainer):
    s = trainer.state
    return {
        "difficulty": s.difficulty.numpy().copy(),
        "strength": s.strength.numpy().copy(),
        "selected": s.selected.numpy().copy(),
        "epoch": int(s.epoch.numpy()),
    }


def test_sakd_trains_on_the_selected_subset(tiny_yt8m, teacher_cache, tmp_path):
    trainer = _sakd(tiny_yt8m, teacher_cache, tmp_path, 3, ratio=0.5, selection_interval=2)
    num_samples = trainer.teacher_cache.num_videos  # 32 tiny training videos
    results = trainer.fit()
    # Passes at epochs 0 and 2 (interval 2), each selecting round(0.5 * N) samples.
    passes = [e["difficulty_pass"] for e in results["epochs"] if "difficulty_pass" in e]
    assert [p["epoch"] for p in passes] == [0, 2]
    assert all(p["num_selected"] == round(0.5 * num_samples) for p in passes)
    # beta(0) = 0 drops nothing; beta(2) of 3 epochs (polynomial) = 1 - (1/3)^0.9 >= eta: shuffle
    assert passes[0]["beta"] == 0.0 and passes[0]["interruption"] == "drop"
    assert passes[1]["beta"] == pytest.approx(1 - (1 / 3) ** 0.9)
    assert passes[1]["interruption"] == "shuffle"
    # An epoch is one pass over the selected samples: floor(16 / 8) = 2 steps, 3 epochs.
    assert results["step"] == 3 * (round(0.5 * num_samples) // BATCH)
    state = _state(trainer)
    assert state["selected"].sum() == round(0.5 * num_samples) and state["epoch"] == 3
    assert ((0 <= state["strength"]) & (state["strength"] <= 1)).all()
    # The selection's ids are in the run directory, and they are the selected cache rows.
    ids = (tmp_path / "sakd" / "selection_epoch0002.txt").read_text().split()
    rows = trainer.teacher_cache.rows(tf.constant(ids)).numpy()
    assert sorted(rows) == sorted(np.flatnonzero(state["selected"]))
    summary = json.loads((tmp_path / "sakd" / "selection_epoch0002.json").read_text())
    assert sum(summary["selected_per_class"]) >= summary["num_selected"]  # >= 1 label each
    timing = results["sakd"]
    assert timing["epochs"] == 3 and timing["difficulty_pass_seconds"] > 0
    # The per-selection record caches are gone once training ends.
    assert not (tmp_path / "sakd" / "cache").exists()


def test_class_balance_keeps_each_class_within_its_share(tiny_yt8m, teacher_cache, tmp_path):
    """--sakd_class_balance: a selection's count of every class stays within ceil(share of the
    data x picks) (32 videos, one chunk); counts of the whole set from a ratio-1 selection."""
    whole = _sakd(tiny_yt8m, teacher_cache, tmp_path / "all", 1, ratio=1.0).difficulty_pass(0)
    frequency = np.asarray(whole["selected_per_class"]) / whole["num_selected"]
    balanced = _sakd(
        tiny_yt8m, teacher_cache, tmp_path / "balanced", 1, ratio=0.25, class_balance=True
    ).difficulty_pass(0)
    assert balanced["num_selected"] == 8
    counts = np.asarray(balanced["selected_per_class"])
    assert np.all(counts <= np.ceil(8 * frequency - 1e-9)), (counts, frequency)
    assert counts.sum() >= 8  # at least one label per video


def test_epochs_of_a_selection_read_its_cache(tiny_yt8m, teacher_cache, tmp_path):
    trainer = _sakd(tiny_yt8m, teacher_cache, tmp_path, 2, ratio=0.25, selection_interval=2)
    trainer.difficulty_pass(0)
    iterator = iter(trainer._train_dataset(0))
    for _ in range(3):  # 8 selected samples, batches of 8: the first pass, then from the cache
        next(iterator)
    cached = tf.io.gfile.glob(str(tmp_path / "sakd" / "cache" / "*_pipeline0*"))
    assert any(path.endswith(".index") for path in cached)
    # A new iterator (a new selection, or a resumed run) starts a new cache, the old one removed.
    # The old iterator is dropped first, as `train` does: one still prefetching would find its
    # cache gone at its next pass and write it again under the same name.
    del iterator
    trainer._train_dataset(0)
    assert not set(cached) & set(tf.io.gfile.glob(str(tmp_path / "sakd" / "cache" / "*")))


@pytest.mark.parametrize("num_epochs, interval", [(3, 1), (1, 5)])
def test_a_selection_of_one_epoch_writes_no_cache(
    tiny_yt8m, teacher_cache, tmp_path, num_epochs, interval
):
    """Re-selection every epoch, or a selection's last epoch: nothing would read the cache."""
    trainer = _sakd(
        tiny_yt8m, teacher_cache, tmp_path, num_epochs, ratio=0.25, selection_interval=interval
    )
    trainer.difficulty_pass(0)
    iterator = iter(trainer._train_dataset(0))
    for _ in range(3):
        next(iterator)
    assert not tf.io.gfile.glob(str(tmp_path / "sakd" / "cache" / "*"))


def test_training_batches_hold_only_selected_samples(tiny_yt8m, teacher_cache, tmp_path):
    trainer = _sakd(tiny_yt8m, teacher_cache, tmp_path, 1, ratio=0.25)
    trainer.difficulty_pass(0)
    selected = set(np.flatnonzero(trainer.state.selected.numpy()))
    assert len(selected) == 8
    dataset = trainer._train_dataset(0)
    seen = set()
    for _, batch in zip(range(6), dataset, strict=False):
        seen |= set(batch["index"].numpy().tolist())
    assert seen == selected


@pytest.mark.parametrize("selection", ["uniform", "random"])
def test_difficulty_pass_equals_interrupting_all_frames_in_the_step(
    tiny_yt8m, teacher_cache, tmp_path, selection
):
    """The pass gathers the student's k frames of the interrupted video in tf.data; its
    difficulties equal the way before it: every frame dequantized and interrupted in the step,
    then the student's k selected (same seeds), for a drop epoch and a shuffle epoch."""
    configs = tiny_configs(
        "tiny_distilled_k6.flags", tiny_yt8m, checkpoint_every_steps=1000, frame_selection=selection
    )
    trainer = SAKDTrainer(
        *configs,
        str(tmp_path),
        strategy_lib.make_strategy("one_device"),
        DistillConfig(teacher_cache_dir=teacher_cache),
        SAKDConfig(ratio=0.5),
        4,
    )
    cfg = trainer.sakd_config
    for epoch in (1, 3):  # beta 0.23: drop; beta 0.71: shuffle
        beta = sakd.interruption_rate(epoch, 4, cfg.schedule, cfg.power)
        trainer.difficulty_pass(epoch)
        expected = np.zeros(trainer.teacher_cache.num_videos, np.float32)
        for number, batch in enumerate(trainer._pass_frames()):
            seed = tf.constant([trainer.config.seed * 1000 + epoch, number], tf.int64)
            frames = sakd.temporal_interruption(
                yt8m_records.dequantize(batch["frames"]), batch["num_frames"], beta, seed
            )
            inputs = {"frames": frames, "num_frames": batch["num_frames"]}
            student = trainer.model(
                model_inputs(inputs, trainer.model_config, seed), training=False
            )
            losses = trainer._per_sample_losses(batch, student, batch["teacher_logits"])
            expected[batch["index"].numpy()] = losses["distill_loss"].numpy()
        np.testing.assert_allclose(trainer.state.difficulty.numpy(), expected, rtol=1e-5)


def test_strength_follows_the_paper_update(tiny_yt8m, teacher_cache, tmp_path):
    trainer = _sakd(tiny_yt8m, teacher_cache, tmp_path, 2, ratio=0.5, memory=0.1)
    trainer.state.strength.assign(np.full([32], 0.5, np.float32))
    trainer.difficulty_pass(0)
    d = trainer.state.difficulty.numpy()
    d_hat = (d - d.min()) / (d.max() - d.min())
    # alpha = lambda * alpha_old + (1 - lambda) * (1 - d_hat), docs/sakd.md spec 2
    np.testing.assert_allclose(
        trainer.state.strength.numpy(), 0.1 * 0.5 + 0.9 * (1 - d_hat), rtol=1e-5, atol=1e-6
    )


def test_resume_restores_the_sakd_state(tiny_yt8m, teacher_cache, tmp_path):
    first = _sakd(tiny_yt8m, teacher_cache, tmp_path, 2, ratio=0.5, selection_interval=2)
    first.fit()
    saved = _state(first)
    assert saved["epoch"] == 2 and saved["difficulty"].any()
    # A new process on the same run directory, asked for more epochs.
    again = _sakd(tiny_yt8m, teacher_cache, tmp_path, 4, ratio=0.5, selection_interval=2)
    again.restore()
    restored = _state(again)
    for name in ("difficulty", "strength", "selected"):
        np.testing.assert_array_equal(restored[name], saved[name])
    assert restored["epoch"] == 2
    results = again.fit()
    # It goes on at epoch 2 (a new pass, as 2 % 2 == 0) rather than starting over.
    assert [e["epoch"] for e in results["epochs"]] == [2, 3]
    assert results["epochs"][0]["difficulty_pass"]["epoch"] == 2


def test_sakd_needs_a_teacher_cache(tiny_yt8m, teacher_run, tmp_path):
    configs = tiny_configs("tiny_distilled_k6.flags", tiny_yt8m)
    with pytest.raises(ValueError, match="teacher cache"):
        SAKDTrainer(
            *configs,
            str(tmp_path),
            strategy_lib.make_strategy("one_device"),
            DistillConfig(teacher_run_dir=teacher_run),
            SAKDConfig(),
            2,
        )
