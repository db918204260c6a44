"""Throughput of the UCF101 data side on the synthetic set: frame extraction and the clip pipeline.

Writes a synthetic UCF101-format set (yt8m_kd/data/ucf101_synthetic.py) at UCF101's frame size
(320x240, 25 fps) into a temporary folder, then times

  extraction  .avi -> JPEG frames (extract_videos), in frames written per second: one thread
              keeping the size, one thread with --short_side, --num_workers threads keeping
              the size; each run into a fresh folder
  pipeline    frame_dataset in training mode (T frames per clip, random crop of image_size) from
              the packed records and from the frame folders, in clips and decoded frames per
              second (T JPEGs decoded per clip), after --warmup_batches batches

and writes one JSON file with the machine, the settings and the timings (best of --repeats runs,
all runs listed). Other jobs may share the machine: the load average at the start is recorded
with it.

    .venv/bin/python benchmarks/ucf101_benchmark.py
    .venv/bin/python benchmarks/ucf101_benchmark.py --num_groups 3 --pipeline_batches 20
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import av
import numpy as np
import tensorflow as tf

from yt8m_kd import machine as yt8m_machine
from yt8m_kd.data import ucf101, ucf101_prepare, ucf101_synthetic

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=320, help="frame width of the videos")
    parser.add_argument("--height", type=int, default=240, help="frame height of the videos")
    parser.add_argument("--num_groups", type=int, default=3, help="groups per class (>= 3)")
    parser.add_argument("--clips_per_group", type=int, default=2, help="clips per group")
    parser.add_argument("--min_frames", type=int, default=24, help="shortest video")
    parser.add_argument("--max_frames", type=int, default=40, help="longest video")
    parser.add_argument("--short_side", type=int, default=128, help="extraction resize variant")
    parser.add_argument(
        "--num_workers", type=int, default=2, help="extraction threads of the threaded run"
    )
    parser.add_argument("--num_frames", type=int, default=8, help="T, frames per clip")
    parser.add_argument("--image_size", type=int, default=112, help="crop size")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per batch")
    parser.add_argument("--warmup_batches", type=int, default=3, help="untimed batches first")
    parser.add_argument("--pipeline_batches", type=int, default=40, help="timed batches")
    parser.add_argument("--num_shards", type=int, default=4, help="record files")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs of each measurement, best kept"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the set and the pipeline")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "ucf101.json",
        help="where the JSON goes",
    )
    return parser.parse_args(argv)


def machine_info() -> dict:
    return yt8m_machine.machine_info(
        tensorflow=tf.__version__,
        pyav=av.__version__,
        ffmpeg=".".join(str(v) for v in av.library_versions["libavcodec"]),
        numpy=np.__version__,
    )


def time_extraction(
    dataset, out_dir: str, short_side: int | None, num_workers: int, repeats: int
) -> dict:
    runs = []
    for repeat in range(repeats):  # each run into a fresh folder: nothing is skipped
        summary = ucf101_prepare.extract_videos(
            dataset.video_dir,
            f"{out_dir}_{repeat}",
            short_side=short_side,
            num_workers=num_workers,
            progress=False,
        )
        assert summary["failed"] == 0 and summary["skipped"] == 0, summary
        runs.append(summary)
    best = min(runs, key=lambda summary: summary["seconds"])
    return {
        "short_side": short_side,
        "num_workers": num_workers,
        "videos": best["extracted"],
        "frames": best["frames_written"],
        "seconds": best["seconds"],
        "all_seconds": [summary["seconds"] for summary in runs],
        "frames_per_second": best["frames_written"] / best["seconds"],
        "videos_per_second": best["extracted"] / best["seconds"],
    }


def time_pipeline(args, name: str, source, **kwargs) -> dict:
    dataset = ucf101.frame_dataset(
        source,
        batch_size=args.batch_size,
        num_frames=args.num_frames,
        image_size=args.image_size,
        training=True,
        shuffle=True,
        repeat=True,
        seed=args.seed,
        drop_remainder=True,
        **kwargs,
    )
    iterator = iter(dataset)
    for _ in range(args.warmup_batches):
        next(iterator)
    times = []
    for _ in range(args.repeats):  # consecutive windows of the same iterator
        start = time.perf_counter()
        for _ in range(args.pipeline_batches):
            batch = next(iterator)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    clips = args.pipeline_batches * args.batch_size
    expected = [args.batch_size, args.num_frames, args.image_size, args.image_size, 3]
    assert batch["frames"].shape == expected
    return {
        "source": name,
        "mode": "training",
        "clips": clips,
        "seconds": seconds,
        "all_seconds": times,
        "clips_per_second": clips / seconds,
        "decoded_frames_per_second": clips * args.num_frames / seconds,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="ucf101_benchmark_") as tmp:
        start = time.perf_counter()
        dataset = ucf101_synthetic.make_synthetic_ucf101(
            os.path.join(tmp, "set"),
            num_groups=args.num_groups,
            clips_per_group=args.clips_per_group,
            width=args.width,
            height=args.height,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            seed=args.seed,
        )
        generation = {
            "videos": len(dataset.videos),
            "frames": sum(dataset.num_frames),
            "seconds": time.perf_counter() - start,
        }
        print(f"wrote {generation['videos']} videos in {generation['seconds']:.1f} s", flush=True)

        extraction = []
        for short_side, num_workers in ((None, 1), (args.short_side, 1), (None, args.num_workers)):
            folder = os.path.join(tmp, f"frames_{short_side or 'full'}_{num_workers}")
            result = time_extraction(dataset, folder, short_side, num_workers, args.repeats)
            extraction.append(result)
            print(
                f"extraction short_side={short_side} num_workers={num_workers}: "
                f"{result['frames_per_second']:.0f} frames/s",
                flush=True,
            )
        frames_dir = os.path.join(tmp, "frames_full_1_0")  # the pipeline reads full-size frames

        split_file = dataset.split_file("train", 1)
        start = time.perf_counter()
        packed = ucf101_prepare.write_split_records(
            frames_dir,
            split_file,
            dataset.class_index_file,
            os.path.join(tmp, "records"),
            num_shards=args.num_shards,
        )
        packing = {
            "videos": packed["videos"],
            "frames": packed["frames"],
            "seconds": time.perf_counter() - start,
        }

        pipeline = [
            time_pipeline(
                args,
                "records",
                packed["shards"],
                class_index_file=dataset.class_index_file,
            ),
            time_pipeline(
                args,
                "frame folders",
                frames_dir,
                split_file=split_file,
                class_index_file=dataset.class_index_file,
            ),
        ]
        for result in pipeline:
            print(
                f"pipeline {result['source']}: {result['clips_per_second']:.1f} clips/s, "
                f"{result['decoded_frames_per_second']:.0f} decoded frames/s",
                flush=True,
            )

    report = {
        "benchmark": "UCF101 data side: frame extraction and the training clip pipeline",
        "machine": machine,
        "settings": {
            "videos": f"synthetic UCF101 set, {args.width}x{args.height}, 25 fps, "
            f"{args.min_frames}-{args.max_frames} frames, MPEG-4 part 2 in AVI",
            "num_classes": len(dataset.class_names),
            "num_groups": args.num_groups,
            "clips_per_group": args.clips_per_group,
            "jpeg_quality": 95,
            "pipeline_split": "trainlist01",
            "num_frames": args.num_frames,
            "image_size": args.image_size,
            "resize_short_side": round(args.image_size * 256 / 224),
            "batch_size": args.batch_size,
            "warmup_batches": args.warmup_batches,
            "timed_batches": args.pipeline_batches,
            "repeats": args.repeats,
            "timing": "best of `repeats` runs (seconds); all runs in all_seconds",
            "num_shards": args.num_shards,
            "seed": args.seed,
        },
        "generation": generation,
        "extraction": extraction,
        "packing": packing,
        "pipeline": pipeline,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
