"""FusedAdam against keras.optimizers.Adam under MirroredStrategy on 2 logical CPUs.

Run as its own process (logical devices are set before TensorFlow starts):
  python tests/scripts/fused_adam_mirrored.py
Prints JSON: the replicas, the variables, the fused kernels in one step's graph, whether the two
optimizers' weights after 5 steps agree to float32 rounding (the tolerance of
tests/test_fused_adam.py) and their largest difference, between the replicas' copies, and
the largest change of a weight over the steps.
"""

import json

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from yt8m_kd.training.fused_adam import FusedAdam  # noqa: E402

SHAPES = [(16, 8), (8,)]
STEPS = 5


def train(strategy, optimizer_class):
    """Weights after STEPS steps, each replica adding its own gradient (summed by apply_gradients)."""
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
    with strategy.scope():
        variables = [tf.Variable(value) for value in initial]
        optimizer = optimizer_class(learning_rate=0.01)
        optimizer.build(variables)

    def replica_step(step):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        scale = tf.cast(replica + 1, tf.float32) * tf.cast(step + 1, tf.float32)
        grads = [tf.sin(tf.cast(v, tf.float32) * scale) for v in variables]
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    @tf.function
    def step_fn(step):
        strategy.run(replica_step, args=(step,))

    graph = step_fn.get_concrete_function(tf.constant(0)).graph
    kernels = [op.type for op in graph.get_operations()].count("ResourceApplyAdam")
    for step in range(STEPS):
        step_fn(tf.constant(step))
    copies = [[c.numpy() for c in strategy.experimental_local_results(v)] for v in variables]
    return initial, copies, kernels


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    initial, adam, _ = train(strategy, keras.optimizers.Adam)
    _, fused, kernels = train(strategy, lambda **kw: FusedAdam(min_fused_elements=1, **kw))
    report = {
        "replicas": strategy.num_replicas_in_sync,
        "variables": len(SHAPES),
        "fused_kernels_per_step": kernels,
        "allclose_rtol_3e-5_atol_1e-6": all(
            np.allclose(f, a, rtol=3e-5, atol=1e-6)
            for fs, as_ in zip(fused, adam, strict=True)
            for f, a in zip(fs, as_, strict=True)
        ),
        "max_abs_difference": max(
            float(np.abs(f - a).max())
            for fs, as_ in zip(fused, adam, strict=True)
            for f, a in zip(fs, as_, strict=True)
        ),
        "max_abs_difference_between_replicas": max(
            float(np.abs(copies[0] - copies[1]).max()) for copies in fused
        ),
        "max_abs_change": max(
            float(np.abs(copies[0] - start).max())
            for copies, start in zip(fused, initial, strict=True)
        ),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
