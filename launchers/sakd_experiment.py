"""The SAKD experiment on synthetic YouTube-8M: vanilla distillation on all samples against SAKD.

  python launchers/sakd_experiment.py [--work_dir=experiments/sakd] [--data_dir=data/fewer_frames] \
      [--teacher_work_dir=experiments/fewer_frames] [--seeds=0,1] [--num_epochs=10] \
      [--init=scratch|teacher|student[,...]] [--settings=vanilla,sakd_r10_i5,...] \
      [--w_pred=0.01 --w_rep=0.001 --w_kl=0 --temperature=4] [--noprogress_bar]

Li et al. (ACM MM 2025) report that SAKD, training on 10% of the samples chosen anew every epoch
("Ours") or every 5 epochs ("Ours*"), beats vanilla KD on all samples at a fraction of the time
per epoch (docs/sakd.md). They fine-tune a pretrained model; a student from random weights that
sees 10% of the samples for the same epochs gets 10x fewer steps from scratch (issue 14). So the
students start from one of (--init, a list: every one named is run):

  scratch   random weights (the default: the regime of the results before --init existed)
  teacher   the seed's all-frames teacher run (--init_from_run; a k-frame NeXtVLAD has the
            teacher's weights, it reads fewer frames)
  student   a plain k=6 student trained on labels for num_epochs epochs (tiny_student_k6.flags,
            same data and seed), run seed{s}/student_k6

For every seed and init this launcher distils tiny 6-frame students from ONE all-frames teacher
cache, with the same data, epochs and loss weights:

  vanilla               tiny_distilled_k6.flags on all samples, num_epochs epochs of
                        floor(N_train / batch_size) steps
  sakd_r10_i1           tiny_sakd_k6.flags: SAKD, ratio 10%, a selection every epoch
  sakd_r10_i5           ratio 10%, every 5 epochs
  sakd_r50_i1           ratio 50%, every epoch
  sakd_r50_i5           ratio 50%, every 5 epochs
  sakd_r10_i5_balanced  ratio 10%, every 5 epochs, with --sakd_class_balance (beyond the paper:
                        per-class quotas in the selection, issue 14 item 4)

--settings runs a subset of these, vanilla always among them (a later invocation with more
settings reuses the runs made).

Runs from scratch are seed{s}/<setting> (as before --init), the others seed{s}/from_<init>/<setting>
(a run directory's flags do not tell its init apart: --init_from_run only acts before the first
checkpoint, so each init needs its own directories). Their keys in results.json are the same paths.

The teacher and its cache are those of the fewer-frames experiment (--teacher_work_dir/seed{s}/,
same flags, same --data_dir data): either launcher reuses what the other made.

Seconds per epoch: vanilla's training loop per epoch; SAKD's training epochs plus its difficulty
passes (interrupted forward pass over all N samples, strength update, selection), amortised over
the epochs they serve. Training wall seconds: seconds per epoch x epochs, so SAKD's include its
passes (model building and the final evaluation are left out of both). results.json holds per
seed and run GAP, mAP, Hit@1, PERR, steps, wall seconds, seconds per epoch, the passes' share of
the wall time and the speed-up against the vanilla run of the same seed and init, a summary per
run over seeds, and per init the goal of issue 14 (SAKD r=10% every 5 epochs: GAP >= vanilla's -
0.005 at <= 1/3 of its training time); results.md the table (mean ± half-range over seeds);
time_to_gap.png/.svg GAP against training wall seconds, a point per run (mean over seeds).

Runs go through the project's one run-or-reuse policy (yt8m_kd.experiments): a finished run is
reused, an unfinished one resumes from its latest checkpoint (its timings then cover the resumed
part; results.json says from which step), and one trained with other flags stops the launcher.
"""

from __future__ import annotations

import os
import time

import pandas as pd
from absl import flags

from yt8m_kd import cli, plots
from yt8m_kd import experiments as exp
from yt8m_kd.experiments import finetune
from yt8m_kd.tables import markdown_table
from yt8m_kd.training.strategy import make_strategy

exp.define_flags(
    work_dir="experiments/sakd",
    data_dir="data/fewer_frames",
    seeds=[0, 1],
    teacher_steps=1500,
    train_videos=4096,
    eval_videos=1024,
    progress_bar=True,
    **exp.DISTILL_WEIGHTS,
)
flags.DEFINE_string(
    "teacher_work_dir",
    "experiments/fewer_frames",
    "Holds seed{s}/teacher and seed{s}/teacher_cache: reused when there, else made there.",
)
flags.DEFINE_integer(
    "num_epochs", 10, "Epochs of every student (SAKD: over the selected subset).", lower_bound=1
)
finetune.define_init_flag(
    ("scratch", "teacher", "student"),
    "Where the students' weights start, one or more: scratch (random), teacher (the seed's "
    "teacher run), student (a plain k=6 student trained on labels); every one is run.",
)
FLAGS = flags.FLAGS

TEACHER, VANILLA, SAKD = "tiny_teacher.flags", "tiny_distilled_k6.flags", "tiny_sakd_k6.flags"
PLAIN_STUDENT = "tiny_student_k6.flags"  # --init=student starts from this, trained on labels
TEACHER_EVAL_EVERY_STEPS = 100  # as the fewer-frames experiment trains it
METRICS = ("gap", "map", "hit_at_one", "perr")
SUMMARISED = (
    *METRICS,
    *"steps wall_s train_wall_s seconds_per_epoch train_seconds_per_epoch".split(),
    "difficulty_pass_seconds",
    *"difficulty_pass_fraction_of_epochs difficulty_pass_fraction_of_wall".split(),
    *"speedup_vs_vanilla gap_minus_vanilla map_minus_vanilla".split(),
)
# name -> (SAKD ratio, selection interval, class-balanced selection); no ratio: vanilla
# distillation on all samples
SETTINGS = {"vanilla": (None, None, False), **finetune.SAKD_SETTINGS}
# Issue 14's goal, from the teacher's weights: SAKD r=10% every 5 epochs within 0.005 GAP of
# vanilla KD with at most 1/3 of its training wall time (difficulty passes included).
GOAL_SETTING, GOAL_GAP_MARGIN, GOAL_SPEEDUP = "sakd_r10_i5", 0.005, 3.0
finetune.define_settings_flag(SETTINGS, "vanilla")
label, run_key = finetune.setting_label, finetune.run_key


def run_specs(seed: int, patterns: tuple[str, str], vanilla_steps: int) -> list[exp.RunSpec]:
    data = dict(train_data_pattern=patterns[0], eval_data_pattern=patterns[1])
    common = dict(data, progress_bar=FLAGS.progress_bar, seed=seed)
    teacher = dict(common, max_steps=FLAGS.teacher_steps, eval_every_steps=TEACHER_EVAL_EVERY_STEPS)
    student = dict(common, eval_every_steps=0, **exp.distill_weights())  # evaluated at the end
    root, teacher_root = (
        os.path.join(d, f"seed{seed}") for d in (FLAGS.work_dir, FLAGS.teacher_work_dir)
    )
    teacher_spec = exp.RunSpec("teacher", TEACHER, teacher_root, teacher, "teacher (all frames)")
    specs = [teacher_spec]
    sources = {}
    if "student" in FLAGS.init:  # on labels only, as long as vanilla distillation
        plain = dict(common, eval_every_steps=0, max_steps=vanilla_steps)
        specs.append(exp.RunSpec("student_k6", PLAIN_STUDENT, root, plain, "plain student k=6"))
        sources["student"] = specs[-1].run_dir
    for init in FLAGS.init:
        init_from = finetune.init_source(init, teacher_spec.run_dir, **sources)
        for name in FLAGS.settings:
            ratio, interval, balanced = SETTINGS[name]
            if ratio is None:  # num_epochs epochs over all samples
                preset, more = VANILLA, {"max_steps": vanilla_steps}
            else:
                preset = SAKD
                more = dict(
                    num_epochs=FLAGS.num_epochs,
                    sakd_ratio=ratio,
                    sakd_selection_interval=interval,
                    sakd_class_balance=balanced,
                )
            specs.append(
                exp.RunSpec(
                    run_key(init, name),
                    preset,
                    root,
                    {**student, **more, **init_from},
                    label(ratio, interval, balanced),
                    teacher="teacher",
                )
            )
    return specs


def run_result(run: exp.Run, steps_per_epoch: int) -> dict:
    metrics, wall = run.metrics, run.metrics["wall_time_s"]
    result = {
        **{name: metrics["eval"][name] for name in METRICS},
        "steps": metrics["step"],
        # Building, training (SAKD: with its difficulty passes) and the final evaluation; a
        # resumed run's cover the resumed part only.
        "wall_s": wall,
        "resumed_from_step": metrics["resumed_from_step"],
        # Where the weights started (--init_from_run): run directory, checkpoint, its step.
        "init_from": metrics.get("init_from"),
    }
    if run.config.sakd is None:
        train = metrics["train"]
        per_epoch = train["wall_time_s"] / train["steps"] * steps_per_epoch
        return dict(
            result,
            samples_per_epoch=FLAGS.train_videos,
            train_wall_s=per_epoch * FLAGS.num_epochs,
            seconds_per_epoch=per_epoch,
            train_seconds_per_epoch=per_epoch,
            difficulty_pass_seconds=0.0,
            difficulty_passes=0,
            difficulty_pass_fraction_of_epochs=0.0,
            difficulty_pass_fraction_of_wall=0.0,
        )
    sakd, passes = metrics["sakd"], exp.difficulty_passes(metrics)
    return dict(
        result,
        samples_per_epoch=passes[-1]["num_selected"] if passes else None,
        train_wall_s=sakd["seconds_per_epoch_amortised"] * FLAGS.num_epochs,
        seconds_per_epoch=sakd["seconds_per_epoch_amortised"],
        train_seconds_per_epoch=sakd["train_seconds_per_epoch"],
        difficulty_pass_seconds=sakd["difficulty_pass_seconds"],
        difficulty_passes=len(passes),
        difficulty_pass_fraction_of_epochs=sakd["difficulty_pass_fraction"],
        difficulty_pass_fraction_of_wall=sum(p["seconds"] for p in passes) / wall,
    )


def goal(summary: dict, init: str) -> dict | None:
    """Issue 14's goal for the students of `init`, from the means over seeds: SAKD r=10% every 5
    epochs within GOAL_GAP_MARGIN of vanilla's GAP at >= GOAL_SPEEDUP x its speed."""
    key = run_key(init, GOAL_SETTING)
    checked = finetune.goal_check(summary.get(key), "vanilla", "gap", GOAL_GAP_MARGIN, GOAL_SPEEDUP)
    return None if checked is None else {"setting": key, **checked}


def markdown(results: dict) -> str:
    config, pm, mean = results["config"], exp.format_pm, exp.format_mean
    table = pd.DataFrame(
        {
            "init": s["init"],
            "setting": s["label"],
            "samples/epoch": s["samples_per_epoch"],
            "GAP": pm(s["gap"], 4),
            "mAP": pm(s["map"], 4),
            "Hit@1": pm(s["hit_at_one"], 4),
            "steps": mean(s["steps"], ".0f"),
            "train wall s": pm(s["train_wall_s"], 1),
            "s/epoch (amortised)": pm(s["seconds_per_epoch"], 2),
            "train s/epoch": pm(s["train_seconds_per_epoch"], 2),
            "pass share": mean(s["difficulty_pass_fraction_of_wall"], ".0%"),
            "speed-up vs vanilla": mean(s["speedup_vs_vanilla"], ".2f") + "x",
        }
        for s in results["summary"].values()
    )
    goals = [
        f"from {init}: GAP {g['gap_minus_vanilla']:+.4f} vs vanilla at {g['speedup_vs_vanilla']:.2f}x"
        f" its speed, {'reached' if g['reached'] else 'not reached'}"
        for init, g in results["goal"].items()
        if g is not None
    ]
    return (
        f"Synthetic YouTube-8M ({config['train_videos']} training, {config['eval_videos']} "
        "held-out videos); 6-frame tiny students distilled from one all-frames teacher cache per "
        f"seed (teacher GAP {pm(results['teacher']['summary']['gap'], 4)}), "
        f"{config['num_epochs']} epochs, batch {config['batch_size']}, seeds "
        f"{', '.join(map(str, config['seeds']))}: mean ± half-range over seeds. Distillation "
        f"weights w_pred={config['w_pred']}, w_rep={config['w_rep']}, w_kl={config['w_kl']} "
        f"(T={config['temperature']}). init: where the students' weights start (scratch: random; "
        "teacher: the seed's teacher run; student: a plain k=6 student trained on labels). "
        "train wall s: s/epoch x epochs; s/epoch: wall seconds of training per epoch, SAKD's "
        "difficulty passes amortised over the epochs they serve; train s/epoch without them; "
        "pass share: the difficulty passes' share of the run's wall time (model building and "
        "final evaluation included); speed-up: vanilla's s/epoch over the setting's, same seed "
        "and init. Measured on " + config["machine"] + "."
        f"\n\n{markdown_table(table, index=False)}\n"
        + (
            f"\nGoal (issue 14: SAKD r=10% every 5 epochs, GAP >= vanilla - {GOAL_GAP_MARGIN} at "
            f">= {GOAL_SPEEDUP:.0f}x its speed, means over seeds): " + "; ".join(goals) + ".\n"
            if goals
            else ""
        )
    )


def plot_time_to_gap(results: dict, work_dir: str) -> tuple[str, str]:
    """GAP against training wall seconds (passes included), a point per run: mean over seeds,
    bars the half-range; colour per init, marker per setting."""
    points = finetune.time_points(results["summary"].values(), metric="gap", seconds="train_wall_s")
    config = results["config"]
    return plots.plot_metric_vs_seconds(
        points,
        os.path.join(work_dir, "time_to_gap"),
        seconds="training wall seconds, SAKD's difficulty passes included",
        title=f"Synthetic YouTube-8M: time to GAP ({config['num_epochs']} epochs, "
        f"seeds {','.join(map(str, config['seeds']))})",
    )


def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    patterns = exp.synthetic_yt8m(
        FLAGS.data_dir, exp.read_preset(TEACHER).model, FLAGS.train_videos, FLAGS.eval_videos
    )
    batch_size = exp.read_preset(VANILLA).train.batch_size
    steps_per_epoch = FLAGS.train_videos // batch_size
    vanilla_steps = FLAGS.num_epochs * steps_per_epoch
    seeds = exp.train_seeds(
        FLAGS.seeds,
        lambda seed: run_specs(seed, patterns, vanilla_steps),
        make_strategy("one_device"),
    )

    teachers, plain_students, per_seed = {}, {}, {}
    for seed, runs in seeds.items():
        teacher = runs.pop("teacher")
        teachers[seed] = {
            "run_dir": teacher.run_dir,
            "cache_dir": os.path.join(teacher.spec.root, exp.TEACHER_CACHE),
            "step": teacher.metrics["step"],
            **{name: teacher.metrics["eval"][name] for name in METRICS},
        }
        plain = runs.pop("student_k6", None)
        if plain is not None:
            plain_students[seed] = {
                "run_dir": plain.run_dir,
                "step": plain.metrics["step"],
                **{name: plain.metrics["eval"][name] for name in METRICS},
            }
        per_seed[seed] = {name: run_result(run, steps_per_epoch) for name, run in runs.items()}
        for init in FLAGS.init:  # against vanilla distillation of the same seed and init
            finetune.compare_with_baseline(
                per_seed[seed],
                [run_key(init, setting) for setting in FLAGS.settings],
                run_key(init, "vanilla"),
                seconds="seconds_per_epoch",
                metrics=("gap", "map"),
            )
    summary = exp.summarize(
        per_seed,
        SUMMARISED,
        same=("samples_per_epoch",),
        labels={
            run_key(init, name): label(*SETTINGS[name])
            for init in FLAGS.init
            for name in FLAGS.settings
        },
    )
    for init in FLAGS.init:
        for name in FLAGS.settings:
            ratio, interval, balanced = SETTINGS[name]
            summary[run_key(init, name)].update(
                init=init,
                setting=name,
                ratio=ratio,
                selection_interval=interval,
                class_balance=balanced,
            )
    results = {
        "config": {
            **{
                name: FLAGS[name].value
                for name in ("seeds", "init", "num_epochs", *exp.DISTILL_WEIGHTS)
            },
            "batch_size": batch_size,
            "vanilla_steps": vanilla_steps,
            "train_data_pattern": patterns[0],
            "eval_data_pattern": patterns[1],
            "train_videos": FLAGS.train_videos,
            "eval_videos": FLAGS.eval_videos,
            "data_seed": 0,
            "teacher_work_dir": FLAGS.teacher_work_dir,
            "presets": {
                "teacher": TEACHER,
                "vanilla": VANILLA,
                "sakd": SAKD,
                "plain_student": PLAIN_STUDENT,
            },
            "machine": exp.machine(),
        },
        "settings": FLAGS.settings,
        "teacher": {
            "per_seed": teachers,
            "summary": {n: exp.describe(t[n] for t in teachers.values()) for n in METRICS},
        },
        "per_seed": per_seed,
        "summary": summary,
        "goal": {init: goal(summary, init) for init in FLAGS.init},
    }
    if plain_students:
        results["plain_student"] = {
            "per_seed": plain_students,
            "summary": {n: exp.describe(t[n] for t in plain_students.values()) for n in METRICS},
        }
    figures = plot_time_to_gap(results, FLAGS.work_dir)
    exp.write_results(FLAGS.work_dir, results, markdown(results), started, figures)


if __name__ == "__main__":
    cli.run(main)
