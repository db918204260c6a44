"""Good records read back from damaged YouTube-8M files in skip mode (`--skip_bad_records`).

Writes --num_files files of --records_per_file records, damages each (seeded): 1 to 3 byte flips
at random offsets, or a cut at a random offset, or both. A record is "good" when none of its bytes
(header, data, CRC) was touched; the reader in skip mode should read every good record and none
of the others. Prints and writes (--output) the counts:

  .venv/bin/python benchmarks/salvage_benchmark.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile

import numpy as np
import tensorflow as tf

from yt8m_kd.data import yt8m
from yt8m_kd.data.synthetic import make_example

NAMES, SIZES, NUM_CLASSES = ("rgb", "audio"), (32, 8), 10


def _records(rng: np.random.Generator, file_index: int, count: int) -> list[tuple[str, bytes]]:
    out = []
    for r in range(count):
        num_frames = int(rng.integers(2, 12))
        frames = {
            name: rng.integers(0, 256, (num_frames, size), dtype=np.uint8)
            for name, size in zip(NAMES, SIZES, strict=True)
        }
        video_id = f"f{file_index}r{r}"
        out.append((video_id, make_example(video_id, [r % NUM_CLASSES], frames)))
    return out


def _damage(rng: np.random.Generator, data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The damaged bytes and the touched byte ranges [start, end)."""
    data = bytearray(data)
    touched = []
    kind = rng.choice(["flips", "cut", "both"])
    if kind in ("flips", "both"):
        for offset in rng.integers(0, len(data), int(rng.integers(1, 4))):
            data[offset] ^= int(rng.integers(1, 256))
            touched.append((int(offset), int(offset) + 1))
    if kind in ("cut", "both"):
        cut = int(rng.integers(1, len(data)))
        touched.append((cut, len(data)))
        data = data[:cut]
    return bytes(data), touched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_files", type=int, default=60)
    parser.add_argument("--records_per_file", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/salvage.json")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    good, damaged = set(), set()
    with tempfile.TemporaryDirectory() as root:
        for f in range(args.num_files):
            records = _records(rng, f, args.records_per_file)
            path = os.path.join(root, f"train-{f:03d}.tfrecord")
            with tf.io.TFRecordWriter(path) as writer:
                for _, record in records:
                    writer.write(record)
            with open(path, "rb") as fh:
                data, touched = _damage(rng, fh.read())
            with open(path, "wb") as fh:
                fh.write(data)
            offset = 0
            for video_id, record in records:
                end = offset + len(record) + 16
                hit = any(start < end and offset < stop for start, stop in touched)
                (damaged if hit else good).add(video_id)
                offset = end
        counter = yt8m.BadRecordCounter()
        dataset = yt8m.frame_dataset(
            os.path.join(root, "*.tfrecord"),
            batch_size=16,
            max_frames=12,
            num_classes=NUM_CLASSES,
            feature_names=NAMES,
            feature_sizes=SIZES,
            skip_bad_records=True,
            bad_record_counter=counter,
        )
        read = [v.decode() for batch in dataset for v in batch["video_id"].numpy()]
    result = {
        "machine": platform.node(),
        "settings": vars(args),
        "good_records_written": len(good),
        "good_records_read": len(good & set(read)),
        "damaged_records_written": len(damaged),
        "damaged_records_read": len(damaged & set(read)),
        "records_read_twice": len(read) - len(set(read)),
        "bad_records": counter.counts(),
    }
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
