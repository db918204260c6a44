"""Training options that change how the step runs: XLA compilation and bfloat16 mixed precision.

Each test looks inside the traced training step, so that it fails if the flag is ignored: with
--jit_compile the forward and backward pass is a call that XLA must compile; with
--mixed_precision the model's matrix products run in bfloat16 while the weights stay float32.
"""

import json
import math

import keras
import pytest
import tensorflow as tf
from conftest import tiny_configs

from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.loop import Trainer


def _all_nodes(graph_def):
    """The nodes of a GraphDef and of every function in its library (nested calls included)."""
    yield from graph_def.node
    for function in graph_def.library.function:
        yield from function.node_def


def _traced_step(trainer: Trainer):
    """The training step's graph, traced (not run) on the training pipeline's element spec."""
    iterator = iter(trainer._train_dataset(0))
    steps = tf.TensorSpec([], tf.int64)
    return trainer._train_step.get_concrete_function(iterator, steps).graph.as_graph_def()


@pytest.mark.parametrize("enabled", [False, True])
def test_jit_compile_and_mixed_precision_reach_the_step(enabled, tiny_yt8m, tmp_path):
    model_config, train_config, data_config = tiny_configs(
        "tiny_teacher.flags", tiny_yt8m, jit_compile=enabled, mixed_precision=enabled
    )
    try:
        strategy = strategy_lib.setup_devices(train_config)  # sets the dtype policy
        trainer = Trainer(model_config, train_config, data_config, str(tmp_path), strategy)
        graph_def = _traced_step(trainer)
    finally:
        keras.mixed_precision.set_global_policy("float32")  # the other tests' default
    nodes = list(_all_nodes(graph_def))
    must_compile = [
        n.name for n in nodes if "_XlaMustCompile" in n.attr and n.attr["_XlaMustCompile"].b
    ]
    assert bool(must_compile) == enabled, must_compile

    # The compute dtype of the step's matrix products, and the weights' dtype.
    matmul_dtypes = {
        n.attr["T"].type for n in nodes if n.op in ("MatMul", "BatchMatMulV2") and "T" in n.attr
    }
    bfloat16, float32 = 14, 1  # tf.bfloat16.as_datatype_enum, tf.float32.as_datatype_enum
    assert matmul_dtypes == ({bfloat16} if enabled else {float32}), matmul_dtypes
    assert trainer.model.dtype_policy.name == ("mixed_bfloat16" if enabled else "float32")
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--jit_compile", "--mixed_precision"])
def test_step_option_trains(option, tmp_path, tiny_yt8m, tiny_train_args, launcher):
    run_dir = tmp_path / "run"
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        option,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=4",
        "--log_every_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 4
    assert math.isfinite(metrics["train"]["loss"]) and metrics["train"]["loss"] > 0
    assert 0.0 <= metrics["eval"]["gap"] <= 1.0
    assert option in (run_dir / "flags.txt").read_text().splitlines()
