"""Reading run directories back: TensorBoard scalars of `train/` and `eval/` as a tidy
`pandas.DataFrame`, and `metrics.json`.

A run directory (docs/design.md, "Outputs a run leaves in its directory") holds event files that
the training loop writes with `tf.summary.scalar`, and `metrics.json` once the run has finished.
`read_run` turns one into a `RunLog`, whose `scalars` are one row per logged value:

    split   tag          step  value
    train   label_loss     10  4.25
    train   loss           10  4.5
    ...
    eval    gap            10  0.3125

(`SCALAR_COLUMNS`; rows by split, train first, then tag, then step). That long form is what
grouping and plotting libraries take as it is, e.g. in a notebook

    runs = run_logs.read_runs(["runs/plain_k6", "runs/distilled_k6"])
    df = run_logs.scalars_table(runs)                      # + a "run" column
    df[df.tag == "loss"].pivot(index="step", columns="run", values="value").plot()
    run_logs.final_table(runs)                             # one row per run: final metrics, GFLOPs
    run_logs.to_csv(runs, "scalars.csv")

and `RunLog.wide(split)` gives one column per tag, indexed by step. `yt8m_kd.plots` draws the
curves (`RunLog.metric_curve`, `RunLog.loss_curves`: pandas Series and DataFrames by step).

What is an error and what is not:
- A run directory that does not exist, or that holds neither event files (under `train/` or
  `eval/`) nor `metrics.json`, is an error that names it: a mistyped path in a list of runs must
  not quietly drop a curve from a figure.
- A run that lacks what one figure needs (no evaluation yet, no `metrics.json` yet) is a normal
  state of a run still training; the figure leaves it out and says so (`plots.plot_runs`).
- A truncated last record (a run killed while writing) ends that file's reading; what was read
  before it is kept, with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from absl import logging

# The columns of RunLog.scalars, and the splits (event directories of a run) in their row order.
SCALAR_COLUMNS = ("split", "tag", "step", "value")
SPLITS = ("train", "eval")
_DTYPES = {"run": "str", "split": "str", "tag": "str", "step": "int64", "value": "float64"}

# The metric `choose_metric` picks when asked for "auto", first one present wins: GAP for
# YouTube-8M runs, top-1 accuracy under the names a UCF101 evaluation may give it.
AUTO_METRICS = ("gap", "top1", "top_1", "top1_accuracy", "top_1_accuracy", "accuracy")

# Keys of metrics.json "eval" that are not metrics.
_NOT_METRICS = frozenset({"num_videos", "step"})


class RunLogError(ValueError):
    """Run directories that cannot give what was asked (a metric no run has, nothing to plot)."""


def is_loss_tag(tag: str) -> bool:
    """Whether a training scalar is a loss term: "loss", "label_loss", "regularization_loss",
    "distill_loss", and the distillation components "l_pred", "l_rep", "l_kl" (and any other
    "l_*" or "*loss*" a trainer adds). Not grad_norm, learning_rate, examples_per_sec,
    mean_strength or the sakd/* bookkeeping."""
    name = tag.rsplit("/", 1)[-1]
    return "loss" in name or name.startswith("l_")


# The order of loss terms in figures: the total, then its parts as distill/losses.py composes it
# (L_label + w_pred L_pred + w_rep L_rep + w_kl L_kl), other terms by name, the l2 penalty last.
_LOSS_ORDER = ("loss", "label_loss", "distill_loss", "l_pred", "l_rep", "l_kl")


def loss_order(tag: str) -> tuple:
    """Sort key of loss terms: the _LOSS_ORDER terms first, regularization_loss last."""
    if tag in _LOSS_ORDER:
        return (0, _LOSS_ORDER.index(tag), tag)
    return (2 if tag == "regularization_loss" else 1, 0, tag)


# ----------------------------------------------------------------------------- tidy frames
def _frame(rows: Iterable[tuple], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a frame of `columns` with their fixed dtypes (also when there is no row); a
    (split, tag, step) logged twice keeps the later row; sorted by split (train first), tag and
    step, numbered from 0."""
    frame = pd.DataFrame(list(rows), columns=list(columns)).astype(
        {name: _DTYPES[name] for name in columns}
    )
    keys = [c for c in ("run", "split", "tag", "step") if c in columns]
    frame = frame.drop_duplicates(keys, keep="last")
    split_rank = {split: rank for rank, split in enumerate(SPLITS)}
    frame = frame.sort_values(
        [c for c in keys if c != "run"],
        key=lambda column: column.map(split_rank) if column.name == "split" else column,
        kind="stable",
    )
    return frame.reset_index(drop=True)


def scalars_frame(points: Mapping[str, Mapping[str, Iterable[tuple[int, float]]]]) -> pd.DataFrame:
    """The tidy frame of `RunLog.scalars` from plain data: split ("train" or "eval") -> tag ->
    [(step, value), ...]. A step given twice keeps the later value.

    Raises:
      ValueError: a split other than "train" and "eval".
    """
    unknown = sorted(set(points) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown splits {', '.join(unknown)}: splits are {', '.join(SPLITS)}")
    return _frame(
        (
            (split, tag, int(step), float(value))
            for split, tags in points.items()
            for tag, curve in tags.items()
            for step, value in curve
        ),
        SCALAR_COLUMNS,
    )


def _scalar(value) -> float | None:
    """A summary value as a float, or None when it is not a numeric scalar (a histogram, text).

    TF1 summaries hold `simple_value`; TF2's `tf.summary.scalar` writes a rank-0 tensor."""
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind != "tensor":
        return None
    import tensorflow as tf

    array = tf.make_ndarray(value.tensor)
    if array.ndim != 0 or array.dtype.kind not in "biuf":
        return None
    return float(array)


def read_scalars(directory: str) -> pd.DataFrame:
    """Every scalar of the event files in `directory`: a frame of columns tag, step, value, one
    row per (tag, step), sorted by tag and step.

    Files are read in the order their writers started (the time is in their names); a step
    written twice, as a resumed run rewrites the steps after its last checkpoint, keeps
    the later value. A directory without event files gives a frame without rows.
    """
    import tensorflow as tf

    rows = []
    paths = tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*"))
    for path in sorted(paths, key=_event_file_order):
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    number = _scalar(value)
                    if number is not None:
                        rows.append((value.tag, int(event.step), number))
        except tf.errors.DataLossError:
            logging.warning("%s: truncated event file, read up to the damaged record", path)
    return _frame(rows, ("tag", "step", "value"))


def _event_file_order(path: str) -> list[tuple[int, int, str]]:
    """Sort key of event files, events.out.tfevents.<start time>.<host>[.<pid>.<n>.v2]: by the
    writer's start time, numbers compared as numbers (writer 10 of a process after writer 9)."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in os.path.basename(path).split(".")
    ]


def _has_events(directory: str) -> bool:
    import tensorflow as tf

    return bool(tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")))


def _curve(steps, values, name: str) -> pd.Series:
    return pd.Series(
        values, index=pd.Index(steps, dtype="int64", name="step"), dtype="float64", name=name
    )


# ------------------------------------------------------------------------------- one run
@dataclasses.dataclass(frozen=True, eq=False)
class RunLog:
    """What one run directory recorded.

    Attributes:
      run_dir: the directory.
      label: the run's name in legends and tables (by default the directory's base name).
      scalars: the train/ and eval/ scalars, one row per logged value: columns split ("train",
        "eval"), tag, step, value (`SCALAR_COLUMNS`), rows by split, tag and step. Make one from
        plain data with `scalars_frame`.
      metrics: metrics.json ({} while the run has not finished).
    """

    run_dir: str
    label: str
    scalars: pd.DataFrame
    metrics: dict

    def tags(self, split: str) -> list[str]:
        """The tags logged under `split` ("train" or "eval"), sorted."""
        return sorted(self.scalars.loc[self.scalars["split"] == split, "tag"].unique())

    def curve(self, split: str, tag: str) -> pd.Series:
        """The values of one tag: a float Series named `tag`, indexed by step (sorted); empty
        when the run did not log it."""
        rows = self.scalars[(self.scalars["split"] == split) & (self.scalars["tag"] == tag)]
        return _curve(rows["step"].to_numpy(), rows["value"].to_numpy(), tag)

    def wide(self, split: str, tags: Sequence[str] | None = None) -> pd.DataFrame:
        """One column per tag (all of `split`'s, sorted, or `tags` in their order), indexed by
        step; NaN where a tag was not logged at a step another tag was."""
        rows = self.scalars[self.scalars["split"] == split]
        frame = rows.pivot(index="step", columns="tag", values="value")
        frame = frame.reindex(columns=list(self.tags(split) if tags is None else tags))
        frame.columns.name = None
        return frame.astype("float64")

    def eval_metric_names(self) -> set[str]:
        """Evaluation metrics the run has, from its eval events and metrics.json."""
        final = self.metrics.get("eval") or {}
        return set(self.tags("eval")) | {
            name
            for name, value in final.items()
            if name not in _NOT_METRICS and isinstance(value, numbers.Real)
        }

    def metric_curve(self, metric: str) -> pd.Series:
        """An evaluation metric by step (`curve`): the eval events, or, where the run has none
        for it, metrics.json's "eval_history"."""
        curve = self.curve("eval", metric)
        if len(curve):
            return curve
        history = sorted(
            (int(entry["step"]), float(entry[metric]))
            for entry in self.metrics.get("eval_history") or []
            if "step" in entry and isinstance(entry.get(metric), numbers.Real)
        )
        steps, values = zip(*history, strict=True) if history else ((), ())
        return _curve(list(steps), list(values), metric)

    def final_metric(self, metric: str) -> float | None:
        """The final value of a metric: metrics.json "eval", else the last evaluation logged."""
        value = (self.metrics.get("eval") or {}).get(metric)
        if isinstance(value, numbers.Real):
            return float(value)
        curve = self.metric_curve(metric)
        return float(curve.iloc[-1]) if len(curve) else None

    @property
    def gflops_per_video(self) -> float | None:
        """The model's forward cost per video from metrics.json "model", if known."""
        value = (self.metrics.get("model") or {}).get("gflops_per_video")
        return float(value) if isinstance(value, numbers.Real) else None

    def loss_curves(self) -> pd.DataFrame:
        """The training loss terms (`is_loss_tag`), one column each in `loss_order` ("loss",
        what the gradient follows, first), indexed by step (`wide`)."""
        tags = sorted((t for t in self.tags("train") if is_loss_tag(t)), key=loss_order)
        return self.wide("train", tags)


def read_run(run_dir: str, label: str | None = None) -> RunLog:
    """Reads a run directory's train/ and eval/ scalars and its metrics.json.

    Raises:
      FileNotFoundError: the directory does not exist, or holds neither event files nor
        metrics.json (the message names it).
    """
    import tensorflow as tf

    if not tf.io.gfile.isdir(run_dir):
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    train_dir, eval_dir = os.path.join(run_dir, "train"), os.path.join(run_dir, "eval")
    metrics_path = os.path.join(run_dir, "metrics.json")
    has_metrics = tf.io.gfile.exists(metrics_path)
    if not (_has_events(train_dir) or _has_events(eval_dir) or has_metrics):
        raise FileNotFoundError(
            f"run directory {run_dir} holds no TensorBoard event files under train/ or eval/ "
            "and no metrics.json: not a training run"
        )
    metrics = {}
    if has_metrics:
        with tf.io.gfile.GFile(metrics_path) as f:
            metrics = json.load(f)
    rows = [
        (split, *row)
        for split, directory in (("train", train_dir), ("eval", eval_dir))
        for row in read_scalars(directory).itertuples(index=False)
    ]
    return RunLog(
        run_dir=run_dir,
        label=label if label is not None else run_name(run_dir),
        scalars=_frame(rows, SCALAR_COLUMNS),
        metrics=metrics,
    )


def run_name(run_dir: str) -> str:
    """A run's default name: its directory's base name."""
    return os.path.basename(os.path.normpath(run_dir))


def default_labels(run_dirs: Sequence[str]) -> list[str]:
    """Base names of the run directories, made unique with as many parent directories as it
    takes: seed0/teacher and seed1/teacher rather than teacher twice."""
    parts = [os.path.normpath(d).split(os.sep) for d in run_dirs]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1


# ------------------------------------------------------------------------------ several runs
def read_runs(run_dirs: Sequence[str], labels: Sequence[str] | None = None) -> list[RunLog]:
    """`read_run` of each directory, labelled by `labels` or by `default_labels`.

    Raises:
      FileNotFoundError: as `read_run`.
      RunLogError: no directory, labels of another length, or a label used twice.
    """
    if not run_dirs:
        raise RunLogError("no run directory given")
    if labels is None:
        labels = default_labels(run_dirs)
    if len(labels) != len(run_dirs):
        raise RunLogError(f"{len(labels)} labels for {len(run_dirs)} run directories")
    repeated = sorted({label for label in labels if list(labels).count(label) > 1})
    if repeated:
        raise RunLogError(f"labels used twice: {', '.join(repeated)}")
    return [read_run(d, label) for d, label in zip(run_dirs, labels, strict=True)]


def scalars_table(runs: Sequence[RunLog]) -> pd.DataFrame:
    """The scalars of several runs in one tidy frame: a "run" column (the run's label) before
    `SCALAR_COLUMNS`, runs in the order given."""
    rows = [
        (run.label, *row) for run in runs for row in run.scalars.itertuples(index=False, name=None)
    ]
    return pd.DataFrame(rows, columns=["run", *SCALAR_COLUMNS]).astype(_DTYPES)


def to_csv(runs: Sequence[RunLog], path: str) -> str:
    """Writes `scalars_table(runs)` as CSV (a header line, then run,split,tag,step,value rows) to
    `path`, making its directory; returns the path."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    scalars_table(runs).to_csv(path, index=False)
    return path


def final_table(runs: Sequence[RunLog]) -> pd.DataFrame:
    """One row per run, indexed by label ("run"): the final value of every evaluation metric
    some run has (`RunLog.final_metric`; columns sorted by name, NaN where a run lacks it), then
    "gflops_per_video" (NaN where unknown). For `tables.markdown_table`."""
    metrics = sorted(set().union(*(run.eval_metric_names() for run in runs)))
    rows = {
        run.label: [run.final_metric(m) for m in metrics] + [run.gflops_per_video] for run in runs
    }
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=[*metrics, "gflops_per_video"], dtype="float64"
    )
    frame.index.name = "run"
    return frame


def choose_metric(runs: Iterable[RunLog], metric: str = "auto") -> str | None:
    """The evaluation metric to plot.

    "auto" picks the first of AUTO_METRICS ("gap", then top-1 accuracy names) that some run has,
    and None when no run has any evaluation metric.

    Raises:
      RunLogError: a named metric no run has, or "auto" among runs whose metrics it does not know
        (the message lists the metrics there are, to pick one by name).
    """
    available: set[str] = set()
    for run in runs:
        available |= run.eval_metric_names()
    if metric != "auto":
        if metric not in available:
            raise RunLogError(
                f"no run has the eval metric {metric!r}; they have: "
                f"{', '.join(sorted(available)) or 'none'}"
            )
        return metric
    for name in AUTO_METRICS:
        if name in available:
            return name
    if available:
        raise RunLogError(
            f"none of {', '.join(AUTO_METRICS)} among the runs' eval metrics "
            f"({', '.join(sorted(available))}): name one"
        )
    return None


def display_name(metric: str) -> str:
    """The name a metric has in the papers, for axis labels: GAP, mAP, Hit@1, PERR."""
    names: Mapping[str, str] = {"gap": "GAP", "map": "mAP", "hit_at_one": "Hit@1", "perr": "PERR"}
    return names.get(metric, metric)
