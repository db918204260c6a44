"""The UCF101 experiment on the synthetic UCF101-format set: teacher, plain, KD and SAKD students.

  python launchers/ucf101_experiment.py [--work_dir=experiments/ucf101] \
      [--data_dir=data/ucf101_synthetic] [--seeds=0,1,2] [--num_groups=25 --clips_per_group=4] \
      [--teacher_steps=1000] [--student_epochs=30] [--sakd_budgets=epochs,steps] \
      [--eval_every_steps=100] [--noprogress_bar]

1. Data, made once in --data_dir (yt8m_kd.data.ucf101_synthetic and yt8m_kd.data.ucf101, as
   data_scripts/make_synthetic_ucf101.py, extract_ucf101_frames.py and ucf101_to_tfrecord.py
   make them): AVI videos of 8 motion classes in the official UCF101 layout, --num_groups groups
   of --clips_per_group clips per class; their JPEG frames; and split 1 packed into records
   (trainlist01: groups h+1..G, testlist01: groups 1..h, h = round(7 G / 25), as in UCF101).
2. For every seed, with the models/ucf101_*.flags presets and the same data:

     seed{s}/teacher          ucf101_teacher.flags: all T = 8 sampled frames, labels only,
                              --teacher_steps steps
     seed{s}/teacher_cache    its logits and repr per training clip (clean eval-mode clips)
     seed{s}/student          ucf101_student.flags: k = 2 of the 8 frames, labels only
     seed{s}/kd               ucf101_kd.flags: the same student, + w_kl T^2 KL (T = 4) + w_rep L_rep
                              against the cache
     seed{s}/sakd             ucf101_sakd.flags (SAKD, ratio r, a selection every 5 epochs):
                              the same number of epochs as kd, an epoch over the selected r N
                              clips, so about r times kd's steps (the paper's comparison)
     seed{s}/sakd_same_steps  the same with 1/r times as many epochs: about kd's steps

   The student, kd and SAKD runs train --student_epochs epochs of floor(N_train / batch) steps
   (SAKD: of floor(r N_train / batch) steps). The seed sets the initial weights, the shuffle
   order, the augmentation and dropout; the data are the same for all.
3. Every run is evaluated at its end on the held-out split (testlist01; top-1, top-5,
   per-class accuracy), and those of the first seed also every --eval_every_steps steps. Training wall time is that of the training
   loop (SAKD: its epochs and its difficulty passes) minus the periodic evaluations, which the
   launcher times; SAKD's difficulty-pass seconds and s/epoch come from metrics.json "sakd".

Outputs in --work_dir:

  results.json   per seed and model: top-1, top-5, mean class accuracy, per-class accuracy,
                 steps, epochs, training seconds (and SAKD's pass seconds and s/epoch),
                 parameters, GFLOPs per video; a summary per model over seeds; config
  results.md     the tables (mean ± half-range over seeds, per-seed values), also printed
  top1_vs_step.png/svg, train_losses.png/svg, top1_vs_gflops.png/svg
                 the runs of the first seed (yt8m_kd.plots.plot_runs)

The UCF101 presets train without the random horizontal flip (--norandom_flip): on the synthetic
set a flip turns SlideRight into a leftward slide with its label unchanged, and no model could
tell SlideRight from SlideLeft.

Resuming: a run whose metrics.json is complete (and whose flags.txt matches) is reused, not
retrained, so a second invocation resumes an interrupted experiment and writes the same results.
A run directory without a complete metrics.json is trained again from scratch (cleared first: a
resumed run's timings would cover only its last part); a teacher trained again also clears its
cache and the seed's distilled runs, which learned from the old one. A run directory whose
flags.txt differs from what this invocation would train stops the launcher.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import dataclasses
import math
import shutil
import time

from absl import flags, logging

from yt8m_kd import cli
from yt8m_kd import experiments as exp
from yt8m_kd import flags as yflags

flags.DEFINE_string("work_dir", "experiments/ucf101", "Where runs and results go.")
flags.DEFINE_string(
    "data_dir", "data/ucf101_synthetic", "The synthetic UCF101 set (made here when absent)."
)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds; every model is trained once per seed.")
flags.DEFINE_integer(
    "num_groups", 25, "Synthetic set: groups per class (UCF101: 25; split 1 tests on 7 of 25)."
)
flags.DEFINE_integer("clips_per_group", 4, "Synthetic set: clips per group and class.")
flags.DEFINE_integer("teacher_steps", 1000, "Training steps of the teacher.")
flags.DEFINE_integer(
    "student_epochs",
    30,
    "Epochs of the plain and KD students (floor(N_train / batch) steps each) and of SAKD.",
)
flags.DEFINE_list(
    "sakd_budgets",
    ["epochs", "steps"],
    "SAKD runs: 'epochs' (as many epochs as KD, over the selected subset) and/or 'steps' "
    "(about as many steps as KD).",
)
flags.DEFINE_integer(
    "eval_every_steps",
    100,
    "Steps between held-out evaluations of the first seed's runs, whose curves are plotted (0 = "
    "only at the end); the other seeds evaluate at the end only. Best not a multiple of a SAKD "
    "epoch's steps: SAKD skips an evaluation that falls on the last step of an epoch.",
)
flags.DEFINE_boolean("progress_bar", True, "Show progress bars.")
FLAGS = flags.FLAGS

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
DATA_SEED = 0  # the data are fixed; only the training seed varies
SPLIT = 1
NUM_SHARDS = 4  # per split
CACHE_BATCH_SIZE = 64
SAKD_BUDGETS = ("epochs", "steps")


# --------------------------------------------------------------------------------- the models
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment; trained once per seed in work_dir/seed{s}/{name}."""

    name: str
    preset: str  # a file of models/
    label: str
    kind: str  # "teacher", "plain", "kd" or "sakd"
    sakd_budget: str | None = None  # SAKD: "epochs" or "steps"

    @property
    def distilled(self) -> bool:
        return self.kind in ("kd", "sakd")


def model_specs(sakd_budgets: list[str]) -> list[ModelSpec]:
    specs = [
        ModelSpec("teacher", "ucf101_teacher.flags", "teacher", "teacher"),
        ModelSpec("student", "ucf101_student.flags", "plain student", "plain"),
        ModelSpec("kd", "ucf101_kd.flags", "KD student", "kd"),
    ]
    if "epochs" in sakd_budgets:
        specs.append(ModelSpec("sakd", "ucf101_sakd.flags", "SAKD, KD's epochs", "sakd", "epochs"))
    if "steps" in sakd_budgets:
        specs.append(
            ModelSpec("sakd_same_steps", "ucf101_sakd.flags", "SAKD, KD's steps", "sakd", "steps")
        )
    return specs


# ----------------------------------------------------------------------------------- flags
def validate_flags() -> tuple[list[int], list[str]]:
    """Checks the flags before any work; returns (seeds, SAKD budgets)."""
    seeds = exp.parse_int_list("seeds", FLAGS.seeds, 0)
    budgets = list(FLAGS.sakd_budgets)
    unknown = [b for b in budgets if b not in SAKD_BUDGETS]
    if unknown or len(set(budgets)) != len(budgets):
        raise yflags.FlagError(
            f"--sakd_budgets={','.join(budgets)}: give distinct values of "
            f"{', '.join(SAKD_BUDGETS)} (or nothing)"
        )
    if FLAGS.num_groups < 3:
        raise yflags.FlagError(f"--num_groups={FLAGS.num_groups} must be >= 3 (one per split)")
    for name in ("clips_per_group", "teacher_steps", "student_epochs"):
        if FLAGS[name].value <= 0:
            raise yflags.FlagError(f"--{name}={FLAGS[name].value} must be positive")
    if FLAGS.eval_every_steps < 0:
        raise yflags.FlagError(f"--eval_every_steps={FLAGS.eval_every_steps} must be >= 0")
    return seeds, budgets


# ------------------------------------------------------------------------------------ data
@dataclasses.dataclass(frozen=True)
class Data:
    root: str
    class_index_file: str
    class_names: tuple[str, ...]
    train_per_class: tuple[int, ...]  # training clips of each class
    train_pattern: str
    eval_pattern: str
    num_train: int
    num_eval: int


def make_data(data_dir: str) -> Data:
    """The synthetic set, its frames and the split-1 records; made once, then reused.

    synthetic.json records how the set was made; it is written first with "complete": false and
    rewritten complete last, so an interrupted build is finished by the next invocation (every
    step is deterministic; extraction skips videos already done).
    """
    from yt8m_kd.data import ucf101
    from yt8m_kd.data import ucf101_synthetic as synthetic
    from yt8m_kd.training.loop import write_json

    manifest = {
        "num_groups": FLAGS.num_groups,
        "clips_per_group": FLAGS.clips_per_group,
        "seed": DATA_SEED,
        "split": SPLIT,
        "num_shards": NUM_SHARDS,
    }
    manifest_path = os.path.join(data_dir, exp.DATA_MANIFEST)
    existing = exp.read_json(manifest_path)
    if existing is not None and {k: existing.get(k) for k in manifest} != manifest:
        raise yflags.FlagError(
            f"--data_dir={data_dir} holds a synthetic set made with "
            f"{ {k: existing.get(k) for k in manifest} }, not {manifest}: use another --data_dir "
            "(or the matching --num_groups/--clips_per_group)"
        )
    if existing is None and os.path.isdir(data_dir) and os.listdir(data_dir):
        raise yflags.FlagError(
            f"--data_dir={data_dir} holds files but no {exp.DATA_MANIFEST} (not made by this "
            "launcher): remove it or use another --data_dir"
        )
    list_dir = os.path.join(data_dir, "ucfTrainTestlist")
    records_dir = os.path.join(data_dir, "records")
    class_index_file = os.path.join(list_dir, "classInd.txt")
    split_files = {
        kind: os.path.join(list_dir, f"{kind}list{SPLIT:02d}.txt") for kind in ("train", "test")
    }
    if not (existing or {}).get("complete"):
        started = time.perf_counter()
        os.makedirs(data_dir, exist_ok=True)
        write_json(manifest_path, {**manifest, "complete": False})
        print(f"== {data_dir}: writing the synthetic UCF101 set")
        made = synthetic.make_synthetic_ucf101(
            data_dir,
            num_groups=FLAGS.num_groups,
            clips_per_group=FLAGS.clips_per_group,
            seed=DATA_SEED,
        )
        print(f"== {data_dir}: extracting the frames of {len(made.videos)} videos")
        extraction = ucf101.extract_videos(
            made.video_dir,
            os.path.join(data_dir, "frames"),
            num_workers=2,
            progress=FLAGS.progress_bar,
        )
        print(ucf101.format_extraction_summary(extraction))
        if extraction["failed"]:
            raise RuntimeError(f"could not extract {', '.join(extraction['failed_videos'])}")
        counts = {}
        for kind, split_file in split_files.items():
            summary = ucf101.write_split_records(
                os.path.join(data_dir, "frames"),
                split_file,
                class_index_file,
                records_dir,
                num_shards=NUM_SHARDS,
            )
            counts[kind] = summary["videos"]
            print(f"== {records_dir}: {summary['split']}, {summary['videos']} videos")
        write_json(
            manifest_path,
            {
                **manifest,
                "train_videos": counts["train"],
                "test_videos": counts["test"],
                "build_wall_s": time.perf_counter() - started,
                "complete": True,
            },
        )
        existing = exp.read_json(manifest_path)
    else:
        logging.info("Using the synthetic UCF101 set already in %s", data_dir)
    class_names = tuple(ucf101.read_class_index(class_index_file))
    train_labels = [label for _, label in ucf101.read_split(split_files["train"], class_names)]
    return Data(
        root=data_dir,
        class_index_file=class_index_file,
        class_names=class_names,
        train_per_class=tuple(train_labels.count(c) for c in range(len(class_names))),
        train_pattern=os.path.join(records_dir, f"trainlist{SPLIT:02d}-*.tfrecord"),
        eval_pattern=os.path.join(records_dir, f"testlist{SPLIT:02d}-*.tfrecord"),
        num_train=existing["train_videos"],
        num_eval=existing["test_videos"],
    )


# -------------------------------------------------------------------------------- budgets
@dataclasses.dataclass(frozen=True)
class Budget:
    """Training lengths, from --teacher_steps, --student_epochs and the data size."""

    teacher_steps: int
    steps_per_epoch: int  # plain and KD students: floor(N_train / batch)
    student_steps: int
    sakd_selected: int  # round(r N_train), what a SAKD selection keeps
    sakd_steps_per_epoch: int
    sakd_epochs: dict  # budget -> epochs


def make_budget(data: Data, batch_size: int, sakd_ratio: float) -> Budget:
    steps_per_epoch = data.num_train // batch_size
    if steps_per_epoch == 0:
        raise yflags.FlagError(
            f"{data.num_train} training clips are fewer than one batch of {batch_size}: "
            "make a larger set (--num_groups, --clips_per_group)"
        )
    student_steps = FLAGS.student_epochs * steps_per_epoch
    selected = max(1, round(sakd_ratio * data.num_train))
    sakd_steps_per_epoch = max(1, selected // batch_size)  # as SAKDTrainer counts an epoch
    return Budget(
        teacher_steps=FLAGS.teacher_steps,
        steps_per_epoch=steps_per_epoch,
        student_steps=student_steps,
        sakd_selected=selected,
        sakd_steps_per_epoch=sakd_steps_per_epoch,
        sakd_epochs={
            "epochs": FLAGS.student_epochs,
            "steps": math.ceil(student_steps / sakd_steps_per_epoch),
        },
    )


# -------------------------------------------------------------------------------- training
def run_values(
    spec: ModelSpec, seed: int, data: Data, budget: Budget, cache_dir: str, eval_every_steps: int
) -> flags.FlagValues:
    """The flags of one run: its preset with this experiment's data, seed and length."""
    overrides = dict(
        train_data_pattern=data.train_pattern,
        eval_data_pattern=data.eval_pattern,
        class_index_file=data.class_index_file,
        eval_every_steps=eval_every_steps,
        progress_bar=FLAGS.progress_bar,
        seed=seed,
    )
    if spec.kind == "teacher":
        overrides["max_steps"] = budget.teacher_steps
    elif spec.kind == "sakd":
        overrides.update(teacher_cache=cache_dir, num_epochs=budget.sakd_epochs[spec.sakd_budget])
    else:
        overrides["max_steps"] = budget.student_steps
        if spec.kind == "kd":
            overrides["teacher_cache"] = cache_dir
    return yflags.flagfile_values(os.path.join(MODELS_DIR, spec.preset), **overrides)


def is_complete(spec: ModelSpec, metrics: dict | None, fv: flags.FlagValues) -> bool:
    if metrics is None or "eval" not in metrics or metrics.get("resumed_from_step") != 0:
        return False
    if spec.kind == "sakd":
        return metrics.get("sakd", {}).get("epochs") == fv.num_epochs
    return metrics.get("step") == fv.max_steps


def _timed_evaluations(trainer) -> list[float]:
    """Times every evaluation of `trainer` (the last one is the final evaluation, outside the
    training loop); returns the list the seconds are appended to."""
    seconds: list[float] = []
    run_eval = trainer.run_eval

    def timed():
        started = time.perf_counter()
        result = run_eval()
        seconds.append(time.perf_counter() - started)
        return result

    trainer.run_eval = timed  # the training loop and finish() call self.run_eval()
    return seconds


def train_run(spec: ModelSpec, fv: flags.FlagValues, run_dir: str, strategy) -> tuple[dict, bool]:
    """Trains one run unless it is complete already; returns (metrics.json, trained now)."""
    from yt8m_kd.training.distillation import DistillationTrainer
    from yt8m_kd.training.loop import Trainer
    from yt8m_kd.training.sakd_trainer import SAKDTrainer

    exp.check_run_flags(run_dir, fv, "--work_dir")
    metrics = exp.read_json(os.path.join(run_dir, "metrics.json"))
    if is_complete(spec, metrics, fv):
        print(f"== {run_dir}: done already (step {metrics['step']}), reused")
        return metrics, False
    if os.path.exists(run_dir):
        print(f"== {run_dir}: unfinished, trained again from scratch")
        shutil.rmtree(run_dir)

    print(f"== {run_dir}: {spec.label}, {spec.preset}, seed {fv.seed}")
    started = time.perf_counter()
    configs = (*yflags.configs_from_values(fv), run_dir, strategy)
    if spec.kind == "sakd":
        trainer = SAKDTrainer(
            *configs,
            yflags.distill_config_from_flags(fv),
            yflags.sakd_config_from_flags(fv),
            fv.num_epochs,
        )
    elif spec.kind == "kd":
        trainer = DistillationTrainer(*configs, yflags.distill_config_from_flags(fv))
    else:
        trainer = Trainer(*configs)
    eval_seconds = _timed_evaluations(trainer)
    yflags.write_flags_file(fv, run_dir)
    trainer.fit()
    exp.update_timing(
        run_dir,
        wall_s=time.perf_counter() - started,  # building, training, evaluations
        periodic_eval_s=sum(eval_seconds[:-1]),
        periodic_evals=len(eval_seconds) - 1,
        final_eval_s=eval_seconds[-1],
    )
    # As a later invocation will read it back, so that both give the same results.
    return exp.read_json(os.path.join(run_dir, "metrics.json")), True


# --------------------------------------------------------------------------------- results
def run_result(spec: ModelSpec, metrics: dict, timing: dict, budget: Budget) -> dict:
    """One run's entry of results.json, from its metrics.json and experiment_timing.json."""
    evaluation, size = metrics["eval"], metrics["model"]
    periodic_eval_s = timing.get("periodic_eval_s")
    if spec.kind == "sakd":
        sakd = metrics["sakd"]
        epochs = sakd["epochs"]
        passes = [e["difficulty_pass"] for e in metrics["epochs"] if "difficulty_pass" in e]
        # The training epochs (with the evaluations inside them) and the difficulty passes.
        loop_s = sakd["seconds_per_epoch_amortised"] * epochs
    else:
        epochs = metrics["step"] / budget.steps_per_epoch if spec.kind != "teacher" else None
        loop_s = metrics["train"]["wall_time_s"]
    train_s = loop_s - periodic_eval_s if periodic_eval_s is not None else None
    result = {
        "top1": evaluation["top1"],
        "top5": evaluation["top5"],
        "mean_class_accuracy": evaluation["mean_class_accuracy"],
        "per_class_accuracy": evaluation["per_class_accuracy"],
        "num_eval_videos": evaluation["num_videos"],
        "steps": metrics["step"],
        "epochs": epochs,
        "train_s": train_s,
        "train_loop_s_with_evals": loop_s,
        "periodic_eval_s": periodic_eval_s,
        "periodic_evals": timing.get("periodic_evals"),
        "seconds_per_epoch": train_s / epochs if train_s is not None and epochs else None,
        "trainable_params": size["trainable_params"],
        "gflops_per_video": size["gflops_per_video"],
        "frames": size["frames"],
        "eval_history": [
            {"step": e["step"], "top1": e["top1"], "top5": e["top5"]}
            for e in metrics.get("eval_history", [])
        ],
    }
    if spec.kind == "sakd":
        result.update(
            samples_per_epoch=passes[-1]["num_selected"],
            difficulty_passes=len(passes),
            difficulty_pass_s=sakd["difficulty_pass_seconds"],  # mean per pass
            difficulty_pass_share=sum(p["seconds"] for p in passes) / loop_s,
            selected_per_class=[p["selected_per_class"] for p in passes],
        )
    if "teacher_cache_wall_s" in timing:
        result["teacher_cache_s"] = timing["teacher_cache_wall_s"]
    return result


SUMMARISED = (
    "top1",
    "top5",
    "mean_class_accuracy",
    "steps",
    "epochs",
    "train_s",
    "seconds_per_epoch",
    "difficulty_pass_s",
    "minus_student_top1",
)


def summarize(per_seed: dict[str, dict[str, dict]], specs: list[ModelSpec]) -> dict:
    """Adds each run's gain over the plain student (same seed); the summary per model."""
    for runs in per_seed.values():
        student = runs["student"]
        for run in runs.values():
            run["minus_student_top1"] = run["top1"] - student["top1"]
    summary = {}
    for spec in specs:
        runs = [per_seed[s][spec.name] for s in per_seed]
        summary[spec.name] = {
            "label": spec.label,
            **{
                name: exp.describe([r.get(name) for r in runs])
                for name in SUMMARISED
                if all(name in r for r in runs)
            },
            **{name: runs[0][name] for name in ("trainable_params", "gflops_per_video", "frames")},
        }
        if spec.kind == "sakd":
            summary[spec.name]["samples_per_epoch"] = runs[0]["samples_per_epoch"]
    return summary


def _mean(stats: dict | None, fmt: str) -> str:
    return "n/a" if stats is None else format(stats["mean"], fmt)


def markdown(results: dict) -> str:
    config, summary, per_seed = results["config"], results["summary"], results["per_seed"]
    seeds = [str(s) for s in config["seeds"]]
    budget = config["budget"]
    lines = [
        f"Synthetic UCF101, split 1: {config['train_videos']} training and "
        f"{config['eval_videos']} held-out clips ({config['num_groups']} groups x "
        f"{config['clips_per_group']} clips x {len(config['class_names'])} classes); "
        f"T = {config['max_frames']} frames per clip, students see k = {config['k_frames']}. Seeds {', '.join(seeds)}: mean ± half-range over seeds. Teacher "
        f"{budget['teacher_steps']} steps; plain and KD students {config['student_epochs']} "
        f"epochs of {budget['steps_per_epoch']} steps; SAKD selects {budget['sakd_selected']} "
        f"clips (r = {config['sakd_ratio']:.0%}) every {config['sakd_selection_interval']} epochs, "
        f"an epoch is {budget['sakd_steps_per_epoch']} steps over them. Train s: the training loop's wall time "
        "without the periodic evaluations (SAKD: with its difficulty passes); s/epoch the same "
        f"per epoch; wall seconds on {config['machine']}.",
        "",
        "| model | frames | top-1 | top-5 | mean class acc. | steps | epochs "
        "| train s | s/epoch | params | GFLOPs/video |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in results["models"]:
        s = summary[name]
        epochs = _mean(s.get("epochs"), ".0f") if "epochs" in s else "-"
        lines.append(
            f"| {s['label']} | {s['frames']} | {exp.format_pm(s['top1'], 3)} "
            f"| {exp.format_pm(s['top5'], 3)} | {exp.format_pm(s['mean_class_accuracy'], 3)} "
            f"| {_mean(s['steps'], '.0f')} "
            f"| {epochs} | {exp.format_pm(s['train_s'], 0)} "
            f"| {exp.format_pm(s.get('seconds_per_epoch'), 2)} | {s['trainable_params']:,} "
            f"| {s['gflops_per_video']:.4f} |"
        )
    lines += [
        "",
        "Per seed: top-1, and its mean difference to the plain student of the same seed.",
        "",
        "| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean − student |",
        "|---|" + "---:|" * (len(seeds) + 1),
    ]
    for name in results["models"]:
        cells = [f"{per_seed[s][name]['top1']:.3f}" for s in seeds]
        s = summary[name]
        gain = f"{s['minus_student_top1']['mean']:+.3f}"
        lines.append(f"| {s['label']} | " + " | ".join(cells) + f" | {gain} |")
    sakd = [name for name in results["models"] if "difficulty_pass_s" in summary[name]]
    if sakd:
        lines += [
            "",
            "SAKD: a difficulty pass (interrupted forward pass over all training clips, strength "
            "update, selection) every few epochs; s/epoch amortises the passes over the epochs "
            "they serve.",
            "",
            "| model | clips/epoch | epochs | steps | difficulty passes | s/pass | pass share "
            "| s/epoch |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in sakd:
            s = summary[name]
            runs = [per_seed[seed][name] for seed in seeds]
            share = sum(r["difficulty_pass_share"] for r in runs) / len(runs)
            lines.append(
                f"| {s['label']} | {s['samples_per_epoch']} | {_mean(s['epochs'], '.0f')} "
                f"| {_mean(s['steps'], '.0f')} | {runs[0]['difficulty_passes']} "
                f"| {exp.format_pm(s['difficulty_pass_s'], 2)} | {share:.0%} "
                f"| {exp.format_pm(s['seconds_per_epoch'], 2)} |"
            )
        lines += [
            "",
            "Clips of each class in SAKD's selections (mean over its difficulty passes and the "
            "seeds), against the class's training clips:",
            "",
            "| class | training clips | " + " | ".join(summary[n]["label"] for n in sakd) + " |",
            "|---|---:|" + "---:|" * len(sakd),
        ]
        for c, class_name in enumerate(config["class_names"]):
            cells = []
            for name in sakd:
                counts = [
                    per_class[c]
                    for seed in seeds
                    for per_class in per_seed[seed][name]["selected_per_class"]
                ]
                cells.append(f"{sum(counts) / len(counts):.1f}")
            lines.append(
                f"| {class_name} | {config['train_clips_per_class'][c]} | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def machine() -> str:
    """What the timings were measured on, in words."""
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{os.cpu_count()} CPU cores" + (f" and {gpus} GPU(s)" if gpus else ", no GPU")


def make_plots(specs: list[ModelSpec], seed: int, work_dir: str) -> list[str]:
    """Top-1 against step, the loss terms, and top-1 against GFLOPs of one seed's runs."""
    from yt8m_kd import plots, run_logs

    runs = run_logs.read_runs(
        [os.path.join(work_dir, f"seed{seed}", spec.name) for spec in specs],
        [f"{spec.label} (seed {seed})" for spec in specs],
    )
    drawn = plots.plot_runs(runs, work_dir, metric="top1")
    for note in drawn.notes:
        logging.info("plots: %s", note)
    return [path for pair in drawn.paths.values() for path in pair]


# ------------------------------------------------------------------------------------ main
def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    seeds, budgets = validate_flags()
    specs = model_specs(budgets)

    from yt8m_kd.training import strategy as strategy_lib

    # 1. Data: the synthetic set, its frames, and split 1 as records.
    data = make_data(FLAGS.data_dir)
    sakd_preset = yflags.parse_flagfile(os.path.join(MODELS_DIR, "ucf101_sakd.flags"))
    student_preset = yflags.parse_flagfile(os.path.join(MODELS_DIR, "ucf101_student.flags"))
    budget = make_budget(data, student_preset.batch_size, sakd_preset.sakd_ratio)
    strategy = strategy_lib.make_strategy("one_device")

    # 2. Per seed: the teacher and its cache, then the students.
    per_seed: dict[str, dict[str, dict]] = {}
    for seed in seeds:
        seed_dir = os.path.join(FLAGS.work_dir, f"seed{seed}")
        cache_dir = os.path.join(seed_dir, "teacher_cache")
        per_seed[str(seed)] = {}
        for spec in specs:
            run_dir = os.path.join(seed_dir, spec.name)
            # Curves only for the seed that is plotted: evaluations cost time, not results.
            eval_every = FLAGS.eval_every_steps if seed == seeds[0] else 0
            fv = run_values(spec, seed, data, budget, cache_dir, eval_every)
            metrics, trained = train_run(spec, fv, run_dir, strategy)
            if spec.kind == "teacher":
                if trained:  # the seed's cache and distilled runs learned from another teacher
                    for stale in [cache_dir] + [
                        os.path.join(seed_dir, s.name) for s in specs if s.distilled
                    ]:
                        if os.path.exists(stale):
                            print(f"== {stale}: made from the previous teacher, removed")
                            shutil.rmtree(stale)
                exp.ensure_teacher_cache(
                    run_dir, cache_dir, data.train_pattern, batch_size=CACHE_BATCH_SIZE
                )
            timing = exp.read_json(os.path.join(run_dir, exp.TIMING_FILE)) or {}
            per_seed[str(seed)][spec.name] = run_result(spec, metrics, timing, budget)

    # 3. Results: json, markdown tables, plots of the first seed.
    results = {
        "config": {
            "seeds": seeds,
            "num_groups": FLAGS.num_groups,
            "clips_per_group": FLAGS.clips_per_group,
            "train_videos": data.num_train,
            "eval_videos": data.num_eval,
            "class_names": list(data.class_names),
            "train_clips_per_class": list(data.train_per_class),
            "max_frames": student_preset.max_frames,
            "k_frames": student_preset.k_frames,
            "student_epochs": FLAGS.student_epochs,
            "sakd_ratio": sakd_preset.sakd_ratio,
            "sakd_selection_interval": sakd_preset.sakd_selection_interval,
            "eval_every_steps": FLAGS.eval_every_steps,
            "machine": machine(),
            "budget": dataclasses.asdict(budget),
            "train_data_pattern": data.train_pattern,
            "eval_data_pattern": data.eval_pattern,
            "data_seed": DATA_SEED,
            "presets": {spec.name: spec.preset for spec in specs},
        },
        "models": [spec.name for spec in specs],
        "per_seed": per_seed,
        "summary": summarize(per_seed, specs),
    }
    paths = make_plots(specs, seeds[0], FLAGS.work_dir)
    exp.write_results(FLAGS.work_dir, results, markdown(results), started, paths)


if __name__ == "__main__":
    cli.run(main)
