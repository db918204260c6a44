"""Plots of experiment results: a metric against training step, and against forward cost.

Pure functions of plain data (no TensorFlow): each draws one figure and saves it as PNG (Agg)
and SVG next to each other, `path_stem + ".png"` and `path_stem + ".svg"`, and returns the two
paths. Figures are `matplotlib.figure.Figure` objects rather than pyplot ones, so nothing here
touches pyplot's global state or needs a display. The SVG gets a fixed hash salt and no date, so
the same data give the same file.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure

_FIGSIZE = (7.0, 4.5)
_DPI = 150
_DODGE = 1.1  # x factor between points of equal GFLOPs


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
    curves: Mapping[str, Sequence[tuple[int, float]]],
    path_stem: str,
    *,
    metric: str = "GAP",
    title: str = "Held-out metric during training",
    styles: Mapping[str, Mapping] | None = None,
) -> tuple[str, str]:
    """One line per run: `metric` against training step.

    Args:
      curves: label -> [(step, value), ...] (sorted by step here).
      path_stem: output path without extension.
      metric: the y-axis name.
      title: the figure title.
      styles: label -> keyword arguments of `Axes.plot` (color, linestyle, marker, ...), e.g.
        dashed lines for plain students and solid ones for distilled students. Labels without a
        style get matplotlib's defaults.

    Returns:
      (png path, svg path).

    Raises:
      ValueError: no curve, or a curve without points.
    """
    if not curves:
        raise ValueError("no curve to plot")
    empty = [label for label, points in curves.items() if not points]
    if empty:
        raise ValueError(f"curves without points: {', '.join(empty)}")
    styles = styles or {}
    figure = Figure(figsize=_FIGSIZE)
    axes = figure.add_subplot()
    for label, points in curves.items():
        steps, values = zip(*sorted(points), strict=True)
        style = {"marker": "o", "markersize": 3, **styles.get(label, {})}
        axes.plot(steps, values, label=label, **style)
    axes.set_xlabel("training step")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return _save(figure, path_stem)


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
    """One labelled point per model: `metric` against GFLOPs per video, log-scale x.

    Args:
      points: dicts with "label", "gflops" (> 0), "value", and optionally "error": None, a
        half-width, or a (below, above) pair such as (mean - min, max - mean) over seeds.
      path_stem: output path without extension.
      metric: the y-axis name.
      title: the figure title.
      styles: label -> keyword arguments of `Axes.errorbar` (color, marker, fmt, ...).

    Points of equal GFLOPs are drawn side by side, a factor of 1.1 apart on the x axis, the lower
    value on the left.

    Returns:
      (png path, svg path).

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
    axes.set_xlabel("GFLOPs per video (log scale)")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.25)
    figure.tight_layout()
    return _save(figure, path_stem)
