"""Where the training step of the reference k = 6 student goes (issue 13, "cached vs online"):
its forward pass, its backward pass and the Adam update, timed apart, against this machine's own
limits measured in the same run (the float32 matmul peak of compute_benchmark.py and the memory
bandwidth of an elementwise pass over a parameter-sized tensor).

A student distilled from a teacher cache runs this step plus the distillation losses (a few
elementwise ops on [B, 3862] and [B, 2048]); online distillation adds the teacher's forward pass
over 300 frames. So the step measured here bounds what a cache can save: online / cached <=
(student step + teacher forward) / student step.

The model is `models/student_k6.flags` (NeXtVLAD at the reference widths, 6 frames of 1024 + 128
uint8 features, 3862 classes) at batch 32, float32, one device; its input is a batch of the
trainer's own pipeline over synthetic records (frames selected on the host, as for a cached
student). Best of --repeats timings of --steps calls each. Writes
benchmarks/results/student_step_profile.json.

    .venv/bin/python benchmarks/student_step_profile.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import adam_update_benchmark  # benchmarks/: the timing of one optimizer update
import keras
import tensorflow as tf

from yt8m_kd import machine as yt8m_machine
from yt8m_kd.modeling.builders import count_flops_per_video

REPO_ROOT = Path(__file__).resolve().parent.parent
PRESET = "student_k6.flags"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per part, best kept")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "student_step_profile.json",
    )
    return parser.parse_args(argv)


def _best_ms(run, steps: int, repeats: int) -> float:
    run()  # tracing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            result = run()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
        best = min(best, (time.perf_counter() - started) / steps)
    return best * 1e3


def _compute_benchmark():
    """benchmarks/compute_benchmark.py: its matmul peak, preset config and reference records."""
    spec = importlib.util.spec_from_file_location(
        "compute_benchmark", REPO_ROOT / "benchmarks" / "compute_benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def profile(args: argparse.Namespace, root: str) -> dict:
    compute = _compute_benchmark()
    pattern = compute.reference_records(root, 1, 2 * args.batch_size)
    config = compute._config(PRESET, pattern, batch_size=args.batch_size)
    trainer = compute.one_device_trainer(config, os.path.join(root, "run"))
    iterator = iter(trainer._train_dataset(0))
    batch = next(iterator)
    tensors = {name: value for name, value in batch.items() if value.dtype != tf.string}
    seed = tf.constant([1, 2], tf.int64)
    variables = trainer.trainable_variables
    parameters = sum(int(v.shape.num_elements()) for v in variables)

    forward = tf.function(lambda: trainer._losses(tensors, seed)["loss"])
    gradients = tf.function(lambda: trainer._gradients(tensors, seed)[1])
    grads = gradients()

    # The trainer's FusedAdam against Keras's own Adam on the same variables and gradients
    # (built when its timing starts).
    keras_adam = keras.optimizers.Adam(learning_rate=trainer.optimizer._learning_rate)

    def update_ms(optimizer) -> float:
        return adam_update_benchmark.update_ms(
            optimizer, variables, args.steps, args.repeats, grads=grads
        )

    one = tf.constant(1, tf.int64)
    parts = {
        "forward_ms": _best_ms(forward, args.steps, args.repeats),
        "forward_and_backward_ms": _best_ms(gradients, args.steps, args.repeats),
        "training_step_ms": _best_ms(
            lambda: trainer._train_step(iterator, one)["finite"], args.steps, args.repeats
        ),
        "adam_update_ms": update_ms(trainer.optimizer),
        # last: its 710 MB of moments are not allocated while the step is timed
        "keras_adam_update_ms": update_ms(keras_adam),
    }
    limits = {
        "float32_matmul_gflops": compute.matmul_peaks(2048, args.repeats)["float32"],
        **compute.memory_limit(parameters, args.repeats, calls=args.steps),
    }
    flops = count_flops_per_video(config.model, config.model.k_frames)
    largest = sorted(variables, key=lambda v: -v.shape.num_elements())[:3]
    return {
        **parts,
        "backward_ms": parts["forward_and_backward_ms"] - parts["forward_ms"],
        "parameters": parameters,
        "largest_variables": {v.path: v.shape.as_list() for v in largest},
        "forward_gflop_per_batch": args.batch_size * flops / 1e9,
        "forward_ms_at_matmul_peak": args.batch_size
        * flops
        / limits["float32_matmul_gflops"]
        / 1e6,
        "training_ms_at_matmul_peak": 3
        * args.batch_size
        * flops
        / limits["float32_matmul_gflops"]
        / 1e6,
        "adam_ms_at_memory_bandwidth": limits["adam_ms_at_memory_bandwidth"],
        "limits": limits,
        "adam_share_of_step": parts["adam_update_ms"] / parts["training_step_ms"],
        "keras_adam_over_fused_adam": parts["keras_adam_update_ms"] / parts["adam_update_ms"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        results = profile(args, root)
    report = {
        "benchmark": "the reference k=6 student's training step, by part (issue 13)",
        "machine": yt8m_machine.machine_info(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
