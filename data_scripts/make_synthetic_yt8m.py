"""Writes a synthetic YouTube-8M frame-level dataset (train and validate shards).

  python data_scripts/make_synthetic_yt8m.py --output_dir=data/synthetic \
      --num_train_shards=4 --num_eval_shards=1 --videos_per_shard=256 --num_classes=100 \
      --feature_sizes=64,16

The records are in the exact YouTube-8M format, so every launcher reads them like the real data.
The generative process (long-tailed classes, evidence in a few short bursts, missing labels) is
documented in yt8m_kd/data/synthetic.py. The same flags write byte-identical files; both splits
share their classes (drawn from --seed) and differ in their videos.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags

from yt8m_kd import cli
from yt8m_kd.data import synthetic

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory for the shards.", required=True)
_NUM_TRAIN_SHARDS = flags.DEFINE_integer("num_train_shards", 4, "Files of the train split.")
_NUM_EVAL_SHARDS = flags.DEFINE_integer("num_eval_shards", 1, "Files of the validate split.")
_VIDEOS_PER_SHARD = flags.DEFINE_integer("videos_per_shard", 256, "Records per file.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 100, "Classes (YouTube-8M 2018: 3862).")
_FEATURE_NAMES = flags.DEFINE_list("feature_names", ["rgb", "audio"], "Feature lists per record.")
_FEATURE_SIZES = flags.DEFINE_list(
    "feature_sizes", ["1024", "128"], "Bytes per frame of each feature (YouTube-8M: 1024,128)."
)
_MIN_FRAMES = flags.DEFINE_integer("min_frames", 60, "Shortest video, in frames.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", 300, "Longest video, in frames.")
_SEED = flags.DEFINE_integer("seed", 0, "Seeds the classes and, with the split, the videos.")
_ID_KEY = flags.DEFINE_enum(
    "id_key", "id", ["id", "video_id"], "Context key of the video id (2017 data: video_id)."
)
_LABEL_MISS_RATE = flags.DEFINE_float(
    "label_miss_rate", 0.15, "Probability that a true label is left out of a record."
)


def main(argv: list[str]) -> None:
    del argv
    feature_sizes = tuple(int(size) for size in _FEATURE_SIZES.value)
    for split, num_shards in (
        ("train", _NUM_TRAIN_SHARDS.value),
        ("validate", _NUM_EVAL_SHARDS.value),
    ):
        paths = synthetic.write_synthetic_yt8m(
            _OUTPUT_DIR.value,
            split=split,
            num_shards=num_shards,
            videos_per_shard=_VIDEOS_PER_SHARD.value,
            num_classes=_NUM_CLASSES.value,
            feature_sizes=feature_sizes,
            feature_names=tuple(_FEATURE_NAMES.value),
            min_frames=_MIN_FRAMES.value,
            max_frames=_MAX_FRAMES.value,
            seed=_SEED.value,
            id_key=_ID_KEY.value,
            label_miss_rate=_LABEL_MISS_RATE.value,
        )
        cli.stage(
            f"wrote {len(paths)} {split} shards of {_VIDEOS_PER_SHARD.value} videos to "
            f"{_OUTPUT_DIR.value}"
        )


if __name__ == "__main__":
    cli.run(main)
