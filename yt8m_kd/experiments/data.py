"""The synthetic YouTube-8M data of the experiments (and the demo), made once per data directory.

The data are fixed by their manifest (synthetic.json: format, videos and shards per split, the
generator's seed); training seeds vary, the data do not. The manifest is written last, so only
finished data have one, and a directory whose manifest says otherwise is refused, as is one with
files but no manifest: two experiments that ask for the same data share them (the fewer-frames
and SAKD experiments do). `data_manifest` does these checks for any synthetic set.
"""

from __future__ import annotations

import os

import tensorflow as tf

from yt8m_kd.cli import stage
from yt8m_kd.configs import FlagError, ModelConfig
from yt8m_kd.data import synthetic
from yt8m_kd.files import read_json, write_json

DATA_MANIFEST = "synthetic.json"


def data_manifest(data_dir: str, manifest: dict, hint: str) -> dict | None:
    """The manifest (synthetic.json) of the data in data_dir, made as `manifest` says (it may
    hold more keys); None when data_dir holds nothing yet.

    Raises:
      FlagError: data made otherwise (`hint`: the flags to match them), or files in data_dir
        without a manifest.
    """
    existing = read_json(os.path.join(data_dir, DATA_MANIFEST))
    if existing is None:
        if tf.io.gfile.isdir(data_dir) and tf.io.gfile.listdir(data_dir):
            raise FlagError(
                f"--data_dir={data_dir} holds files but no {DATA_MANIFEST} (not made by the "
                "experiment launchers): remove it or use another --data_dir"
            )
        return None
    made = {key: existing.get(key) for key in manifest}
    if made != manifest:
        raise FlagError(
            f"--data_dir={data_dir} holds synthetic data made with {made}, not {manifest}: use "
            f"another --data_dir (or {hint})"
        )
    return existing


def synthetic_yt8m(
    data_dir: str,
    model: ModelConfig,
    train_videos: int,
    eval_videos: int,
    *,
    shards: tuple[int, int] = (8, 4),
    seed: int = 0,
) -> tuple[str, str]:
    """Train and validate shards in `model`'s format (classes, feature sizes), made unless there.

    Returns (train pattern, eval pattern).

    Raises:
      FlagError: video counts that are not multiples of the shards (checked first, before any
        file is written), or a data_dir refused by `data_manifest`.
    """
    for name, videos, num_shards in (
        ("train_videos", train_videos, shards[0]),
        ("eval_videos", eval_videos, shards[1]),
    ):
        if videos <= 0 or videos % num_shards:
            raise FlagError(f"--{name}={videos} must be a positive multiple of {num_shards}")
    manifest = {
        "num_classes": model.num_classes,
        "feature_sizes": list(model.feature_sizes),
        "train_videos": train_videos,
        "train_shards": shards[0],
        "eval_videos": eval_videos,
        "eval_shards": shards[1],
        "seed": seed,
    }
    patterns = (
        os.path.join(data_dir, "train-*.tfrecord"),
        os.path.join(data_dir, "validate-*.tfrecord"),
    )
    if data_manifest(data_dir, manifest, "matching --train_videos/--eval_videos") is not None:
        return patterns
    stage(f"== {data_dir}: writing synthetic data")
    for split, videos, num_shards in (
        ("train", train_videos, shards[0]),
        ("validate", eval_videos, shards[1]),
    ):
        synthetic.write_synthetic_yt8m(
            data_dir,
            split=split,
            num_shards=num_shards,
            videos_per_shard=videos // num_shards,
            num_classes=model.num_classes,
            feature_sizes=model.feature_sizes,
            seed=seed,
        )
    write_json(os.path.join(data_dir, DATA_MANIFEST), manifest)  # last: only finished data have it
    return patterns
