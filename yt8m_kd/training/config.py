"""Frozen configuration dataclasses of a training run (the launcher fills them from flags)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the records are and how to read them.

    `dataset` is the data family (yt8m_kd.data.videos): "yt8m" frame features or "ucf101" clips,
    whose frames directories are read with the official split files; `max_frames` is the frames
    per video (UCF101: the T frames sampled per clip).
    """

    dataset: str = "yt8m"
    train_data_pattern: str | None = None
    eval_data_pattern: str | None = None
    feature_names: tuple[str, ...] = ("rgb", "audio")
    max_frames: int = 300
    shuffle_buffer: int = 1024
    skip_bad_records: bool = False
    class_index_file: str | None = None
    train_split_file: str | None = None
    eval_split_file: str | None = None
    random_flip: bool = True  # UCF101 training augmentation


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a run; defaults are the reference's (reference/nextvlad.md)."""

    batch_size: int = 80  # global, summed over replicas
    eval_batch_size: int = 256
    base_learning_rate: float = 2e-4
    learning_rate_decay: float = 0.8
    learning_rate_decay_examples: int = 2_000_000
    clip_gradient_norm: float = 1.0
    max_steps: int = 1000
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    eval_every_steps: int = 0
    log_every_steps: int = 50
    seed: int = 0
    jit_compile: bool = False
    progress_bar: bool = True
