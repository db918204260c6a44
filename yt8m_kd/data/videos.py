"""The input pipeline of a run, whichever data family it trains on.

Two families share one batch contract (docs/design.md) and one training loop:

  yt8m    YouTube-8M frame features (`yt8m.frame_dataset`): multi-hot labels [B, C], uint8
          features [B, T, D]; training and evaluation read the records the same way.
  ucf101  UCF101 clips (`ucf101.frame_dataset`): labels [B] int32, uint8 images [B, T, S, S, 3];
          training samples a random frame per segment with a random crop and flip, evaluation the
          segment centres and the centre crop. T is --max_frames, S the model's --image_size.

`read_videos` is what the trainers, the teacher cache, SAKD's difficulty pass and evaluation call,
so that every part of a run reads its data the same way. Both families check every record: a bad
one is an error naming its file and id, or with --skip_bad_records it is skipped, logged and
counted by the family's problem kinds in the counter of `bad_record_counter(data_config)`.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from yt8m_kd.configs import DATASETS, DataConfig, ModelConfig
from yt8m_kd.data import ucf101, ucf101_splits, yt8m
from yt8m_kd.data.yt8m import BadRecordCounter


def class_names(data_config: DataConfig) -> list[str] | None:
    """UCF101's class names from classInd.txt, when the run has one."""
    if data_config.dataset == "ucf101" and data_config.class_index_file:
        return ucf101_splits.read_class_index(data_config.class_index_file)
    return None


def bad_record_counter(data_config: DataConfig) -> BadRecordCounter:
    """A counter of the skipped records of the run's data family, by its problem kinds (create it
    outside any strategy scope)."""
    if data_config.dataset == "ucf101":
        return BadRecordCounter(kinds=ucf101.UCF101_PROBLEM_KINDS)
    return BadRecordCounter()


def read_videos(
    data_config: DataConfig,
    model_config: ModelConfig,
    pattern: str,
    *,
    batch_size: int,
    training: bool,
    split_file: str | None = None,
    shuffle: bool = False,
    repeat: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    bad_record_counter: BadRecordCounter | None = None,
    id_filter: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache_file: str | None = None,
    **family_kwargs,
) -> tf.data.Dataset:
    """Batches of the run's data family from `pattern` (records, or a UCF101 frames directory).

    Args:
      data_config, model_config: the run's; they give the family, frames per video, classes,
        features or image size, the shuffle buffer and whether bad records are skipped.
      pattern: a file pattern; for UCF101 also a frames root directory, read with `split_file`.
      training: UCF101 training augmentation (random segment frames, crop and flip).
      The other arguments are those of `yt8m.frame_dataset`; `bad_record_counter` counts the
      skipped records (with --skip_bad_records), a `bad_record_counter(data_config)`;
      `family_kwargs` go to the family's frame_dataset as they are (num_parallel_reads, ...).
    """
    if data_config.dataset == "yt8m":
        return yt8m.frame_dataset(
            pattern,
            batch_size=batch_size,
            max_frames=data_config.max_frames,
            num_classes=model_config.num_classes,
            feature_names=data_config.feature_names,
            feature_sizes=model_config.feature_sizes,
            shuffle=shuffle,
            shuffle_buffer=data_config.shuffle_buffer,
            repeat=repeat,
            seed=seed,
            skip_bad_records=data_config.skip_bad_records,
            bad_record_counter=bad_record_counter,
            drop_remainder=drop_remainder,
            input_context=input_context,
            id_filter=id_filter,
            cache_file=cache_file,
            **family_kwargs,
        )
    if data_config.dataset == "ucf101":
        return ucf101.frame_dataset(
            pattern,
            batch_size=batch_size,
            num_frames=data_config.max_frames,
            image_size=model_config.image_size,
            training=training,
            class_index_file=data_config.class_index_file,
            split_file=split_file,
            num_classes=model_config.num_classes,
            shuffle=shuffle,
            shuffle_buffer=data_config.shuffle_buffer,
            repeat=repeat,
            seed=seed,
            drop_remainder=drop_remainder,
            input_context=input_context,
            id_filter=id_filter,
            cache_file=cache_file,
            random_flip=data_config.random_flip,
            skip_bad_records=data_config.skip_bad_records,
            bad_record_counter=bad_record_counter,
            **family_kwargs,
        )
    raise ValueError(f"unknown dataset {data_config.dataset!r}; known: {', '.join(DATASETS)}")
