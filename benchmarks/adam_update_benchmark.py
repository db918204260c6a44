"""Keras's Adam against FusedAdam's fused kernel (`yt8m_kd/training/fused_adam.py`), by variable size.

For each size, 20 float32 variables of that many elements get one `apply_gradients` per call of a
`tf.function`; best of --repeats timings of --calls calls, with the kernel forced on every variable
(`min_fused_elements=1`). The crossover is where FusedAdam's default `MIN_FUSED_ELEMENTS` comes
from. Also the whole update of the reference model (models/nextvlad_reference.flags, 88.9M
parameters) with Keras's Adam, FusedAdam at its default threshold, and the kernel on every
variable. Writes benchmarks/results/adam_update.json.

    .venv/bin/python benchmarks/adam_update_benchmark.py
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import keras
import tensorflow as tf
from _report import write_report

from yt8m_kd import flags as yflags
from yt8m_kd.modeling import build_video_model
from yt8m_kd.training.fused_adam import MIN_FUSED_ELEMENTS, FusedAdam

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = [256, 1024, 4096, 16384, 32768, 65536, 262144, 1048576]
VARIABLES_PER_SIZE = 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per timing (small sizes)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per variant, best kept")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "adam_update.json"
    )
    return parser.parse_args(argv)


def update_ms(
    optimizer, variables: list[tf.Variable], calls: int, repeats: int, grads=None
) -> float:
    """Best ms per apply_gradients of `grads` (default: random) onto `variables`."""
    if grads is None:
        grads = [tf.random.stateless_normal(v.shape, seed=[i, 0]) for i, v in enumerate(variables)]
    if not optimizer.built:
        optimizer.build(variables)

    @tf.function
    def apply():
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return tf.constant(0)

    apply().numpy()  # tracing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            result = apply()
        result.numpy()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e3


def by_size(args: argparse.Namespace) -> dict:
    rows = {}
    for size in SIZES:
        variables = [tf.Variable(tf.zeros([size])) for _ in range(VARIABLES_PER_SIZE)]
        calls = max(3, args.calls * 4096 // max(size, 4096))
        keras_ms = update_ms(keras.optimizers.Adam(1e-3), variables, calls, args.repeats)
        fused_ms = update_ms(
            FusedAdam(learning_rate=1e-3, min_fused_elements=1), variables, calls, args.repeats
        )
        rows[str(size)] = {
            "keras_ms": keras_ms,
            "fused_ms": fused_ms,
            "keras_over_fused": keras_ms / fused_ms,
        }
        print(
            f"{size:>9,} elements x {VARIABLES_PER_SIZE}: Keras {keras_ms:.3f} ms, "
            f"fused {fused_ms:.3f} ms",
            flush=True,
        )
    return rows


def reference_model(args: argparse.Namespace) -> dict:
    config = yflags.read_flagfile(
        str(REPO_ROOT / "models" / "nextvlad_reference.flags"), train_data_pattern="unused"
    )
    variables = build_video_model(config.model).trainable_variables
    row = {"parameters": int(sum(v.shape.num_elements() for v in variables))}
    # one optimizer at a time: each holds 710 MB of moments
    for name, make in (
        ("keras_ms", lambda: keras.optimizers.Adam(1e-3)),
        ("fused_default_ms", lambda: FusedAdam(learning_rate=1e-3)),
        ("fused_every_variable_ms", lambda: FusedAdam(learning_rate=1e-3, min_fused_elements=1)),
    ):
        row[name] = update_ms(make(), variables, 3, args.repeats)
        print(f"reference model, {name}: {row[name]:.1f} ms", flush=True)
        gc.collect()
    row["keras_over_fused_default"] = row["keras_ms"] / row["fused_default_ms"]
    return row


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {
        "min_fused_elements_default": MIN_FUSED_ELEMENTS,
        "variables_per_size": VARIABLES_PER_SIZE,
        "by_size": by_size(args),
        "reference_model": reference_model(args),
    }
    write_report(
        args, "Adam's update, Keras's ops against the fused ResourceApplyAdam kernel", results
    )


if __name__ == "__main__":
    main()
