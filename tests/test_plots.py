"""The experiment plots: they write a PNG and an SVG, draw what the run directories logged, and
refuse what they cannot draw."""

import os

import pandas as pd
import pytest

from yt8m_kd import plots, run_logs

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


def test_metric_vs_seconds_colours_groups_and_marks_labels(tmp_path):
    points = [
        {"label": "vanilla", "group": "from teacher", "seconds": 60.0, "value": 0.6},
        {
            "label": "sakd r10",
            "group": "from teacher",
            "seconds": 12.0,
            "value": 0.58,
            "x_error": 1.5,
            "y_error": (0.01, 0.02),
        },
        {"label": "vanilla", "group": "from scratch", "seconds": 58.0, "value": 0.55},
    ]
    figure = plots.metric_vs_seconds_figure(points)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    lines = {c.get_label(): c.lines[0] for c in axes.containers}
    assert list(lines) == [
        "vanilla (from teacher)",
        "sakd r10 (from teacher)",
        "vanilla (from scratch)",
    ]
    # A label keeps its colour and marker in every group; a group has its fill.
    teacher, scratch = lines["vanilla (from teacher)"], lines["vanilla (from scratch)"]
    sakd = lines["sakd r10 (from teacher)"]
    assert (teacher.get_color(), teacher.get_marker()) == (
        scratch.get_color(),
        scratch.get_marker(),
    )
    assert (teacher.get_color(), teacher.get_marker()) != (sakd.get_color(), sakd.get_marker())
    assert (teacher.get_fillstyle(), scratch.get_fillstyle()) == ("full", "none")
    assert sakd.get_fillstyle() == "full"
    assert list(lines["sakd r10 (from teacher)"].get_xdata()) == [12.0]
    stem = str(tmp_path / "time_to_gap")
    assert_png_and_svg(plots.plot_metric_vs_seconds(points, stem), stem)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        plots.metric_vs_seconds_figure([{"label": "a", "seconds": 0, "value": 0.5}])


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


# ------------------------------------------------------------------- runs read back and drawn
# Three fake runs with known values, written with tf.summary as the training loop writes them.
# Values are exact in float32, so what is read back compares with ==.
STEPS = (10, 20, 30)
PLAIN_TRAIN = {
    "loss": [(10, 4.5), (20, 3.25), (30, 2.5)],
    "label_loss": [(10, 4.25), (20, 3.0), (30, 2.25)],
    "regularization_loss": [(10, 0.25), (20, 0.25), (30, 0.25)],
    "grad_norm": [(10, 8.0), (20, 6.0), (30, 5.0)],
    "learning_rate": [(10, 2.0**-10), (20, 2.0**-10), (30, 2.0**-11)],
}
DISTILLED_TRAIN = {
    "loss": [(10, 5.5), (20, 4.0), (30, 3.0)],
    "label_loss": [(10, 4.5), (20, 3.5), (30, 2.75)],
    "distill_loss": [(10, 0.75), (20, 0.5), (30, 0.25)],
    "l_pred": [(10, 50.0), (20, 30.0), (30, 20.0)],
    "l_rep": [(10, 250.0), (20, 200.0), (30, 50.0)],
    "l_kl": [(10, 0.0), (20, 0.0), (30, 0.0)],  # weight 0: logged, never computed
    "regularization_loss": [(10, 0.25), (20, 0.25), (30, 0.25)],
    "grad_norm": [(10, 9.0), (20, 7.0), (30, 6.0)],
}
EVAL_GAP = {
    "teacher": [(10, 0.5), (20, 0.75), (30, 0.875)],
    "plain_k6": [(10, 0.25), (20, 0.5), (30, 0.5625)],
    "distilled_k6": [(10, 0.3125), (20, 0.5625), (30, 0.625)],
}
GFLOPS = {"teacher": 0.05, "plain_k6": 0.001, "distilled_k6": 0.002}


def write_scalars(directory, scalars, histogram=None):
    import numpy as np
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        for tag, points in scalars.items():
            for step, value in points:
                tf.summary.scalar(tag, value, step=step)
        if histogram:  # SAKD's difficulty histograms share train/ with the scalars
            tf.summary.histogram(histogram, np.arange(10.0), step=STEPS[-1])
    writer.close()


def write_run(root, name, train, eval_scalars, gflops, histogram=None):
    import json

    run_dir = root / name
    write_scalars(run_dir / "train", train, histogram)
    write_scalars(run_dir / "eval", eval_scalars)
    final = {tag: points[-1][1] for tag, points in eval_scalars.items()}
    metrics = {
        "step": STEPS[-1],
        "eval": {**final, "num_videos": 64},
        "eval_history": [{"step": s, "gap": v} for s, v in eval_scalars["gap"]],
        "model": {"gflops_per_video": gflops, "frames": 6, "trainable_params": 1000},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return str(run_dir)


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    """name -> run directory: a teacher, a plain and a distilled student."""
    root = tmp_path_factory.mktemp("fake_runs")
    teacher_train = {"loss": PLAIN_TRAIN["loss"], "label_loss": PLAIN_TRAIN["label_loss"]}
    return {
        "teacher": write_run(
            root, "teacher", teacher_train, {"gap": EVAL_GAP["teacher"]}, GFLOPS["teacher"]
        ),
        "plain_k6": write_run(
            root,
            "plain_k6",
            PLAIN_TRAIN,
            {"gap": EVAL_GAP["plain_k6"], "map": [(s, 0.125) for s in STEPS]},
            GFLOPS["plain_k6"],
        ),
        "distilled_k6": write_run(
            root,
            "distilled_k6",
            DISTILLED_TRAIN,
            {"gap": EVAL_GAP["distilled_k6"]},
            GFLOPS["distilled_k6"],
            histogram="sakd/difficulty",
        ),
    }


@pytest.fixture(scope="module")
def fake_plots(fake_runs, tmp_path_factory):
    runs = run_logs.read_runs(list(fake_runs.values()))
    return plots.plot_runs(runs, str(tmp_path_factory.mktemp("plots")))


def drawn_lines(axes):
    """label -> (steps, values) of the lines in the legend (not the faint "_..." ones)."""
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in axes.lines
        if not line.get_label().startswith("_")
    }


def as_columns(points):
    steps, values = zip(*points, strict=True)
    return list(steps), list(values)


def tidy(train, eval_scalars, run=None):
    """The expected scalars frame, built here row by row (not by run_logs): train rows, then
    eval rows, each by tag and step; with `run`, a "run" column first."""
    rows = [
        (split, tag, step, value)
        for split, scalars in (("train", train), ("eval", eval_scalars))
        for tag in sorted(scalars)
        for step, value in sorted(scalars[tag])
    ]
    frame = pd.DataFrame(rows, columns=["split", "tag", "step", "value"])
    if run is not None:
        frame.insert(0, "run", run)
    return frame.astype({"step": "int64", "value": "float64"})


def test_read_run_gives_exactly_what_was_written(fake_runs):
    run = run_logs.read_run(fake_runs["distilled_k6"])
    assert run.label == "distilled_k6"
    # the histogram is not a scalar: not there
    pd.testing.assert_frame_equal(
        run.scalars, tidy(DISTILLED_TRAIN, {"gap": EVAL_GAP["distilled_k6"]})
    )
    assert run.tags("train") == sorted(DISTILLED_TRAIN) and run.tags("eval") == ["gap"]
    assert run.metrics["model"]["gflops_per_video"] == GFLOPS["distilled_k6"]
    assert run.gflops_per_video == GFLOPS["distilled_k6"]
    assert run.final_metric("gap") == 0.625
    pd.testing.assert_series_equal(
        run.metric_curve("gap"),
        pd.Series(
            [v for _, v in EVAL_GAP["distilled_k6"]],
            index=pd.Index(STEPS, dtype="int64", name="step"),
            name="gap",
        ),
    )
    assert run.curve("eval", "map").empty
    losses = run.loss_curves()
    assert list(losses.columns) == [
        "loss",
        "label_loss",
        "distill_loss",
        "l_pred",
        "l_rep",
        "l_kl",
        "regularization_loss",
    ]  # not grad_norm
    assert losses.index.name == "step"
    assert {tag: list(losses[tag].items()) for tag in losses} == {
        tag: points for tag, points in DISTILLED_TRAIN.items() if tag != "grad_norm"
    }
    plain = run_logs.read_run(fake_runs["plain_k6"])
    plain_eval = {"gap": EVAL_GAP["plain_k6"], "map": [(s, 0.125) for s in STEPS]}
    pd.testing.assert_frame_equal(plain.scalars, tidy(PLAIN_TRAIN, plain_eval))
    wide = plain.wide("eval")  # one column per tag, by step
    assert list(wide.columns) == ["gap", "map"] and list(wide.index) == list(STEPS)
    assert wide.to_dict("list") == {tag: [v for _, v in pts] for tag, pts in plain_eval.items()}


def test_scalars_frame_of_plain_data():
    frame = run_logs.scalars_frame(
        {
            "eval": {"gap": [(20, 0.5), (10, 0.25)]},
            "train": {"loss": [(10, 4.0), (20, 3.0), (10, 3.5)], "grad_norm": [(10, 1.0)]},
        }
    )  # splits in their order, tags and steps sorted, a step given twice keeps the later value
    expected = tidy(
        {"grad_norm": [(10, 1.0)], "loss": [(10, 3.5), (20, 3.0)]},
        {"gap": [(10, 0.25), (20, 0.5)]},
    )
    pd.testing.assert_frame_equal(frame, expected)
    empty = run_logs.scalars_frame({})
    assert list(empty.columns) == list(run_logs.SCALAR_COLUMNS) and empty.empty
    assert empty.dtypes.to_dict() == frame.dtypes.to_dict()
    with pytest.raises(ValueError, match="unknown splits test"):
        run_logs.scalars_frame({"test": {}})


def test_tables_of_several_runs(fake_runs, tmp_path):
    runs = run_logs.read_runs([fake_runs["teacher"], fake_runs["plain_k6"]], ["t", "p"])
    teacher_train = {"loss": PLAIN_TRAIN["loss"], "label_loss": PLAIN_TRAIN["label_loss"]}
    plain_eval = {"gap": EVAL_GAP["plain_k6"], "map": [(s, 0.125) for s in STEPS]}
    expected = pd.concat(
        [
            tidy(teacher_train, {"gap": EVAL_GAP["teacher"]}, run="t"),
            tidy(PLAIN_TRAIN, plain_eval, run="p"),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(run_logs.scalars_table(runs), expected)

    path = run_logs.to_csv(runs, str(tmp_path / "sub" / "scalars.csv"))
    assert path == str(tmp_path / "sub" / "scalars.csv")
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[:2] == ["run,split,tag,step,value", "t,train,label_loss,10,4.25"]
    assert len(lines) == 1 + len(expected)
    pd.testing.assert_frame_equal(pd.read_csv(path), expected)

    final = run_logs.final_table(runs)
    assert final.index.name == "run" and list(final.index) == ["t", "p"]
    assert list(final.columns) == ["gap", "map", "gflops_per_video"]
    assert final.loc["t", "gap"] == 0.875 and pd.isna(final.loc["t", "map"])
    assert final.loc["p"].to_dict() == {"gap": 0.5625, "map": 0.125, "gflops_per_video": 0.001}


def test_read_run_of_a_trained_run(teacher_run):
    """The real loop's events: tensor-valued scalars of the last logged step, equal to the
    values metrics.json reports for it."""
    run = run_logs.read_run(teacher_run)
    metrics = run.metrics
    assert {"loss", "label_loss", "regularization_loss", "grad_norm", "learning_rate"} <= set(
        run.tags("train")
    )
    assert list(run.loss_curves().columns) == ["loss", "label_loss", "regularization_loss"]
    for tag in ("loss", "label_loss", "grad_norm"):
        # 5 steps, logged every 25 or at the last step
        ((step, value),) = run.curve("train", tag).items()
        assert step == metrics["step"] == 5
        assert value == pytest.approx(metrics["train"][tag], rel=1e-6)
    assert run.gflops_per_video == pytest.approx(metrics["model"]["gflops_per_video"])
    assert run.eval_metric_names() == set()  # trained without evaluation data
    assert run_logs.choose_metric([run]) is None


def test_tf1_simple_values_and_a_resumed_run(tmp_path):
    """simple_value summaries are read; a step logged again by a resumed run keeps the later
    value; a truncated last record keeps what came before it."""
    import tensorflow as tf

    train = tmp_path / "run" / "train"
    train.mkdir(parents=True)

    def write_events(name, points):
        with tf.io.TFRecordWriter(str(train / name)) as f:
            for step, value in points:
                summary = tf.compat.v1.Summary(
                    value=[tf.compat.v1.Summary.Value(tag="loss", simple_value=value)]
                )
                f.write(tf.compat.v1.Event(step=step, summary=summary).SerializeToString())

    write_events("events.out.tfevents.1700000000.host.7.9.v2", [(1, 3.0), (2, 2.5), (3, 2.0)])
    # Resumed from step 2's checkpoint in the same second and process: step 3 again, then on;
    # writer 10 comes after writer 9.
    write_events("events.out.tfevents.1700000000.host.7.10.v2", [(3, 1.5), (4, 1.25)])
    write_events("events.out.tfevents.1700000100.host.3.1.v2", [(5, 1.0), (6, 0.75)])
    last = train / "events.out.tfevents.1700000100.host.3.1.v2"
    last.write_bytes(last.read_bytes()[:-5])  # killed while writing step 6

    run = run_logs.read_run(str(tmp_path / "run"))
    pd.testing.assert_frame_equal(
        run.scalars, tidy({"loss": [(1, 3.0), (2, 2.5), (3, 1.5), (4, 1.25), (5, 1.0)]}, {})
    )
    assert run.tags("eval") == [] and run.metrics == {}


def test_read_run_names_a_missing_or_empty_run_dir(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        run_logs.read_run(str(missing))
    empty = tmp_path / "empty_run"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"{empty} holds no TensorBoard event files"):
        run_logs.read_run(str(empty))


def run_log(label, eval_metrics=(), final=None):
    return run_logs.RunLog(
        run_dir=f"/runs/{label}",
        label=label,
        scalars=run_logs.scalars_frame({"eval": {name: [(1, 0.5)] for name in eval_metrics}}),
        metrics={"eval": final} if final else {},
    )


def test_choose_metric():
    yt8m = run_log("yt8m", ["gap", "map", "hit_at_one", "perr"])
    ucf101 = run_log("ucf101", final={"top1": 0.5, "top5": 0.75, "num_videos": 10})
    assert run_logs.choose_metric([yt8m]) == "gap"
    assert run_logs.choose_metric([ucf101]) == "top1"  # from metrics.json, events or not
    assert run_logs.choose_metric([ucf101, yt8m]) == "gap"
    assert run_logs.choose_metric([ucf101], "top5") == "top5"
    assert run_logs.choose_metric([run_log("training")]) is None
    with pytest.raises(run_logs.RunLogError, match="'gap'.*top1, top5"):
        run_logs.choose_metric([ucf101], "gap")
    with pytest.raises(run_logs.RunLogError, match="recall"):
        run_logs.choose_metric([run_log("other", ["recall"])])


def test_labels():
    assert run_logs.default_labels(["a/seed0/teacher", "a/seed1/teacher/", "a/seed1/k6"]) == [
        "seed0/teacher",
        "seed1/teacher",
        "seed1/k6",
    ]
    with pytest.raises(run_logs.RunLogError, match="labels used twice: x"):
        run_logs.read_runs(["a", "b"], ["x", "x"])
    with pytest.raises(run_logs.RunLogError, match="1 labels for 2 run directories"):
        run_logs.read_runs(["a", "b"], ["x"])


def test_plot_runs_writes_png_and_svg_of_three_figures(fake_plots):
    assert fake_plots.metric == "gap"
    stems = {
        "metric_vs_step": "gap_vs_step",
        "losses": "train_losses",
        "metric_vs_gflops": "gap_vs_gflops",
    }
    assert set(fake_plots.paths) == set(stems)
    for name, stem in stems.items():
        png, svg = fake_plots.paths[name]
        assert_png_and_svg((png, svg), png[: -len(".png")])
        assert png.endswith(f"/{stem}.png")
        assert os.path.getsize(png) > 10_000 and os.path.getsize(svg) > 10_000
    assert fake_plots.notes == [
        "l_kl is 0 at every logged step of every run (not computed): not drawn"
    ]


def test_metric_vs_step_has_one_line_per_run_with_its_evaluations(fake_plots):
    (axes,) = fake_plots.figures["metric_vs_step"].axes
    assert drawn_lines(axes) == {name: as_columns(points) for name, points in EVAL_GAP.items()}
    assert axes.get_ylabel() == "GAP"
    assert [t.get_text() for t in axes.get_legend().get_texts()] == list(EVAL_GAP)


def test_loss_panels_hold_every_loss_term(fake_plots):
    figure = fake_plots.figures["losses"]
    panels = {axes.get_title(): axes for axes in figure.axes}
    # loss terms of the distillation run, in the order of the loss; l_kl (all 0) left out
    assert list(panels) == [
        "loss",
        "label_loss",
        "distill_loss",
        "l_pred",
        "l_rep",
        "regularization_loss",
    ]
    assert drawn_lines(panels["loss"]) == {
        "teacher": as_columns(PLAIN_TRAIN["loss"]),
        "plain_k6": as_columns(PLAIN_TRAIN["loss"]),
        "distilled_k6": as_columns(DISTILLED_TRAIN["loss"]),
    }
    assert drawn_lines(panels["l_pred"]) == {"distilled_k6": as_columns(DISTILLED_TRAIN["l_pred"])}
    # A run has one colour in every figure.
    (step_axes,) = fake_plots.figures["metric_vs_step"].axes
    colour = {line.get_label(): line.get_color() for line in step_axes.lines}
    for axes in figure.axes:
        for line in axes.lines:
            assert line.get_color() == colour[line.get_label()]


def test_metric_vs_gflops_has_one_point_per_run_on_a_log_axis(fake_plots):
    (axes,) = fake_plots.figures["metric_vs_gflops"].axes
    assert axes.get_xscale() == "log"
    points = {c.get_label(): tuple(c.lines[0].get_xydata()[0]) for c in axes.containers}
    assert points == {name: (GFLOPS[name], EVAL_GAP[name][-1][1]) for name in EVAL_GAP}
    assert {t.get_text() for t in axes.texts} == set(EVAL_GAP)  # each point labelled


def test_moving_average():
    assert list(plots.moving_average([1.0, 2.0, 3.0, 4.0], 2)) == [1.0, 1.5, 2.5, 3.5]
    assert list(plots.moving_average([1.0, 2.0, 6.0], 5)) == [1.0, 1.5, 3.0]
    assert list(plots.moving_average([1.0, 2.0], 1)) == [1.0, 2.0]
    # trailing: a point never sees a later one; a curve keeps its steps
    curve = pd.Series([9.0, 1.0, 2.0, 3.0], index=pd.Index([10, 20, 30, 40], name="step"))
    smoothed = plots.moving_average(curve, 3)
    assert list(smoothed.items()) == [(10, 9.0), (20, 5.0), (30, 4.0), (40, 2.0)]
    with pytest.raises(ValueError):
        plots.moving_average([1.0], 0)


def test_curves_are_series_or_pairs():
    pairs = [(30, 0.5), (10, 0.25), (20, 0.75)]
    series = pd.Series([0.75, 0.5, 0.25], index=[20, 30, 10])
    wide_column = pd.Series([0.25, None, 0.75, 0.5], index=[10, 15, 20, 30])  # NaN: not logged
    for curve in (pairs, series, wide_column):
        assert list(plots.as_curve(curve).items()) == [(10, 0.25), (20, 0.75), (30, 0.5)]
    figure = plots.metric_vs_step_figure({"pairs": pairs, "series": series, "wide": wide_column})
    (axes,) = figure.axes
    assert drawn_lines(axes) == {
        label: ([10, 20, 30], [0.25, 0.75, 0.5]) for label in ("pairs", "series", "wide")
    }
    with pytest.raises(ValueError, match="curves without points: empty"):
        plots.metric_vs_step_figure({"empty": pd.Series([], dtype="float64")})


def test_smoothed_losses_keep_the_logged_values_faint(tmp_path):
    points = [(10, 4.0), (20, 2.0), (30, 3.0)]
    figure = plots.loss_components_figure({"loss": {"run": points}}, smoothing=2)
    (axes,) = figure.axes
    logged, smoothed = axes.lines
    assert (logged.get_label(), list(logged.get_ydata())) == ("_run logged", [4.0, 2.0, 3.0])
    assert (smoothed.get_label(), list(smoothed.get_ydata())) == ("run", [4.0, 3.0, 2.5])
    assert logged.get_alpha() < 1 and logged.get_color() == smoothed.get_color()


def test_a_run_without_evaluations_is_left_out_of_the_metric_figures(
    fake_runs, teacher_run, tmp_path
):
    runs = run_logs.read_runs([fake_runs["plain_k6"], teacher_run], ["plain", "no eval"])
    result = plots.plot_runs(runs, str(tmp_path))
    (axes,) = result.figures["metric_vs_step"].axes
    assert list(drawn_lines(axes)) == ["plain"]
    assert f"no eval ({teacher_run}) left out of gap_vs_step: no gap evaluation" in result.notes
    assert any(n.startswith("no eval (") and "gap_vs_gflops" in n for n in result.notes)
    assert set(drawn_lines(result.figures["losses"].axes[0])) == {"plain", "no eval"}


def test_nothing_to_plot_is_an_error(tmp_path):
    run = run_logs.RunLog("/runs/x", "x", scalars=run_logs.scalars_frame({}), metrics={"step": 0})
    with pytest.raises(run_logs.RunLogError, match="nothing to plot"):
        plots.plot_runs([run], str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_plot_launcher_end_to_end(fake_runs, teacher_run, launcher):
    run_dirs = [fake_runs["plain_k6"], fake_runs["distilled_k6"], teacher_run]
    labels = ["plain", "distilled", "tiny teacher"]
    result = launcher.run(
        "plot.py", f"--run_dirs={','.join(run_dirs)}", f"--labels={','.join(labels)}", "--csv"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output_dir = os.path.join(os.path.dirname(run_dirs[0]), "plots")  # beside the first run
    stems = ("gap_vs_step", "train_losses", "gap_vs_gflops")
    assert result.stdout.splitlines() == [
        os.path.join(output_dir, f"{stem}.{ext}") for stem in stems for ext in ("png", "svg")
    ] + [os.path.join(output_dir, "scalars.csv")]
    for path in result.stdout.splitlines():
        assert os.path.getsize(path) > 0
    pd.testing.assert_frame_equal(
        pd.read_csv(os.path.join(output_dir, "scalars.csv"), keep_default_na=False),
        run_logs.scalars_table(run_logs.read_runs(run_dirs, labels)),
    )
    assert f"plot.py: warning: tiny teacher ({teacher_run}) left out of gap_vs_step" in (
        result.stderr
    )


def test_plot_launcher_names_a_missing_run_dir(fake_runs, launcher, tmp_path):
    missing = str(tmp_path / "no_such_run")
    result = launcher.run("plot.py", f"--run_dirs={fake_runs['teacher']},{missing}")
    assert result.returncode != 0
    assert launcher.last_stderr_line(result) == (
        f"plot.py: error: run directory {missing} does not exist"
    )
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""
