"""Plots of experiment results: a metric against training step, against forward cost and
against training time, and the training loss terms.

Functions of data in memory (no TensorFlow). A curve is a pandas Series of values indexed by
training step, as `yt8m_kd.run_logs` gives them (`RunLog.metric_curve`, a column of
`RunLog.loss_curves`), or a sequence of (step, value) pairs; either is sorted by step here.
`*_figure` functions draw one figure and return it, for a caller (or a test) to look at its
lines; `plot_*` functions draw the same figure and save it as PNG (Agg) and SVG next to each
other, `path_stem + ".png"` and `path_stem + ".svg"`, returning the two paths. `plot_runs` draws
the three figures of a set of run directories read by `yt8m_kd.run_logs`. Loss curves are
smoothed with `moving_average`, pandas' trailing `rolling(window, min_periods=1).mean()`.
Figures are `matplotlib.figure.Figure` objects rather than pyplot ones, so nothing here touches
pyplot's global state or needs a display. The SVG gets a fixed hash salt and no date, so the same
data give the same file.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from yt8m_kd import run_logs

_FIGSIZE = (7.0, 4.5)
_DPI = 150
_DODGE = 1.1  # x factor between points of equal GFLOPs

# A curve: values indexed by step, or (step, value) pairs.
Curve = pd.Series | Sequence[tuple[int, float]]


def as_curve(points: Curve) -> pd.Series:
    """A curve as a float Series indexed by step ("step"), sorted by step, without NaN (the
    steps at which a column of a wide frame was not logged)."""
    if isinstance(points, pd.Series):
        curve = points.astype("float64").dropna()
        curve.index = curve.index.rename("step")
    else:
        points = list(points)
        steps = [step for step, _ in points]
        curve = pd.Series(
            [value for _, value in points],
            index=pd.Index(steps, dtype="int64", name="step"),
            dtype="float64",
        )
    return curve.sort_index(kind="stable")


def _save(figure: Figure, path_stem: str) -> tuple[str, str]:
    directory = os.path.dirname(path_stem)
    if directory:
        os.makedirs(directory, exist_ok=True)
    png, svg = path_stem + ".png", path_stem + ".svg"
    figure.savefig(png, dpi=_DPI, format="png")
    with matplotlib.rc_context({"svg.hashsalt": "yt8m-kd"}):
        figure.savefig(svg, format="svg", metadata={"Date": None})
    return png, svg


def plot_metric_vs_step(
    curves: Mapping[str, Curve],
    path_stem: str,
    *,
    metric: str = "GAP",
    title: str = "Held-out metric during training",
    styles: Mapping[str, Mapping] | None = None,
) -> tuple[str, str]:
    """`metric_vs_step_figure`, saved as `path_stem` + ".png" and ".svg"; returns the two paths."""
    figure = metric_vs_step_figure(curves, metric=metric, title=title, styles=styles)
    return _save(figure, path_stem)


def metric_vs_step_figure(
    curves: Mapping[str, Curve],
    *,
    metric: str = "GAP",
    title: str = "Held-out metric during training",
    styles: Mapping[str, Mapping] | None = None,
) -> Figure:
    """One line per run: `metric` against training step.

    Args:
      curves: label -> curve (a Series by step, or [(step, value), ...]).
      metric: the y-axis name.
      title: the figure title.
      styles: label -> keyword arguments of `Axes.plot` (color, linestyle, marker, ...), e.g.
        dashed lines for plain students and solid ones for distilled students. Labels without a
        style get matplotlib's defaults.

    Returns:
      The figure: one Line2D per curve, labelled by the curve's label.

    Raises:
      ValueError: no curve, or a curve without points.
    """
    if not curves:
        raise ValueError("no curve to plot")
    curves = {label: as_curve(points) for label, points in curves.items()}
    empty = [label for label, curve in curves.items() if curve.empty]
    if empty:
        raise ValueError(f"curves without points: {', '.join(empty)}")
    styles = styles or {}
    figure = Figure(figsize=_FIGSIZE)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        style = {"marker": "o", "markersize": 3, **styles.get(label, {})}
        axes.plot(curve.index.to_numpy(), curve.to_numpy(), label=label, **style)
    axes.set_xlabel("training step")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _error_bar(error: float | Sequence[float] | None) -> tuple[float, float]:
    """(below, above) of an error given as None, one half-width, or a (below, above) pair."""
    if error is None:
        return 0.0, 0.0
    if isinstance(error, numbers.Real):
        below = above = float(error)
    else:
        below, above = (float(e) for e in error)
    if below < 0 or above < 0:
        raise ValueError(f"error bars must be >= 0, got {error}")
    return below, above


def plot_metric_vs_gflops(
    points: Sequence[Mapping],
    path_stem: str,
    *,
    metric: str = "GAP",
    title: str = "Held-out metric against forward cost",
    styles: Mapping[str, Mapping] | None = None,
) -> tuple[str, str]:
    """`metric_vs_gflops_figure`, saved as `path_stem` + ".png" and ".svg"; returns the two
    paths."""
    figure = metric_vs_gflops_figure(points, metric=metric, title=title, styles=styles)
    return _save(figure, path_stem)


def metric_vs_gflops_figure(
    points: Sequence[Mapping],
    *,
    metric: str = "GAP",
    title: str = "Held-out metric against forward cost",
    styles: Mapping[str, Mapping] | None = None,
) -> Figure:
    """One labelled point per model: `metric` against GFLOPs per video, log-scale x.

    Args:
      points: dicts with "label", "gflops" (> 0), "value", and optionally "error": None, a
        half-width, or a (below, above) pair such as (mean - min, max - mean) over seeds.
      metric: the y-axis name.
      title: the figure title.
      styles: label -> keyword arguments of `Axes.errorbar` (color, marker, fmt, ...).

    Points of equal GFLOPs are drawn side by side, a factor of 1.1 apart on the x axis, the lower
    value on the left.

    Returns:
      The figure: one errorbar container per point, labelled by the point's label.

    Raises:
      ValueError: no point, a point missing a key, GFLOPs <= 0, or a negative error.
    """
    if not points:
        raise ValueError("no point to plot")
    for point in points:
        missing = {"label", "gflops", "value"} - set(point)
        if missing:
            raise ValueError(f"point {point} lacks {', '.join(sorted(missing))}")
        if float(point["gflops"]) <= 0:
            raise ValueError(
                f"{point['label']}: GFLOPs must be > 0 on a log scale, got {point['gflops']}"
            )
    styles = styles or {}
    figure = Figure(figsize=_FIGSIZE)
    axes = figure.add_subplot()
    # Models of equal cost (a plain and a distilled student at the same k) would hide each other:
    # within a group of equal GFLOPs, points are dodged sideways by a few percent (small next to
    # the decades of a log axis), in the order of their values, and labelled on either side.
    groups: dict[float, list[Mapping]] = {}
    for point in points:
        groups.setdefault(float(point["gflops"]), []).append(point)
    for gflops, group in groups.items():
        group = sorted(group, key=lambda p: float(p["value"]))
        for rank, point in enumerate(group):
            shift = rank - (len(group) - 1) / 2
            x, value = gflops * _DODGE**shift, float(point["value"])
            below, above = _error_bar(point.get("error"))
            label = point["label"]
            style = {"fmt": "o", "capsize": 4, "markersize": 6, **styles.get(label, {})}
            axes.errorbar([x], [value], yerr=[[below], [above]], label=label, **style)
            axes.annotate(  # the lower of two twins labelled on its left, the other on its right
                label,
                (x, value),
                xytext=(-8 if shift < 0 else 8, 11 * shift),
                textcoords="offset points",
                ha="right" if shift < 0 else "left",
                va="center",
                fontsize="small",
            )
    axes.set_xscale("log")
    dodged = any(len(group) > 1 for group in groups.values())
    axes.set_xlabel(
        "GFLOPs per video (log scale"
        + ("; models of equal cost drawn side by side)" if dodged else ")")
    )
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.25)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- time to metric
_MARKERS = "osD^vP*Xph<>"
_FILLS = ("full", "none", "left", "bottom")


def plot_metric_vs_seconds(
    points: Sequence[Mapping],
    path_stem: str,
    *,
    metric: str = "GAP",
    seconds: str = "training wall seconds",
    title: str = "Held-out metric against training time",
) -> tuple[str, str]:
    """`metric_vs_seconds_figure`, saved as `path_stem` + ".png" and ".svg"; returns the two
    paths."""
    figure = metric_vs_seconds_figure(points, metric=metric, seconds=seconds, title=title)
    return _save(figure, path_stem)


def metric_vs_seconds_figure(
    points: Sequence[Mapping],
    *,
    metric: str = "GAP",
    seconds: str = "training wall seconds",
    title: str = "Held-out metric against training time",
) -> Figure:
    """Time to accuracy: one point per setting, `metric` against wall seconds, log-scale x (the
    settings compared differ by factors in time).

    Args:
      points: dicts with "label", "seconds" (> 0), "value", optionally "group" and "x_error" /
        "y_error" (None, a half-width, or a (below, above) pair, such as the half-range over
        seeds). A label keeps its colour and marker in every group; the groups (the students'
        initialisation, say) differ by the marker's fill: filled, open, half-filled, ...
      metric: the y-axis name.
      seconds: the x-axis name (what the seconds cover).
      title: the figure title.

    Returns:
      The figure: one errorbar container per point, labelled "label" or "label (group)"; the
      legend below the axes, so that it hides no point.

    Raises:
      ValueError: no point, a point missing a key, seconds <= 0, or a negative error.
    """
    if not points:
        raise ValueError("no point to plot")
    for point in points:
        missing = {"label", "seconds", "value"} - set(point)
        if missing:
            raise ValueError(f"point {point} lacks {', '.join(sorted(missing))}")
        if float(point["seconds"]) <= 0:
            raise ValueError(
                f"{point['label']}: seconds must be > 0 on a log scale, got {point['seconds']}"
            )
    labels = list(dict.fromkeys(p["label"] for p in points))
    groups = list(dict.fromkeys(p.get("group") for p in points))
    figure = Figure(figsize=(_FIGSIZE[0], _FIGSIZE[1] + 0.25 * len(points)), layout="constrained")
    axes = figure.add_subplot()
    for point in points:
        group, index = point.get("group"), labels.index(point["label"])
        x_below, x_above = _error_bar(point.get("x_error"))
        y_below, y_above = _error_bar(point.get("y_error"))
        axes.errorbar(
            [float(point["seconds"])],
            [float(point["value"])],
            xerr=[[x_below], [x_above]],
            yerr=[[y_below], [y_above]],
            fmt=_MARKERS[index % len(_MARKERS)],
            color=f"C{index % 10}",
            fillstyle=_FILLS[groups.index(group) % len(_FILLS)],
            capsize=3,
            markersize=8,
            label=point["label"] if group is None else f"{point['label']} ({group})",
        )
    axes.set_xscale("log")
    axes.set_xlabel(f"{seconds} (log scale)")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    figure.legend(loc="outside lower center", fontsize="small", ncols=1 if len(points) < 8 else 2)
    return figure


# ----------------------------------------------------------------------------- loss terms
_PANEL_SIZE = (4.2, 3.0)
_PANEL_COLUMNS = 3
_MARKERS_UP_TO = 30  # points per curve; a longer curve is drawn as a plain line


def moving_average(values: pd.Series | Sequence[float], window: int) -> pd.Series:
    """Trailing moving average, `Series.rolling(window, min_periods=1).mean()`: point i is the
    mean of points max(0, i - window + 1) .. i, so the first points average what there is, and
    no point looks ahead of its step. A Series keeps its index (its steps).

    Raises:
      ValueError: window < 1.
    """
    if window < 1:
        raise ValueError(f"the smoothing window must be >= 1, got {window}")
    return pd.Series(values, dtype="float64").rolling(window, min_periods=1).mean()


def loss_components_figure(
    components: Mapping[str, Mapping[str, Curve]],
    *,
    smoothing: int = 1,
    title: str = "Training losses",
    styles: Mapping[str, Mapping] | None = None,
) -> Figure:
    """One panel per loss term, one line per run in every panel: the term against training step.

    Each term has its own y scale (the l2 penalty is orders of magnitude below the label loss),
    and a run has the same colour in every panel and one entry in the legend under the panels.

    Args:
      components: term (e.g. "loss", "label_loss", "l_pred") -> run label -> curve (a Series
        by step, or [(step, value), ...]); panels in this order.
      smoothing: window of a trailing moving average, in logged points; 1 draws the values as
        logged. Above 1, the logged values stay as a faint line behind the smoothed one.
      title: the figure title.
      styles: run label -> keyword arguments of `Axes.plot`; a run without one gets colour Cn,
        n its place in the order runs first appear.

    Returns:
      The figure: in each panel (titled by the term) one Line2D per run labelled by the run's
      label holding the drawn (smoothed) values, plus with smoothing one "_<label> logged" line.

    Raises:
      ValueError: no term, a term without runs, a run without points, or smoothing < 1.
    """
    if not components:
        raise ValueError("no loss term to plot")
    if smoothing < 1:
        raise ValueError(f"the smoothing window must be >= 1, got {smoothing}")
    components = {
        name: {label: as_curve(points) for label, points in curves.items()}
        for name, curves in components.items()
    }
    for name, curves in components.items():
        if not curves:
            raise ValueError(f"loss term {name} has no run")
        empty = [label for label, curve in curves.items() if curve.empty]
        if empty:
            raise ValueError(f"{name}: runs without points: {', '.join(empty)}")
    order = list(dict.fromkeys(label for curves in components.values() for label in curves))
    styles = {
        label: {"color": f"C{i % 10}", **((styles or {}).get(label, {}))}
        for i, label in enumerate(order)
    }
    columns = min(_PANEL_COLUMNS, len(components))
    rows = math.ceil(len(components) / columns)
    figure = Figure(
        figsize=(_PANEL_SIZE[0] * columns, _PANEL_SIZE[1] * rows + 0.8), layout="constrained"
    )
    panels = figure.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    handles = {}
    for axes, (name, curves) in zip(panels, components.items(), strict=False):
        for label, curve in curves.items():
            steps = curve.index.to_numpy()
            style = {"linewidth": 1.2, **styles[label]}
            if len(steps) <= _MARKERS_UP_TO:
                style = {"marker": "o", "markersize": 2.5, **style}
            if smoothing > 1:
                axes.plot(
                    steps, curve.to_numpy(), **{**style, "alpha": 0.25, "label": f"_{label} logged"}
                )
                curve = moving_average(curve, smoothing)
            (handles[label],) = axes.plot(steps, curve.to_numpy(), **{**style, "label": label})
        axes.set_title(name, fontsize="medium")
        axes.grid(True, alpha=0.3)
        axes.tick_params(labelsize="small")
    for axes in panels[len(components) :]:
        axes.remove()
    for axes in panels[: len(components)][-columns:]:
        axes.xaxis.set_tick_params(labelbottom=True)
        axes.set_xlabel("training step")
    if smoothing > 1:
        title += f" (moving average of {smoothing} logged points; faint: as logged)"
    figure.suptitle(title)
    figure.legend(
        [handles[label] for label in order],
        order,
        loc="outside lower center",
        ncols=min(len(order), 5),
        fontsize="small",
    )
    return figure


def plot_loss_components(
    components: Mapping[str, Mapping[str, Curve]],
    path_stem: str,
    *,
    smoothing: int = 1,
    title: str = "Training losses",
    styles: Mapping[str, Mapping] | None = None,
) -> tuple[str, str]:
    """`loss_components_figure`, saved as `path_stem` + ".png" and ".svg"; returns the two
    paths."""
    figure = loss_components_figure(components, smoothing=smoothing, title=title, styles=styles)
    return _save(figure, path_stem)


# ------------------------------------------------------------------------ run directories
@dataclasses.dataclass(frozen=True)
class RunPlots:
    """What `plot_runs` drew.

    Attributes:
      metric: the evaluation metric plotted (None when no run has one).
      figures: figure name ("metric_vs_step", "losses", "metric_vs_gflops") -> Figure.
      paths: figure name -> (png path, svg path).
      notes: what was left out of a figure, and why, one line each.
    """

    metric: str | None
    figures: dict[str, Figure]
    paths: dict[str, tuple[str, str]]
    notes: list[str]


def figure_stems(metric: str | None) -> dict[str, str]:
    """File names (without extension) of plot_runs' figures: "<metric>_vs_step",
    "train_losses", "<metric>_vs_gflops"."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric or "metric")
    return {
        "metric_vs_step": f"{slug}_vs_step",
        "losses": "train_losses",
        "metric_vs_gflops": f"{slug}_vs_gflops",
    }


def plot_runs(
    runs: Sequence[run_logs.RunLog],
    output_dir: str,
    *,
    metric: str = "auto",
    smoothing: int = 1,
) -> RunPlots:
    """The figures of a few runs (2 to 5 read well), saved under `output_dir`, each run in
    colour Cn (n its place in `runs`) in every figure:

    - `<metric>_vs_step`: the evaluation metric against step, one line per run;
    - `train_losses`: every loss term the runs logged (`run_logs.is_loss_tag`), one panel per
      term. A term that is 0 at every logged step of every run (a distillation term of weight 0
      is not computed) is left out, with a note;
    - `<metric>_vs_gflops`: each run's final metric against its GFLOPs per video (metrics.json
      "model"), log x.

    A run without what a figure needs (no evaluation, no metrics.json yet) is left out of that
    figure with a note; a figure no run can go into is not drawn, with a note. Nothing is saved
    until every figure is drawn.

    Args:
      runs: from `run_logs.read_runs`.
      output_dir: where the PNG and SVG files go (made if missing).
      metric: an evaluation metric's name, or "auto" (`run_logs.choose_metric`).
      smoothing: moving-average window of the loss curves, in logged points (1 = none).

    Raises:
      run_logs.RunLogError: the metric is unknown to every run (`choose_metric`), or no figure
        can be drawn at all.
      ValueError: smoothing < 1.
    """
    if smoothing < 1:
        raise ValueError(f"the smoothing window must be >= 1, got {smoothing}")
    metric = run_logs.choose_metric(runs, metric)
    colours = {run.label: f"C{i % 10}" for i, run in enumerate(runs)}
    stems = figure_stems(metric)
    figures: dict[str, Figure] = {}
    notes: list[str] = []

    def left_out(run: run_logs.RunLog, figure: str, why: str) -> None:
        notes.append(f"{run.label} ({run.run_dir}) left out of {stems[figure]}: {why}")

    if metric is None:
        notes.append("no run has evaluation metrics: no metric figures")
    else:
        shown = run_logs.display_name(metric)
        curves = {}
        for run in runs:
            curve = run.metric_curve(metric)
            if not curve.empty:
                curves[run.label] = curve
            else:
                left_out(run, "metric_vs_step", f"no {metric} evaluation")
        if curves:
            figures["metric_vs_step"] = metric_vs_step_figure(
                curves,
                metric=shown,
                title=f"Held-out {shown} during training",
                styles={label: {"color": colours[label]} for label in curves},
            )
        points = []
        for run in runs:
            value, gflops = run.final_metric(metric), run.gflops_per_video
            if value is None:
                left_out(run, "metric_vs_gflops", f"no final {metric}")
            elif gflops is None or gflops <= 0:
                left_out(run, "metric_vs_gflops", "no GFLOPs per video in metrics.json")
            else:
                points.append({"label": run.label, "gflops": gflops, "value": value})
        if points:
            figures["metric_vs_gflops"] = metric_vs_gflops_figure(
                points,
                metric=f"final {shown}",
                title=f"Final held-out {shown} against forward cost",
                styles={p["label"]: {"color": colours[p["label"]]} for p in points},
            )

    components: dict[str, dict[str, pd.Series]] = {}
    for run in runs:
        losses = run.loss_curves()
        if losses.columns.empty:
            left_out(run, "losses", "no training loss logged")
        for name in losses.columns:
            curve = losses[name].dropna()
            if not curve.empty:
                components.setdefault(name, {})[run.label] = curve
    names = sorted(components, key=run_logs.loss_order)
    for name in names:
        if all((curve == 0).all() for curve in components[name].values()):
            notes.append(f"{name} is 0 at every logged step of every run (not computed): not drawn")
            del components[name]
    if components:
        figures["losses"] = loss_components_figure(
            {name: components[name] for name in names if name in components},
            smoothing=smoothing,
            styles={label: {"color": colour} for label, colour in colours.items()},
        )

    if not figures:
        raise run_logs.RunLogError("nothing to plot: " + "; ".join(notes))
    paths = {
        name: _save(figures[name], os.path.join(output_dir, stems[name]))
        for name in ("metric_vs_step", "losses", "metric_vs_gflops")
        if name in figures
    }
    return RunPlots(metric=metric, figures=figures, paths=paths, notes=notes)
