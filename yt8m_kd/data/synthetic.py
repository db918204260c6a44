"""Synthetic YouTube-8M frame records with learnable, temporally sparse class evidence.

The records are in the exact YouTube-8M frame-level format (docs/yt8m-format-and-metrics.md), so
the real input pipeline reads them. The generative process, in the dequantized feature space
([-2, 2] per dimension):

Classes (drawn from the dataset-level `class_seed`, shared by the train and eval splits):
- Class frequencies are long-tailed (Zipf-like): class c is drawn with probability proportional to
  (c + 1) ** -ZIPF_EXPONENT, so class 0 is the most frequent.
- Every class has one partner class (drawn from the same prior) that it tends to co-occur with.
- Per feature (rgb, audio, ...), a shared background mean (normal, std BACKGROUND_MEAN_STD) and
  one prototype per class: a random unit direction.

Videos (drawn from a split- and shard-specific seed):
- Length n uniform in [min_frames, max_frames].
- True labels: 1 + Binomial(MAX_EXTRA_LABELS, EXTRA_LABEL_PROB) distinct classes. The first is drawn
  from the class prior; each further one is, with probability PARTNER_PROB, the partner of a label
  already chosen (co-occurring classes), otherwise a fresh draw from the prior.
- Background: every frame = shared mean + a per-video nuisance offset (std VIDEO_OFFSET_STD) +
  independent frame noise (std `noise_std`, default 0.5).
- Class evidence, sparse in time: for each true label, 2 to 6 short bursts at random positions,
  together covering a fraction U(3%, 8%) of the frames, add `evidence_strength` (default 3.0)
  times the class prototype. A student that sees k = 6 frames usually misses most bursts; a
  teacher that sees all frames does not.
- A weak whole-video signal, `video_signal_strength` (default 0.25) times the prototype on every
  frame, keeps a k-frame student above chance. With the defaults, an oracle that knows the
  prototypes finds a true label as its top class in about 99% of videos from all frames and in
  about 60% from 6 uniformly spaced frames (100 classes).
- Features are quantized to uint8 by inverting the reference dequantization:
  q = clip(round((x + 1.9921875) * 255 / 4), 0, 255).
- Recorded labels are machine-made like YouTube-8M's: each true label is dropped with probability
  `label_miss_rate`, keeping at least one (a random one when all were dropped).

Everything is numpy with seeded generators: the same arguments write byte-identical files.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

ZIPF_EXPONENT = 1.1
PARTNER_PROB = 0.5
MAX_EXTRA_LABELS = 3
EXTRA_LABEL_PROB = 0.35
BACKGROUND_MEAN_STD = 0.25
VIDEO_OFFSET_STD = 0.1
BURSTS_PER_LABEL = (2, 6)  # inclusive range
EVIDENCE_COVERAGE = (0.03, 0.08)  # fraction of a video's frames that carry one label's bursts

# Reference dequantization: x = q * 4/255 - 1.9921875 (max = 2, min = -2).
_QUANT_SCALE = 255.0 / 4.0
_QUANT_BIAS = 1.9921875

# Tags that keep the class stream and the video streams of one seed independent.
_CLASS_STREAM = 0
_VIDEO_STREAM = 1


def make_example(
    video_id: str | bytes,
    labels: Sequence[int],
    features: Mapping[str, np.ndarray],
    id_key: str = "id",
) -> bytes:
    """A serialized YouTube-8M frame-level `tf.train.SequenceExample`.

    Args:
      video_id: the context id.
      labels: class indices (context `labels`, int64).
      features: feature name -> uint8 array [num_frames, feature_size]; each row becomes one bytes
        value of the feature list. An empty array writes an empty feature list; a name left out
        writes none (tests use both to build bad records).
      id_key: "id" (2018+ data) or "video_id" (2017 data).
    """
    example = tf.train.SequenceExample()
    if isinstance(video_id, str):
        video_id = video_id.encode()
    example.context.feature[id_key].bytes_list.value.append(video_id)
    example.context.feature["labels"].int64_list.value.extend(int(label) for label in labels)
    for name, values in features.items():
        values = np.asarray(values)
        if values.dtype != np.uint8 or values.ndim != 2:
            raise ValueError(
                f"feature {name!r}: expected a uint8 array [num_frames, size], got "
                f"{values.dtype} {values.shape}"
            )
        feature_list = example.feature_lists.feature_list[name]
        feature_list.feature.extend(
            tf.train.Feature(bytes_list=tf.train.BytesList(value=[row.tobytes()])) for row in values
        )
    return example.SerializeToString(deterministic=True)


def quantize(x: np.ndarray) -> np.ndarray:
    """float features -> uint8, the inverse of the reference dequantization (clipped)."""
    return np.clip(np.rint((x + _QUANT_BIAS) * _QUANT_SCALE), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class SyntheticClasses:
    """The dataset-level part of the process: class prior, partners, background and prototypes."""

    prior: np.ndarray  # [C] float64, sums to 1
    partner: np.ndarray  # [C] int64
    means: tuple[np.ndarray, ...]  # per feature [size] float32
    prototypes: tuple[np.ndarray, ...]  # per feature [C, size] float32, unit rows

    @property
    def num_classes(self) -> int:
        return len(self.prior)


def make_classes(
    num_classes: int, feature_sizes: Sequence[int], class_seed: int
) -> SyntheticClasses:
    """Draws the classes shared by every split of a synthetic dataset."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    rng = np.random.default_rng([class_seed, _CLASS_STREAM])
    weights = (np.arange(num_classes) + 1.0) ** -ZIPF_EXPONENT
    prior = weights / weights.sum()
    partner = rng.choice(num_classes, size=num_classes, p=prior)
    if num_classes > 1:  # a class is not its own partner
        same = partner == np.arange(num_classes)
        partner[same] = (partner[same] + 1) % num_classes
    means, prototypes = [], []
    for size in feature_sizes:
        means.append((BACKGROUND_MEAN_STD * rng.standard_normal(size)).astype(np.float32))
        directions = rng.standard_normal((num_classes, size))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        prototypes.append(directions.astype(np.float32))
    return SyntheticClasses(prior, partner, tuple(means), tuple(prototypes))


@dataclasses.dataclass(frozen=True)
class SyntheticVideo:
    video_id: str
    labels: list[int]  # recorded (what the record holds), sorted
    true_labels: list[int]  # the labels whose evidence is in the frames, sorted
    features: dict[str, np.ndarray]  # name -> uint8 [num_frames, size]


def _draw_true_labels(rng: np.random.Generator, classes: SyntheticClasses) -> list[int]:
    num_labels = min(1 + rng.binomial(MAX_EXTRA_LABELS, EXTRA_LABEL_PROB), classes.num_classes)
    labels = [int(rng.choice(classes.num_classes, p=classes.prior))]
    while len(labels) < num_labels:
        if rng.random() < PARTNER_PROB:
            candidate = int(classes.partner[labels[int(rng.integers(len(labels)))]])
        else:
            candidate = int(rng.choice(classes.num_classes, p=classes.prior))
        if candidate not in labels:
            labels.append(candidate)
    return sorted(labels)


def _burst_frames(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Frame indices of one label's evidence: a few short bursts at random positions."""
    coverage = rng.uniform(*EVIDENCE_COVERAGE)
    num_bursts = int(rng.integers(BURSTS_PER_LABEL[0], BURSTS_PER_LABEL[1] + 1))
    total = max(num_bursts, int(round(coverage * num_frames)))
    # Split `total` frames into num_bursts bursts of at least one frame each.
    cuts = np.sort(rng.choice(np.arange(1, total), size=num_bursts - 1, replace=False))
    lengths = np.diff(np.concatenate([[0], cuts, [total]]))
    starts = rng.integers(0, num_frames - lengths + 1)
    return np.concatenate(
        [start + np.arange(length) for start, length in zip(starts, lengths, strict=True)]
    )


def generate_videos(
    classes: SyntheticClasses,
    *,
    split: str,
    shard_index: int,
    num_videos: int,
    seed: int = 0,
    feature_names: Sequence[str] = ("rgb", "audio"),
    min_frames: int = 60,
    max_frames: int = 300,
    label_miss_rate: float = 0.15,
    evidence_strength: float = 3.0,
    video_signal_strength: float = 0.25,
    noise_std: float = 0.5,
) -> Iterator[SyntheticVideo]:
    """The videos of one shard (see the module docstring for the process); deterministic in
    (seed, split, shard_index) and independent of the other shards."""
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if len(feature_names) != len(classes.means):
        raise ValueError(f"{len(feature_names)} feature names for {len(classes.means)} features")
    split_code = zlib.crc32(split.encode())  # stable across processes, unlike hash()
    rng = np.random.default_rng([seed, _VIDEO_STREAM, split_code, shard_index])
    for index in range(num_videos):
        num_frames = int(rng.integers(min_frames, max_frames + 1))
        true_labels = _draw_true_labels(rng, classes)
        bursts = [_burst_frames(rng, num_frames) for _ in true_labels]
        features = {}
        for name, mean, prototypes in zip(
            feature_names, classes.means, classes.prototypes, strict=True
        ):
            size = mean.shape[0]
            offset = VIDEO_OFFSET_STD * rng.standard_normal(size, dtype=np.float32)
            x = noise_std * rng.standard_normal((num_frames, size), dtype=np.float32)
            x += mean + offset
            for label, frames in zip(true_labels, bursts, strict=True):
                x += video_signal_strength * prototypes[label]
                x[frames] += evidence_strength * prototypes[label]
            features[name] = quantize(x)
        kept = [label for label in true_labels if rng.random() >= label_miss_rate]
        if not kept:
            kept = [true_labels[int(rng.integers(len(true_labels)))]]
        yield SyntheticVideo(
            video_id=f"{split}-{shard_index:05d}-{index:05d}",
            labels=kept,
            true_labels=true_labels,
            features=features,
        )


def shard_path(output_dir: str, split: str, shard_index: int, num_shards: int) -> str:
    return os.path.join(output_dir, f"{split}-{shard_index:05d}-of-{num_shards:05d}.tfrecord")


def write_synthetic_yt8m(
    output_dir: str,
    *,
    split: str,
    num_shards: int,
    videos_per_shard: int,
    num_classes: int,
    feature_sizes: Sequence[int] = (1024, 128),
    feature_names: Sequence[str] = ("rgb", "audio"),
    min_frames: int = 60,
    max_frames: int = 300,
    seed: int = 0,
    id_key: str = "id",
    label_miss_rate: float = 0.15,
    class_seed: int | None = None,
    evidence_strength: float = 3.0,
    video_signal_strength: float = 0.25,
    noise_std: float = 0.5,
) -> list[str]:
    """Writes `{split}-00000-of-0000N.tfrecord` ... shards; returns their paths.

    Args:
      output_dir: created if missing.
      split: file name prefix ("train", "validate"); also seeds the videos.
      num_shards, videos_per_shard: files and records per file.
      num_classes, feature_sizes, feature_names: the format (YouTube-8M: 3862, (1024, 128)).
      min_frames, max_frames: video lengths are uniform in this inclusive range.
      seed: seeds the videos, together with the split and shard index.
      id_key: "id" (2018+ format) or "video_id" (2017 format).
      label_miss_rate: probability that a true label is left out of the record.
      class_seed: seeds the classes (prior, partners, prototypes); None uses `seed`. Splits written
        with the same class seed share their classes.
      evidence_strength, video_signal_strength, noise_std: see the module docstring.
    """
    if len(feature_names) != len(feature_sizes):
        raise ValueError("feature_names and feature_sizes differ in length")
    classes = make_classes(num_classes, feature_sizes, seed if class_seed is None else class_seed)
    tf.io.gfile.makedirs(output_dir)
    paths = []
    for shard_index in range(num_shards):
        path = shard_path(output_dir, split, shard_index, num_shards)
        videos = generate_videos(
            classes,
            split=split,
            shard_index=shard_index,
            num_videos=videos_per_shard,
            seed=seed,
            feature_names=feature_names,
            min_frames=min_frames,
            max_frames=max_frames,
            label_miss_rate=label_miss_rate,
            evidence_strength=evidence_strength,
            video_signal_strength=video_signal_strength,
            noise_std=noise_std,
        )
        with tf.io.TFRecordWriter(path) as writer:
            for video in videos:
                writer.write(make_example(video.video_id, video.labels, video.features, id_key))
        paths.append(path)
    return paths
