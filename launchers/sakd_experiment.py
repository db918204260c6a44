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
Its helpers are not imported: importing it would define its flags (--work_dir with its default,
--max_steps, --ks, ...) in this launcher's FLAGS, so the few helpers needed are repeated here.

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
import json
import math
import time

from absl import flags, logging

from yt8m_kd import cli
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
TRAIN_SHARDS, EVAL_SHARDS = 8, 4
DATA_SEED = 0
DATA_MANIFEST = "synthetic.json"
TEACHER_EVAL_EVERY_STEPS = 100
CACHE_BATCH_SIZE = 256
TIMING_FILE = "experiment_timing.json"
METRICS = ("gap", "map", "hit_at_one", "perr")
PATTERN_FLAGS = ("train_data_pattern", "eval_data_pattern", "teacher_cache")


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
    values = FLAGS.seeds
    try:
        seeds = [int(v) for v in values]
    except ValueError:
        raise yflags.FlagError(f"--seeds={','.join(values)} must be integers") from None
    if not seeds:
        raise yflags.FlagError("--seeds is empty")
    if min(seeds) < 0:
        raise yflags.FlagError(f"--seeds={','.join(values)}: every value must be >= 0")
    if len(set(seeds)) != len(seeds):
        raise yflags.FlagError(f"--seeds={','.join(values)} repeats a value")
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


def _flag_lines(text: str) -> set[str]:
    """flags.txt lines that decide what a run trains, with paths made absolute."""
    lines = set()
    for line in text.splitlines():
        if not line.startswith("--") or "progress_bar" in line:
            continue
        name, _, value = line[2:].partition("=")
        if name in PATTERN_FLAGS and value:
            line = f"--{name}={os.path.abspath(value)}"
        lines.add(line)
    return lines


def check_run_flags(run_dir: str, fv: flags.FlagValues, what: str) -> None:
    """Stops when run_dir was trained with other flags than fv.

    Every flag recorded in an existing flags.txt must have the value this launcher gives it; flags
    the file does not list at all (defined in the project after the run was trained, such as the
    SAKD flags in an older teacher's flags.txt) are not compared.
    """
    path = os.path.join(run_dir, "flags.txt")
    if not os.path.exists(path):
        return
    with open(path) as f:
        recorded = _flag_lines(f.read())
    differ = sorted(recorded - _flag_lines(yflags.flags_text(fv)))
    if differ:
        raise yflags.FlagError(
            f"{run_dir} was trained with other flags than this experiment's ({path}: "
            f"{', '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}): use another {what}"
        )


# ------------------------------------------------------------------------------------ data
def make_data(data_dir: str, model_config) -> tuple[str, str]:
    """Synthetic train/validate shards, made once, exactly as fewer_frames_experiment does."""
    from yt8m_kd.data import synthetic
    from yt8m_kd.training.loop import write_json

    manifest = {
        "num_classes": model_config.num_classes,
        "feature_sizes": list(model_config.feature_sizes),
        "train_videos": FLAGS.train_videos,
        "train_shards": TRAIN_SHARDS,
        "eval_videos": FLAGS.eval_videos,
        "eval_shards": EVAL_SHARDS,
        "seed": DATA_SEED,
    }
    train_pattern = os.path.join(data_dir, "train-*.tfrecord")
    eval_pattern = os.path.join(data_dir, "validate-*.tfrecord")
    existing = read_json(os.path.join(data_dir, DATA_MANIFEST))
    if existing is not None:
        if existing != manifest:
            raise yflags.FlagError(
                f"--data_dir={data_dir} holds synthetic data made with {existing}, not "
                f"{manifest}: use another --data_dir (or matching --train_videos/--eval_videos)"
            )
        logging.info("Using the synthetic data already in %s", data_dir)
        return train_pattern, eval_pattern
    if os.path.isdir(data_dir) and any(n.endswith(".tfrecord") for n in os.listdir(data_dir)):
        raise yflags.FlagError(
            f"--data_dir={data_dir} holds records but no {DATA_MANIFEST} (unfinished, or not made "
            "by these launchers): remove it or use another --data_dir"
        )
    print(f"Writing synthetic data to {data_dir}")
    for split, videos, shards in (
        ("train", FLAGS.train_videos, TRAIN_SHARDS),
        ("validate", FLAGS.eval_videos, EVAL_SHARDS),
    ):
        synthetic.write_synthetic_yt8m(
            data_dir,
            split=split,
            num_shards=shards,
            videos_per_shard=videos // shards,
            num_classes=model_config.num_classes,
            feature_sizes=model_config.feature_sizes,
            seed=DATA_SEED,
        )
    write_json(os.path.join(data_dir, DATA_MANIFEST), manifest)  # last: only finished data have it
    return train_pattern, eval_pattern


# ----------------------------------------------------------------------------------- files
def read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def update_timing(run_dir: str, **values) -> None:
    from yt8m_kd.training.loop import write_json

    path = os.path.join(run_dir, TIMING_FILE)
    write_json(path, {**(read_json(path) or {}), **values})


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
    check_run_flags(run_dir, fv, "--teacher_work_dir")
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
    if metrics is not None and metrics.get("step") == fv.max_steps and "eval" in metrics:
        print(f"== {run_dir}: teacher done already (step {metrics['step']}), reused")
    else:
        print(f"== {run_dir}: training the teacher, {TEACHER_PRESET}, seed {seed}")
        started = time.perf_counter()
        trainer = Trainer(*yflags.configs_from_values(fv), run_dir, strategy)
        yflags.write_flags_file(fv, run_dir)
        metrics = trainer.fit()
        update_timing(run_dir, train_wall_s=time.perf_counter() - started)
    ensure_teacher_cache(run_dir, cache_dir, train_pattern)
    return run_dir, cache_dir, metrics


def ensure_teacher_cache(teacher_dir: str, cache_dir: str, train_pattern: str) -> None:
    """The teacher's outputs over the training data, written once per teacher checkpoint."""
    from yt8m_kd.distill.teacher_cache import METADATA_FILE, write_teacher_cache
    from yt8m_kd.training.runs import latest_checkpoint, restore_run

    checkpoint = os.path.abspath(latest_checkpoint(teacher_dir))
    data_pattern = os.path.abspath(train_pattern)
    existing = read_json(os.path.join(cache_dir, METADATA_FILE))
    if existing and (existing.get("checkpoint"), existing.get("data_pattern")) == (
        checkpoint,
        data_pattern,
    ):
        print(f"== {cache_dir}: teacher cache of {checkpoint}, reused")
        return
    print(f"== {cache_dir}: caching the teacher's outputs over {train_pattern}")
    started = time.perf_counter()
    run = restore_run(teacher_dir)
    write_teacher_cache(
        run.model,
        run.model_config,
        run.frame_dataset(train_pattern, batch_size=CACHE_BATCH_SIZE),
        cache_dir,
        metadata={
            "teacher_run_dir": os.path.abspath(teacher_dir),
            "checkpoint": checkpoint,
            "data_pattern": data_pattern,
            "max_frames": run.max_frames,
            "feature_names": list(run.run_flags.feature_names),
        },
    )
    update_timing(teacher_dir, teacher_cache_wall_s=time.perf_counter() - started)


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

    check_run_flags(run_dir, fv, "--work_dir")
    metrics = read_json(os.path.join(run_dir, "metrics.json"))
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
    update_timing(run_dir, wall_s=time.perf_counter() - started)
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


def describe(values: list[float | None]) -> dict | None:
    """mean, min, max, half_range and sample std (0 for one value) of per-seed values."""
    if not values or any(v is None for v in values):
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    low, high = min(values), max(values)
    return {
        "mean": mean,
        "min": low,
        "max": high,
        "half_range": (high - low) / 2,
        "std": math.sqrt(var),
    }


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
            **{name: describe([r[name] for r in runs]) for name in SUMMARISED},
        }
    return summary


def _pm(stats: dict | None, digits: int) -> str:
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['half_range']:.{digits}f}"


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
    from yt8m_kd.training.loop import write_json

    teacher_fv = yflags.parse_flagfile(os.path.join(MODELS_DIR, TEACHER_PRESET))
    patterns = make_data(FLAGS.data_dir, yflags.model_config_from_flags(teacher_fv))
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
        cache = read_json(os.path.join(cache_dir, "teacher_cache.json"))
        num_train = cache["num_videos"]
        steps_per_epoch = num_train // batch_size
        per_seed[str(seed)] = {}
        for setting in SETTINGS:
            run_dir = os.path.join(FLAGS.work_dir, f"seed{seed}", setting.name)
            fv = student_values(setting, seed, cache_dir, patterns, steps_per_epoch)
            metrics = train_student(setting, fv, run_dir, strategy)
            timing = read_json(os.path.join(run_dir, TIMING_FILE)) or {}
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
            "data_seed": DATA_SEED,
            "teacher_work_dir": FLAGS.teacher_work_dir,
            "presets": {"teacher": TEACHER_PRESET, "vanilla": VANILLA_PRESET, "sakd": SAKD_PRESET},
        },
        "settings": [s.name for s in SETTINGS],
        "teacher": {
            "per_seed": teachers,
            "summary": {name: describe([t[name] for t in teachers.values()]) for name in METRICS},
        },
        "per_seed": per_seed,
        "summary": summary,
    }
    os.makedirs(FLAGS.work_dir, exist_ok=True)
    write_json(os.path.join(FLAGS.work_dir, "results.json"), results)
    table = markdown(results)
    with open(os.path.join(FLAGS.work_dir, "results.md"), "w") as f:
        f.write(table)
    print("\n" + table)
    print(f"Results: {os.path.join(FLAGS.work_dir, 'results.json')}, results.md")
    print(f"Wall time of this invocation: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    cli.run(main)
