"""Pieces of the training step: the reference loss, the learning-rate schedule, frame selection,
and the distributed step's clipping and replica scaling."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_test_script, tiny_configs

from yt8m_kd.configs import DistillConfig, ModelConfig, SAKDConfig, TrainConfig
from yt8m_kd.data import videos
from yt8m_kd.distill import losses
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.loop import learning_rate_schedule
from yt8m_kd.training.sakd_trainer import SAKDTrainer

SCRIPTS = Path(__file__).parent / "scripts"


def test_sigmoid_cross_entropy_is_summed_over_classes():
    logits = np.array([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]], np.float32)
    labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    p = 1 / (1 + np.exp(-logits))
    # docs/yt8m-format-and-metrics.md, CrossEntropyLoss (eps = 0): sum over classes.
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p)).sum(axis=1)
    got = losses.sigmoid_cross_entropy(labels, logits).numpy()
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # First row by hand: -log(s(2)) - log(1 - s(-1)) - log(s(0)) = 0.1269 + 0.3133 + 0.6931
    np.testing.assert_allclose(got[0], 1.13334, atol=1e-4)


def test_learning_rate_is_a_staircase_in_examples():
    config = TrainConfig(
        batch_size=80,
        base_learning_rate=2e-4,
        learning_rate_decay=0.8,
        learning_rate_decay_examples=2_000_000,
    )
    schedule = learning_rate_schedule(config)
    # 2,000,000 examples at 80 per step = 25,000 steps per decay.
    assert float(schedule(0)) == np.float32(2e-4)
    np.testing.assert_allclose(float(schedule(24_999)), 2e-4, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(25_000)), 2e-4 * 0.8, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(60_000)), 2e-4 * 0.8**2, rtol=1e-6)


def test_model_inputs_select_k_frames_for_students_only():
    frames = tf.reshape(tf.range(2 * 10 * 3, dtype=tf.int32), (2, 10, 3))
    frames = tf.cast(frames % 256, tf.uint8)
    batch = {"frames": frames, "num_frames": tf.constant([10, 4], tf.int32)}
    teacher = model_inputs(batch, ModelConfig(k_frames=0))
    assert teacher["frames"].shape == (2, 10, 3)
    student = model_inputs(batch, ModelConfig(k_frames=5, frame_selection="first"))
    assert student["frames"].shape == (2, 5, 3)
    np.testing.assert_array_equal(student["num_frames"].numpy(), [5, 4])
    np.testing.assert_array_equal(student["frames"][0].numpy(), frames[0, :5].numpy())
    # The 4-frame video keeps its 4 frames and is padded, never repeated.
    np.testing.assert_array_equal(student["frames"][1, :4].numpy(), frames[1, :4].numpy())
    assert not student["frames"][1, 4].numpy().any()


@pytest.mark.slow
def test_mirrored_step_clips_the_global_gradient_and_divides_by_replicas(tiny_yt8m, tmp_path):
    """One step on 2 logical CPUs (SGD, clipping active) equals the update computed by hand on the
    whole batch: w - lr * g * clip / |g|, g the gradient of the batch-mean loss. A clip of each
    replica's share, or a missing 1/num_replicas before Keras's own sum over replicas, would give
    another norm or twice the update."""
    report = run_test_script("clipped_update.py", str(tiny_yt8m.root), str(tmp_path))
    assert report["replicas"] == 2
    # The norm the step clips by is the global one (the sum over replicas), not a replica's.
    np.testing.assert_allclose(report["step_grad_norm"], report["hand_grad_norm"], rtol=1e-5)
    assert report["hand_grad_norm"] > 0.05 * 10  # the clip (0.05) is active
    assert report["max_weight_diff"] < 0.01 * report["max_update"], report


def test_sakd_loss_gives_each_sample_its_own_strength(tiny_yt8m, teacher_cache, tmp_path):
    """(1 - alpha_i) L_label_i + alpha_i L_distill_i with alpha_i looked up by the sample's cache
    row (docs/sakd.md, spec 2), not by its position in the batch."""
    configs = tiny_configs("tiny_distilled_k6.flags", tiny_yt8m, drop_rate=0.0)
    trainer = SAKDTrainer(
        *configs,
        str(tmp_path),
        strategy_lib.make_strategy("one_device"),
        DistillConfig(teacher_cache_dir=teacher_cache),
        SAKDConfig(),
        num_epochs=1,
    )
    rows = trainer.teacher_cache.num_videos
    strength = (np.arange(rows) % 5 / 4).astype(np.float32)  # 0, 0.25, ..., 1 by row
    trainer.state.strength.assign(strength)
    data = trainer.data_config
    batch = next(
        iter(
            trainer._join(
                videos.read_videos(
                    data,
                    trainer.model_config,
                    data.train_data_pattern,
                    batch_size=8,
                    training=True,
                    shuffle=True,
                    seed=3,
                )
            )
        )
    )
    index = batch["index"].numpy()
    assert not np.array_equal(strength[index], strength[: len(index)])  # rows != positions
    seed = tf.constant([1, 2], tf.int64)
    values = trainer._losses(batch, seed)

    # By hand from the same forward pass (no dropout; batch norm on the same batch).
    student = trainer.model(model_inputs(batch, trainer.model_config, seed), training=True)
    per_sample = trainer._per_sample_losses(batch, student, batch["teacher_logits"])
    label, distill = per_sample["label_loss"].numpy(), per_sample["distill_loss"].numpy()
    assert np.all(distill > 0) and np.all(label > 0)
    alpha = strength[index]
    expected = np.mean((1 - alpha) * label + alpha * distill) + float(values["regularization_loss"])
    np.testing.assert_allclose(float(values["loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(values["mean_strength"]), alpha.mean(), rtol=1e-6)
    # The loss of the batch's positions' strengths differs: the lookup is what is tested.
    wrong = strength[: len(index)]
    assert (
        abs(
            np.mean((1 - wrong) * label + wrong * distill)
            - np.mean((1 - alpha) * label + alpha * distill)
        )
        > 1e-4
    )
