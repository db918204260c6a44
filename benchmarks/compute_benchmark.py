"""The compute side at reference shapes, as ratios against this machine's own matmul peaks.

Issue 13's figures, measured in one run (part of `yt8m_benchmark.py`, section "compute"; also
runnable alone):

  matmul_peak      GFLOP/s of a [n, n] x [n, n] matmul chain in float32 and in bfloat16: the
                   machine's limit the other figures are read against
  train            the reference teacher's training step (models/nextvlad_reference.flags, batch
                   32, 300 frames, 88.9M parameters): examples/s and achieved GFLOP/s (3 x the
                   analytic forward FLOPs per example) in float32 and --mixed_precision
                   (bfloat16), each with and without --jit_compile (XLA), against the peak of its
                   type
  inference        ms/video of the reference teacher (300 frames) and of k = 6 and k = 30 students
                   of its widths, in float32 and under the mixed_bfloat16 policy, batch 32
  distillation     the k = 6 student's training step distilled online (the reference teacher runs
                   on all 300 frames inside the step) against from a teacher cache (its k frames
                   selected on the host): step seconds and their ratio
  steps_per_loop   the tiny student's examples/s with 1 and 10 steps per call
                   (`steps_per_loop_benchmark.py`)

Everything runs on synthetic records at the reference shapes (1024 + 128 uint8 features, 300
frames, 3862 classes), untrained models (speed does not depend on the weights), best of --repeats
timings, the variants in turn.

    .venv/bin/python benchmarks/compute_benchmark.py
    .venv/bin/python benchmarks/yt8m_benchmark.py --skip_read --skip_bytes --skip_cache --update
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from yt8m_kd import flags as yflags
from yt8m_kd import machine as yt8m_machine
from yt8m_kd.configs import DistillConfig
from yt8m_kd.data import videos
from yt8m_kd.data.synthetic import write_synthetic_yt8m
from yt8m_kd.distill.teacher_cache import write_teacher_cache
from yt8m_kd.modeling import build_video_model
from yt8m_kd.modeling.builders import count_flops_per_video
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.loop import Trainer
from yt8m_kd.training.runs import train_or_reuse

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "models"
REFERENCE_PRESET = "nextvlad_reference.flags"
FRAMES = 300
# The goals of issue 13, as ratios.
GOALS = {
    "train_fp32_over_fp32_peak": 0.6,
    "train_bf16_over_fp32": 2.5,
    "teacher_inference_bf16_over_fp32_ms": 0.4,
    "online_over_cached_step_seconds": 5.0,
    "steps_per_loop_10_over_1": 2.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "compute.json",
        help="where the JSON goes (run alone)",
    )
    return parser.parse_args(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compute_batch", type=int, default=32, help="training/inference batch")
    parser.add_argument("--compute_steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--compute_repeats", type=int, default=2, help="timings per variant")
    parser.add_argument("--matmul_size", type=int, default=2048, help="n of the matmul peak")


# ------------------------------------------------------------------------------------ helpers
def _config(preset: str, pattern: str, **overrides):
    quiet = {"progress_bar": False, "checkpoint_every_steps": 10**9, "log_every_steps": 10**9}
    return yflags.read_flagfile(
        str(MODELS / preset), train_data_pattern=pattern, **{**quiet, **overrides}
    )


class _Policy:
    """The Keras dtype policy of a block (--mixed_precision sets it globally, before building)."""

    def __init__(self, bf16: bool):
        self.name = "mixed_bfloat16" if bf16 else "float32"

    def __enter__(self):
        self.previous = keras.config.dtype_policy()
        keras.mixed_precision.set_global_policy(self.name)

    def __exit__(self, *exc):
        keras.mixed_precision.set_global_policy(self.previous)


def one_device_trainer(config, run_dir: str, train=None) -> Trainer:
    """A Trainer of a RunConfig on one device (train: another TrainConfig than config's)."""
    return Trainer(
        config.model,
        config.train if train is None else train,
        config.data,
        run_dir,
        strategy_lib.make_strategy("one_device"),
    )


def _best_seconds(run, repeats: int) -> tuple[float, list[float]]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return min(seconds), seconds


# ------------------------------------------------------------------------------------ figures
def matmul_peaks(size: int, repeats: int) -> dict:
    """GFLOP/s of 8 chained [size, size] matmuls per call, float32 and bfloat16."""
    peaks = {}
    for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2]) / size**0.5, dtype)

        @tf.function
        def chain(x, a):
            for _ in range(8):
                x = tf.matmul(x, a)
            return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

        chain(a, a).numpy()
        best, _ = _best_seconds(lambda a=a, chain=chain: chain(a, a).numpy(), max(3, repeats))
        peaks[name] = 8 * 2 * size**3 / best / 1e9
        print(f"matmul peak {name}: {peaks[name]:,.0f} GFLOP/s", flush=True)
    peaks["bfloat16_over_float32"] = peaks["bfloat16"] / peaks["float32"]
    return peaks


def memory_limit(num_parameters: int, repeats: int, calls: int = 3) -> dict:
    """The memory bandwidth an elementwise pass reaches over num_parameters floats (x * c: a read
    and a write of 4 bytes each): the limit of an optimizer's update."""
    x = tf.Variable(tf.ones([num_parameters]))

    @tf.function
    def scale():
        x.assign(x * 0.999)
        return tf.constant(0)

    def passes():
        for _ in range(calls):
            result = scale()
        result.numpy()

    passes()  # tracing
    best, _ = _best_seconds(passes, max(5, repeats))
    pass_ms = best / calls * 1e3
    return {
        "elementwise_pass_ms": pass_ms,
        "memory_gb_per_s": 2 * 4 * num_parameters / (pass_ms / 1e3) / 1e9,
        # Adam reads the weight, both moments and the gradient and writes the weight and both
        # moments: 7 passes of 4 bytes per parameter, ~3.5 elementwise passes of read + write.
        "adam_ms_at_memory_bandwidth": 3.5 * pass_ms,
    }


def _step_seconds(trainer: Trainer, args) -> float:
    iterator = iter(trainer._train_dataset(0))
    one = tf.constant(1, tf.int64)
    for _ in range(2):  # tracing, the pipeline's first batches
        trainer._train_step(iterator, one)["finite"].numpy()

    def steps():
        for _ in range(args.compute_steps):
            outputs = trainer._train_step(iterator, one)
        outputs["finite"].numpy()

    best, _ = _best_seconds(steps, args.compute_repeats)
    return best / args.compute_steps


def train_rates(args, pattern: str, run_root: str, peaks: dict) -> dict:
    config = _config(REFERENCE_PRESET, pattern, batch_size=args.compute_batch)
    forward = count_flops_per_video(config.model, FRAMES)
    results = {"forward_gflop_per_example": forward / 1e9, "variants": {}}
    for bf16 in (False, True):
        for xla in (False, True):
            name = f"{'bf16' if bf16 else 'fp32'}{'_xla' if xla else ''}"
            with _Policy(bf16):
                train = dataclasses.replace(config.train, jit_compile=xla)
                trainer = one_device_trainer(config, os.path.join(run_root, name), train)
                seconds = _step_seconds(trainer, args)
                del trainer
                gc.collect()
            rate = args.compute_batch / seconds
            gflops = rate * 3 * forward / 1e9
            peak = peaks["bfloat16" if bf16 else "float32"]
            results["variants"][name] = {
                "examples_per_sec": rate,
                "step_seconds": seconds,
                "achieved_gflop_per_sec": gflops,
                "over_own_type_peak": gflops / peak,
                "over_fp32_peak": gflops / peaks["float32"],
            }
            print(f"train {name}: {rate:.1f} ex/s, {gflops:,.0f} GFLOP/s", flush=True)
    v = results["variants"]
    results["ratios"] = {
        "train_fp32_over_fp32_peak": v["fp32"]["over_own_type_peak"],
        "train_bf16_over_fp32": v["bf16"]["examples_per_sec"] / v["fp32"]["examples_per_sec"],
        "train_fp32_xla_over_fp32": v["fp32_xla"]["examples_per_sec"]
        / v["fp32"]["examples_per_sec"],
        "train_bf16_xla_over_bf16": v["bf16_xla"]["examples_per_sec"]
        / v["bf16"]["examples_per_sec"],
    }
    return results


def _logits_fn(model: keras.Model):
    @tf.function
    def logits(inputs):
        return model(inputs, training=False)["logits"]

    return logits


def inference_ms(args, pattern: str) -> dict:
    """ms/video of the reference teacher and its k = 6, 30 students, float32 and bfloat16."""
    results = {}
    batch = args.compute_batch
    frames = tf.random.stateless_uniform(
        [batch, FRAMES, 1152], seed=[3, 4], minval=0, maxval=256, dtype=tf.int32
    )
    inputs = {"frames": tf.cast(frames, tf.uint8), "num_frames": tf.fill([batch], FRAMES)}
    for name, k in (("teacher", 0), ("student_k6", 6), ("student_k30", 30)):
        config = _config(REFERENCE_PRESET, pattern, k_frames=k)
        # A student's model reads its k frames (selected before the model, as in serving).
        model_in = dict(inputs)
        if k:
            model_in = {"frames": inputs["frames"][:, :k], "num_frames": tf.fill([batch], k)}
        row = {}
        for bf16 in (False, True):
            with _Policy(bf16):
                predict = _logits_fn(build_video_model(config.model))
                predict(model_in).numpy()
                best, _ = _best_seconds(
                    lambda predict=predict, x=model_in: predict(x).numpy(),
                    max(3, args.compute_repeats),
                )
                del predict
                gc.collect()
            row["bf16" if bf16 else "fp32"] = 1000 * best / batch
        row["bf16_over_fp32"] = row["bf16"] / row["fp32"]
        results[name] = row
        print(f"inference {name}: {row['fp32']:.2f} / {row['bf16']:.2f} ms/video", flush=True)
    return results


def distillation_steps(args, pattern: str, root: str, peaks: dict) -> dict:
    """Step seconds of a k = 6 student distilled online (teacher on 300 frames in the step)
    against from a teacher cache, and what their FLOPs alone would take at the float32 matmul
    peak (the student's training: 3 x its forward FLOPs; online adds the teacher's forward)."""
    teacher_dir = os.path.join(root, "teacher")
    teacher = _config(
        REFERENCE_PRESET,
        pattern,
        batch_size=args.compute_batch,
        max_steps=1,
        checkpoint_every_steps=1,
        eval_every_steps=0,
    )
    train_or_reuse(teacher, teacher_dir, strategy_lib.make_strategy("one_device"))
    teacher_model = build_video_model(teacher.model)
    tf.train.Checkpoint(model=teacher_model).restore(
        tf.train.latest_checkpoint(os.path.join(teacher_dir, "checkpoints"))
    ).expect_partial()
    cache_dir = os.path.join(root, "cache")
    write_teacher_cache(
        teacher_model,
        teacher.model,
        videos.read_videos(
            teacher.data, teacher.model, pattern, batch_size=args.compute_batch, training=False
        ),
        cache_dir,
        metadata={"data_pattern": pattern},
    )
    del teacher_model
    student = _config("distilled_k6.flags", pattern, batch_size=args.compute_batch)
    results = {}
    for name, distill in (
        ("online", DistillConfig(teacher_run_dir=teacher_dir)),
        ("cached", DistillConfig(teacher_cache_dir=cache_dir)),
    ):
        trainer = DistillationTrainer(
            student.model,
            student.train,
            student.data,
            os.path.join(root, f"student_{name}"),
            strategy_lib.make_strategy("one_device"),
            distill,
        )
        results[f"{name}_step_seconds"] = _step_seconds(trainer, args)
        del trainer
        gc.collect()
        print(f"distillation {name}: {results[f'{name}_step_seconds']:.3f} s/step", flush=True)
    results["online_over_cached_step_seconds"] = (
        results["online_step_seconds"] / results["cached_step_seconds"]
    )
    student_flops = 3 * count_flops_per_video(student.model, student.model.k_frames)
    teacher_flops = count_flops_per_video(teacher.model, FRAMES)
    batch, peak = args.compute_batch, peaks["float32"] * 1e9
    results["parameters"] = build_video_model(student.model).count_params()
    results["cached_flop_seconds_at_fp32_peak"] = batch * student_flops / peak
    results["online_flop_seconds_at_fp32_peak"] = batch * (student_flops + teacher_flops) / peak
    # What bounds the ratio here: online = the teacher's part (measured: online - cached, the
    # teacher's forward with its 300-frame input and the in-step frame selection) + the student's
    # step. Even a student step at this machine's limits (its FLOPs at the matmul peak plus Adam's
    # passes over its parameters at the measured bandwidth, `memory_limit`)
    # would give (teacher part + that) / that. A generous bound: it counts no memory traffic of
    # the backward pass, and keeps the teacher's part as measured.
    bandwidth = memory_limit(results["parameters"], args.compute_repeats)
    adam_at_bandwidth = bandwidth["adam_ms_at_memory_bandwidth"] / 1e3
    student_at_limits = results["cached_flop_seconds_at_fp32_peak"] + adam_at_bandwidth
    teacher_part = results["online_step_seconds"] - results["cached_step_seconds"]
    results["memory_limit"] = bandwidth
    results["adam_seconds_at_memory_bandwidth"] = adam_at_bandwidth
    results["teacher_part_of_online_step_seconds"] = teacher_part
    results["cached_step_seconds_at_limits"] = student_at_limits
    results["online_over_cached_if_cached_at_limits"] = (
        teacher_part + student_at_limits
    ) / student_at_limits
    return results


def steps_per_loop_rates(root: str) -> dict:
    """steps_per_loop_benchmark.run with its defaults: the tiny student at 1 and 10."""
    spec = importlib.util.spec_from_file_location(
        "steps_per_loop_benchmark", REPO_ROOT / "benchmarks" / "steps_per_loop_benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run(module.parse_args([]), root)


def reference_records(root: str, num_shards: int, videos_per_shard: int) -> str:
    """Synthetic training records at the reference shapes (300 frames of 1024 + 128 uint8
    features, 3862 classes) under root; returns their file pattern. Shared with the other
    reference-shape benchmarks (bf16_profile.py, student_step_profile.py)."""
    files = write_synthetic_yt8m(
        root,
        split="train",
        num_shards=num_shards,
        videos_per_shard=videos_per_shard,
        num_classes=3862,
        feature_sizes=(1024, 128),
        min_frames=FRAMES,
        max_frames=FRAMES,
    )
    return os.path.join(os.path.dirname(files[0]), "train-*")


def measure_compute(args, root: str) -> dict:
    """Every figure of the module docstring; root: a scratch directory."""
    os.makedirs(root, exist_ok=True)
    pattern = reference_records(root, num_shards=2, videos_per_shard=2 * args.compute_batch)
    peaks = matmul_peaks(args.matmul_size, args.compute_repeats)
    train = train_rates(args, pattern, os.path.join(root, "train_runs"), peaks)
    inference = inference_ms(args, pattern)
    distillation = distillation_steps(args, pattern, os.path.join(root, "distill"), peaks)
    loops = steps_per_loop_rates(os.path.join(root, "steps_per_loop"))["tiny_student_k6.flags"]
    ratios = {
        **train["ratios"],
        "teacher_inference_bf16_over_fp32_ms": inference["teacher"]["bf16_over_fp32"],
        "online_over_cached_step_seconds": distillation["online_over_cached_step_seconds"],
        "steps_per_loop_10_over_1": loops["ratio_over_one_step_per_call"]["10"],
    }
    return {
        "goals": GOALS,
        "ratios": ratios,
        "matmul_peak_gflop_per_sec": peaks,
        "train": train,
        "inference_ms_per_video": inference,
        "distillation": distillation,
        "steps_per_loop": {"preset": "tiny_student_k6.flags", **loops},
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        report = {
            "benchmark": "YouTube-8M compute side at reference shapes (issue 13)",
            "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            **measure_compute(args, root),
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
