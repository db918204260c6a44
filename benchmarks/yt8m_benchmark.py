"""The YouTube-8M data side at reference shapes, as ratios against this machine's own limits.

Every figure of issue 12's table, measured in one run (the machine is shared and noisy: each rate
is the best of --repeats passes, the variants taking turns, so that the ratios compare like with
like):

  read      videos/s of `yt8m.frame_dataset` against a raw `TFRecordDataset` over the same files
            (the rate at which the records' bytes can be read at all), and against a minimal
            pipeline that parses and decodes them without any check
            (`parse_single_sequence_example` + `decode_raw` + multi-hot labels, padded batches), at
            1 and 2 parallel parse calls (per file, for frame_dataset) and AUTOTUNE, on 1 and 2
            threads (the pipeline's private thread pool: how it scales with cores), strict and
            with --skip_bad_records
  cache     peak RSS growth of a student's training pipeline (shuffled, batch 32) that goes through
            N videos once joined with a teacher cache of the reference teacher (3862 logits + a
            2048-wide repr, float32), for N = 10,000 and 100,000: the cache in memory
            (`TeacherCache`) and streamed per input file (`StreamedTeacherCache`); the records (one
            frame each) and cache rows are written directly: no teacher runs
  costs     where a record's time goes, on one thread: TensorFlow's reader, the minimal parse, the
            reader's parse and checks, the whole frame_dataset, and one tf.data function call
  bytes     bytes per student example sent to the training step from a cache, k = 6 of 300 frames
            (`host_selection_benchmark.measure_bytes`: frames selected in the step or in tf.data)
  compute   issue 13's figures (`compute_benchmark.measure_compute`): matmul peaks, the reference
            training step in float32 and bfloat16 with and without XLA, inference ms/video,
            online against cached distillation, steps per call

Synthetic records at the reference shapes: 1024 + 128 uint8 features, 300 frames, 3862 classes.

    .venv/bin/python benchmarks/yt8m_benchmark.py
    .venv/bin/python benchmarks/yt8m_benchmark.py --videos_per_file 64 --repeats 2 --cache_videos 2000
    .venv/bin/python benchmarks/yt8m_benchmark.py --skip_read --skip_bytes --update  # cache only
    .venv/bin/python benchmarks/yt8m_benchmark.py --skip_read --skip_bytes --skip_cache --update
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from yt8m_kd import machine as yt8m_machine
from yt8m_kd.data import yt8m, yt8m_records
from yt8m_kd.data.synthetic import make_example, write_synthetic_yt8m
from yt8m_kd.distill import teacher_cache

REPO_ROOT = Path(__file__).resolve().parent.parent

REFERENCE = {
    "feature_names": ("rgb", "audio"),
    "feature_sizes": (1024, 128),
    "frames": 300,
    "num_classes": 3862,
    "teacher_repr": 2048,
}
# The goals of issue 12, as ratios.
GOALS = {
    "frame_dataset_over_raw": 0.5,
    "frame_dataset_over_minimal": 0.9,
    "cache_rss_growth_10k_to_100k_mb": 300,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4, help="record files")
    parser.add_argument("--videos_per_file", type=int, default=128, help="records per file")
    parser.add_argument("--batch_size", type=int, default=32, help="videos per batch")
    parser.add_argument("--repeats", type=int, default=3, help="passes per variant, best kept")
    parser.add_argument(
        "--cache_videos",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 200_000],
        help="teacher cache sizes whose peak RSS is measured",
    )
    parser.add_argument("--skip_read", action="store_true", help="leave out the read rates")
    parser.add_argument("--skip_cache", action="store_true", help="leave out the cache RSS")
    parser.add_argument("--skip_bytes", action="store_true", help="leave out bytes per example")
    parser.add_argument(
        "--skip_compute", action="store_true", help="leave out the compute side (issue 13)"
    )
    _benchmark_module("compute_benchmark").add_arguments(parser)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "yt8m.json",
        help="where the JSON goes",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the sections of an existing --output that this run leaves out (each section "
        "says when it was measured)",
    )
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ read rates
def raw_pipeline(files: list[str], batch_size: int) -> tf.data.Dataset:
    """The records' bytes, read and CRC-checked by TensorFlow's reader, nothing else; repeated."""
    files_ds = tf.data.Dataset.from_tensor_slices(files).repeat()
    records = files_ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=len(files),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return records.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def minimal_parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """One record parsed and decoded as frame_dataset does, without any check."""
    names, frames = REFERENCE["feature_names"], REFERENCE["frames"]
    context, sequences = tf.io.parse_single_sequence_example(
        serialized,
        context_features={
            "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "labels": tf.io.VarLenFeature(tf.int64),
        },
        sequence_features={
            name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True) for name in names
        },
    )
    decoded = tf.concat(
        [tf.io.decode_raw(sequences[name][:frames], tf.uint8) for name in names], axis=1
    )
    labels = context["labels"].values
    multi_hot = tf.scatter_nd(
        labels[:, tf.newaxis], tf.ones_like(labels, tf.float32), [REFERENCE["num_classes"]]
    )
    return {
        "video_id": context["id"],
        "frames": decoded,
        "num_frames": tf.shape(decoded, out_type=tf.int32)[0],
        "labels": tf.minimum(multi_hot, 1.0),
    }


def minimal_pipeline(files: list[str], batch_size: int, parallel_calls) -> tf.data.Dataset:
    """Parse, decode and batch as frame_dataset does, without any check or error accounting;
    repeated."""
    files_ds = tf.data.Dataset.from_tensor_slices(files).repeat()
    records = files_ds.interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE
    )
    parsed = records.map(minimal_parse, num_parallel_calls=parallel_calls)
    batches = parsed.padded_batch(
        batch_size,
        padded_shapes={
            "video_id": [],
            "frames": [REFERENCE["frames"], sum(REFERENCE["feature_sizes"])],
            "num_frames": [],
            "labels": [REFERENCE["num_classes"]],
        },
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def frame_pipeline(
    files, batch_size, parallel_calls, skip_bad_records=False, native=True, general=False
):
    """frame_dataset; native=False: with TensorFlow's parser alone (no native code); general=True:
    its general pipeline with the native per-record decoder, without the whole-file read (which
    a reader that names each record's file does not use: source_files=True)."""
    counter = yt8m.BadRecordCounter() if skip_bad_records else None
    return yt8m.frame_dataset(
        files,
        batch_size=batch_size,
        max_frames=REFERENCE["frames"],
        num_classes=REFERENCE["num_classes"],
        feature_names=REFERENCE["feature_names"],
        feature_sizes=REFERENCE["feature_sizes"],
        skip_bad_records=skip_bad_records,
        bad_record_counter=counter,
        num_parallel_calls=parallel_calls,
        repeat=True,
        native_decoder=native,
        source_files=general,
    )


def _on_threads(dataset: tf.data.Dataset, threads: int) -> tf.data.Dataset:
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return dataset.with_options(options)


def _videos_per_second(iterator, batches: int) -> float:
    """Steady state: videos/s over the next `batches` batches of a running iterator."""
    started, videos = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(iterator)
        videos += int(tf.shape(batch["video_id"] if isinstance(batch, dict) else batch)[0])
    return videos / (time.perf_counter() - started)


def measure_read(args: argparse.Namespace, root: str) -> dict:
    files = write_synthetic_yt8m(
        root,
        split="train",
        num_shards=args.files,
        videos_per_shard=args.videos_per_file,
        num_classes=REFERENCE["num_classes"],
        feature_sizes=REFERENCE["feature_sizes"],
        min_frames=REFERENCE["frames"],
        max_frames=REFERENCE["frames"],
    )
    total_bytes = sum(os.path.getsize(path) for path in files)
    auto = tf.data.AUTOTUNE
    variants = {
        "raw_tfrecord": lambda: raw_pipeline(files, args.batch_size),
        "minimal_parse": lambda: minimal_pipeline(files, args.batch_size, auto),
        "minimal_parse_1_call": lambda: minimal_pipeline(files, args.batch_size, 1),
        "minimal_parse_2_calls": lambda: minimal_pipeline(files, args.batch_size, 2),
        "frame_dataset": lambda: frame_pipeline(files, args.batch_size, auto),
        "frame_dataset_1_call": lambda: frame_pipeline(files, args.batch_size, 1),
        "frame_dataset_2_calls": lambda: frame_pipeline(files, args.batch_size, 2),
        "frame_dataset_skip_bad_records": lambda: frame_pipeline(
            files, args.batch_size, auto, skip_bad_records=True
        ),
        "frame_dataset_tf_parser": lambda: frame_pipeline(
            files, args.batch_size, auto, native=False
        ),
        "frame_dataset_general_native": lambda: frame_pipeline(
            files, args.batch_size, auto, general=True
        ),
    }
    # Cores: the pipeline's own thread pool of 1 and 2 threads (tf.data runs every stage on it).
    for threads in (1, 2):
        variants[f"minimal_parse_{threads}_threads"] = lambda threads=threads: _on_threads(
            minimal_pipeline(files, args.batch_size, auto), threads
        )
        variants[f"frame_dataset_{threads}_threads"] = lambda threads=threads: _on_threads(
            frame_pipeline(files, args.batch_size, auto), threads
        )
    # Steady-state rates, one live iterator at a time: in each turn every variant in turn gets a
    # new iterator, a pass to fill and settle its buffers, and a timed pass, and is then dropped.
    # (Iterators kept alive between turns refilled their buffers and used the cores while
    # another variant was timed, which made single passes vary by 4x.) Building an iterator
    # (frame_dataset's takes about a second) is timed apart, on the first turn.
    batches = max(1, args.files * args.videos_per_file // args.batch_size)  # a pass
    setup_seconds = {}
    passes: dict[str, list[float]] = {name: [] for name in variants}
    for turn in range(args.repeats):
        for name, make in variants.items():  # the variants take turns
            started = time.perf_counter()
            iterator = iter(make())
            next(iterator)
            if turn == 0:
                setup_seconds[name] = time.perf_counter() - started
            _videos_per_second(iterator, batches)
            rate = _videos_per_second(iterator, batches)
            del iterator  # its threads
            passes[name].append(rate)
            print(f"{name}: {rate:,.0f} videos/s", flush=True)
    best = {name: max(rates) for name, rates in passes.items()}
    ratios = {
        "frame_dataset_over_raw": best["frame_dataset"] / best["raw_tfrecord"],
        "frame_dataset_over_minimal": best["frame_dataset"] / best["minimal_parse"],
        "frame_dataset_tf_parser_over_raw": best["frame_dataset_tf_parser"] / best["raw_tfrecord"],
        "frame_dataset_tf_parser_over_minimal": (
            best["frame_dataset_tf_parser"] / best["minimal_parse"]
        ),
        "native_over_tf_parser": best["frame_dataset"] / best["frame_dataset_tf_parser"],
        "whole_file_over_general_native": (
            best["frame_dataset"] / best["frame_dataset_general_native"]
        ),
        "frame_dataset_skip_over_minimal": (
            best["frame_dataset_skip_bad_records"] / best["minimal_parse"]
        ),
        "minimal_over_raw": best["minimal_parse"] / best["raw_tfrecord"],
        "frame_dataset_2_calls_over_1_call": (
            best["frame_dataset_2_calls"] / best["frame_dataset_1_call"]
        ),
        "minimal_2_calls_over_1_call": (
            best["minimal_parse_2_calls"] / best["minimal_parse_1_call"]
        ),
        "frame_dataset_2_threads_over_1_thread": (
            best["frame_dataset_2_threads"] / best["frame_dataset_1_threads"]
        ),
        "minimal_2_threads_over_1_thread": (
            best["minimal_parse_2_threads"] / best["minimal_parse_1_threads"]
        ),
    }
    # The same ratios turn by turn (the variants of a turn ran back to back, so a slow spell of
    # this shared machine hits both sides of a ratio alike), and their median over the turns: a
    # steadier figure than the ratio of two best passes, which may come from different spells.
    turn_ratios = {
        name: [a / b for a, b in zip(passes[top], passes[bottom], strict=True)]
        for name, (top, bottom) in {
            "frame_dataset_over_raw": ("frame_dataset", "raw_tfrecord"),
            "frame_dataset_over_minimal": ("frame_dataset", "minimal_parse"),
            "frame_dataset_tf_parser_over_minimal": ("frame_dataset_tf_parser", "minimal_parse"),
            "native_over_tf_parser": ("frame_dataset", "frame_dataset_tf_parser"),
            "whole_file_over_general_native": ("frame_dataset", "frame_dataset_general_native"),
            "minimal_over_raw": ("minimal_parse", "raw_tfrecord"),
        }.items()
    }
    return {
        "microseconds_per_record_one_thread": measure_costs(files, max(5, args.repeats)),
        "files": args.files,
        "videos": args.files * args.videos_per_file,
        "bytes": total_bytes,
        "raw_read_mb_per_sec": best["raw_tfrecord"]
        * total_bytes
        / (len(files) * args.videos_per_file)
        / 1e6,
        "videos_per_sec": best,
        "all_passes_videos_per_sec": passes,
        "first_batch_seconds": setup_seconds,
        "ratios": ratios,
        "ratios_per_turn": turn_ratios,
        "ratios_median_of_turns": {
            name: float(np.median(values)) for name, values in turn_ratios.items()
        },
    }


# ------------------------------------------------------------------------------------ costs
def _microseconds_per_element(datasets: dict[str, tf.data.Dataset], repeats: int) -> dict:
    """Steady-state wall time per element of repeated, batched datasets, each on one thread: the
    best of `repeats` rounds in which each dataset in turn gets a new iterator, 8 untimed batches
    and 8 timed ones, so that a slow spell of this shared machine does not fall on one dataset
    only. One iterator at a time: a live one would fill its buffers while another is timed. The
    untimed batches run past the end of a file (the cost files hold 128 records): there
    frame_dataset's iterator sets up its general pipeline, once (about 0.2 s)."""
    single = tf.data.Options()
    single.threading.private_threadpool_size = 1
    best = {name: 0.0 for name in datasets}
    for _ in range(repeats):
        for name, dataset in datasets.items():
            iterator = iter(dataset.with_options(single))
            _videos_per_second(iterator, 8)
            best[name] = max(best[name], _videos_per_second(iterator, 8))
            del iterator
    return {name: 1e6 / rate for name, rate in best.items()}


def measure_costs(files: list[str], repeats: int) -> dict:
    """Where a record's time goes, on one thread (microseconds per record): one file read by
    TensorFlow's reader alone, + the minimal parse, + the reader's parse and checks
    (`parse_record`, the same ops frame_dataset runs per record; with TensorFlow's parser alone
    and with the native frame decoder), the minimal parse of records batched by 16 and unbatched
    (what the reader's byte accounting did before it located records one by one), the whole
    frame_dataset (with its whole-file read, its general pipeline with the native decoder, and
    with TensorFlow's parser alone) and the minimal pipeline over that file; opening a file and
    reading its one record (with frame_dataset and with the minimal parse); and one tf.data
    function call on this machine (a map of x + 1)."""
    path, batch = files[0], 32
    options = {
        "max_frames": REFERENCE["frames"],
        "feature_names": REFERENCE["feature_names"],
        "feature_sizes": REFERENCE["feature_sizes"],
        "num_classes": REFERENCE["num_classes"],
    }
    shapes = {
        "video_id": [],
        "frames": [REFERENCE["frames"], sum(REFERENCE["feature_sizes"])],
        "num_frames": [],
        "labels": [REFERENCE["num_classes"]],
    }
    one_record = os.path.join(os.path.dirname(path), "one-record.tfrecord")
    with tf.io.TFRecordWriter(one_record) as writer:
        writer.write(next(iter(tf.data.TFRecordDataset(path))).numpy())

    def frames(pattern, native=True, general=False):
        return yt8m.frame_dataset(
            pattern,
            batch_size=batch,
            num_parallel_reads=1,
            num_parallel_calls=1,
            repeat=True,
            native_decoder=native,
            source_files=general,
            **options,
        )

    def minimal(file):
        records = tf.data.Dataset.from_tensors(file).repeat()
        records = records.interleave(tf.data.TFRecordDataset, cycle_length=1)
        return records.map(minimal_parse).padded_batch(batch, shapes)

    records = tf.data.TFRecordDataset(path).repeat()
    stages = {
        "read": records.batch(batch),
        "read_minimal_parse": records.map(minimal_parse).padded_batch(batch, shapes),
        # What the reader's old byte accounting did to each record: batch and unbatch it.
        "read_batch_unbatch_minimal_parse": records.batch(16)
        .unbatch()
        .map(minimal_parse)
        .padded_batch(batch, shapes),
        "read_parse_and_checks": records.map(
            lambda serialized: yt8m_records.parse_record(serialized, **options)[0]
        ).padded_batch(batch, shapes),
        "read_parse_and_checks_native": records.map(
            lambda serialized: yt8m_records.parse_record(
                serialized, **options, native_decoder=True
            )[0]
        ).padded_batch(batch, shapes),
        "frame_dataset": frames(path),
        "frame_dataset_tf_parser": frames(path, native=False),
        "frame_dataset_general_native": frames(path, general=True),
        "minimal_pipeline": minimal(path),
        "frame_dataset_file_open_and_record": frames(one_record),
        "minimal_pipeline_file_open_and_record": minimal(one_record),
    }
    numbers = tf.data.Dataset.range(10**12)
    stages["function_call_map"] = numbers.map(lambda x: x + 1).batch(1000)
    stages["function_call_none"] = numbers.batch(1000)
    costs = _microseconds_per_element(stages, repeats)
    costs["tf_data_function_call"] = costs.pop("function_call_map") - costs.pop(
        "function_call_none"
    )
    print("microseconds per record: " + ", ".join(f"{k} {v:.0f}" for k, v in costs.items()))
    return costs


# ------------------------------------------------------------------------------------ cache RSS
_ID_LENGTH = 12  # ids of one length: serialized records differ only in their id bytes


def _with_id(template: bytes, row: int) -> bytes:
    placeholder = b"#" * _ID_LENGTH
    at = template.index(placeholder)
    return template[:at] + f"v{row:0{_ID_LENGTH - 1}d}".encode() + template[at + _ID_LENGTH :]


def write_cache_and_records(
    root: str, num_videos: int, videos_per_file: int = 1_000
) -> tuple[str, str]:
    """Record files of num_videos one-frame videos and the teacher cache of them, laid out per
    input file as launchers/cache_teacher.py writes it, at the reference widths (the same row
    for every video under its own id: only the sizes matter here). Returns (pattern, cache dir).

    The records have one frame each: what is measured is the cache's memory, not the frames'."""
    rng = np.random.default_rng(0)
    placeholder = b"#" * _ID_LENGTH
    row_template = teacher_cache.example(
        placeholder,
        rng.normal(size=REFERENCE["num_classes"]).astype(np.float32),
        rng.normal(size=REFERENCE["teacher_repr"]).astype(np.float32),
    )
    frame = {
        name: rng.integers(0, 256, (1, size), dtype=np.uint8)
        for name, size in zip(REFERENCE["feature_names"], REFERENCE["feature_sizes"], strict=True)
    }
    record_template = make_example(placeholder, [1, 2], frame)
    records_dir, cache_dir = os.path.join(root, "records"), os.path.join(root, "cache")
    os.makedirs(records_dir, exist_ok=True)
    os.makedirs(cache_dir, exist_ok=True)
    shards = []
    for start in range(0, num_videos, videos_per_file):
        index = len(shards)
        path = os.path.join(records_dir, f"train-{index:05d}.tfrecord")
        name = teacher_cache.shard_name(index)
        rows = range(start, min(start + videos_per_file, num_videos))
        with (
            tf.io.TFRecordWriter(path) as records,
            tf.io.TFRecordWriter(os.path.join(cache_dir, name)) as cache,
        ):
            for row in rows:
                records.write(_with_id(record_template, row))
                cache.write(_with_id(row_template, row))
        shards.append(
            {
                "name": name,
                "num_videos": len(rows),
                "input_file": path,
                "input_size": os.path.getsize(path),
            }
        )
    metadata = {
        "format": teacher_cache.FORMAT,
        "num_classes": REFERENCE["num_classes"],
        "repr_size": REFERENCE["teacher_repr"],
        "num_videos": num_videos,
        "records_per_shard": None,
        "num_shards": 1,
        "shards": shards,
        "data_pattern": "(written by benchmarks/yt8m_benchmark.py)",
    }
    with open(os.path.join(cache_dir, teacher_cache.METADATA_FILE), "w") as f:
        json.dump(metadata, f)
    return os.path.join(records_dir, "train-*.tfrecord"), cache_dir


# Run in a fresh process: its resident memory before the cache is opened, and its peak while a
# shuffled training pipeline (batch 32, shuffle buffer 1024, as a run reads) joined with the cache
# goes through every video once (Linux: the peak is reset first through /proc/self/clear_refs, so
# that TensorFlow's own import does not set it). argv: join ("memory", "stream", or "none": the
# reader without a cache), records pattern, cache dir.
_RSS_PROBE = textwrap.dedent(
    """
    import json, sys, time
    import tensorflow as tf
    from yt8m_kd.data import yt8m
    from yt8m_kd.distill.cache_stream import StreamedTeacherCache
    from yt8m_kd.distill.teacher_cache import TeacherCache

    def status_kb(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    join, pattern, cache_dir = sys.argv[1:]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set, to the current one
    before = status_kb("VmRSS")
    started = time.perf_counter()
    options = dict(
        batch_size=32, max_frames=300, num_classes=3862, feature_sizes=(1024, 128),
        shuffle=True, seed=0, shuffle_buffer=1024,
    )
    if join == "none":  # the reader alone, no cache: what reading itself holds
        cache = None
        dataset = yt8m.frame_dataset(pattern, **options)
    elif join == "stream":
        cache = StreamedTeacherCache.open(cache_dir)
        dataset = yt8m.frame_dataset(pattern, file_join=cache, **options)
    else:
        cache = TeacherCache.load(cache_dir)
        dataset = cache.join(yt8m.frame_dataset(pattern, **options))
    videos = 0
    for batch in dataset:
        assert cache is None or batch["teacher_logits"].shape[1] == cache.num_classes
        videos += int(batch["video_id"].shape[0])
    assert videos == int(json.load(open(cache_dir + "/teacher_cache.json"))["num_videos"])
    print(json.dumps({
        "rss_before_kb": before,
        "rss_peak_kb": status_kb("VmHWM"),
        "epoch_seconds": time.perf_counter() - started,
    }))
    """
)


def _probe(join: str, pattern: str, cache_dir: str) -> dict:
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, join, pattern, cache_dir],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if probe.returncode != 0:
        raise RuntimeError(f"the {join} probe failed: {probe.stderr[-3000:]}")
    rss = json.loads(probe.stdout.strip().splitlines()[-1])
    return {
        "peak_rss_growth_mb": (rss["rss_peak_kb"] - rss["rss_before_kb"]) / 1024,
        "peak_rss_mb": rss["rss_peak_kb"] / 1024,
        "epoch_seconds": rss["epoch_seconds"],
    }


_JOINS = ("none", "stream", "memory")


def measure_cache_rss(args: argparse.Namespace, root: str) -> dict:
    """Peak RSS growth of a training pipeline over a cache of N videos, in memory and streamed,
    and of the same pipeline without a cache (what the reader itself holds)."""
    results = {}
    for num_videos in args.cache_videos:
        directory = os.path.join(root, f"cache_{num_videos}")
        started = time.perf_counter()
        pattern, cache_dir = write_cache_and_records(directory, num_videos)
        written = time.perf_counter() - started
        size = sum(os.path.getsize(os.path.join(cache_dir, name)) for name in os.listdir(cache_dir))
        results[str(num_videos)] = {"cache_bytes": size, "write_seconds": written}
        for join in _JOINS:
            results[str(num_videos)][join] = measured = _probe(join, pattern, cache_dir)
            print(
                f"cache of {num_videos:,} videos, {join}: peak RSS "
                f"+{measured['peak_rss_growth_mb']:,.0f} MB, epoch {measured['epoch_seconds']:.0f} s",
                flush=True,
            )
        shutil.rmtree(directory)  # the next size needs the disk
    sizes = sorted(args.cache_videos)
    if len(sizes) >= 2:
        results["rss_growth_mb_from_smallest_to_largest"] = {
            join: results[str(sizes[-1])][join]["peak_rss_growth_mb"]
            - results[str(sizes[0])][join]["peak_rss_growth_mb"]
            for join in _JOINS
        }
    return results


# ------------------------------------------------------------------------------------ bytes
def _benchmark_module(name: str):
    """Another script of benchmarks/, imported by its path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_bytes(root: str) -> dict:
    """host_selection_benchmark's figure: bytes per example the training step receives."""
    module = _benchmark_module("host_selection_benchmark")
    return module.measure_bytes(module.parse_args([]), root)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = {}
    if args.update and args.output.exists():
        report = json.loads(args.output.read_text())
    report.update(
        benchmark="YouTube-8M at reference shapes: data side (issue 12), compute side (issue 13)",
        machine=yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        settings={**vars(args), "output": str(args.output), "reference": REFERENCE},
        goals=GOALS,
    )
    sections = {
        "read": (not args.skip_read, lambda root: measure_read(args, root)),
        "bytes_per_student_example": (not args.skip_bytes, measure_bytes),
        "teacher_cache_rss": (not args.skip_cache, lambda root: measure_cache_rss(args, root)),
        "compute": (
            not args.skip_compute,
            lambda root: _benchmark_module("compute_benchmark").measure_compute(args, root),
        ),
    }
    with tempfile.TemporaryDirectory() as root:
        for name, (wanted, measure) in sections.items():
            if wanted:
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                report[name] = {"measured_at": started, **measure(os.path.join(root, name))}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    if "read" in report:
        print(json.dumps(report["read"]["ratios"], indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
