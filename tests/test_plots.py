"""The experiment plots: both write a PNG and an SVG, and refuse what they cannot draw."""

import pytest

from yt8m_kd import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png_and_svg(paths, stem):
    png, svg = paths
    assert (png, svg) == (f"{stem}.png", f"{stem}.svg")
    with open(png, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    with open(svg) as f:
        assert "<svg" in f.read()


def test_metric_vs_step_writes_png_and_svg(tmp_path):
    curves = {
        "plain k=6": [(200, 0.41), (100, 0.30), (300, 0.45)],  # unsorted on purpose
        "distilled k=6": [(100, 0.32), (200, 0.44), (300, 0.48)],
    }
    styles = {"plain k=6": {"linestyle": "--", "color": "C0"}, "distilled k=6": {"color": "C0"}}
    stem = str(tmp_path / "sub" / "gap_vs_step")  # a missing directory is made
    assert_png_and_svg(plots.plot_metric_vs_step(curves, stem, styles=styles), stem)


def test_metric_vs_gflops_writes_png_and_svg(tmp_path):
    points = [
        {"label": "teacher", "gflops": 0.05, "value": 0.8, "error": (0.01, 0.02)},
        {"label": "plain k=6", "gflops": 0.001, "value": 0.5, "error": 0.03},
        {"label": "distilled k=6", "gflops": 0.001, "value": 0.55},
    ]
    stem = str(tmp_path / "gap_vs_gflops")
    assert_png_and_svg(plots.plot_metric_vs_gflops(points, stem), stem)


def test_same_data_same_svg(tmp_path):
    points = [{"label": "teacher", "gflops": 0.05, "value": 0.8}]
    first = plots.plot_metric_vs_gflops(points, str(tmp_path / "a"))[1]
    second = plots.plot_metric_vs_gflops(points, str(tmp_path / "b"))[1]
    with open(first) as a, open(second) as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("curves", [{}, {"plain k=6": []}])
def test_metric_vs_step_refuses_empty_input(tmp_path, curves):
    with pytest.raises(ValueError):
        plots.plot_metric_vs_step(curves, str(tmp_path / "x"))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "points",
    [
        [],
        [{"label": "teacher", "gflops": 0.0, "value": 0.8}],  # no place on a log axis
        [{"label": "teacher", "value": 0.8}],
        [{"label": "teacher", "gflops": 0.05, "value": 0.8, "error": (-0.1, 0.1)}],
    ],
)
def test_metric_vs_gflops_refuses_bad_input(tmp_path, points):
    with pytest.raises(ValueError):
        plots.plot_metric_vs_gflops(points, str(tmp_path / "x"))
    assert not list(tmp_path.iterdir())
