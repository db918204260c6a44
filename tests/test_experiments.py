"""yt8m_kd.experiments: a run spec is its preset with flags overridden; `train_runs` trains, reuses,
resumes and refuses through the one run-or-reuse policy and makes a teacher's cache for the specs
that distil from it; the shared flags; the synthetic data; summaries over seeds."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os

import pytest
from absl import flags
from conftest import MAX_FRAMES, REPO_ROOT

from yt8m_kd import experiments as exp
from yt8m_kd import flags as yflags
from yt8m_kd.configs import (
    DistillationWeights,
    DistillConfig,
    FlagError,
    ModelConfig,
    SAKDConfig,
)
from yt8m_kd.files import read_json
from yt8m_kd.training import runs
from yt8m_kd.training.strategy import make_strategy


def tiny_overrides(tiny_yt8m, **more) -> dict:
    """Flags that make a tiny preset train in a second or two on the tiny data."""
    return {
        "train_data_pattern": tiny_yt8m.train_pattern,
        "eval_data_pattern": tiny_yt8m.eval_pattern,
        "max_frames": MAX_FRAMES,
        "batch_size": 8,
        "eval_batch_size": 16,
        "progress_bar": False,
        "max_steps": 2,
        **more,
    }


def teacher_and_student(root, tiny_yt8m, student_steps: int = 2) -> list[exp.RunSpec]:
    common = tiny_overrides(tiny_yt8m)
    return [
        exp.RunSpec("teacher", "tiny_teacher.flags", str(root), common, "all frames"),
        exp.RunSpec(
            "distilled",
            "tiny_distilled_k6.flags",
            str(root),
            {**common, "max_steps": student_steps},
            teacher="teacher",
        ),
    ]


# ------------------------------------------------------------------------------------ specs
def test_a_spec_is_its_preset_with_flags_overridden(tmp_path):
    spec = exp.RunSpec(
        "plain_k4", "tiny_student_k6.flags", str(tmp_path), {"k_frames": 4, "seed": 3}
    )
    preset = yflags.read_flagfile(str(REPO_ROOT / "models" / "tiny_student_k6.flags"))
    assert spec.config() == preset.replace(
        model=preset.model.replace(k_frames=4), train=dataclasses.replace(preset.train, seed=3)
    )
    assert spec.config().kind == "plain"
    assert spec.run_dir == str(tmp_path / "plain_k4") and spec.title == "plain_k4"
    assert exp.preset_path("tiny_student_k6.flags") == os.path.join(
        exp.MODELS_DIR, "tiny_student_k6.flags"
    )

    sakd = exp.RunSpec("s", "tiny_sakd_k6.flags", "/w", {"sakd_ratio": 0.5, "num_epochs": 3})
    config = sakd.config(teacher_cache="/caches/teacher")
    assert config.kind == "sakd" and config.num_epochs == 3
    assert config.sakd == SAKDConfig(ratio=0.5, selection_interval=5)
    assert config.distill == DistillConfig(
        teacher_cache_dir="/caches/teacher", weights=DistillationWeights(w_pred=1.0, w_rep=0.05)
    )


def test_a_spec_with_an_unknown_flag_or_a_bad_value_is_refused():
    with pytest.raises(FlagError, match="unknown flag 'no_such_flag'"):
        exp.RunSpec("x", "tiny_teacher.flags", "/w", {"no_such_flag": 1}).config()
    with pytest.raises(FlagError, match="max_steps"):
        exp.RunSpec("x", "tiny_teacher.flags", "/w", {"max_steps": 0}).config()


# -------------------------------------------------------------------------- train_runs
def test_runs_train_then_are_reused_and_a_run_of_other_flags_is_refused(
    tiny_yt8m, tmp_path, capfd, caplog
):
    caplog.set_level(logging.WARNING)
    strategy = make_strategy("one_device")
    specs = teacher_and_student(tmp_path, tiny_yt8m)
    first = exp.train_runs(specs, strategy, cache_batch_size=8)
    assert list(first) == ["teacher", "distilled"]
    assert [run.reused for run in first.values()] == [False, False]
    teacher, student = first["teacher"], first["distilled"]
    assert teacher.metrics["step"] == student.metrics["step"] == 2
    assert teacher.metrics["resumed_from_step"] == 0

    # The student learned from the teacher's cache, made beside the teacher's run, and its flags
    # name the teacher run and the checkpoint the cache was made from.
    cache_dir = tmp_path / exp.TEACHER_CACHE
    checkpoint = str(tmp_path / "teacher" / "checkpoints" / "ckpt-2")
    assert student.config.distill == DistillConfig(
        teacher_run_dir=str(tmp_path / "teacher"),
        teacher_checkpoint=checkpoint,
        teacher_cache_dir=str(cache_dir),
        weights=DistillationWeights(w_pred=1.0, w_rep=0.05),
    )
    assert yflags.read_run_config(student.run_dir) == student.config  # its flags.txt
    cache = json.loads((cache_dir / "teacher_cache.json").read_text())
    assert cache["checkpoint"] == checkpoint and cache["num_videos"] == 32
    assert teacher.timing["teacher_cache_wall_s"] > 0
    assert student.metrics["train"]["l_pred"] > 0  # distilled, not plain

    # Again: nothing trains, the cache is reused, the metrics are those on disk.
    files = {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for path in tmp_path.rglob("*")
        if path.is_file()
    }
    capfd.readouterr()
    caplog.clear()
    second = exp.train_runs(specs, strategy, cache_batch_size=8)
    assert [run.reused for run in second.values()] == [True, True]
    assert {name: run.metrics for name, run in second.items()} == {
        name: run.metrics for name, run in first.items()
    }
    assert {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for path in tmp_path.rglob("*")
        if path.is_file()
    } == files  # not a file written
    stages = capfd.readouterr().err
    assert f"== {cache_dir}: teacher cache of {checkpoint}, reused" in stages
    assert f"== {tmp_path / 'distilled'}: distilled, tiny_distilled_k6.flags, seed 0" in stages
    assert caplog.text.count("finished already (step 2), reused") == 2

    # Another architecture in the teacher's directory: refused, naming the difference, and the
    # run is left as it is.
    other = dataclasses.replace(specs[0], overrides={**specs[0].overrides, "hidden_size": 32})
    with pytest.raises(FlagError) as refused:
        exp.train_runs([other], strategy)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'teacher'} holds a run with other flags")
    assert "model.hidden_size: 64 -> 32" in message
    assert {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for path in tmp_path.rglob("*")
        if path.is_file()
    } == files


def test_a_teacher_trained_longer_resumes_and_its_old_students_are_refused(tiny_yt8m, tmp_path):
    strategy = make_strategy("one_device")
    specs = teacher_and_student(tmp_path, tiny_yt8m, student_steps=1)
    exp.train_runs(specs, strategy, cache_batch_size=8)

    longer = dataclasses.replace(specs[0], overrides={**specs[0].overrides, "max_steps": 3})
    with pytest.raises(FlagError) as refused:
        exp.train_runs([longer, specs[1]], strategy, cache_batch_size=8)
    # The teacher resumed from step 2: its metrics.json times the resumed part and says so.
    metrics = read_json(str(tmp_path / "teacher" / "metrics.json"))
    assert (metrics["resumed_from_step"], metrics["step"], metrics["train"]["steps"]) == (2, 3, 1)
    assert [e["step"] for e in metrics["eval_history"]] == [3]
    # Its cache was made again from the new checkpoint; the student of the old one is refused.
    cache = read_json(str(tmp_path / exp.TEACHER_CACHE / "teacher_cache.json"))
    assert cache["checkpoint"].endswith("ckpt-3")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'distilled'} holds a run with other flags")
    assert "distill.teacher_checkpoint: " in message
    assert message.index("ckpt-2") < message.index("ckpt-3")


def test_a_resumed_sakd_run_is_finished_when_its_last_epoch_is_done():
    # A resumed SAKD run's metrics.json lists (and its "sakd" summary counts) only the epochs it
    # trained in its last call.
    config = exp.read_preset("tiny_sakd_k6.flags", teacher_cache="/c", num_epochs=3)
    assert runs.is_finished(config, {"epochs": [{"epoch": e} for e in range(3)]})
    assert runs.is_finished(config, {"epochs": [{"epoch": 2}], "sakd": {"epochs": 1}})
    assert not runs.is_finished(config, {"epochs": [{"epoch": 0}, {"epoch": 1}]})
    assert not runs.is_finished(config, {"epochs": []})
    assert not runs.is_finished(config.replace(num_epochs=5), {"epochs": [{"epoch": 2}]})


# ----------------------------------------------------------------------------------- flags
def parsed(*args: str, **defaults) -> flags.FlagValues:
    fv = flags.FlagValues()
    exp.define_flags(fv, **defaults)
    fv(["prog", *args])
    return fv


def test_shared_flags_are_defined_with_the_launchers_defaults_and_checked_by_absl():
    fv = parsed(seeds=[0, 1], max_steps=1500, work_dir="runs", progress_bar=True)
    assert (fv.seeds, fv.max_steps, fv.work_dir, fv.progress_bar) == ([0, 1], 1500, "runs", True)
    assert parsed("--seeds=3,1", "--noprogress_bar", seeds=[0], progress_bar=True).seeds == [3, 1]
    fv = parsed("--w_pred=1", **exp.DISTILL_WEIGHTS)
    assert exp.distill_weights(fv) == {**exp.DISTILL_WEIGHTS, "w_pred": 1.0}
    for args, message in [
        (("--seeds=1,1",), "flag --seeds=1,1: repeats a value"),
        (("--seeds=a",), "flag --seeds=a: must be integers"),
        (("--seeds=-1",), "flag --seeds=-1: every value must be >= 0"),
        (("--seeds=",), "flag --seeds=: is empty"),
        (("--max_steps=0",), "flag --max_steps=0: 0 is not a positive integer"),
        (("--w_rep=-1",), "flag --w_rep=-1: -1.0 is not a non-negative number"),
        (("--temperature=0",), "flag --temperature=0.0: must be positive"),
    ]:
        with pytest.raises(flags.Error) as error:
            parsed(*args, seeds=[0], max_steps=10, **exp.DISTILL_WEIGHTS)
        assert str(error.value) == message
    with pytest.raises(ValueError, match="'ks' is not a shared experiment flag"):
        exp.define_flags(flags.FlagValues(), ks=[6])


def test_list_flags_of_choices():
    fv = flags.FlagValues()
    exp.define_choice_list("budgets", ["a", "b"], "Budgets.", ("a", "b"), fv=fv)
    fv(["prog", "--budgets=b"])
    assert fv.budgets == ["b"]
    fv(["prog", "--budgets="])
    assert fv.budgets == []
    with pytest.raises(flags.Error, match=r"^flag --budgets=a,c: 'c' is not one of a, b$"):
        fv(["prog", "--budgets=a,c"])


# ------------------------------------------------------------------------------------ data
def test_synthetic_data_are_made_once_and_a_directory_made_otherwise_is_refused(tmp_path):
    model = ModelConfig(feature_sizes=(8, 4), num_classes=5)
    data_dir = str(tmp_path / "data")
    with pytest.raises(FlagError, match=r"^--train_videos=12 must be a positive multiple of 8$"):
        exp.synthetic_yt8m(data_dir, model, 12, 8)
    assert not os.path.exists(data_dir)  # checked before any file is written

    patterns = exp.synthetic_yt8m(data_dir, model, 16, 8, shards=(8, 4))
    assert patterns == (f"{data_dir}/train-*.tfrecord", f"{data_dir}/validate-*.tfrecord")
    assert len(os.listdir(data_dir)) == 8 + 4 + 1  # shards and the manifest
    made = {name: os.path.getmtime(os.path.join(data_dir, name)) for name in os.listdir(data_dir)}
    assert exp.synthetic_yt8m(data_dir, model, 16, 8, shards=(8, 4)) == patterns
    assert {n: os.path.getmtime(os.path.join(data_dir, n)) for n in os.listdir(data_dir)} == made
    with pytest.raises(FlagError, match="holds synthetic data made with"):
        exp.synthetic_yt8m(data_dir, model, 32, 8, shards=(8, 4))

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("someone else's")
    with pytest.raises(FlagError, match="holds files but no synthetic.json"):
        exp.synthetic_yt8m(str(tmp_path / "other"), model, 16, 8)


# --------------------------------------------------------------------------------- results
def test_summaries_over_seeds():
    per_seed = {
        "0": {"a": {"gap": 0.5, "size": 7, "only_here": 1.0}, "b": {"gap": 0.1, "size": 3}},
        "1": {"a": {"gap": 0.7, "size": 7, "only_here": 2.0}, "b": {"gap": None, "size": 3}},
    }
    summary = exp.summarize(
        per_seed, ["gap", "only_here"], same=["size"], labels={"a": "A", "b": "B"}
    )
    assert list(summary) == ["a", "b"]
    a = summary["a"]
    assert (a["label"], a["size"]) == ("A", 7)
    assert a["gap"] == pytest.approx(
        {"mean": 0.6, "min": 0.5, "max": 0.7, "half_range": 0.1, "std": math.sqrt(0.02)}
    )
    assert a["only_here"]["mean"] == 1.5
    assert summary["b"] == {"label": "B", "gap": None, "size": 3}  # a missing value: no summary
    assert exp.describe([2.0]) == {"mean": 2.0, "min": 2.0, "max": 2.0, "half_range": 0.0, "std": 0}
    assert exp.describe([]) is None
    assert exp.format_pm(a["gap"], 3) == "0.600 ± 0.100" and exp.format_pm(None, 3) == "n/a"
    assert exp.format_mean(a["gap"], ".0%") == "60%" and exp.format_mean(None, ".1f") == "n/a"


def test_results_are_written_and_printed(tmp_path, capsys):
    exp.write_results(
        str(tmp_path), {"b": 1, "a": [0.5]}, "| x |\n|---|\n| 1 |\n", 0.0, ["/p/f.png"]
    )
    assert json.loads((tmp_path / "results.json").read_text()) == {"a": [0.5], "b": 1}
    assert (tmp_path / "results.md").read_text() == "| x |\n|---|\n| 1 |\n"
    out = capsys.readouterr().out
    assert "| x |" in out and f"Results: {tmp_path / 'results.json'}, results.md, f.png" in out
