"""What a SAKD difficulty pass costs, and what gathering the student's frames in tf.data saves.

A difficulty pass (issue 14, item 3) runs the student over every training video with its frames
temporally interrupted. Before, the step received all T frames of each video, dequantized and
interrupted all of them, then selected the student's k; now `sakd.interrupted_selection` finds,
in tf.data, which original frame lands at each of the student's k positions of the interrupted
video, so the step receives [B, k, D] uint8 and a kept mask (tests/test_sakd.py and
tests/test_sakd_trainer.py show that the difficulties are the same). One run, per scale:

  read            iterating the pass's pipeline alone (records parsed, checked, joined with the
                  teacher cache): what no change to the step can save
  all_frames_step the pass's loop the way before: all frames to the step, interrupted there
  k_frames_host   the pass's loop now: frames interrupted and selected in tf.data
  pass            SAKDTrainer.difficulty_pass as a whole (loop, strength, selection, files), its
                  pipeline built by an earlier pass (as in a run: it is built once)
  pass_rebuilt    the same with its pipeline built and traced again, as every pass did before
  read_records    `yt8m.frame_dataset` over the training files, every record
  read_records_10pct  the same with an id_filter that keeps one video in ten, as the first epoch
                  of a SAKD selection reads them (a rejected record is read only as far as its id)

Scales: `tiny` (tiny_sakd_k6.flags: 64 + 16 features, 32 classes, a NeXtVLAD of tiny widths) and
`reference` (sakd_k6.flags: 1024 + 128 features, 3862 classes, the reference student's widths,
k = 6); 300 frames per video either way. The teacher cache is that of an untrained teacher with the
tiny inner widths and the scale's output widths (only its widths matter here). Each loop runs
--repeats times, the variants taking turns; the best of each is kept.

    .venv/bin/python benchmarks/sakd_pass_benchmark.py
    .venv/bin/python benchmarks/sakd_pass_benchmark.py --scales tiny --videos 512 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import tensorflow as tf

from yt8m_kd import flags as yflags
from yt8m_kd import machine as yt8m_machine
from yt8m_kd.data import videos, yt8m, yt8m_records
from yt8m_kd.data.synthetic import write_synthetic_yt8m
from yt8m_kd.distill import sakd
from yt8m_kd.distill.teacher_cache import write_teacher_cache
from yt8m_kd.modeling import build_video_model
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.sakd_trainer import SAKDTrainer

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "models"
FRAMES = 300
SCALES = {
    "tiny": {"preset": "tiny_sakd_k6.flags", "feature_sizes": (64, 16), "num_classes": 32},
    "reference": {"preset": "sakd_k6.flags", "feature_sizes": (1024, 128), "num_classes": 3862},
}
# A drop epoch and a shuffle epoch of 10 (beta 0.23 and 0.71 under the polynomial schedule).
EPOCHS = (2, 7)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="tiny,reference", help="comma-separated")
    parser.add_argument("--videos", type=int, default=1024, help="training videos per scale")
    parser.add_argument("--batch_size", type=int, default=256, help="the pass's batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops per variant")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "sakd_pass.json",
        help="where the JSON goes",
    )
    return parser.parse_args(argv)


def _config(preset: str, pattern: str, scale: dict, **overrides):
    return yflags.read_flagfile(
        str(MODELS / preset),
        train_data_pattern=pattern,
        feature_sizes=scale["feature_sizes"],
        num_classes=scale["num_classes"],
        max_frames=FRAMES,
        progress_bar=False,
        checkpoint_every_steps=10**9,
        log_every_steps=10**9,
        **overrides,
    )


def _teacher_cache(root: str, pattern: str, scale: dict, batch_size: int) -> str:
    teacher = _config("tiny_teacher.flags", pattern, scale)
    dataset = videos.read_videos(
        teacher.data, teacher.model, pattern, batch_size=batch_size, training=False
    )
    cache_dir = os.path.join(root, "cache")
    write_teacher_cache(
        build_video_model(teacher.model),
        teacher.model,
        dataset,
        cache_dir,
        metadata={"data_pattern": pattern},
    )
    return cache_dir


def _all_frames_step(trainer: SAKDTrainer):
    """The pass's step the way before: every frame dequantized and interrupted in the step,
    then the student's k selected (tests/test_sakd_trainer.py compares the two)."""

    @tf.function(reduce_retracing=True)
    def step(batch, beta, seed):
        frames = yt8m_records.dequantize(batch["frames"])
        frames = sakd.temporal_interruption(
            frames, batch["num_frames"], beta, seed, eta=trainer.sakd_config.eta
        )
        inputs = {"frames": frames, "num_frames": batch["num_frames"]}
        student = trainer.model(model_inputs(inputs, trainer.model_config, seed), training=False)
        losses = trainer._per_sample_losses(batch, student, batch["teacher_logits"])
        return losses["distill_loss"]

    return step


def _one_in_ten(video_id: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.to_hash_bucket_fast(video_id, 10), 0)


def _timed(loop) -> float:
    started = time.perf_counter()
    loop()
    return time.perf_counter() - started


def measure_scale(name: str, args: argparse.Namespace, root: str) -> dict:
    scale = SCALES[name]
    write_synthetic_yt8m(
        root,
        split="train",
        num_shards=4,
        videos_per_shard=args.videos // 4,
        num_classes=scale["num_classes"],
        feature_sizes=scale["feature_sizes"],
        min_frames=FRAMES,
        max_frames=FRAMES,
    )
    pattern = os.path.join(root, "train-*")
    cache = _teacher_cache(root, pattern, scale, args.batch_size)
    config = _config(
        scale["preset"], pattern, scale, eval_batch_size=args.batch_size, teacher_cache=cache
    )
    trainer = SAKDTrainer(
        config.model,
        config.train,
        config.data,
        os.path.join(root, "run"),
        strategy_lib.make_strategy("one_device"),
        config.distill,
        config.sakd,
        config.num_epochs,
    )
    old_step = _all_frames_step(trainer)
    seed_base = trainer.config.seed * 1000

    def read():
        for _ in trainer._pass_frames():
            pass

    def reader(id_filter):
        return yt8m.frame_dataset(
            pattern,
            batch_size=32,
            max_frames=FRAMES,
            num_classes=scale["num_classes"],
            feature_sizes=scale["feature_sizes"],
            id_filter=id_filter,
        )

    # The first epoch of a selection reads every file for the selected 10%: the others are read
    # only as far as their id (`yt8m_records.record_id`).
    every_record, a_tenth = reader(None), reader(_one_in_ten)

    def read_records(dataset):
        def loop():
            for _ in dataset:
                pass

        return loop

    def all_frames_step(epoch, beta):
        def loop():
            for number, batch in enumerate(trainer._pass_frames()):
                seed = tf.constant([seed_base + epoch, number], tf.int64)
                old_step(batch, tf.constant(beta, tf.float32), seed).numpy()

        return loop

    def k_frames_host(epoch, beta):
        def loop():
            for batch in trainer._interrupted(epoch, beta):
                trainer._difficulty_fn(batch).numpy()

        return loop

    variants = {"read": lambda epoch, beta: read}
    variants["read_records"] = lambda epoch, beta: read_records(every_record)
    variants["read_records_10pct"] = lambda epoch, beta: read_records(a_tenth)
    variants["all_frames_step"] = all_frames_step
    variants["k_frames_host"] = k_frames_host
    variants["pass"] = lambda epoch, beta: lambda: trainer.difficulty_pass(epoch)

    def pass_rebuilt(epoch, beta):
        def loop():
            trainer._pass_data = trainer._pass_interrupted = None  # built and traced again
            trainer.difficulty_pass(epoch)

        return loop

    variants["pass_rebuilt"] = pass_rebuilt
    seconds: dict[str, list[float]] = {key: [] for key in variants}
    cfg = trainer.sakd_config
    for repeat in range(args.repeats + 1):  # the first round traces and warms: not kept
        for key, make in variants.items():
            epoch = EPOCHS[repeat % len(EPOCHS)]
            beta = sakd.interruption_rate(epoch, trainer.num_epochs, cfg.schedule, cfg.power)
            took = _timed(make(epoch, beta))
            if repeat > 0:
                seconds[key].append(took)
                print(f"{name} {key} (epoch {epoch}): {took:.2f} s", flush=True)
    best = {key: min(values) for key, values in seconds.items()}
    return {
        "preset": scale["preset"],
        "feature_sizes": list(scale["feature_sizes"]),
        "num_classes": scale["num_classes"],
        "frames": FRAMES,
        "k_frames": config.model.k_frames,
        "videos": args.videos,
        "batch_size": args.batch_size,
        "seconds": best,
        "all_seconds": seconds,
        "videos_per_sec": {key: args.videos / value for key, value in best.items()},
        "ratios": {
            "k_frames_host_over_all_frames_step": best["k_frames_host"] / best["all_frames_step"],
            "read_over_k_frames_host": best["read"] / best["k_frames_host"],
            "read_over_all_frames_step": best["read"] / best["all_frames_step"],
            "pass_over_pass_rebuilt": best["pass"] / best["pass_rebuilt"],
            "read_records_10pct_over_all": best["read_records_10pct"] / best["read_records"],
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = {
        "benchmark": "SAKD difficulty pass: all frames in the step vs k frames gathered in tf.data",
        "machine": yt8m_machine.machine_info(tensorflow=tf.__version__),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "scales": {},
    }
    for name in args.scales.split(","):
        root = tempfile.mkdtemp(prefix=f"sakd_pass_{name}_")
        try:
            results["scales"][name] = measure_scale(name, args, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
