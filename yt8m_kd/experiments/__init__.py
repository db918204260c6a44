"""Experiments as data: what the experiment launchers (launchers/*_experiment.py, the demo) share.

An experiment is a list of run specs per seed, trained or reused in order, and tables of their
results. A launcher holds its own few flags, its specs and its tables; everything else is here:

  flags.py    the flags the experiments share, defined once (`define_flags`), and list flags
              of integers or choices checked by absl (`define_int_list`, `define_choice_list`)
  specs.py    `RunSpec` (a preset of models/ with flags overridden) -> RunConfig;
              `train_runs` / `train_seeds` train or reuse specs through the one run-or-reuse
              policy (`yt8m_kd.training.runs.train_or_reuse`), making a teacher's cache when a
              later spec distils from it (`ensure_teacher_cache`)
  data.py     the synthetic YouTube-8M shards, made once per data directory and recorded in
              its manifest (`data_manifest` checks any synthetic set's)
  results.py  per-seed summaries (mean ± half-range), SAKD's difficulty passes, and writing
              results.json + results.md
  finetune.py what the SAKD experiments share (import it as a module): the SAKD settings,
              --init / --settings, run keys, the comparison with vanilla KD and its goal check,
              time-to-accuracy points
"""

from yt8m_kd.experiments.data import DATA_MANIFEST, data_manifest, synthetic_yt8m
from yt8m_kd.experiments.flags import (
    DISTILL_WEIGHTS,
    define_choice_list,
    define_flags,
    define_int_list,
    distill_weights,
)
from yt8m_kd.experiments.results import (
    describe,
    difficulty_passes,
    eval_history,
    format_mean,
    format_pm,
    machine,
    summarize,
    write_results,
)
from yt8m_kd.experiments.specs import (
    MODELS_DIR,
    TEACHER_CACHE,
    TIMING_FILE,
    Run,
    RunSpec,
    ensure_teacher_cache,
    preset_path,
    read_preset,
    train_runs,
    train_seeds,
    update_timing,
)

__all__ = [
    "DATA_MANIFEST",
    "DISTILL_WEIGHTS",
    "MODELS_DIR",
    "TEACHER_CACHE",
    "TIMING_FILE",
    "Run",
    "RunSpec",
    "data_manifest",
    "define_choice_list",
    "define_flags",
    "define_int_list",
    "describe",
    "difficulty_passes",
    "distill_weights",
    "ensure_teacher_cache",
    "eval_history",
    "format_mean",
    "format_pm",
    "machine",
    "preset_path",
    "read_preset",
    "summarize",
    "synthetic_yt8m",
    "train_runs",
    "train_seeds",
    "update_timing",
    "write_results",
]
