"""One place that turns a RunConfig into a trainer, and one policy for a run directory that exists.

  make_trainer(config, run_dir, strategy)   Trainer, DistillationTrainer or SAKDTrainer
  train_or_reuse(config, run_dir, strategy) trains a new run, resumes an unfinished one, reuses a
                                            finished one whose flags match, and refuses one whose
                                            flags differ (checked against its flags.txt before
                                            anything is written), unless overwrite=True
                                            (--overwrite_run_dir) deletes that run first
  check_init_source(config)                 a --init_from_run source that exists, has a
                                            checkpoint and has this run's model (one line
                                            naming what differs otherwise)

Every invocation that trains appends to the run's flags_history.json the flags it changed (length
and bookkeeping: what may change), the step it starts from and the time.

The launchers (train.py, the demo, the experiments) all go through these two functions.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re

import tensorflow as tf
from absl import logging

from yt8m_kd.configs import MODEL_CONFIG_FIELDS, FlagError, RunConfig
from yt8m_kd.files import read_json, write_json
from yt8m_kd.flags import (
    FLAGS_FILE,
    flag_name,
    read_run_config,
    recorded_values,
    require_run_dir,
    write_run_config,
)
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.loop import Trainer
from yt8m_kd.training.sakd_trainer import SAKDTrainer

METRICS_FILE = "metrics.json"
HISTORY_FILE = "flags_history.json"


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
    # Used only before a run's first checkpoint (a resumed run never re-initialises), so a rerun
    # may add, change or drop it; flags_history.json records it like the others.
    "init_from_run": None,
    "steps_per_loop": 1,  # the same weights either way
}
# The same for DataConfig: where the records are parsed and batched (this host, or the workers of
# a tf.data service) changes how fast they come, not which records are trained on.
_DATA_MAY_CHANGE = {"data_service": None}


def comparable(config: RunConfig) -> RunConfig:
    """`config` as runs are compared: absolute local paths, the fields of `_MAY_CHANGE` and
    `_DATA_MAY_CHANGE`, the teacher cache's join and the length in epochs set to fixed values."""
    changes = {
        "train": dataclasses.replace(config.train, **_MAY_CHANGE),
        "data": dataclasses.replace(config.data, **_DATA_MAY_CHANGE),
        "num_epochs": 0,
    }
    if config.distill is not None:
        # How a teacher cache reaches the batches does not change them.
        changes["distill"] = dataclasses.replace(config.distill, teacher_cache_join="auto")
    for section, names in _PATH_FIELDS.items():
        value = changes.get(section, getattr(config, section))
        if value is not None:
            changes[section] = dataclasses.replace(
                value, **{name: _absolute(getattr(value, name)) for name in names}
            )
    return config.replace(**changes)


# Which flags switch a whole section on: a plain run has no distill section, a non-SAKD run no sakd.
_SECTION_FLAGS = {"distill": "--teacher_run_dir / --teacher_cache", "sakd": "--sakd"}


def _fields(section: str, value: dict) -> dict[str, tuple[str, object]]:
    """'section.field' -> (its flag, value), the distillation weights flattened."""
    fields = {}
    for name, item in value.items():
        if name == "weights":
            fields.update({f"{section}.weights.{k}": (k, v) for k, v in item.items()})
        else:
            fields[f"{section}.{name}"] = (flag_name(section, name), item)
    return fields


def differences(recorded: RunConfig, wanted: RunConfig) -> list[str]:
    """'section.field: recorded -> wanted' for every field where two runs differ in what they
    train, with the flag that sets it where its name is another ("(--teacher_cache)"); the
    fields of `_MAY_CHANGE` and the length never count."""
    a, b = dataclasses.asdict(comparable(recorded)), dataclasses.asdict(comparable(wanted))
    lines = []
    for section in a:
        if a[section] == b[section]:
            continue
        if not isinstance(a[section], dict) or not isinstance(b[section], dict):
            state = {True: "on", False: "off"}
            lines.append(
                f"{section}: {state[a[section] is not None]} -> {state[b[section] is not None]} "
                f"({_SECTION_FLAGS.get(section, section)})"
            )
            continue
        old, new = _fields(section, a[section]), _fields(section, b[section])
        for path, (flag, value) in old.items():
            if value != new[path][1]:
                hint = "" if path.endswith(f".{flag}") else f" (--{flag})"
                lines.append(f"{path}: {value!r} -> {new[path][1]!r}{hint}")
    return lines


def changed_flags(recorded: RunConfig, wanted: RunConfig) -> dict[str, list]:
    """flag -> [recorded, wanted] of every flag two invocations of one run give differently (for
    a run that may go on: the length and bookkeeping of `_MAY_CHANGE`, or a path spelled anew)."""
    a, b = recorded_values(recorded), recorded_values(wanted)
    return {name: [a[name], b[name]] for name in a if a[name] != b[name]}


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


def _latest_step(run_dir: str) -> int:
    """The step of the run's latest checkpoint (checkpoints are numbered by step), 0 without."""
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    match = re.search(r"-(\d+)$", latest or "")
    return int(match.group(1)) if match else 0


def record_invocation(run_dir: str, changed: dict[str, list] | None) -> dict:
    """Appends this invocation to run_dir/flags_history.json (atomically) and returns its entry:
    the UTC time, the step it starts from, and `changed` (flag -> [before, now]; None for the
    invocation that created the run)."""
    path = os.path.join(run_dir, HISTORY_FILE)
    history = read_json(path) or {"invocations": []}
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "step": _latest_step(run_dir),
        "changed": changed if changed is not None else {},
        "new_run": changed is None,
    }
    history["invocations"].append(entry)
    write_json(path, history)
    return entry


# Model fields in which an --init_from_run source may differ from the run it initialises: which
# frames the model sees (NeXtVLAD's weights do not depend on the frame count, so a k-frame student
# can start from the all-frames teacher), where a backbone's first weights come from (the
# checkpoint replaces them) and the dropout rate (dropout has no weights). Every other field must
# match: most shape or define the weights; --l2_penalty and --trainable_backbone do not, but they
# are kept so that a run fine-tunes the source's model as it was trained.
_INIT_MAY_DIFFER = ("k_frames", "frame_selection", "backbone_weights", "drop_rate")
# Data fields that decide what the model's weights mean: the data family and the features read.
_INIT_DATA_FIELDS = ("dataset", "feature_names")


def init_differences(source: RunConfig, wanted: RunConfig) -> list[str]:
    """'section.field: source -> wanted' for every model and data field in which a run cannot
    start from `source`'s weights (everything but `_INIT_MAY_DIFFER`)."""
    fields = [("model", name) for name in MODEL_CONFIG_FIELDS if name not in _INIT_MAY_DIFFER]
    fields += [("data", name) for name in _INIT_DATA_FIELDS]
    lines = []
    for section, name in fields:
        old, new = getattr(getattr(source, section), name), getattr(getattr(wanted, section), name)
        if old != new:
            lines.append(f"{section}.{name}: {old!r} -> {new!r}")
    return lines


def check_init_source(config: RunConfig) -> None:
    """Whether `config`'s --init_from_run (if any) can give its model its first weights: a run
    directory with a checkpoint, whose flags.txt describes the same model. Checked whenever the
    flag is given, before anything is written, so a typo fails at once (also on a rerun that
    resumes, where the source is not used: drop the flag there if the source is gone).

    Raises:
      FlagError: one line naming the source and what is wrong with it (every differing field).
    """
    source = config.train.init_from_run
    if not source:
        return
    require_run_dir("init_from_run", source)
    checkpoints = os.path.join(source, "checkpoints")
    if not tf.train.latest_checkpoint(checkpoints):
        raise FlagError(f"--init_from_run={source} has no checkpoint (none in {checkpoints})")
    differ = init_differences(read_run_config(source), config)
    if differ:
        raise FlagError(f"--init_from_run={source}: its model differs: {'; '.join(differ)}")


def _looks_like_run(run_dir: str) -> bool:
    return any(
        tf.io.gfile.exists(os.path.join(run_dir, name)) for name in (FLAGS_FILE, "checkpoints")
    )


def _inputs(config: RunConfig) -> list[str]:
    """The local paths a run reads (data, split files, teacher, backbone weights, the run it
    starts from)."""
    paths = [config.model.backbone_weights, config.train.init_from_run]
    for section, names in _PATH_FIELDS.items():
        value = getattr(config, section)
        if value is not None:
            paths += [getattr(value, name) for name in names]
    return [
        os.path.abspath(p) for path in paths if path and "://" not in path for p in path.split(",")
    ]


def clear_run_dir(config: RunConfig, run_dir: str) -> None:
    """Deletes the run in `run_dir` (--overwrite_run_dir), refusing anything else.

    Only a run directory (flags.txt or checkpoints/) is deleted, never one that holds what this
    run reads (its data, teacher, split or weights files). The directory is first renamed to
    `<run_dir>.overwritten`, so that a crash mid-delete leaves no half run at run_dir; a leftover
    of that is deleted first.

    Raises:
      FlagError: not a run directory, one holding an input of the run, or a multi-worker run
        (the workers would race: clear it before starting them).
    """
    if not tf.io.gfile.exists(run_dir):
        return
    if not _looks_like_run(run_dir):
        if tf.io.gfile.listdir(run_dir):
            raise FlagError(
                f"--overwrite_run_dir: {run_dir} is not a run directory (no {FLAGS_FILE}, no "
                "checkpoints/); it is left alone: remove it yourself or choose another --run_dir"
            )
        return
    root = os.path.abspath(run_dir).rstrip(os.sep) + os.sep
    inside = [path for path in _inputs(config) if (path + os.sep).startswith(root)]
    if inside:
        raise FlagError(
            f"--overwrite_run_dir: {run_dir} holds {inside[0]}, which this run reads; it is left "
            "alone"
        )
    if config.train.strategy == "multi_worker":
        raise FlagError(
            "--overwrite_run_dir with --strategy=multi_worker: remove the run directory before "
            "starting the workers"
        )
    aside = run_dir.rstrip("/") + ".overwritten"
    if tf.io.gfile.exists(aside):
        tf.io.gfile.rmtree(aside)
    tf.io.gfile.rename(run_dir, aside)
    tf.io.gfile.rmtree(aside)
    logging.warning("--overwrite_run_dir: deleted the run in %s", run_dir)


def _check_rerun(config: RunConfig, run_dir: str) -> tuple[RunConfig | None, dict | None]:
    """(the recorded config, its metrics.json) of an existing run that `config` may go on with,
    (None, None) for a new run directory.

    Raises:
      FlagError: a run with other flags (naming all of them), checkpoints of unknown flags, or a
        run trained beyond --max_steps.
    """
    flags_path = os.path.join(run_dir, FLAGS_FILE)
    if not tf.io.gfile.exists(flags_path):
        if tf.io.gfile.exists(os.path.join(run_dir, "checkpoints")):
            raise FlagError(
                f"{run_dir} holds checkpoints but no {FLAGS_FILE}: what they were trained with is "
                "unknown; use another --run_dir, or --overwrite_run_dir to replace them"
            )
        return None, None
    recorded = read_run_config(run_dir)
    differ = differences(recorded, config)
    if differ:
        raise FlagError(
            f"{run_dir} holds a run with other flags ({flags_path}): "
            f"{'; '.join(differ[:4])}{f' (and {len(differ) - 4} more)' if len(differ) > 4 else ''}"
            "; use another --run_dir, or --overwrite_run_dir to replace that run"
        )
    metrics = read_json(os.path.join(run_dir, METRICS_FILE))
    if config.sakd is None and metrics and metrics.get("step", 0) > config.train.max_steps:
        raise FlagError(
            f"{run_dir} trained to step {metrics['step']} already, beyond "
            f"--max_steps={config.train.max_steps}"
        )
    return recorded, metrics


def train_or_reuse(
    config: RunConfig,
    run_dir: str,
    strategy: tf.distribute.Strategy,
    overwrite: bool = False,
) -> tuple[dict, bool]:
    """Trains the run of `config` in `run_dir`; returns (its metrics.json, whether it was reused).

    Every check reads the stored flags.txt before anything is written:
    - --init_from_run, when given: a run with a checkpoint and this run's model
      (`check_init_source`), FlagError otherwise. The trainer loads it only if the run has no
      checkpoint of its own.
    - No run there yet: its flags.txt is written, then it trains.
    - A run there with other flags: FlagError naming every differing flag (nothing is touched);
      with `overwrite` (--overwrite_run_dir) that run is deleted first (`clear_run_dir`) and a new
      one trains. Only the training length (--max_steps, --num_epochs, to go on training) and
      bookkeeping (progress bar, checkpoint, log and evaluation intervals, devices) may differ.
    - Checkpoints without a flags.txt: FlagError (their flags are unknown), unless `overwrite`.
    - A finished run with the same flags (metrics.json at its last step): reused as it is.
    - An unfinished one, or one asked to train longer: resumed from its latest checkpoint
      (metrics.json then times only the part trained in this call; `resumed_from_step` says where
      it started).
    Every invocation that trains appends its changed flags, step and time to flags_history.json
    (`record_invocation`) as it rewrites flags.txt.
    """
    check_init_source(config)
    if overwrite:
        clear_run_dir(config, run_dir)
    recorded, metrics = _check_rerun(config, run_dir)
    if recorded is not None and is_finished(config, metrics):
        logging.warning("%s: finished already (step %s), reused", run_dir, metrics["step"])
        return metrics, True
    trainer = make_trainer(config, run_dir, strategy)
    if trainer.is_chief:
        write_run_config(config, run_dir)
        record_invocation(run_dir, changed_flags(recorded, config) if recorded else None)
    return trainer.fit(), False
