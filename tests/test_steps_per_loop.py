"""--steps_per_loop: several training steps per tf.function call give the weights of one step per
call, and logging, checkpoints and evaluations still happen at their steps."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import checkpoint_weights, tiny_run_config

from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.runs import comparable, make_trainer, train_or_reuse


def _steps_logged(run_dir: str) -> list[int]:
    steps = set()
    for name in os.listdir(os.path.join(run_dir, "train")):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, "train", name)):
            if any(value.tag == "loss" for value in event.summary.value):
                steps.add(event.step)
    return sorted(steps)


@pytest.mark.parametrize("preset", ["tiny_student_k6.flags", "tiny_teacher.flags"])
def test_several_steps_per_call_give_the_weights_of_one(tiny_yt8m, tmp_path, preset):
    runs = {}
    for steps_per_loop in (1, 4):
        config = tiny_run_config(
            preset,
            tiny_yt8m,
            max_steps=7,
            checkpoint_every_steps=7,
            log_every_steps=3,
            steps_per_loop=steps_per_loop,
            frame_selection="random",
        )
        run_dir = str(tmp_path / f"spl{steps_per_loop}")
        metrics, _ = train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
        assert metrics["step"] == 7
        runs[steps_per_loop] = run_dir
    # Calls of 3, 3 and 1 steps (the log steps cut the calls of 4): logs at 3, 6 and the end.
    assert _steps_logged(runs[4]) == _steps_logged(runs[1]) == [3, 6, 7]
    one, four = checkpoint_weights(runs[1]), checkpoint_weights(runs[4])
    assert len(one) > 5 and one.keys() == four.keys()
    for name, value in one.items():
        np.testing.assert_allclose(four[name], value, atol=1e-6, err_msg=name)


def test_a_call_stops_at_the_next_log_checkpoint_evaluation_or_end(tiny_yt8m, tmp_path):
    config = tiny_run_config(
        "tiny_student_k6.flags",
        tiny_yt8m,
        max_steps=30,
        log_every_steps=7,
        checkpoint_every_steps=10,
        eval_every_steps=12,
        steps_per_loop=5,
    )
    trainer = make_trainer(config, str(tmp_path), strategy_lib.make_strategy("one_device"))
    calls, step = [], 0
    while step < 30:
        calls.append(trainer._steps_in_call(step, 30))
        step += calls[-1]
    # Stops: 5, 7 (log), 10 (checkpoint), 12 (eval), 14 (log), 19, 20 (checkpoint), 21 (log),
    # 24 (eval), 28 (log), 30 (the end).
    ends = np.cumsum(calls).tolist()
    assert ends == [5, 7, 10, 12, 14, 19, 20, 21, 24, 28, 30]
    assert max(calls) == 5


def test_steps_per_loop_is_not_part_of_what_a_run_is(tiny_yt8m):
    one = tiny_run_config("tiny_student_k6.flags", tiny_yt8m, steps_per_loop=1)
    ten = tiny_run_config("tiny_student_k6.flags", tiny_yt8m, steps_per_loop=10)
    assert comparable(one) == comparable(ten)
