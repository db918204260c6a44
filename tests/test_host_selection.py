"""A student's k frames selected in tf.data on the host (issue 12, item 4): the same frames, seeds
and weights as the selection inside the step, with only [B, k, ...] sent to the device."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import FEATURE_SIZES, MAX_FRAMES, run_test_script, tiny_configs

from yt8m_kd.configs import SELECTION_METHODS, DistillConfig, ModelConfig
from yt8m_kd.data import sampling, videos
from yt8m_kd.modeling.predict import (
    FRAME_INDICES,
    model_inputs,
    select_student_frames,
    training_selection_seed,
)
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.loop import Trainer

SCRIPTS = Path(__file__).parent / "scripts"
BATCH = 8
K = 6
FEATURES = sum(FEATURE_SIZES)


@pytest.fixture(scope="module")
def batches(tiny_yt8m) -> list[dict]:
    """4 shuffled training batches of all frames, as a trainer's pipeline reads them."""
    model_config, _, data_config = tiny_configs("tiny_student_k6.flags", tiny_yt8m)
    dataset = videos.read_videos(
        data_config,
        model_config,
        tiny_yt8m.train_pattern,
        batch_size=BATCH,
        training=True,
        shuffle=True,
        seed=5,
        drop_remainder=True,
    )
    return list(dataset.take(4))


def _as_dataset(batches: list[dict]) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature={name: tf.TensorSpec.from_tensor(v) for name, v in batches[0].items()},
    )


@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_host_selection_equals_in_step_selection(batches, method):
    """Selected in a tf.data map, then passed through `model_inputs` in a step, the frames and
    num_frames are exactly those `model_inputs` selects in the step from all frames."""
    config = ModelConfig(k_frames=K, frame_selection=method, feature_sizes=FEATURE_SIZES)
    seeds = [training_selection_seed(3, 0, step) for step in range(len(batches))]

    in_step = tf.function(lambda batch, seed: model_inputs(batch, config, seed))
    pipeline = tf.data.Dataset.zip(_as_dataset(batches), tf.data.Dataset.from_tensor_slices(seeds))
    pipeline = pipeline.map(lambda batch, seed: select_student_frames(batch, config, seed))
    for batch, seed, selected in zip(batches, seeds, pipeline, strict=True):
        assert selected["frames"].shape == (BATCH, K, FEATURES)
        assert selected[FRAME_INDICES].shape == (BATCH, K)
        expected = in_step(batch, seed)
        got = in_step(selected, seed)  # the step passes selected frames on as they are
        np.testing.assert_array_equal(got["frames"].numpy(), expected["frames"].numpy())
        np.testing.assert_array_equal(got["num_frames"].numpy(), expected["num_frames"].numpy())
        # ... and they are the frames of the video that the indices name.
        indices = selected[FRAME_INDICES].numpy()
        for row in range(BATCH):
            valid = indices[row] >= 0
            np.testing.assert_array_equal(
                got["frames"][row].numpy()[valid], batch["frames"][row].numpy()[indices[row][valid]]
            )


def test_image_frames_are_selected_on_the_host_alike():
    """UCF101 batches ([B, T, S, S, 3] uint8 images) select to [B, k, S, S, 3], as in the step."""
    frames = tf.random.stateless_uniform([3, 10, 4, 4, 3], seed=[1, 2], maxval=256, dtype=tf.int32)
    batch = {"frames": tf.cast(frames, tf.uint8), "num_frames": tf.constant([10, 7, 2])}
    config = ModelConfig(k_frames=4, frame_selection="first_middle_last")
    selected = select_student_frames(batch, config)
    assert selected["frames"].shape == (3, 4, 4, 4, 3)
    expected = model_inputs(batch, config)
    np.testing.assert_array_equal(selected["frames"].numpy(), expected["frames"].numpy())
    np.testing.assert_array_equal(selected["num_frames"].numpy(), [4, 4, 2])


def test_a_selected_batch_is_not_selected_again_nor_read_by_a_teacher():
    batch = {
        "frames": tf.zeros([2, 10, 3], tf.uint8),
        "num_frames": tf.constant([10, 10]),
    }
    selected = select_student_frames(batch, ModelConfig(k_frames=4, frame_selection="uniform"))
    np.testing.assert_array_equal(selected[FRAME_INDICES].numpy(), [[1, 3, 6, 8]] * 2)
    with pytest.raises(ValueError, match="selected already"):
        select_student_frames(selected, ModelConfig(k_frames=4))
    with pytest.raises(ValueError, match="k_frames=0"):
        model_inputs(selected, ModelConfig(k_frames=0))
    with pytest.raises(ValueError, match="k_frames=2"):
        model_inputs(selected, ModelConfig(k_frames=2))


def _trainer(tiny_yt8m, run_dir, preset="tiny_student_k6.flags", distill=None, **overrides):
    configs = tiny_configs(preset, tiny_yt8m, checkpoint_every_steps=1000, **overrides)
    strategy = strategy_lib.make_strategy("one_device")
    if distill is None:
        return Trainer(*configs, str(run_dir), strategy)
    return DistillationTrainer(*configs, str(run_dir), strategy, distill)


def test_train_batches_carry_k_frames_unless_the_step_runs_a_teacher(
    tiny_yt8m, teacher_run, teacher_cache, tmp_path
):
    def first_batch(trainer):
        return next(iter(trainer._train_dataset(0)))

    plain = first_batch(_trainer(tiny_yt8m, tmp_path / "plain"))
    cached = first_batch(
        _trainer(
            tiny_yt8m, tmp_path / "cached", distill=DistillConfig(teacher_cache_dir=teacher_cache)
        )
    )
    for batch in (plain, cached):
        assert batch["frames"].shape == (BATCH, K, FEATURES)
        assert batch["frames"].dtype == tf.uint8  # still quantized: dequantized on the device
        assert batch[FRAME_INDICES].shape == (BATCH, K)
        assert batch["num_frames"].numpy().max() <= K
    assert cached["teacher_logits"].shape[0] == BATCH
    # An online teacher reads all frames in the step.
    online = first_batch(
        _trainer(tiny_yt8m, tmp_path / "online", distill=DistillConfig(teacher_run_dir=teacher_run))
    )
    assert online["frames"].shape == (BATCH, MAX_FRAMES, FEATURES)
    assert FRAME_INDICES not in online


def test_random_selection_draws_each_step_and_replicas_seed(tiny_yt8m, batches, tmp_path):
    """Batch j of a pipeline with r replicas, started at step s, draws from the seed of step
    s + j // r on replica j mod r: the seed the step would have used; reproducible, new per step."""
    trainer = _trainer(tiny_yt8m, tmp_path, frame_selection="random", seed=4)
    dataset = _as_dataset(batches)
    context = tf.distribute.InputContext(
        num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2
    )
    selected = list(trainer._select_on_host(dataset, context, start_step=10))
    again = list(trainer._select_on_host(dataset, context, start_step=10))

    def indices(batch, replica, step):
        seed = training_selection_seed(4, replica, step)
        return sampling.frame_indices(batch["num_frames"], K, "random", seed, MAX_FRAMES).numpy()

    for j, (batch, got, repeat) in enumerate(zip(batches, selected, again, strict=True)):
        step, replica = 10 + j // 2, j % 2
        np.testing.assert_array_equal(got[FRAME_INDICES].numpy(), indices(batch, replica, step))
        np.testing.assert_array_equal(got["frames"].numpy(), repeat["frames"].numpy())
        # Another step's (or replica's) seed draws other frames of the same videos.
        assert not np.array_equal(got[FRAME_INDICES].numpy(), indices(batch, replica, step + 1))
        assert not np.array_equal(got[FRAME_INDICES].numpy(), indices(batch, 1 - replica, step))
    # Two workers of one replica each (MultiWorkerMirrored): the second's batch j is replica 1's
    # batch of step s + j.
    worker = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    for j, got in enumerate(trainer._select_on_host(dataset, worker, start_step=10)):
        np.testing.assert_array_equal(got[FRAME_INDICES].numpy(), indices(batches[j], 1, 10 + j))


def test_host_selection_trains_the_same_weights_as_in_step_selection(tiny_yt8m, tmp_path):
    """The change is behaviour-preserving: 3 steps of a plain uniform-k student, frames selected
    on the host or in the step, end with the same weights. (Random-k draws the same frames either
    way: see the tests above.)"""

    def train(host: bool):
        trainer = _trainer(tiny_yt8m, tmp_path / str(host), max_steps=3, log_every_steps=3)
        trainer.host_frame_selection = host
        assert trainer.selects_frames_on_host == host
        initial = [v.numpy() for v in trainer.model.weights]
        trainer._train_until(3, 0)
        return initial, [v.numpy() for v in trainer.model.weights]

    (initial, host), (_, in_step) = train(True), train(False)
    diffs = [np.max(np.abs(a - b)) for a, b in zip(host, in_step, strict=True)]
    assert max(diffs) < 1e-6, max(diffs)
    assert max(np.max(np.abs(a - b)) for a, b in zip(host, initial, strict=True)) > 1e-3


@pytest.mark.slow
def test_mirrored_host_selection_draws_each_replicas_frames(tiny_yt8m, tmp_path):
    """Under Mirrored on 2 logical CPUs a random-k student trains the same weights with frames
    selected on the host as in the step: the strategy hands each replica the batch whose seed the
    host drew from (its own process: tests/scripts/host_selection_mirrored.py)."""
    report = run_test_script("host_selection_mirrored.py", str(tiny_yt8m.root), "4", str(tmp_path))
    assert report["replicas"] == [2, 2] and report["host"] == [True, False]
    assert report["final_diff"] < 1e-6 and report["max_update"] > 1e-2, report
