"""Figures of one or more run directories: an eval metric against step, the training loss terms,
and the final metric against GFLOPs per video.

  python launchers/plot.py --run_dirs=experiments/fewer_frames/seed0/plain_k6,\
experiments/fewer_frames/seed0/distilled_k6 --labels="plain k=6,distilled k=6"

writes `<metric>_vs_step`, `train_losses` and `<metric>_vs_gflops` (.png and .svg) to
--output_dir (by default `plots/` beside the first run directory) and prints their paths, one per
line; with --csv also `scalars.csv`, every scalar the runs logged, one row per value (columns
run,split,tag,step,value: `yt8m_kd.run_logs.to_csv`), its path printed last. The metric is GAP
when the runs have it, else top-1 accuracy (UCF101), or --metric. A run that lacks what one
figure needs (no evaluation yet) is left out of it with a warning on stderr; a run directory that
does not exist, or holds no event files and no metrics.json, is an error.
"""

from __future__ import annotations

import os
import sys

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags

from yt8m_kd import cli, plots, run_logs
from yt8m_kd.flags import FlagError

FLAGS = flags.FLAGS
flags.DEFINE_list("run_dirs", None, "Run directories to plot, comma-separated.")
flags.DEFINE_list(
    "labels", None, "Legend labels, one per run directory (default: the directories' names)."
)
flags.DEFINE_string(
    "metric", "auto", 'Evaluation metric to plot ("auto": gap if the runs have it, else top-1).'
)
flags.DEFINE_string(
    "output_dir", None, "Where the figures go (default: plots/ beside the first run directory)."
)
flags.DEFINE_integer(
    "smoothing", 1, "Moving-average window of the loss curves, in logged points (1 = none)."
)
flags.DEFINE_boolean(
    "csv",
    False,
    "Also write the runs' scalars to <output_dir>/scalars.csv (run,split,tag,step,value).",
)
flags.mark_flag_as_required("run_dirs")


def default_output_dir(run_dirs: list[str]) -> str:
    """plots/ in the parent directory of the first run."""
    return os.path.join(os.path.dirname(os.path.normpath(run_dirs[0])), "plots")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.smoothing < 1:
        raise FlagError(f"--smoothing={FLAGS.smoothing}: must be >= 1")
    if FLAGS.labels is not None and len(FLAGS.labels) != len(FLAGS.run_dirs):
        raise FlagError(
            f"--labels has {len(FLAGS.labels)} labels for {len(FLAGS.run_dirs)} --run_dirs"
        )
    output_dir = FLAGS.output_dir or default_output_dir(FLAGS.run_dirs)
    try:
        runs = run_logs.read_runs(FLAGS.run_dirs, FLAGS.labels)
        result = plots.plot_runs(runs, output_dir, metric=FLAGS.metric, smoothing=FLAGS.smoothing)
    except run_logs.RunLogError as e:
        raise FlagError(str(e)) from e
    program = os.path.basename(sys.argv[0])
    for note in result.notes:
        print(f"{program}: warning: {note}", file=sys.stderr)
    for png, svg in result.paths.values():
        print(png)
        print(svg)
    if FLAGS.csv:
        print(run_logs.to_csv(runs, os.path.join(output_dir, "scalars.csv")))


if __name__ == "__main__":
    cli.run(main)
