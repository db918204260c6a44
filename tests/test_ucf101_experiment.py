"""launchers/ucf101_experiment.py: the synthetic set is made, every model trained per seed, the
results files and plots written; a rerun reuses every finished run; runs of other flags stop it."""

from __future__ import annotations

import json

import pytest
from conftest import has_row, markdown_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ["teacher", "student", "kd", "sakd", "sakd_same_steps"]


def tiny_args(tmp_path, *extra):
    # 8 classes x 3 groups x 2 clips: split 1 trains on 32 clips (2 steps an epoch at batch 16)
    # and tests on 16; SAKD selects 16 (1 step an epoch).
    return [
        f"--work_dir={tmp_path / 'runs'}",
        f"--data_dir={tmp_path / 'data'}",
        "--seeds=0,1",
        "--num_groups=3",
        "--clips_per_group=2",
        "--teacher_steps=4",
        "--student_epochs=2",
        "--eval_every_steps=3",
        "--noprogress_bar",
        *extra,
    ]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--seeds=0,0", "flag --seeds=0,0: repeats a value"),
        ("--seeds=a", "flag --seeds=a: must be integers"),
        ("--sakd_budgets=epochs,time", "flag --sakd_budgets=epochs,time: 'time' is not one of "),
        ("--sakd_budgets=steps,steps", "flag --sakd_budgets=steps,steps: repeats a value"),
        ("--num_groups=2", "flag --num_groups=2: 2 is not integer >= 3"),
        ("--student_epochs=0", "flag --student_epochs=0: 0 is not a positive integer"),
        ("--init=student", "flag --init=student: 'student' is not one of scratch, teacher"),
        ("--init=", "flag --init=[]: names no initialisation"),
        ("--settings=sakd_r10_i5", "flag --settings=['sakd_r10_i5']: must include kd"),
        ("--settings=kd,sakd_r10_i5_balanced", "flag --settings=kd,sakd_r10_i5_balanced: "),
    ],
)
def test_bad_flags_fail_in_one_line(launcher, tmp_path, flag, message):
    result = launcher.run("ucf101_experiment.py", *tiny_args(tmp_path, flag))
    assert result.returncode == 1
    assert launcher.last_stderr_line(result).startswith(f"ucf101_experiment.py: error: {message}")
    assert not (tmp_path / "data").exists()  # stopped before any work


def test_a_data_dir_it_did_not_make_is_not_touched(launcher, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("someone else's")
    result = launcher.run("ucf101_experiment.py", *tiny_args(tmp_path))
    assert result.returncode == 1
    assert "holds files but no synthetic.json" in launcher.last_stderr_line(result)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_experiment_end_to_end_and_resumed(launcher, tmp_path):
    work_dir, data_dir = tmp_path / "runs", tmp_path / "data"
    first = launcher.run("ucf101_experiment.py", *tiny_args(tmp_path), timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]

    manifest = json.loads((data_dir / "synthetic.json").read_text())
    assert manifest["complete"] and (manifest["train_videos"], manifest["test_videos"]) == (32, 16)
    assert len(list(data_dir.glob("records/trainlist01-*.tfrecord"))) == 4
    assert len(list(data_dir.glob("records/testlist01-*.tfrecord"))) == 4

    results = json.loads((work_dir / "results.json").read_text())
    assert results["models"] == MODELS
    budget = results["config"]["budget"]
    assert (budget["steps_per_epoch"], budget["student_steps"]) == (2, 4)
    assert (budget["sakd_selected"], budget["sakd_steps_per_epoch"]) == (16, 1)
    expected_steps = {"teacher": 4, "student": 4, "kd": 4, "sakd": 2, "sakd_same_steps": 4}
    for seed, runs in results["per_seed"].items():
        assert sorted(runs) == sorted(MODELS)
        for name, run in runs.items():
            for metric in ("top1", "top5", "mean_class_accuracy"):
                assert 0.0 <= run[metric] <= 1.0, (seed, name, metric)
            assert run["num_eval_videos"] == 16
            assert len(run["per_class_accuracy"]) == 8
            assert run["steps"] == expected_steps[name], (seed, name)
            assert run["train_s"] > 0, (seed, name)
            assert run["resumed_from_step"] == 0, (seed, name)
            assert run["trainable_params"] > 0 and run["gflops_per_video"] > 0
            # Periodic evaluations (every 3 steps) only for the first seed, which is plotted.
            history = [e["step"] for e in run["eval_history"]]
            assert history[-1] == run["steps"], (seed, name)  # the final evaluation
            assert run["periodic_evals"] == len(history) - 1, (seed, name)
            if seed == "1":
                assert history == [run["steps"]], name
            elif name in ("teacher", "student", "kd"):
                assert history == [3, 4], name
        assert runs["teacher"]["frames"] == 8 and runs["student"]["frames"] == 2
        assert runs["kd"]["gflops_per_video"] == runs["student"]["gflops_per_video"]
        assert runs["teacher"]["gflops_per_video"] > 3 * runs["student"]["gflops_per_video"]
        # SAKD: KD's 2 epochs over 16 clips, or as many steps as KD over them (4 epochs).
        assert (runs["sakd"]["epochs"], runs["sakd_same_steps"]["epochs"]) == (2, 4)
        for name in ("sakd", "sakd_same_steps"):
            assert runs[name]["samples_per_epoch"] == 16
            assert runs[name]["difficulty_pass_s"] > 0
            assert runs[name]["difficulty_passes"] == 1  # a selection every 5 epochs
            assert (work_dir / f"seed{seed}" / name / "sakd" / "selection_epoch0000.txt").exists()
        assert runs["student"]["minus_student_top1"] == 0.0
    summary = results["summary"]
    tops = [results["per_seed"][s]["kd"]["top1"] for s in ("0", "1")]
    assert summary["kd"]["top1"]["mean"] == pytest.approx(sum(tops) / 2)
    assert summary["kd"]["top1"]["half_range"] == pytest.approx(abs(tops[0] - tops[1]) / 2)

    table = (work_dir / "results.md").read_text()
    header = ["model", "frames", "top-1", "top-5", "mean class acc.", "steps", "epochs"]
    assert header + ["train s", "s/epoch", "params", "GFLOPs/video"] in markdown_rows(table)
    for row in (("teacher", "8"), ("plain student", "2"), ("KD student", "2")):
        assert has_row(table, *row) and has_row(first.stdout, *row)
    assert ["model", "seed 0", "seed 1", "mean − student"] in markdown_rows(table)
    assert has_row(table, "SAKD, KD's epochs", "16", "2", "2", "1")
    assert has_row(table, "SAKD, KD's steps", "16", "4", "4", "1")
    assert ["class", "training clips", "SAKD, KD's epochs", "SAKD, KD's steps"] in markdown_rows(
        table
    )
    assert sum(has_row(table, name) for name in results["config"]["class_names"]) == 8
    for stem in ("top1_vs_step", "train_losses", "top1_vs_gflops"):
        assert (work_dir / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC
        assert "<svg" in (work_dir / f"{stem}.svg").read_text()

    # A second invocation reuses the data, every run and cache: the same results.
    before = (work_dir / "results.json").read_bytes()
    second = launcher.run("ucf101_experiment.py", *tiny_args(tmp_path), timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("finished already") == 2 * len(MODELS)
    assert "writing the synthetic UCF101 set" not in second.stderr
    assert (work_dir / "results.json").read_bytes() == before

    # A teacher without its metrics.json resumes from its checkpoint (at its last step: it is
    # evaluated again); its cache, made from that checkpoint, and the students are reused.
    (work_dir / "seed1" / "teacher" / "metrics.json").unlink()
    third = launcher.run("ucf101_experiment.py", *tiny_args(tmp_path), timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"{work_dir}/seed1/teacher/checkpoints/ckpt-4: resuming at step 4" in third.stderr
    assert f"{work_dir}/seed1/teacher_cache: teacher cache of " in third.stderr
    assert third.stderr.count("finished already") == 2 * len(MODELS) - 1
    again = json.loads((work_dir / "results.json").read_text())
    teacher, before_teacher = again["per_seed"]["1"]["teacher"], results["per_seed"]["1"]["teacher"]
    assert (teacher["resumed_from_step"], teacher["steps"], teacher["periodic_evals"]) == (4, 4, 0)
    assert teacher["top1"] == before_teacher["top1"]
    assert again["per_seed"]["0"] == results["per_seed"]["0"]

    # A run that trained longer than this invocation asks is not silently reused.
    fourth = launcher.run(
        "ucf101_experiment.py", *tiny_args(tmp_path, "--student_epochs=1"), timeout=300
    )
    assert fourth.returncode == 1
    assert launcher.last_stderr_line(fourth) == (
        f"ucf101_experiment.py: error: {work_dir}/seed0/student trained to step 4 already, "
        "beyond --max_steps=2"
    )


def test_students_fine_tuned_from_the_teacher(launcher, tmp_path):
    """--init=teacher: KD and SAKD start from the seed's teacher run (init_from in metrics.json),
    in their own directories; results compare them with KD and the time-to-top-1 plot exists."""
    work_dir = tmp_path / "runs"
    args = tiny_args(tmp_path, "--seeds=0", "--init=teacher", "--settings=kd,sakd_r50_i5")
    result = launcher.run("ucf101_experiment.py", *args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    seed = work_dir / "seed0"
    assert sorted(p.name for p in (seed / "from_teacher").iterdir()) == ["kd", "sakd_r50_i5"]
    assert not (seed / "student").exists() and not (seed / "kd").exists()  # no scratch runs
    teacher = str(seed / "teacher")
    for name in ("kd", "sakd_r50_i5"):
        metrics = json.loads((seed / "from_teacher" / name / "metrics.json").read_text())
        assert metrics["init_from"]["run_dir"] == teacher, name
        assert metrics["init_from"]["source_step"] == 4, name
        assert (
            f"--init_from_run={teacher}" in (seed / "from_teacher" / name / "flags.txt").read_text()
        )

    results = json.loads((work_dir / "results.json").read_text())
    assert results["models"] == ["teacher", "from_teacher/kd", "from_teacher/sakd_r50_i5"]
    runs = results["per_seed"]["0"]
    kd, sakd = runs["from_teacher/kd"], runs["from_teacher/sakd_r50_i5"]
    assert kd["init_from"]["run_dir"] == teacher
    assert (kd["steps"], sakd["steps"], sakd["epochs"]) == (4, 2, 2)  # equal epochs: 2 of 32, of 16
    assert kd["speedup_vs_kd"] == 1.0 and kd["top1_minus_kd"] == 0.0
    assert sakd["speedup_vs_kd"] == pytest.approx(kd["train_s"] / sakd["train_s"])
    assert sakd["top1_minus_kd"] == pytest.approx(sakd["top1"] - kd["top1"])
    goal = results["goal"]["from_teacher/sakd_r50_i5"]
    assert goal["reached"] == (goal["top1_minus_kd"] >= -0.01 and goal["speedup_vs_kd"] >= 2)
    summary = results["summary"]["from_teacher/sakd_r50_i5"]
    assert (summary["init"], summary["setting"]) == ("teacher", "sakd_r50_i5")

    table = (work_dir / "results.md").read_text()
    header = ["init", "setting", "top-1", "top-5", "steps", "train s", "speed-up vs KD"]
    assert header + ["top-1 − KD", "goal"] in markdown_rows(table)
    assert has_row(table, "teacher", "kd") and has_row(table, "teacher", "sakd_r50_i5")
    assert (work_dir / "time_to_top1.png").read_bytes()[:8] == PNG_MAGIC
    assert "<svg" in (work_dir / "time_to_top1.svg").read_text()
