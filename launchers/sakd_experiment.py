"""The SAKD experiment on synthetic YouTube-8M: vanilla distillation on all samples against SAKD.

  python launchers/sakd_experiment.py [--work_dir=experiments/sakd] [--data_dir=data/fewer_frames] \
      [--teacher_work_dir=experiments/fewer_frames] [--seeds=0,1] [--num_epochs=10] \
      [--w_pred=0.01 --w_rep=0.001 --w_kl=0 --temperature=4] [--noprogress_bar]

Li et al. (ACM MM 2025) report that SAKD, training on 10% of the samples chosen anew every epoch
("Ours") or every 5 epochs ("Ours*"), beats vanilla KD on all samples at a fraction of the time
per epoch (reference/sakd.md). For every seed this launcher distils tiny 6-frame students from ONE
all-frames teacher cache, with the same data, epochs and loss weights:

  seed{s}/vanilla        tiny_distilled_k6.flags: DistillationTrainer on all samples for
                         num_epochs * floor(N_train / batch_size) steps (num_epochs epochs)
  seed{s}/sakd_r10_i1    tiny_sakd_k6.flags: SAKDTrainer, ratio 10%, a selection every epoch
  seed{s}/sakd_r10_i5    ratio 10%, every 5 epochs
  seed{s}/sakd_r50_i1    ratio 50%, every epoch
  seed{s}/sakd_r50_i5    ratio 50%, every 5 epochs

The teacher is that of the fewer-frames experiment: --teacher_work_dir/seed{s}/teacher and its
teacher_cache are reused when they are there (trained with the flags this launcher would use);
otherwise the teacher (tiny_teacher.flags, --teacher_steps) is trained and cached there, as
launchers/fewer_frames_experiment.py would. The synthetic data are made in --data_dir when absent,
exactly as that launcher makes them (same manifest, so either launcher reuses the other's data).
That launcher is not imported (it would define its flags in this launcher's FLAGS); what both
need is in yt8m_kd/experiments.py.

Every run is evaluated on the held-out set at its end. Seconds per epoch: for vanilla, the wall
time of its training loop over num_epochs; for SAKD, the wall time of the training epochs plus
that of the difficulty passes (interrupted forward pass over all N samples, strength update and
selection), amortised over the epochs they serve. Outputs in --work_dir:

  results.json   per seed and setting: GAP, mAP, Hit@1, PERR, steps, wall seconds, seconds per
                 epoch (amortised; SAKD also train-only and per difficulty pass), the fraction of
                 the run's wall time spent in difficulty passes, speed-up against vanilla; and a
                 summary per setting over seeds (mean, min, max, half-range, std)
  results.md     one row per setting (mean +- half-range over seeds), also printed at the end

A run whose metrics.json is complete is reused. A run directory without one is trained again from
scratch (it is cleared first: a resumed run's timings would cover only its last part). A run
directory whose flags.txt differs from what this invocation would train stops the launcher.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import dataclasses
import time

from absl import flags

from yt8m_kd import cli
from yt8m_kd import experiments as exp
from yt8m_kd import flags as yflags

flags.DEFINE_string("work_dir", "experiments/sakd", "Where runs and results go.")
flags.DEFINE_string("data_dir", "data/fewer_frames", "Synthetic data (made here when absent).")
flags.DEFINE_string(
    "teacher_work_dir",
    "experiments/fewer_frames",
    "Holds seed{s}/teacher and seed{s}/teacher_cache: reused when there, else made there.",
)
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds; every setting is trained once per seed.")
flags.DEFINE_integer("num_epochs", 10, "Epochs of every student (SAKD: over the selected subset).")
flags.DEFINE_integer("teacher_steps", 1500, "Training steps of a teacher trained here.")
flags.DEFINE_float("w_pred", 0.01, "Weight of L_pred.")
flags.DEFINE_float("w_rep", 0.001, "Weight of L_rep.")
flags.DEFINE_float("w_kl", 0.0, "Weight of the temperature KL loss.")
flags.DEFINE_float("temperature", 4.0, "Temperature of the KL loss.")
flags.DEFINE_integer(
    "train_videos", 4096, "Synthetic training videos, when the data are made (8 shards)."
)
flags.DEFINE_integer(
    "eval_videos", 1024, "Synthetic held-out videos, when the data are made (4 shards)."
)
flags.DEFINE_boolean("progress_bar", True, "Show progress bars.")
FLAGS = flags.FLAGS

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
TEACHER_PRESET = "tiny_teacher.flags"
VANILLA_PRESET = "tiny_distilled_k6.flags"
SAKD_PRESET = "tiny_sakd_k6.flags"
# As launchers/fewer_frames_experiment.py makes them, so that the two share data and teachers.
TRAIN_SHARDS, EVAL_SHARDS = exp.YT8M_TRAIN_SHARDS, exp.YT8M_EVAL_SHARDS
TEACHER_EVAL_EVERY_STEPS = 100
CACHE_BATCH_SIZE = 256
METRICS = ("gap", "map", "hit_at_one", "perr")


# ------------------------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Setting:
    """One student setting; trained once per seed in work_dir/seed{s}/{name}."""

    name: str
    ratio: float | None = None  # None: vanilla distillation on all samples
    interval: int | None = None

    @property
    def is_sakd(self) -> bool:
        return self.ratio is not None

    @property
    def label(self) -> str:
        if not self.is_sakd:
            return "vanilla KD, all samples"
        every = "every epoch" if self.interval == 1 else f"every {self.interval} epochs"
        return f"SAKD r={self.ratio:.0%}, re-select {every}"


SETTINGS = (
    Setting("vanilla"),
    Setting("sakd_r10_i1", 0.1, 1),
    Setting("sakd_r10_i5", 0.1, 5),
    Setting("sakd_r50_i1", 0.5, 1),
    Setting("sakd_r50_i5", 0.5, 5),
)


# ----------------------------------------------------------------------------------- flags
def validate_flags() -> list[int]:
    """Checks the flags before any work; returns the seeds."""
    seeds = exp.parse_int_list("seeds", FLAGS.seeds, 0)
    for name in ("num_epochs", "teacher_steps"):
        if FLAGS[name].value <= 0:
            raise yflags.FlagError(f"--{name}={FLAGS[name].value} must be positive")
    for name in ("w_pred", "w_rep", "w_kl"):
        if FLAGS[name].value < 0:
            raise yflags.FlagError(f"--{name}={FLAGS[name].value} must be >= 0")
    if FLAGS.temperature <= 0:
        raise yflags.FlagError(f"--temperature={FLAGS.temperature} must be positive")
    for name, shards in (("train_videos", TRAIN_SHARDS), ("eval_videos", EVAL_SHARDS)):
        videos = FLAGS[name].value
        if videos <= 0 or videos % shards:
            raise yflags.FlagError(f"--{name}={videos} must be a positive multiple of {shards}")
    return seeds


# ---------------------------------------------------------------------------------- teacher
def ensure_teacher(
    seed: int, train_pattern: str, eval_pattern: str, strategy
) -> tuple[str, str, dict]:
    """The seed's teacher run and cache in --teacher_work_dir, reused or made; (dirs, metrics)."""
    from yt8m_kd.training.loop import Trainer

    seed_dir = os.path.join(FLAGS.teacher_work_dir, f"seed{seed}")
    run_dir, cache_dir = os.path.join(seed_dir, "teacher"), os.path.join(seed_dir, "teacher_cache")
    # The flags launchers/fewer_frames_experiment.py trains its teacher with.
    fv = yflags.flagfile_values(
        os.path.join(MODELS_DIR, TEACHER_PRESET),
        train_data_pattern=train_pattern,
        eval_data_pattern=eval_pattern,
        max_steps=FLAGS.teacher_steps,
        eval_every_steps=TEACHER_EVAL_EVERY_STEPS,
        progress_bar=FLAGS.progress_bar,
        seed=seed,
    )
    exp.check_run_flags(run_dir, fv, "--teacher_work_dir")
    metrics = exp.read_json(os.path.join(run_dir, "metrics.json"))
    if metrics is not None and metrics.get("step") == fv.max_steps and "eval" in metrics:
        print(f"== {run_dir}: teacher done already (step {metrics['step']}), reused")
    else:
        print(f"== {run_dir}: training the teacher, {TEACHER_PRESET}, seed {seed}")
        started = time.perf_counter()
        trainer = Trainer(*yflags.configs_from_values(fv), run_dir, strategy)
        yflags.write_flags_file(fv, run_dir)
        metrics = trainer.fit()
        exp.update_timing(run_dir, train_wall_s=time.perf_counter() - started)
    exp.ensure_teacher_cache(run_dir, cache_dir, train_pattern, batch_size=CACHE_BATCH_SIZE)
    return run_dir, cache_dir, metrics


# --------------------------------------------------------------------------------- students
def student_values(
    setting: Setting, seed: int, cache_dir: str, patterns: tuple[str, str], steps_per_epoch: int
) -> flags.FlagValues:
    """The flags of one student run: its preset with this experiment's values."""
    overrides = dict(
        train_data_pattern=patterns[0],
        eval_data_pattern=patterns[1],
        eval_every_steps=0,  # evaluated once, at the end
        progress_bar=FLAGS.progress_bar,
        seed=seed,
        teacher_cache=cache_dir,
        w_pred=FLAGS.w_pred,
        w_rep=FLAGS.w_rep,
        w_kl=FLAGS.w_kl,
        temperature=FLAGS.temperature,
    )
    if setting.is_sakd:
        return yflags.flagfile_values(
            os.path.join(MODELS_DIR, SAKD_PRESET),
            num_epochs=FLAGS.num_epochs,
            sakd_ratio=setting.ratio,
            sakd_selection_interval=setting.interval,
            **overrides,
        )
    # An epoch over all samples, num_epochs of them.
    return yflags.flagfile_values(
        os.path.join(MODELS_DIR, VANILLA_PRESET),
        max_steps=FLAGS.num_epochs * steps_per_epoch,
        **overrides,
    )


def is_complete(setting: Setting, metrics: dict | None, fv: flags.FlagValues) -> bool:
    if metrics is None or "eval" not in metrics or "train" not in metrics:
        return False
    if setting.is_sakd:
        return metrics.get("sakd", {}).get("epochs") == fv.num_epochs
    return metrics.get("step") == fv.max_steps and metrics.get("resumed_from_step") == 0


def train_student(setting: Setting, fv: flags.FlagValues, run_dir: str, strategy) -> dict:
    """Trains one student unless its metrics.json is complete already; returns metrics.json."""
    import shutil

    from yt8m_kd.training.distillation import DistillationTrainer
    from yt8m_kd.training.sakd_trainer import SAKDTrainer

    exp.check_run_flags(run_dir, fv, "--work_dir")
    metrics = exp.read_json(os.path.join(run_dir, "metrics.json"))
    if is_complete(setting, metrics, fv):
        print(f"== {run_dir}: done already (step {metrics['step']}), reused")
        return metrics
    if os.path.exists(run_dir):
        print(f"== {run_dir}: unfinished, trained again from scratch")
        shutil.rmtree(run_dir)

    print(f"== {run_dir}: {setting.label}, seed {fv.seed}")
    started = time.perf_counter()
    configs = (*yflags.configs_from_values(fv), run_dir, strategy)
    distill_config = yflags.distill_config_from_flags(fv)
    if setting.is_sakd:
        trainer = SAKDTrainer(
            *configs, distill_config, yflags.sakd_config_from_flags(fv), fv.num_epochs
        )
    else:
        trainer = DistillationTrainer(*configs, distill_config)
    yflags.write_flags_file(fv, run_dir)
    metrics = trainer.fit()
    # Building the trainer, training (SAKD: with its difficulty passes) and the final evaluation.
    exp.update_timing(run_dir, wall_s=time.perf_counter() - started)
    return metrics


# --------------------------------------------------------------------------------- results
def run_result(
    setting: Setting, metrics: dict, timing: dict, num_epochs: int, num_train: int
) -> dict:
    """One run's entry of results.json, from its metrics.json and experiment_timing.json."""
    wall = timing.get("wall_s")
    result = {
        **{name: metrics["eval"][name] for name in METRICS},
        "steps": metrics["step"],
        "wall_s": wall,
    }
    if setting.is_sakd:
        sakd = metrics["sakd"]
        passes = [e["difficulty_pass"] for e in metrics["epochs"] if "difficulty_pass" in e]
        pass_total = sum(p["seconds"] for p in passes)
        result.update(
            samples_per_epoch=passes[-1]["num_selected"],
            seconds_per_epoch=sakd["seconds_per_epoch_amortised"],
            train_seconds_per_epoch=sakd["train_seconds_per_epoch"],
            difficulty_pass_seconds=sakd["difficulty_pass_seconds"],
            difficulty_passes=len(passes),
            difficulty_pass_fraction_of_epochs=sakd["difficulty_pass_fraction"],
            difficulty_pass_fraction_of_wall=pass_total / wall if wall else None,
        )
    else:
        per_epoch = metrics["train"]["wall_time_s"] / num_epochs
        result.update(
            samples_per_epoch=num_train,
            seconds_per_epoch=per_epoch,
            train_seconds_per_epoch=per_epoch,
            difficulty_pass_seconds=0.0,
            difficulty_passes=0,
            difficulty_pass_fraction_of_epochs=0.0,
            difficulty_pass_fraction_of_wall=0.0,
        )
    return result


SUMMARISED = (
    *METRICS,
    "steps",
    "wall_s",
    "seconds_per_epoch",
    "train_seconds_per_epoch",
    "difficulty_pass_seconds",
    "difficulty_pass_fraction_of_epochs",
    "difficulty_pass_fraction_of_wall",
    "speedup_vs_vanilla",
    "gap_minus_vanilla",
)


def summarize(per_seed: dict[str, dict[str, dict]]) -> dict:
    """Adds each run's speed-up and GAP gain against vanilla (same seed); the summary per setting."""
    for runs in per_seed.values():
        vanilla = runs["vanilla"]
        for run in runs.values():
            run["speedup_vs_vanilla"] = vanilla["seconds_per_epoch"] / run["seconds_per_epoch"]
            run["gap_minus_vanilla"] = run["gap"] - vanilla["gap"]
    summary = {}
    for setting in SETTINGS:
        runs = [per_seed[s][setting.name] for s in per_seed]
        summary[setting.name] = {
            "label": setting.label,
            "ratio": setting.ratio,
            "selection_interval": setting.interval,
            "samples_per_epoch": runs[0]["samples_per_epoch"],
            **{name: exp.describe([r[name] for r in runs]) for name in SUMMARISED},
        }
    return summary


_pm = exp.format_pm  # "mean ± half-range"


def _mean(stats: dict | None, fmt: str) -> str:
    return "n/a" if stats is None else format(stats["mean"], fmt)


def markdown(results: dict) -> str:
    config, summary = results["config"], results["summary"]
    seeds = ", ".join(str(s) for s in config["seeds"])
    teacher = results["teacher"]["summary"]["gap"]
    lines = [
        f"Synthetic YouTube-8M ({config['train_videos']} training, {config['eval_videos']} "
        f"held-out videos); 6-frame tiny students distilled from one all-frames teacher cache per "
        f"seed (teacher GAP {_pm(teacher, 4)}), {config['num_epochs']} epochs, batch "
        f"{config['batch_size']}, seeds {seeds}: mean ± half-range over seeds. Distillation "
        f"weights w_pred={config['w_pred']}, w_rep={config['w_rep']}, w_kl={config['w_kl']} "
        f"(T={config['temperature']}). s/epoch: wall seconds of training per epoch, SAKD's "
        "difficulty passes amortised over the epochs they serve; train s/epoch without them; "
        "pass share: the difficulty passes' share of the run's wall time (model building and "
        "final evaluation included); speed-up: vanilla's s/epoch over the setting's, same seed.",
        "",
        "| setting | samples/epoch | GAP | mAP | Hit@1 | steps | s/epoch (amortised) "
        "| train s/epoch | pass share | speed-up vs vanilla |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in results["settings"]:
        s = summary[name]
        lines.append(
            f"| {s['label']} | {s['samples_per_epoch']} | {_pm(s['gap'], 4)} | {_pm(s['map'], 4)} "
            f"| {_pm(s['hit_at_one'], 4)} | {_mean(s['steps'], '.0f')} "
            f"| {_pm(s['seconds_per_epoch'], 2)} | {_pm(s['train_seconds_per_epoch'], 2)} "
            f"| {_mean(s['difficulty_pass_fraction_of_wall'], '.0%')} "
            f"| {_mean(s['speedup_vs_vanilla'], '.2f')}x |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ main
def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    seeds = validate_flags()

    from yt8m_kd.training import strategy as strategy_lib

    teacher_fv = yflags.parse_flagfile(os.path.join(MODELS_DIR, TEACHER_PRESET))
    patterns = exp.make_synthetic_yt8m(
        FLAGS.data_dir,
        yflags.model_config_from_flags(teacher_fv),
        FLAGS.train_videos,
        FLAGS.eval_videos,
    )
    strategy = strategy_lib.make_strategy("one_device")
    batch_size = yflags.parse_flagfile(os.path.join(MODELS_DIR, VANILLA_PRESET)).batch_size

    per_seed: dict[str, dict[str, dict]] = {}
    teachers: dict[str, dict] = {}
    for seed in seeds:
        teacher_dir, cache_dir, teacher_metrics = ensure_teacher(seed, *patterns, strategy)
        teachers[str(seed)] = {
            "run_dir": teacher_dir,
            "cache_dir": cache_dir,
            "step": teacher_metrics["step"],
            **{name: teacher_metrics["eval"][name] for name in METRICS},
        }
        cache = exp.read_json(os.path.join(cache_dir, "teacher_cache.json"))
        num_train = cache["num_videos"]
        steps_per_epoch = num_train // batch_size
        per_seed[str(seed)] = {}
        for setting in SETTINGS:
            run_dir = os.path.join(FLAGS.work_dir, f"seed{seed}", setting.name)
            fv = student_values(setting, seed, cache_dir, patterns, steps_per_epoch)
            metrics = train_student(setting, fv, run_dir, strategy)
            timing = exp.read_json(os.path.join(run_dir, exp.TIMING_FILE)) or {}
            per_seed[str(seed)][setting.name] = run_result(
                setting, metrics, timing, FLAGS.num_epochs, num_train
            )

    summary = summarize(per_seed)
    results = {
        "config": {
            "seeds": seeds,
            "num_epochs": FLAGS.num_epochs,
            "batch_size": batch_size,
            "vanilla_steps": FLAGS.num_epochs * steps_per_epoch,
            "w_pred": FLAGS.w_pred,
            "w_rep": FLAGS.w_rep,
            "w_kl": FLAGS.w_kl,
            "temperature": FLAGS.temperature,
            "train_data_pattern": patterns[0],
            "eval_data_pattern": patterns[1],
            "train_videos": num_train,
            "eval_videos": FLAGS.eval_videos,
            "data_seed": exp.YT8M_DATA_SEED,
            "teacher_work_dir": FLAGS.teacher_work_dir,
            "presets": {"teacher": TEACHER_PRESET, "vanilla": VANILLA_PRESET, "sakd": SAKD_PRESET},
        },
        "settings": [s.name for s in SETTINGS],
        "teacher": {
            "per_seed": teachers,
            "summary": {
                name: exp.describe([t[name] for t in teachers.values()]) for name in METRICS
            },
        },
        "per_seed": per_seed,
        "summary": summary,
    }
    exp.write_results(FLAGS.work_dir, results, markdown(results), started)


if __name__ == "__main__":
    cli.run(main)
