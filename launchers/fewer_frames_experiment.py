"""The fewer-frames experiment on synthetic YouTube-8M: teacher, plain and distilled k-frame students.

  python launchers/fewer_frames_experiment.py [--work_dir=experiments/fewer_frames] \
      [--data_dir=data/fewer_frames] [--seeds=0,1] [--ks=6,30] [--max_steps=1500] \
      [--eval_every_steps=100] [--w_pred=0.01 --w_rep=0.001] [--noprogress_bar]

Bhardwaj et al. (CVPR 2019) train a k-frame student with L_CE + w_pred L_pred + w_rep L_rep
against an all-frames teacher. For every seed this launcher trains, with the tiny presets of
models/ and the same data, steps and evaluation schedule:

  seed{s}/teacher          tiny_teacher.flags, all frames, labels only
  seed{s}/teacher_cache    the teacher's logits and repr per training video, written once
  seed{s}/plain_k{k}       tiny_student_k{k}.flags (or tiny_student_k6.flags at k frames), labels only
  seed{s}/distilled_k{k}   the same student, distilled from the teacher cache (--w_pred, --w_rep)

The seed sets every run's initial weights, shuffle order and dropout; the data (seed 0) are the
same for all. After training it times inference of every model on the held-out set
(yt8m_kd.timing) and writes to --work_dir:

  results.json        per seed and model: GAP, mAP, Hit@1, PERR, size, GFLOPs, inference ms per
                      video, training wall time, eval history; a summary per model over seeds; and
                      per k the distilled-minus-plain GAP per seed
  results.md          the table (mean +- half-range over seeds), also printed at the end
  gap_vs_step.png/svg     held-out GAP during training, mean over seeds: plain dashed, distilled
                          solid, one colour per k (the teacher dotted, for reference)
  gap_vs_gflops.png/svg   mean GAP against GFLOPs per video, error bars from min to max over seeds

Every run directory is a normal training run (flags.txt, checkpoints, TensorBoard events,
metrics.json), plus experiment_timing.json (its training wall time and inference time). A run whose
metrics.json is at --max_steps is reused, not retrained, and its timings are read back, so a second
invocation resumes an interrupted experiment and reproduces results.json exactly. A run directory
whose flags.txt differs from what this invocation would train (other weights, steps, data) stops
the launcher: use another --work_dir.
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

flags.DEFINE_string("work_dir", "experiments/fewer_frames", "Where runs and results go.")
flags.DEFINE_string("data_dir", "data/fewer_frames", "Synthetic data (made here when absent).")
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds; every model is trained once per seed.")
flags.DEFINE_list("ks", ["6", "30"], "Frames k of the students.")
flags.DEFINE_integer("max_steps", 1500, "Training steps of every run.")
flags.DEFINE_integer(
    "eval_every_steps", 100, "Steps between held-out evaluations (0 = only at the end)."
)
flags.DEFINE_float("w_pred", 0.01, "Weight of L_pred for the distilled students.")
flags.DEFINE_float("w_rep", 0.001, "Weight of L_rep for the distilled students.")
flags.DEFINE_float("w_kl", 0.0, "Weight of the temperature KL loss for the distilled students.")
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
TRAIN_SHARDS, EVAL_SHARDS = exp.YT8M_TRAIN_SHARDS, exp.YT8M_EVAL_SHARDS
CACHE_BATCH_SIZE = 256
INFERENCE_BATCH_SIZE = 256
INFERENCE_REPEATS = 5
METRICS = ("gap", "map", "hit_at_one", "perr")


# --------------------------------------------------------------------------------- the models
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of the experiment; trained once per seed in work_dir/seed{s}/{name}."""

    name: str  # teacher, plain_k6, distilled_k6, ...
    preset: str  # a file of models/
    k_frames: int  # 0: all frames
    distilled: bool = False

    @property
    def label(self) -> str:
        if self.k_frames == 0:
            return "teacher (all frames)"
        return f"{'distilled' if self.distilled else 'plain'} k={self.k_frames}"


def student_preset(k: int) -> str:
    """tiny_student_k{k}.flags where it exists, else tiny_student_k6.flags (with --k_frames=k)."""
    preset = f"tiny_student_k{k}.flags"
    return preset if os.path.exists(os.path.join(MODELS_DIR, preset)) else "tiny_student_k6.flags"


def model_specs(ks: list[int]) -> list[ModelSpec]:
    specs = [ModelSpec("teacher", TEACHER_PRESET, 0)]
    for k in ks:
        # Plain and distilled students share the preset: they differ in the loss only.
        specs.append(ModelSpec(f"plain_k{k}", student_preset(k), k))
        specs.append(ModelSpec(f"distilled_k{k}", student_preset(k), k, distilled=True))
    return specs


# ----------------------------------------------------------------------------------- flags
def validate_flags(max_frames: int) -> tuple[list[int], list[int]]:
    """Checks the flags before any work; returns (seeds, ks)."""
    seeds = exp.parse_int_list("seeds", FLAGS.seeds, 0)
    ks = exp.parse_int_list("ks", FLAGS.ks, 1)
    if max(ks) > max_frames:
        raise yflags.FlagError(f"--ks: k={max(ks)} is more than the {max_frames} frames kept")
    if FLAGS.max_steps <= 0:
        raise yflags.FlagError(f"--max_steps={FLAGS.max_steps} must be positive")
    if FLAGS.eval_every_steps < 0:
        raise yflags.FlagError(f"--eval_every_steps={FLAGS.eval_every_steps} must be >= 0")
    for name in ("w_pred", "w_rep", "w_kl"):
        if FLAGS[name].value < 0:
            raise yflags.FlagError(f"--{name}={FLAGS[name].value} must be >= 0")
    for name, shards in (("train_videos", TRAIN_SHARDS), ("eval_videos", EVAL_SHARDS)):
        videos = FLAGS[name].value
        if videos <= 0 or videos % shards:
            raise yflags.FlagError(f"--{name}={videos} must be a positive multiple of {shards}")
    return seeds, ks


# -------------------------------------------------------------------------------- training
def train_run(spec: ModelSpec, fv: flags.FlagValues, run_dir: str, strategy) -> dict:
    """Trains one run unless its metrics.json is at max_steps already; returns metrics.json."""
    from yt8m_kd.training.distillation import DistillationTrainer
    from yt8m_kd.training.loop import Trainer

    exp.check_run_flags(run_dir, fv, "--work_dir")
    metrics = exp.read_json(os.path.join(run_dir, "metrics.json"))
    if metrics is not None and metrics.get("step") == fv.max_steps:
        print(f"== {run_dir}: done already (step {metrics['step']}), reused")
        return metrics

    print(f"== {run_dir}: {spec.label}, {spec.preset}, seed {fv.seed}")
    started = time.perf_counter()
    configs = (*yflags.configs_from_values(fv), run_dir, strategy)
    if spec.distilled:
        trainer = DistillationTrainer(*configs, yflags.distill_config_from_flags(fv))
    else:
        trainer = Trainer(*configs)
    yflags.write_flags_file(fv, run_dir)
    metrics = trainer.fit()
    # Model building, training, and the periodic and final evaluations; a run resumed from a
    # checkpoint counts only its last part (metrics.json says where it resumed).
    exp.update_timing(run_dir, train_wall_s=time.perf_counter() - started)
    return metrics


def measure_inference(run_dir: str, eval_batches: list, eval_pattern: str) -> float:
    """Inference ms per video of a run's latest checkpoint; measured once, then read back."""
    from yt8m_kd import timing
    from yt8m_kd.training.restore import latest_checkpoint, restore_run

    setup = {
        "checkpoint": os.path.abspath(latest_checkpoint(run_dir)),
        "data_pattern": os.path.abspath(eval_pattern),
        "batch_size": INFERENCE_BATCH_SIZE,
        "repeats": INFERENCE_REPEATS,
    }
    recorded = exp.read_json(os.path.join(run_dir, exp.TIMING_FILE)) or {}
    if recorded.get("inference_setup") == setup:
        return recorded["inference_ms_per_video"]
    run = restore_run(run_dir)
    ms = timing.inference_ms_per_video(
        run.model, run.model_config, eval_batches, repeats=INFERENCE_REPEATS
    )
    exp.update_timing(run_dir, inference_ms_per_video=ms, inference_setup=setup)
    print(f"== {run_dir}: inference timed, {ms:.4f} ms per video")
    return ms


# --------------------------------------------------------------------------------- results
def run_result(metrics: dict, timing: dict) -> dict:
    """One run's entry of results.json, from its metrics.json and experiment_timing.json."""
    evaluation, size = metrics["eval"], metrics["model"]
    result = {
        **{name: evaluation[name] for name in METRICS},
        "trainable_params": size["trainable_params"],
        "gflops_per_video": size["gflops_per_video"],
        "frames": size["frames"],
        "inference_ms_per_video": timing.get("inference_ms_per_video"),
        "train_wall_s": timing.get("train_wall_s"),
        "step": metrics["step"],
        "resumed_from_step": metrics.get("resumed_from_step"),
        "eval_history": [
            {"step": e["step"], **{name: e[name] for name in METRICS}}
            for e in metrics.get("eval_history", [])
        ],
    }
    if "teacher_cache_wall_s" in timing:  # the teacher's: writing its cache
        result["teacher_cache_wall_s"] = timing["teacher_cache_wall_s"]
    return result


def summarize(per_seed: dict[str, dict[str, dict]], specs: list[ModelSpec], ks: list[int]):
    """(summary per model, distilled-minus-plain GAP per k) over the seeds."""
    seeds = list(per_seed)
    summary = {}
    for spec in specs:
        runs = [per_seed[s][spec.name] for s in seeds]
        summary[spec.name] = {
            "label": spec.label,
            **{
                name: exp.describe([r[name] for r in runs])
                for name in (*METRICS, "inference_ms_per_video", "train_wall_s")
            },
            **{name: runs[0][name] for name in ("trainable_params", "gflops_per_video", "frames")},
        }
    gains = {}
    for k in ks:
        per = {
            s: per_seed[s][f"distilled_k{k}"]["gap"] - per_seed[s][f"plain_k{k}"]["gap"]
            for s in seeds
        }
        gains[str(k)] = {"per_seed": per, **exp.describe(list(per.values()))}
    return summary, gains


_pm = exp.format_pm  # "mean ± half-range"


def markdown(results: dict) -> str:
    config, summary, gains = results["config"], results["summary"], results["distilled_minus_plain"]
    seeds = [str(s) for s in config["seeds"]]
    lines = [
        f"Synthetic YouTube-8M ({config['train_videos']} training, {config['eval_videos']} "
        f"held-out videos), {config['max_steps']} steps, seeds {', '.join(seeds)}: mean ± "
        "half-range over seeds. Inference: ms per video on the held-out set, batch "
        f"{config['inference_batch_size']}, median of {config['inference_repeats']} passes. "
        f"Distillation weights: w_pred={config['w_pred']}, w_rep={config['w_rep']}, "
        f"w_kl={config.get('w_kl', 0.0)} (T={config.get('temperature', 4.0)}).",
        "",
        "| model | frames | GAP | mAP | Hit@1 | trainable params | GFLOPs/video "
        "| inference ms/video | train wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in results["models"]:
        s = summary[name]
        lines.append(
            f"| {s['label']} | {s['frames']} | {_pm(s['gap'], 4)} | {_pm(s['map'], 4)} "
            f"| {_pm(s['hit_at_one'], 4)} | {s['trainable_params']:,} "
            f"| {s['gflops_per_video']:.5f} | {_pm(s['inference_ms_per_video'], 3)} "
            f"| {_pm(s['train_wall_s'], 0)} |"
        )
    lines += [
        "",
        "Distilled − plain GAP, same k and seed:",
        "",
        "| k | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---:|" + "---:|" * (len(seeds) + 1),
    ]
    for k, gain in gains.items():
        cells = " | ".join(f"{gain['per_seed'][s]:+.4f}" for s in seeds)
        lines.append(f"| {k} | {cells} | {gain['mean']:+.4f} |")
    return "\n".join(lines) + "\n"


def make_plots(results: dict, specs: list[ModelSpec], ks: list[int], work_dir: str) -> list[str]:
    from yt8m_kd import plots

    per_seed, summary = results["per_seed"], results["summary"]
    colours = {k: f"C{i}" for i, k in enumerate(ks)}

    def style(spec: ModelSpec, step_plot: bool) -> dict:
        if spec.k_frames == 0:
            return {"color": "black", "linestyle": ":"} if step_plot else {"color": "black"}
        colour = colours[spec.k_frames]
        # Plain students: dashed lines and open squares; distilled students: solid, filled dots.
        marker = {"markerfacecolor": colour if spec.distilled else "white"}
        if step_plot:
            return {
                "color": colour,
                "linestyle": "-" if spec.distilled else "--",
                "marker": "o" if spec.distilled else "s",
                **marker,
            }
        return {"color": colour, "fmt": "o" if spec.distilled else "s", **marker}

    # Eval GAP against step, the mean over seeds at the steps every seed evaluated.
    curves = {}
    for spec in specs:
        histories = [
            {e["step"]: e["gap"] for e in per_seed[s][spec.name]["eval_history"]} for s in per_seed
        ]
        steps = sorted(set.intersection(*(set(h) for h in histories)))
        if steps:
            curves[spec.label] = [(t, sum(h[t] for h in histories) / len(histories)) for t in steps]
    n = len(per_seed)
    paths = list(
        plots.plot_metric_vs_step(
            curves,
            os.path.join(work_dir, "gap_vs_step"),
            title=f"Held-out GAP during training (mean of {n} seed{'s' * (n > 1)})",
            styles={spec.label: style(spec, True) for spec in specs},
        )
    )
    points = []
    for spec in specs:
        gap = summary[spec.name]["gap"]
        points.append(
            {
                "label": spec.label,
                "gflops": summary[spec.name]["gflops_per_video"],
                "value": gap["mean"],
                "error": (gap["mean"] - gap["min"], gap["max"] - gap["mean"]),
            }
        )
    paths += plots.plot_metric_vs_gflops(
        points,
        os.path.join(work_dir, "gap_vs_gflops"),
        title=f"Held-out GAP against forward cost (mean, min-max over {n} seeds)",
        styles={spec.label: style(spec, False) for spec in specs},
    )
    return paths


# ------------------------------------------------------------------------------------ main
def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    teacher_fv = yflags.parse_flagfile(os.path.join(MODELS_DIR, TEACHER_PRESET))
    seeds, ks = validate_flags(teacher_fv.max_frames)
    specs = model_specs(ks)

    from yt8m_kd.data import yt8m
    from yt8m_kd.training import strategy as strategy_lib

    # 1. Data: fixed synthetic videos whose class evidence sits in a few bursts of frames.
    train_pattern, eval_pattern = exp.make_synthetic_yt8m(
        FLAGS.data_dir,
        yflags.model_config_from_flags(teacher_fv),
        FLAGS.train_videos,
        FLAGS.eval_videos,
    )
    strategy = strategy_lib.make_strategy("one_device")
    common = dict(
        train_data_pattern=train_pattern,
        eval_data_pattern=eval_pattern,
        max_steps=FLAGS.max_steps,
        eval_every_steps=FLAGS.eval_every_steps,
        progress_bar=FLAGS.progress_bar,
    )

    # 2. Per seed: the teacher, its cache, then plain and distilled students at every k.
    metrics: dict[tuple[int, str], dict] = {}
    for seed in seeds:
        seed_dir = os.path.join(FLAGS.work_dir, f"seed{seed}")
        cache_dir = os.path.join(seed_dir, "teacher_cache")
        for spec in specs:
            run_dir = os.path.join(seed_dir, spec.name)
            overrides = dict(common, seed=seed)
            if spec.k_frames:
                overrides["k_frames"] = spec.k_frames
            if spec.distilled:
                overrides.update(
                    teacher_cache=cache_dir,
                    w_pred=FLAGS.w_pred,
                    w_rep=FLAGS.w_rep,
                    w_kl=FLAGS.w_kl,
                    temperature=FLAGS.temperature,
                )
            fv = yflags.flagfile_values(os.path.join(MODELS_DIR, spec.preset), **overrides)
            metrics[seed, spec.name] = train_run(spec, fv, run_dir, strategy)
            if spec.name == "teacher":
                exp.ensure_teacher_cache(
                    run_dir, cache_dir, train_pattern, batch_size=CACHE_BATCH_SIZE
                )

    # 3. Inference time of every model on the held-out set, read into memory once.
    print(f"== Timing inference on {eval_pattern} (batch {INFERENCE_BATCH_SIZE})")
    eval_batches = list(
        yt8m.frame_dataset(
            eval_pattern,
            batch_size=INFERENCE_BATCH_SIZE,
            max_frames=teacher_fv.max_frames,
            num_classes=teacher_fv.num_classes,
            feature_names=tuple(teacher_fv.feature_names),
            feature_sizes=tuple(int(s) for s in teacher_fv.feature_sizes),
        )
    )
    per_seed: dict[str, dict[str, dict]] = {}
    for seed in seeds:
        per_seed[str(seed)] = {}
        for spec in specs:
            run_dir = os.path.join(FLAGS.work_dir, f"seed{seed}", spec.name)
            measure_inference(run_dir, eval_batches, eval_pattern)
            timing = exp.read_json(os.path.join(run_dir, exp.TIMING_FILE)) or {}
            per_seed[str(seed)][spec.name] = run_result(metrics[seed, spec.name], timing)

    # 4. Results: json, markdown table, plots.
    summary, gains = summarize(per_seed, specs, ks)
    results = {
        "config": {
            "seeds": seeds,
            "ks": ks,
            "max_steps": FLAGS.max_steps,
            "eval_every_steps": FLAGS.eval_every_steps,
            "w_pred": FLAGS.w_pred,
            "w_rep": FLAGS.w_rep,
            "w_kl": FLAGS.w_kl,
            "temperature": FLAGS.temperature,
            "train_data_pattern": train_pattern,
            "eval_data_pattern": eval_pattern,
            "train_videos": FLAGS.train_videos,
            "eval_videos": FLAGS.eval_videos,
            "data_seed": exp.YT8M_DATA_SEED,
            "inference_batch_size": INFERENCE_BATCH_SIZE,
            "inference_repeats": INFERENCE_REPEATS,
            "presets": {spec.name: spec.preset for spec in specs},
        },
        "models": [spec.name for spec in specs],
        "per_seed": per_seed,
        "summary": summary,
        "distilled_minus_plain": gains,
    }
    paths = make_plots(results, specs, ks, FLAGS.work_dir)
    exp.write_results(FLAGS.work_dir, results, markdown(results), started, paths)


if __name__ == "__main__":
    cli.run(main)
