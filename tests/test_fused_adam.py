"""FusedAdam (one ResourceApplyAdam kernel per variable) takes Keras Adam's steps, with its state."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import checkpoint_weights, run_test_script, tiny_run_config

from yt8m_kd.training import fused_adam, loop
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.fused_adam import FusedAdam
from yt8m_kd.training.runs import make_trainer

SHAPES = [(37, 5), (5,), (3, 4, 6), (256, 256)]
LARGE = 1  # variables of at least FusedAdam's default min_fused_elements (65,536)


def _variables(seed: int = 0) -> list[tf.Variable]:
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]


def _gradients(step: int) -> list[tf.Tensor]:
    rng = np.random.default_rng(100 + step)
    # scales from 1e-4 to 10, so that epsilon and the bias correction both matter
    return [
        tf.constant(rng.normal(size=s).astype(np.float32) * 10.0 ** (step % 6 - 4)) for s in SHAPES
    ]


def _schedule() -> keras.optimizers.schedules.LearningRateSchedule:
    return keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.7)


def _train(optimizer: keras.optimizers.Optimizer, variables, steps: range) -> None:
    @tf.function
    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    for step in steps:
        apply(_gradients(step))


def _state(optimizer, variables) -> list[np.ndarray]:
    slots = [v.numpy() for v in optimizer._momentums + optimizer._velocities]
    return [v.numpy() for v in variables] + slots + [optimizer.iterations.numpy()]


def _assert_same_state(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    """Equal to float32 rounding. The kernel forms 1 - beta_2 in float32 (1 - 0.999f =
    0.00099998713), where Keras casts the double 0.001: the second moment's rate differs by
    1.3e-5 of itself. Its square root and division, vectorised, move a weight by ~1e-5 of a
    step's size (lr = 0.01 here). A wrong term (bias correction, epsilon, a moment's rate)
    would move the state by a large part of a step.
    """
    assert len(a) == len(b) == 3 * len(SHAPES) + 1
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=3e-5, atol=1e-6)


@pytest.mark.parametrize("amsgrad, min_fused_elements", [(False, 1), (False, 65536), (True, 1)])
def test_fused_adam_takes_the_steps_of_keras_adam(amsgrad, min_fused_elements):
    states = []
    for cls, kwargs in (
        (keras.optimizers.Adam, {}),
        (FusedAdam, {"min_fused_elements": min_fused_elements}),
    ):
        variables = _variables()
        optimizer = cls(learning_rate=_schedule(), amsgrad=amsgrad, **kwargs)
        _train(optimizer, variables, range(8))
        states.append(_state(optimizer, variables))
    _assert_same_state(*states)
    assert states[0][-1] == 8
    # the steps moved the weights (a comparison of unchanged weights would pass too)
    assert not np.allclose(states[1][0], _variables()[0].numpy(), atol=1e-3)


def _op_types(optimizer, variables) -> list[str]:
    @tf.function
    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    graph = apply.get_concrete_function(_gradients(0)).graph
    return [op.type for op in graph.get_operations()]


def test_each_large_variable_is_updated_by_one_fused_kernel():
    variables = _variables()
    fused = _op_types(FusedAdam(learning_rate=0.01), variables)
    assert fused.count("ResourceApplyAdam") == LARGE
    every = _op_types(FusedAdam(learning_rate=0.01, min_fused_elements=1), variables)
    assert every.count("ResourceApplyAdam") == len(SHAPES)
    assert "ResourceApplyAdam" not in _op_types(
        keras.optimizers.Adam(learning_rate=0.01), variables
    )
    # AMSGrad has no fused kernel: Keras's own update
    assert "ResourceApplyAdam" not in _op_types(
        FusedAdam(learning_rate=0.01, amsgrad=True, min_fused_elements=1), variables
    )


def test_the_fused_threshold_round_trips_through_the_config():
    optimizer = FusedAdam(learning_rate=_schedule(), min_fused_elements=12)
    again = FusedAdam.from_config(optimizer.get_config())
    assert again.min_fused_elements == 12
    assert again.learning_rate.numpy() == pytest.approx(optimizer.learning_rate.numpy())
    assert FusedAdam(learning_rate=0.01).min_fused_elements == fused_adam.MIN_FUSED_ELEMENTS


def test_the_trainer_with_every_variable_fused_trains_as_with_keras_adam(
    tiny_yt8m, tmp_path, monkeypatch
):
    """The tiny presets' variables are all under MIN_FUSED_ELEMENTS; with the threshold at 1 the
    trainer's whole update is the fused kernel, and 6 steps give Keras Adam's weights."""
    config = tiny_run_config("tiny_student_k6.flags", tiny_yt8m, max_steps=6)
    runs = {}
    for name in ("fused", "keras"):
        with monkeypatch.context() as patch:
            if name == "fused":
                patch.setattr(fused_adam, "MIN_FUSED_ELEMENTS", 1)
            else:
                patch.setattr(loop, "FusedAdam", keras.optimizers.Adam)
            run_dir = str(tmp_path / name)
            trainer = make_trainer(config, run_dir, strategy_lib.make_strategy("one_device"))
            assert trainer.fit()["step"] == 6
            if name == "fused":
                assert trainer.optimizer.min_fused_elements == 1
            runs[name] = checkpoint_weights(run_dir)
    fused, adam = runs["fused"], runs["keras"]
    assert len(fused) > 5 and fused.keys() == adam.keys()
    for name, value in adam.items():
        np.testing.assert_allclose(fused[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_keras_adam_checkpoint_resumes_as_fused_adam(tmp_path):
    """The state is Keras's under the same names: a run checkpointed by keras.optimizers.Adam
    resumes with FusedAdam and continues as Adam would."""
    variables = _variables()
    adam = keras.optimizers.Adam(learning_rate=_schedule())
    _train(adam, variables, range(3))
    path = tf.train.Checkpoint(optimizer=adam, weights=variables).write(str(tmp_path / "ckpt"))
    _train(adam, variables, range(3, 6))

    restored = _variables(seed=1)
    fused = FusedAdam(learning_rate=_schedule(), min_fused_elements=1)
    fused.build(restored)
    tf.train.Checkpoint(optimizer=fused, weights=restored).read(path).assert_consumed()
    assert fused.iterations.numpy() == 3
    _train(fused, restored, range(3, 6))
    _assert_same_state(_state(adam, variables), _state(fused, restored))


def test_fused_adam_under_mirrored_strategy_equals_keras_adam():
    """On 2 logical CPUs each replica's copy is updated by its own kernel, from the summed
    gradient, and the copies stay equal to Keras Adam's."""
    report = run_test_script("fused_adam_mirrored.py", timeout=300)
    assert report["replicas"] == 2
    assert report["fused_kernels_per_step"] == 2 * report["variables"]
    assert report["allclose_rtol_3e-5_atol_1e-6"]
    assert report["max_abs_difference_between_replicas"] == 0.0
    assert report["max_abs_change"] > 1e-3
