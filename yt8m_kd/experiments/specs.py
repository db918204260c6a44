"""Runs of an experiment as data, and one loop that trains or reuses them.

  spec = RunSpec("distilled_k6", "tiny_student_k6.flags", seed_dir,
                 {"k_frames": 6, "seed": 0, ...}, label="distilled k=6", teacher="teacher")
  runs = train_runs([teacher_spec, plain_spec, spec], strategy)   # name -> Run

A spec is a preset of models/ with flags overridden by name (`yt8m_kd.flags.read_flagfile`);
its run directory is root/name. `train_runs` goes through the specs in order and gives each to
`yt8m_kd.training.runs.train_or_reuse`, the one policy of the project for a run directory: a new
run trains, a finished one with the same flags is reused, an unfinished one resumes from its
latest checkpoint (its metrics.json then times only the resumed part and says so in
`resumed_from_step`), and one with other flags stops the experiment with a FlagError naming the
difference.

A spec with `teacher` set distils from the cache of that earlier spec's run: the cache
(root-of-the-teacher/teacher_cache) is made from the teacher's latest checkpoint when the first
such spec comes up, or reused when it was made from that checkpoint and the same data. The spec's
flags then name the cache, the teacher run and its checkpoint, so a student that learned from
another checkpoint of the teacher (one trained longer since) is refused rather than reused.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from yt8m_kd.cli import stage
from yt8m_kd.configs import RunConfig
from yt8m_kd.distill.teacher_cache import METADATA_FILE, write_teacher_cache
from yt8m_kd.files import read_json, write_json
from yt8m_kd.flags import read_flagfile, validate_run_config
from yt8m_kd.training.restore import latest_checkpoint, restore_run
from yt8m_kd.training.runs import train_or_reuse

# The presets: models/ of the repository this package is in.
MODELS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models"
)
TEACHER_CACHE = "teacher_cache"  # beside the teacher's run directory
# What an experiment measures itself, per run: the teacher cache's wall time, inference time.
TIMING_FILE = "experiment_timing.json"


def preset_path(preset: str) -> str:
    """A preset named by its file in models/, or given as a path."""
    return preset if os.path.dirname(preset) else os.path.join(MODELS_DIR, preset)


def read_preset(preset: str, **overrides) -> RunConfig:
    """The RunConfig of a preset of models/ with flags overridden by name."""
    return read_flagfile(preset_path(preset), **overrides)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of an experiment.

    Attributes:
      name: the run's key in the results and its directory's name under `root`.
      preset: a file of models/ (or a path to a flagfile).
      root: the directory of the run directory (usually work_dir/seed{s}).
      overrides: flag name -> value, over the preset (`read_flagfile`).
      label: the run's name in tables and plots (default: `name`).
      teacher: the name of an earlier spec of the same list whose teacher cache this run
        distils from (its flags get --teacher_cache, --teacher_run_dir, --teacher_checkpoint).
    """

    name: str
    preset: str
    root: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str = ""
    teacher: str | None = None

    @property
    def run_dir(self) -> str:
        return os.path.join(self.root, self.name)

    @property
    def title(self) -> str:
        return self.label or self.name

    def config(self, **more) -> RunConfig:
        """The RunConfig of this run; `more` overrides further (the teacher cache)."""
        return read_preset(self.preset, **{**self.overrides, **more})


@dataclasses.dataclass(frozen=True)
class Run:
    """A spec after `train_runs`: its config, its metrics.json, and whether it was reused as it
    was (False: trained, or resumed, in this call)."""

    spec: RunSpec
    config: RunConfig
    metrics: dict
    reused: bool

    @property
    def run_dir(self) -> str:
        return self.spec.run_dir

    @property
    def timing(self) -> dict:
        """The run's experiment_timing.json (empty when there is none)."""
        return read_json(os.path.join(self.run_dir, TIMING_FILE)) or {}


def update_timing(run_dir: str, **values) -> None:
    """Adds `values` to run_dir/experiment_timing.json."""
    path = os.path.join(run_dir, TIMING_FILE)
    write_json(path, {**(read_json(path) or {}), **values})


def ensure_teacher_cache(teacher: Run, batch_size: int) -> tuple[str, dict]:
    """The teacher's outputs over its training data, beside its run directory; written once per
    teacher checkpoint. Returns (cache directory, its teacher_cache.json).

    A cache made from the teacher's latest checkpoint and the same data is reused; otherwise it is
    written (replacing any other) and its wall time goes to the teacher's experiment_timing.json
    as teacher_cache_wall_s.
    """
    cache_dir = os.path.join(teacher.spec.root, TEACHER_CACHE)
    data = teacher.config.data
    checkpoint = os.path.abspath(latest_checkpoint(teacher.run_dir))
    data_pattern = os.path.abspath(data.train_data_pattern)
    existing = read_json(os.path.join(cache_dir, METADATA_FILE))
    if existing and (existing.get("checkpoint"), existing.get("data_pattern")) == (
        checkpoint,
        data_pattern,
    ):
        stage(f"== {cache_dir}: teacher cache of {checkpoint}, reused")
        return cache_dir, existing
    stage(f"== {cache_dir}: caching the teacher's outputs over {data.train_data_pattern}")
    started = time.perf_counter()
    run = restore_run(teacher.run_dir)
    metadata = write_teacher_cache(
        run.model,
        run.model_config,
        run.frame_dataset(
            data.train_data_pattern, batch_size=batch_size, split_file=data.train_split_file
        ),
        cache_dir,
        metadata={
            "teacher_run_dir": os.path.abspath(teacher.run_dir),
            "checkpoint": checkpoint,
            "data_pattern": data_pattern,
            "max_frames": run.max_frames,
            "feature_names": list(run.data_config.feature_names),
        },
    )
    update_timing(teacher.run_dir, teacher_cache_wall_s=time.perf_counter() - started)
    return cache_dir, metadata


def train_runs(
    specs: Iterable[RunSpec], strategy: tf.distribute.Strategy, *, cache_batch_size: int = 256
) -> dict[str, Run]:
    """Trains or reuses every spec, in order (see the module docstring); returns name -> Run.

    Raises:
      FlagError: a run directory holding a run with other flags, or a bad spec.
    """
    runs: dict[str, Run] = {}
    caches: dict[str, dict] = {}  # teacher name -> flags of its cache
    for spec in specs:
        more = {}
        if spec.teacher is not None:
            if spec.teacher not in runs:
                raise ValueError(f"{spec.name}: its teacher {spec.teacher!r} is no earlier spec")
            if spec.teacher not in caches:
                teacher = runs[spec.teacher]
                cache_dir, metadata = ensure_teacher_cache(teacher, cache_batch_size)
                caches[spec.teacher] = {
                    "teacher_cache": cache_dir,
                    "teacher_run_dir": teacher.run_dir,
                    "teacher_checkpoint": metadata["checkpoint"],
                }
            more = caches[spec.teacher]
        config = spec.config(**more)
        validate_run_config(config, training=True)
        stage(f"== {spec.run_dir}: {spec.title}, {spec.preset}, seed {config.train.seed}")
        metrics, reused = train_or_reuse(config, spec.run_dir, strategy)
        runs[spec.name] = Run(spec, config, metrics, reused)
    return runs


def train_seeds(
    seeds: Sequence[int],
    specs: Callable[[int], Sequence[RunSpec]],
    strategy: tf.distribute.Strategy,
    **kwargs,
) -> dict[str, dict[str, Run]]:
    """`train_runs(specs(seed))` for every seed: str(seed) -> name -> Run."""
    return {str(seed): train_runs(specs(seed), strategy, **kwargs) for seed in seeds}
