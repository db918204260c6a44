"""The fewer-frames experiment on synthetic YouTube-8M: teacher, plain and distilled k-frame students.

  python launchers/fewer_frames_experiment.py [--work_dir=experiments/fewer_frames] \
      [--data_dir=data/fewer_frames] [--seeds=0,1] [--ks=6,30] [--max_steps=1500] \
      [--eval_every_steps=100] [--w_pred=0.01 --w_rep=0.001] [--mixed_precision] [--noprogress_bar]

Bhardwaj et al. (CVPR 2019) train a k-frame student with L_CE + w_pred L_pred + w_rep L_rep
against an all-frames teacher. For every seed this launcher trains, with the tiny presets of
models/ and the same data, steps and evaluation schedule:

  seed{s}/teacher          tiny_teacher.flags, all frames, labels only
  seed{s}/plain_k{k}       tiny_student_k{k}.flags (or tiny_student_k6.flags at k frames), labels only
  seed{s}/teacher_cache    the teacher's logits and repr per training video, written once
  seed{s}/distilled_k{k}   the same student, distilled from the teacher cache (--w_pred, --w_rep)

The seed sets every run's initial weights, shuffle order and dropout; the data (seed 0) are the
same for all. It then times inference of every model on the held-out set (yt8m_kd.timing; kept in
each run's experiment_timing.json) and writes to --work_dir:

  results.json   per seed and model: GAP, mAP, Hit@1, PERR, size, GFLOPs, inference ms per video,
                 wall time, eval history; a summary per model over seeds; per k the
                 distilled-minus-plain GAP per seed
  results.md     the tables (mean ± half-range over seeds), also printed at the end
  gap_vs_step.png/svg     held-out GAP during training, mean over seeds
  gap_vs_gflops.png/svg   mean GAP against GFLOPs per video, error bars from min to max over seeds

Runs go through the project's one run-or-reuse policy (yt8m_kd.experiments): a finished run is
reused and its inference time read back, so a second invocation writes the same results.json; an
unfinished one resumes (results.json says from which step); one trained with other flags stops
the launcher: use another --work_dir.
"""

from __future__ import annotations

import os
import time

import keras
import pandas as pd
from absl import flags

from yt8m_kd import cli, plots, timing
from yt8m_kd import experiments as exp
from yt8m_kd.configs import FlagError
from yt8m_kd.data import videos
from yt8m_kd.tables import markdown_table
from yt8m_kd.training.restore import latest_checkpoint, restore_run
from yt8m_kd.training.strategy import make_strategy

exp.define_flags(
    work_dir="experiments/fewer_frames",
    data_dir="data/fewer_frames",
    seeds=[0, 1],
    max_steps=1500,
    eval_every_steps=100,
    train_videos=4096,
    eval_videos=1024,
    progress_bar=True,
    **exp.DISTILL_WEIGHTS,
)
exp.define_int_list("ks", [6, 30], "Frames k of the students.", minimum=1)
flags.DEFINE_boolean(
    "mixed_precision",
    False,
    "Every run computes in bfloat16 (Keras mixed_bfloat16; weights, losses and metrics stay "
    "float32), as train.py --mixed_precision: the accuracy parity of bfloat16 training. Use "
    "another --work_dir than the float32 runs'.",
)
FLAGS = flags.FLAGS

TEACHER = "tiny_teacher.flags"
INFERENCE_BATCH_SIZE, INFERENCE_REPEATS = 256, 5
METRICS = ("gap", "map", "hit_at_one", "perr")
SIZE = ("trainable_params", "gflops_per_video", "frames")
CONFIG_FLAGS = (
    *"seeds ks max_steps eval_every_steps train_videos eval_videos mixed_precision".split(),
    *exp.DISTILL_WEIGHTS,
)


def student_preset(k: int) -> str:
    """tiny_student_k{k}.flags where it exists, else tiny_student_k6.flags (with --k_frames=k)."""
    preset = f"tiny_student_k{k}.flags"
    return preset if os.path.exists(exp.preset_path(preset)) else "tiny_student_k6.flags"


def run_specs(seed: int, patterns: tuple[str, str]) -> list[exp.RunSpec]:
    root = os.path.join(FLAGS.work_dir, f"seed{seed}")
    common = dict(
        train_data_pattern=patterns[0],
        eval_data_pattern=patterns[1],
        max_steps=FLAGS.max_steps,
        eval_every_steps=FLAGS.eval_every_steps,
        progress_bar=FLAGS.progress_bar,
        seed=seed,
        **({"mixed_precision": True} if FLAGS.mixed_precision else {}),
    )
    specs = [exp.RunSpec("teacher", TEACHER, root, common, "teacher (all frames)")]
    for k in FLAGS.ks:
        # Plain and distilled students share the preset: they differ in the loss only.
        student = dict(common, k_frames=k)
        distilled = dict(student, **exp.distill_weights())
        specs += [
            exp.RunSpec(f"plain_k{k}", student_preset(k), root, student, f"plain k={k}"),
            exp.RunSpec(
                f"distilled_k{k}",
                student_preset(k),
                root,
                distilled,
                f"distilled k={k}",
                teacher="teacher",
            ),
        ]
    return specs


def inference_ms(run: exp.Run, batches: list, eval_pattern: str) -> float:
    """Inference ms per video of a run's latest checkpoint; measured once, then read back."""
    setup = {
        "checkpoint": os.path.abspath(latest_checkpoint(run.run_dir)),
        "data_pattern": os.path.abspath(eval_pattern),
        "batch_size": INFERENCE_BATCH_SIZE,
        "repeats": INFERENCE_REPEATS,
    }
    if run.timing.get("inference_setup") == setup:
        return run.timing["inference_ms_per_video"]
    restored = restore_run(run.run_dir)
    ms = timing.inference_ms_per_video(
        restored.model, restored.model_config, batches, repeats=INFERENCE_REPEATS
    )
    exp.update_timing(run.run_dir, inference_ms_per_video=ms, inference_setup=setup)
    cli.stage(f"== {run.run_dir}: inference timed, {ms:.4f} ms per video")
    return ms


def run_result(run: exp.Run, inference: float) -> dict:
    metrics = run.metrics
    result = {
        **{name: metrics["eval"][name] for name in METRICS},
        **{name: metrics["model"][name] for name in SIZE},
        "inference_ms_per_video": inference,
        # Building, training and evaluations; a resumed run's only of its resumed part.
        "train_wall_s": metrics["wall_time_s"],
        "step": metrics["step"],
        "resumed_from_step": metrics.get("resumed_from_step"),
        "eval_history": exp.eval_history(metrics, METRICS),
    }
    if "teacher_cache_wall_s" in run.timing:  # the teacher's: writing its cache
        result["teacher_cache_wall_s"] = run.timing["teacher_cache_wall_s"]
    return result


def markdown(results: dict) -> str:
    config, summary = results["config"], results["summary"]
    pm = exp.format_pm
    models = pd.DataFrame(
        {
            "model": s["label"],
            "frames": s["frames"],
            "GAP": pm(s["gap"], 4),
            "mAP": pm(s["map"], 4),
            "Hit@1": pm(s["hit_at_one"], 4),
            "trainable params": f"{s['trainable_params']:,}",
            "GFLOPs/video": f"{s['gflops_per_video']:.5f}",
            "inference ms/video": pm(s["inference_ms_per_video"], 3),
            "train wall s": pm(s["train_wall_s"], 0),
        }
        for s in (summary[name] for name in results["models"])
    )
    gains = pd.DataFrame(
        {
            "k": k,
            **{f"seed {s}": f"{gain['per_seed'][s]:+.4f}" for s in gain["per_seed"]},
            "mean": f"{gain['mean']:+.4f}",
        }
        for k, gain in results["distilled_minus_plain"].items()
    )
    return (
        f"Synthetic YouTube-8M ({config['train_videos']} training, {config['eval_videos']} "
        f"held-out videos), {config['max_steps']} steps, seeds "
        f"{', '.join(map(str, config['seeds']))}: mean ± half-range over seeds. Inference: ms "
        f"per video on the held-out set, batch {config['inference_batch_size']}, median of "
        f"{config['inference_repeats']} passes. Train wall s: building, training and "
        f"evaluations. Distillation weights: w_pred={config['w_pred']}, w_rep={config['w_rep']}, "
        f"w_kl={config['w_kl']} (T={config['temperature']}).\n\n"
        f"{markdown_table(models, index=False)}\n\n"
        "Distilled − plain GAP, same k and seed:\n\n"
        f"{markdown_table(gains, index=False)}\n"
    )


def make_plots(results: dict, specs: list[exp.RunSpec]) -> list[str]:
    per_seed, summary, n = results["per_seed"], results["summary"], len(results["per_seed"])
    colours = {k: f"C{i}" for i, k in enumerate(results["config"]["ks"])}

    def style(spec: exp.RunSpec, step_plot: bool) -> dict:
        k, distilled = spec.overrides.get("k_frames", 0), spec.teacher is not None
        if k == 0:
            return {"color": "black", **({"linestyle": ":"} if step_plot else {})}
        # Plain students: dashed lines and open squares; distilled students: solid, filled dots.
        marker = {"color": colours[k], "markerfacecolor": colours[k] if distilled else "white"}
        if step_plot:
            return {
                "linestyle": "-" if distilled else "--",
                "marker": "o" if distilled else "s",
                **marker,
            }
        return {"fmt": "o" if distilled else "s", **marker}

    # Eval GAP against step: the mean over seeds, at the steps every seed evaluated.
    history = pd.DataFrame(
        {"run": name, "seed": seed, **e}
        for seed, runs in per_seed.items()
        for name, run in runs.items()
        for e in run["eval_history"]
    )
    gaps = history.pivot_table(index="step", columns=["run", "seed"], values="gap")
    curves = {spec.label: list(gaps[spec.name].dropna().mean(axis=1).items()) for spec in specs}
    path = os.path.join(FLAGS.work_dir, "gap_vs_step")
    title = f"Held-out GAP during training (mean of {n} seed{'s' * (n > 1)})"
    styles = {spec.label: style(spec, True) for spec in specs}
    paths = plots.plot_metric_vs_step(curves, path, title=title, styles=styles)
    points = []
    for spec in specs:
        size, gap = summary[spec.name]["gflops_per_video"], summary[spec.name]["gap"]
        error = (gap["mean"] - gap["min"], gap["max"] - gap["mean"])
        points.append(dict(label=spec.label, gflops=size, value=gap["mean"], error=error))
    path = os.path.join(FLAGS.work_dir, "gap_vs_gflops")
    title = f"Held-out GAP against forward cost (mean, min-max over {n} seeds)"
    styles = {spec.label: style(spec, False) for spec in specs}
    return [*paths, *plots.plot_metric_vs_gflops(points, path, title=title, styles=styles)]


def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    if FLAGS.mixed_precision:
        # The runs train in this process: the policy is set before any model is built, as
        # train.py's setup_devices does (the flag in each run's flags records it).
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    teacher = exp.read_preset(TEACHER)
    if max(FLAGS.ks) > teacher.data.max_frames:
        raise FlagError(
            f"--ks: k={max(FLAGS.ks)} is more than the {teacher.data.max_frames} frames kept"
        )

    # 1. Data: fixed synthetic videos whose class evidence sits in a few bursts of frames.
    patterns = exp.synthetic_yt8m(
        FLAGS.data_dir, teacher.model, FLAGS.train_videos, FLAGS.eval_videos
    )
    # 2. Per seed: the teacher, then plain and distilled students (from its cache) at every k.
    seeds = exp.train_seeds(
        FLAGS.seeds, lambda s: run_specs(s, patterns), make_strategy("one_device")
    )

    # 3. Inference time of every model on the held-out set, read into memory once.
    cli.stage(f"== Timing inference on {patterns[1]} (batch {INFERENCE_BATCH_SIZE})")
    batches = list(
        videos.read_videos(
            teacher.data,
            teacher.model,
            patterns[1],
            batch_size=INFERENCE_BATCH_SIZE,
            training=False,
        )
    )
    per_seed = {
        seed: {
            name: run_result(run, inference_ms(run, batches, patterns[1]))
            for name, run in runs.items()
        }
        for seed, runs in seeds.items()
    }

    # 4. Results: json, markdown tables, plots.
    specs = [run.spec for run in next(iter(seeds.values())).values()]
    summary = exp.summarize(
        per_seed,
        (*METRICS, "inference_ms_per_video", "train_wall_s"),
        same=SIZE,
        labels={spec.name: spec.label for spec in specs},
    )
    gains = {}
    for k in FLAGS.ks:
        per = {
            s: runs[f"distilled_k{k}"]["gap"] - runs[f"plain_k{k}"]["gap"]
            for s, runs in per_seed.items()
        }
        gains[str(k)] = {"per_seed": per, **exp.describe(per.values())}
    results = {
        "config": {
            **{name: FLAGS[name].value for name in CONFIG_FLAGS},
            "train_data_pattern": patterns[0],
            "eval_data_pattern": patterns[1],
            "data_seed": 0,
            "inference_batch_size": INFERENCE_BATCH_SIZE,
            "inference_repeats": INFERENCE_REPEATS,
            "presets": {spec.name: spec.preset for spec in specs},
        },
        "models": [spec.name for spec in specs],
        "per_seed": per_seed,
        "summary": summary,
        "distilled_minus_plain": gains,
    }
    figures = make_plots(results, specs)
    exp.write_results(FLAGS.work_dir, results, markdown(results), started, figures)


if __name__ == "__main__":
    cli.run(main)
