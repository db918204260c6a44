"""Where the reference training step's time goes in float32 and in bfloat16, from oneDNN's own log.

Issue 13 asks what keeps `--mixed_precision` at about 1.6x float32: which ops stay float32, where
the casts and layout conversions (oneDNN reorders) go, whether NeXtVLAD's reshapes, softmax and
gating leave oneDNN's bfloat16 path. TensorFlow's CPU kernels for matmuls, softmax and reorders
are oneDNN primitives, and oneDNN logs every primitive it runs with its data types, shape and
milliseconds when ONEDNN_VERBOSE=1. This script trains the reference teacher
(models/nextvlad_reference.flags, batch 32, 300 frames) for a few steps in a child process with
that log on, once per precision, and sums the timed steps' log: per primitive kind and data type,
and per matmul shape (with its GFLOP/s), and each shape's float32 / bfloat16 time. The step time
minus the primitives' sum bounds what runs outside oneDNN (casts, elementwise ops, the
optimizer's update), but independent ops run at once on TensorFlow's inter-op threads, so the sum
can exceed the step (it does in float32). The log itself slows the step a little; compare the two
precisions with each other.

    .venv/bin/python benchmarks/bf16_profile.py
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
START, END = "=== timed steps start", "=== timed steps end"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed (logged) steps")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--child", choices=["float32", "bfloat16"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "bf16_profile.json",
        help="where the JSON goes",
    )
    return parser.parse_args(argv)


def child(args: argparse.Namespace) -> None:
    """Trains the reference teacher a few steps and prints the markers around the timed ones."""
    import importlib.util

    import tensorflow as tf

    spec = importlib.util.spec_from_file_location(
        "compute_benchmark", REPO_ROOT / "benchmarks" / "compute_benchmark.py"
    )
    compute = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compute)
    with tempfile.TemporaryDirectory() as root:
        pattern = compute.reference_records(root, 1, 2 * args.batch_size)
        config = compute._config(compute.REFERENCE_PRESET, pattern, batch_size=args.batch_size)
        with compute._Policy(args.child == "bfloat16"):
            trainer = compute.one_device_trainer(config, os.path.join(root, "run"))
            iterator, one = iter(trainer._train_dataset(0)), tf.constant(1, tf.int64)
            for _ in range(3):  # tracing, the pipeline's start
                trainer._train_step(iterator, one)["finite"].numpy()
            print(START, flush=True)
            started = time.perf_counter()
            for _ in range(args.steps):
                trainer._train_step(iterator, one)["finite"].numpy()
            seconds = (time.perf_counter() - started) / args.steps
            print(f"{END} {seconds:.4f}", flush=True)


def _flops(problem: str) -> int:
    """FLOPs of a matmul from oneDNN's problem description, e.g. 9600x1024:1024x2048 or a
    batched 32x128x256:32x256x2400."""
    a, b = (list(map(int, part.split("x"))) for part in problem.split(":")[:2])
    batch = 1
    for size in a[:-2]:
        batch *= size
    return 2 * batch * a[-2] * a[-1] * b[-1]


def summarise(log: str, steps: int) -> dict:
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(START))
    end = next(i for i, line in enumerate(lines) if line.startswith(END))
    step_ms = 1000 * float(lines[end].split()[-1])
    kinds: dict[str, float] = collections.defaultdict(float)
    shapes: dict[str, list] = {}
    for line in lines[start:end]:
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")
        primitive, implementation, descriptors = fields[at + 2], fields[at + 3], fields[at + 5]
        # "src:bf16::blocked:ab::f0 wei:bf16::..." (matmul) or "src_f32::blocked:ab:f0 ..." (gemm)
        types = sorted(set(re.findall(r"(?:src|wei|dst)[_:]([a-z0-9]+)", descriptors)))
        ms = float(fields[-1])
        kinds[f"{primitive} {'/'.join(types)} {implementation.split(':')[-1]}".strip()] += ms
        if primitive in ("matmul", "gemm_api"):
            problem = fields[-2]
            entry = shapes.setdefault(problem, [0.0, 0, _flops(problem)])
            entry[0] += ms
            entry[1] += 1
    per_step = {name: ms / steps for name, ms in sorted(kinds.items(), key=lambda kv: -kv[1])}
    onednn_ms = sum(per_step.values())
    matmuls = {
        problem: {
            "ms_per_step": ms / steps,
            "calls_per_step": calls / steps,
            "gflop_per_sec": flops * calls / (ms / 1000) / 1e9 if ms else None,
        }
        for problem, (ms, calls, flops) in sorted(shapes.items(), key=lambda kv: -kv[1][0])
    }
    return {
        "step_ms": step_ms,
        "onednn_ms_per_step": onednn_ms,
        "step_minus_onednn_ms": step_ms - onednn_ms,
        "primitives_ms_per_step": per_step,
        "matmuls": matmuls,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    report = {"benchmark": "oneDNN profile of the reference training step (issue 13)"}
    sys.path.insert(0, str(REPO_ROOT))
    from yt8m_kd import machine

    report["machine"] = machine.machine_info()
    for precision in ("float32", "bfloat16"):
        command = [sys.executable, __file__, "--child", precision, "--steps", str(args.steps)]
        command += ["--batch_size", str(args.batch_size)]
        env = {**os.environ, "ONEDNN_VERBOSE": "1"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        report[precision] = summarise(done.stdout + done.stderr, args.steps)
        print(
            f"{precision}: {report[precision]['step_ms']:.0f} ms/step, oneDNN "
            f"{report[precision]['onednn_ms_per_step']:.0f} ms",
            flush=True,
        )
    report["bf16_over_fp32_step_ms"] = report["bfloat16"]["step_ms"] / report["float32"]["step_ms"]
    shared = set(report["float32"]["matmuls"]) & set(report["bfloat16"]["matmuls"])
    report["matmul_speedup_bf16_over_fp32"] = {
        problem: report["float32"]["matmuls"][problem]["ms_per_step"]
        / report["bfloat16"]["matmuls"][problem]["ms_per_step"]
        for problem in sorted(
            shared, key=lambda p: -report["bfloat16"]["matmuls"][p]["ms_per_step"]
        )
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
