"""One place that turns a RunConfig into a trainer, and one policy for a run directory that exists.

  make_trainer(config, run_dir, strategy)   Trainer, DistillationTrainer or SAKDTrainer
  train_or_reuse(config, run_dir, strategy) trains a new run, resumes an unfinished one, reuses a
                                            finished one whose flags match, and refuses one whose
                                            flags differ

The launchers (train.py, the demo, the experiments) all go through these two functions.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from absl import logging

from yt8m_kd.configs import FlagError, RunConfig
from yt8m_kd.files import read_json
from yt8m_kd.flags import FLAGS_FILE, read_run_config, write_run_config
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.loop import Trainer
from yt8m_kd.training.sakd_trainer import SAKDTrainer

METRICS_FILE = "metrics.json"


def make_trainer(config: RunConfig, run_dir: str, strategy: tf.distribute.Strategy) -> Trainer:
    """The trainer of `config`: SAKD, distillation from a teacher, or labels only.

    Raises:
      FlagError: a teacher or cache that does not fit the student.
    """
    configs = (config.model, config.train, config.data, run_dir, strategy)
    try:
        if config.sakd is not None:
            return SAKDTrainer(*configs, config.distill, config.sakd, config.num_epochs)
        if config.distill is not None:
            return DistillationTrainer(*configs, config.distill)
        return Trainer(*configs)
    except ValueError as e:
        raise FlagError(str(e)) from e


# Paths are compared as absolute paths, so that a relative path given from the same directory
# matches what a run recorded; whether a progress bar was shown never matters.
_PATH_FIELDS = {
    "data": (
        "train_data_pattern",
        "eval_data_pattern",
        "class_index_file",
        "train_split_file",
        "eval_split_file",
    ),
    "distill": ("teacher_run_dir", "teacher_checkpoint", "teacher_cache_dir"),
}


def _absolute(path: str | None) -> str | None:
    if not path or "://" in path:
        return path
    return ",".join(os.path.abspath(p) for p in path.split(","))


# What may change between two invocations on one run directory: how long it trains (a longer
# --max_steps or --num_epochs goes on from the latest checkpoint) and its bookkeeping. Every other
# field decides what is trained.
_MAY_CHANGE = {
    "max_steps": 0,
    "progress_bar": False,
    "checkpoint_every_steps": 1,
    "keep_checkpoints": 1,
    "eval_every_steps": 0,
    "log_every_steps": 1,
    "eval_batch_size": 1,
    "strategy": "one_device",  # a run may go on with other devices
    "num_logical_cpus": 0,
    "jit_compile": None,
}


def comparable(config: RunConfig) -> RunConfig:
    """`config` as runs are compared: absolute local paths, the fields of `_MAY_CHANGE` and the
    length in epochs set to fixed values."""
    changes = {"train": dataclasses.replace(config.train, **_MAY_CHANGE), "num_epochs": 0}
    for section, names in _PATH_FIELDS.items():
        value = getattr(config, section)
        if value is not None:
            changes[section] = dataclasses.replace(
                value, **{name: _absolute(getattr(value, name)) for name in names}
            )
    return config.replace(**changes)


def differences(recorded: RunConfig, wanted: RunConfig) -> list[str]:
    """'section.field: recorded -> wanted' for every field where two runs differ."""
    a, b = dataclasses.asdict(comparable(recorded)), dataclasses.asdict(comparable(wanted))
    lines = []
    for section in a:
        if a[section] == b[section]:
            continue
        if not isinstance(a[section], dict) or not isinstance(b[section], dict):
            lines.append(f"{section}: {a[section]} -> {b[section]}")
            continue
        lines += [
            f"{section}.{name}: {a[section][name]!r} -> {b[section][name]!r}"
            for name in a[section]
            if a[section][name] != b[section][name]
        ]
    return lines


def is_finished(config: RunConfig, metrics: dict | None) -> bool:
    """Whether a run's metrics.json says it trained to its end (and evaluated, if it has
    evaluation data)."""
    if metrics is None or (config.data.eval_data_pattern and "eval" not in metrics):
        return False
    if config.sakd is not None:
        # The epochs of this run's last call: a resumed run lists only the epochs it trained
        # (its "sakd" summary counts only those), so the last epoch's index tells.
        epochs = metrics.get("epochs") or [{}]
        return epochs[-1].get("epoch") == config.num_epochs - 1
    return metrics.get("step") == config.train.max_steps


def train_or_reuse(
    config: RunConfig, run_dir: str, strategy: tf.distribute.Strategy
) -> tuple[dict, bool]:
    """Trains the run of `config` in `run_dir`; returns (its metrics.json, whether it was reused).

    - No run there yet: its flags.txt is written, then it trains.
    - A run there with other flags: FlagError naming the first differences (nothing is touched).
      Only the training length (--max_steps, --num_epochs, to go on training) and bookkeeping
      (progress bar, checkpoint, log and evaluation intervals) may differ.
    - A finished run with the same flags (metrics.json at its last step): reused as it is.
    - An unfinished one, or one asked to train longer: resumed from its latest checkpoint
      (metrics.json then times only the part trained in this call; `resumed_from_step` says where
      it started).
    """
    if tf.io.gfile.exists(os.path.join(run_dir, FLAGS_FILE)):
        differ = differences(read_run_config(run_dir), config)
        if differ:
            raise FlagError(
                f"{run_dir} holds a run with other flags ({os.path.join(run_dir, FLAGS_FILE)}: "
                f"{'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}): use another "
                "directory or remove it"
            )
        metrics = read_json(os.path.join(run_dir, METRICS_FILE))
        if is_finished(config, metrics):
            logging.warning("%s: finished already (step %s), reused", run_dir, metrics["step"])
            return metrics, True
        if config.sakd is None and metrics and metrics.get("step", 0) > config.train.max_steps:
            raise FlagError(
                f"{run_dir} trained to step {metrics['step']} already, beyond "
                f"--max_steps={config.train.max_steps}"
            )
    trainer = make_trainer(config, run_dir, strategy)
    if trainer.is_chief:
        write_run_config(config, run_dir)
    return trainer.fit(), False
