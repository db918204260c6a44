"""Reading a finished run directory back: its flags, its model and its checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras
import tensorflow as tf

from yt8m_kd.configs import DataConfig, ModelConfig, RunConfig
from yt8m_kd.data import videos
from yt8m_kd.flags import read_run_config
from yt8m_kd.modeling import build_video_model


@dataclasses.dataclass
class RestoredRun:
    """A run's model with its trained weights, and what it was trained with."""

    model: keras.Model
    config: RunConfig  # everything in the run's flags.txt
    checkpoint: str

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model

    @property
    def data_config(self) -> DataConfig:
        return self.config.data

    @property
    def max_frames(self) -> int:
        return self.config.data.max_frames

    @property
    def single_label(self) -> bool:
        return self.config.data.single_label

    def frame_dataset(
        self, file_pattern, *, batch_size: int, split_file: str | None = None, **kwargs
    ) -> tf.data.Dataset:
        """Evaluation batches read the way this run reads them (data family, features or image
        size, frames, classes); `kwargs` go to `yt8m_kd.data.videos.read_videos` (shuffle,
        bad_record_counter, ...). The run's --skip_bad_records applies unless
        `skip_bad_records` is given."""
        data_config = self.data_config
        if "skip_bad_records" in kwargs:
            data_config = dataclasses.replace(
                data_config, skip_bad_records=kwargs.pop("skip_bad_records")
            )
        return videos.read_videos(
            data_config,
            self.model_config,
            file_pattern,
            batch_size=batch_size,
            training=False,
            split_file=split_file,
            **kwargs,
        )


def latest_checkpoint(run_dir: str) -> str:
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if not checkpoint:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(run_dir, 'checkpoints')}")
    return checkpoint


def restore_run(
    run_dir: str, checkpoint: str | None = None, strategy: tf.distribute.Strategy | None = None
) -> RestoredRun:
    """Rebuilds the model of `run_dir` from its flags.txt and loads `checkpoint` (default: latest).

    Every model variable must be in the checkpoint: a partial restore would silently leave random
    weights behind. Optimizer slots and other training state in the checkpoint are ignored. With a
    strategy, the model's variables are created in its scope (a teacher for distributed training).

    The model is built without its pretrained backbone weights: the checkpoint overwrites every
    weight, and the run's --backbone_weights file (or the ImageNet download) need not exist where
    the run is restored. The returned `config` is still the run's, backbone_weights
    included, so that what the model was trained from stays on record.
    """
    config = read_run_config(run_dir)
    model_config = config.model
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_video_model(model_config.replace(backbone_weights=""))
    checkpoint = checkpoint or latest_checkpoint(run_dir)
    status = tf.train.Checkpoint(model=model).restore(checkpoint)
    status.expect_partial().assert_existing_objects_matched()
    return RestoredRun(model, config, checkpoint)
