"""The SAKD experiment on synthetic YouTube-8M: vanilla distillation on all samples against SAKD.

  python launchers/sakd_experiment.py [--work_dir=experiments/sakd] [--data_dir=data/fewer_frames] \
      [--teacher_work_dir=experiments/fewer_frames] [--seeds=0,1] [--num_epochs=10] \
      [--w_pred=0.01 --w_rep=0.001 --w_kl=0 --temperature=4] [--noprogress_bar]

Li et al. (ACM MM 2025) report that SAKD, training on 10% of the samples chosen anew every epoch
("Ours") or every 5 epochs ("Ours*"), beats vanilla KD on all samples at a fraction of the time
per epoch (docs/sakd.md). For every seed this launcher distils tiny 6-frame students from ONE
all-frames teacher cache, with the same data, epochs and loss weights:

  seed{s}/vanilla        tiny_distilled_k6.flags on all samples, num_epochs epochs of
                         floor(N_train / batch_size) steps
  seed{s}/sakd_r10_i1    tiny_sakd_k6.flags: SAKD, ratio 10%, a selection every epoch
  seed{s}/sakd_r10_i5    ratio 10%, every 5 epochs
  seed{s}/sakd_r50_i1    ratio 50%, every epoch
  seed{s}/sakd_r50_i5    ratio 50%, every 5 epochs

The teacher and its cache are those of the fewer-frames experiment (--teacher_work_dir/seed{s}/,
same flags, same --data_dir data): either launcher reuses what the other made.

Seconds per epoch: vanilla's training loop per epoch; SAKD's training epochs plus its difficulty
passes (interrupted forward pass over all N samples, strength update, selection), amortised over
the epochs they serve. results.json holds per seed and setting GAP, mAP, Hit@1, PERR, steps, wall
seconds, seconds per epoch, the passes' share of the wall time and the speed-up against vanilla,
and a summary per setting over seeds; results.md the table (mean ± half-range over seeds).

Runs go through the project's one run-or-reuse policy (yt8m_kd.experiments): a finished run is
reused, an unfinished one resumes from its latest checkpoint (its timings then cover the resumed
part; results.json says from which step), and one trained with other flags stops the launcher.
"""

from __future__ import annotations

import os
import time

import pandas as pd
from absl import flags

from yt8m_kd import cli
from yt8m_kd import experiments as exp
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
FLAGS = flags.FLAGS

TEACHER, VANILLA, SAKD = "tiny_teacher.flags", "tiny_distilled_k6.flags", "tiny_sakd_k6.flags"
TEACHER_EVAL_EVERY_STEPS = 100  # as the fewer-frames experiment trains it
METRICS = ("gap", "map", "hit_at_one", "perr")
SUMMARISED = (
    *METRICS,
    *"steps wall_s seconds_per_epoch train_seconds_per_epoch difficulty_pass_seconds".split(),
    *"difficulty_pass_fraction_of_epochs difficulty_pass_fraction_of_wall".split(),
    *"speedup_vs_vanilla gap_minus_vanilla".split(),
)
# name -> (SAKD ratio, selection interval); no ratio: vanilla distillation on all samples
SETTINGS = {
    "vanilla": (None, None),
    "sakd_r10_i1": (0.1, 1),
    "sakd_r10_i5": (0.1, 5),
    "sakd_r50_i1": (0.5, 1),
    "sakd_r50_i5": (0.5, 5),
}


def label(ratio: float | None, interval: int | None) -> str:
    if ratio is None:
        return "vanilla KD, all samples"
    every = "every epoch" if interval == 1 else f"every {interval} epochs"
    return f"SAKD r={ratio:.0%}, re-select {every}"


def run_specs(seed: int, patterns: tuple[str, str], vanilla_steps: int) -> list[exp.RunSpec]:
    data = dict(train_data_pattern=patterns[0], eval_data_pattern=patterns[1])
    common = dict(data, progress_bar=FLAGS.progress_bar, seed=seed)
    teacher = dict(common, max_steps=FLAGS.teacher_steps, eval_every_steps=TEACHER_EVAL_EVERY_STEPS)
    student = dict(common, eval_every_steps=0, **exp.distill_weights())  # evaluated at the end
    root, teacher_root = (
        os.path.join(d, f"seed{seed}") for d in (FLAGS.work_dir, FLAGS.teacher_work_dir)
    )
    specs = [exp.RunSpec("teacher", TEACHER, teacher_root, teacher, "teacher (all frames)")]
    for name, (ratio, interval) in SETTINGS.items():
        if ratio is None:  # num_epochs epochs over all samples
            preset, more = VANILLA, {"max_steps": vanilla_steps}
        else:
            preset = SAKD
            more = dict(
                num_epochs=FLAGS.num_epochs, sakd_ratio=ratio, sakd_selection_interval=interval
            )
        specs.append(
            exp.RunSpec(
                name, preset, root, {**student, **more}, label(ratio, interval), teacher="teacher"
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
    }
    if run.config.sakd is None:
        train = metrics["train"]
        per_epoch = train["wall_time_s"] / train["steps"] * steps_per_epoch
        return dict(
            result,
            samples_per_epoch=FLAGS.train_videos,
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
        seconds_per_epoch=sakd["seconds_per_epoch_amortised"],
        train_seconds_per_epoch=sakd["train_seconds_per_epoch"],
        difficulty_pass_seconds=sakd["difficulty_pass_seconds"],
        difficulty_passes=len(passes),
        difficulty_pass_fraction_of_epochs=sakd["difficulty_pass_fraction"],
        difficulty_pass_fraction_of_wall=sum(p["seconds"] for p in passes) / wall,
    )


def markdown(results: dict) -> str:
    config, pm, mean = results["config"], exp.format_pm, exp.format_mean
    table = pd.DataFrame(
        {
            "setting": s["label"],
            "samples/epoch": s["samples_per_epoch"],
            "GAP": pm(s["gap"], 4),
            "mAP": pm(s["map"], 4),
            "Hit@1": pm(s["hit_at_one"], 4),
            "steps": mean(s["steps"], ".0f"),
            "s/epoch (amortised)": pm(s["seconds_per_epoch"], 2),
            "train s/epoch": pm(s["train_seconds_per_epoch"], 2),
            "pass share": mean(s["difficulty_pass_fraction_of_wall"], ".0%"),
            "speed-up vs vanilla": mean(s["speedup_vs_vanilla"], ".2f") + "x",
        }
        for s in results["summary"].values()
    )
    return (
        f"Synthetic YouTube-8M ({config['train_videos']} training, {config['eval_videos']} "
        "held-out videos); 6-frame tiny students distilled from one all-frames teacher cache per "
        f"seed (teacher GAP {pm(results['teacher']['summary']['gap'], 4)}), "
        f"{config['num_epochs']} epochs, batch {config['batch_size']}, seeds "
        f"{', '.join(map(str, config['seeds']))}: mean ± half-range over seeds. Distillation "
        f"weights w_pred={config['w_pred']}, w_rep={config['w_rep']}, w_kl={config['w_kl']} "
        f"(T={config['temperature']}). s/epoch: wall seconds of training per epoch, SAKD's "
        "difficulty passes amortised over the epochs they serve; train s/epoch without them; "
        "pass share: the difficulty passes' share of the run's wall time (model building and "
        "final evaluation included); speed-up: vanilla's s/epoch over the setting's, same seed."
        f"\n\n{markdown_table(table, index=False)}\n"
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

    teachers, per_seed = {}, {}
    for seed, runs in seeds.items():
        teacher = runs.pop("teacher")
        teachers[seed] = {
            "run_dir": teacher.run_dir,
            "cache_dir": os.path.join(teacher.spec.root, exp.TEACHER_CACHE),
            "step": teacher.metrics["step"],
            **{name: teacher.metrics["eval"][name] for name in METRICS},
        }
        per_seed[seed] = {name: run_result(run, steps_per_epoch) for name, run in runs.items()}
        vanilla = per_seed[seed]["vanilla"]
        for run in per_seed[seed].values():  # against vanilla distillation of the same seed
            run["speedup_vs_vanilla"] = vanilla["seconds_per_epoch"] / run["seconds_per_epoch"]
            run["gap_minus_vanilla"] = run["gap"] - vanilla["gap"]
    summary = exp.summarize(
        per_seed,
        SUMMARISED,
        same=("samples_per_epoch",),
        labels={name: label(*setting) for name, setting in SETTINGS.items()},
    )
    for name, (ratio, interval) in SETTINGS.items():
        summary[name].update(ratio=ratio, selection_interval=interval)
    results = {
        "config": {
            **{name: FLAGS[name].value for name in ("seeds", "num_epochs", *exp.DISTILL_WEIGHTS)},
            "batch_size": batch_size,
            "vanilla_steps": vanilla_steps,
            "train_data_pattern": patterns[0],
            "eval_data_pattern": patterns[1],
            "train_videos": FLAGS.train_videos,
            "eval_videos": FLAGS.eval_videos,
            "data_seed": 0,
            "teacher_work_dir": FLAGS.teacher_work_dir,
            "presets": {"teacher": TEACHER, "vanilla": VANILLA, "sakd": SAKD},
        },
        "settings": list(SETTINGS),
        "teacher": {
            "per_seed": teachers,
            "summary": {n: exp.describe(t[n] for t in teachers.values()) for n in METRICS},
        },
        "per_seed": per_seed,
        "summary": summary,
    }
    exp.write_results(FLAGS.work_dir, results, markdown(results), started)


if __name__ == "__main__":
    cli.run(main)
