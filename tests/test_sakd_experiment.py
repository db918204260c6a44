"""launchers/sakd_experiment.py: vanilla distillation against five SAKD settings from one teacher
cache, students from scratch or initialised from another run (--init), results files and the
time-to-GAP plot; and the SAKD presets of models/."""

import dataclasses
import json

import pytest
from conftest import REPO_ROOT, has_row, markdown_rows

from yt8m_kd import flags as yflags
from yt8m_kd.configs import FlagError, SAKDConfig

SETTINGS = [
    "vanilla",
    "sakd_r10_i1",
    "sakd_r10_i5",
    "sakd_r50_i1",
    "sakd_r50_i5",
    "sakd_r10_i5_balanced",
]


def tiny_args(tmp_path, *extra):
    return [
        f"--work_dir={tmp_path / 'runs'}",
        f"--data_dir={tmp_path / 'data'}",
        f"--teacher_work_dir={tmp_path / 'teachers'}",
        "--seeds=0",
        "--num_epochs=2",
        "--teacher_steps=20",
        "--train_videos=128",
        "--eval_videos=64",
        "--noprogress_bar",
        *extra,
    ]


@pytest.mark.parametrize(
    "preset, base",
    [("tiny_sakd_k6.flags", "tiny_distilled_k6.flags"), ("sakd_k6.flags", "distilled_k6.flags")],
)
def test_presets_give_the_spec_sakd_config(preset, base):
    with pytest.raises(FlagError, match="--teacher_cache"):
        yflags.read_flagfile(str(REPO_ROOT / "models" / preset))  # the cache is given apart
    config = yflags.read_flagfile(str(REPO_ROOT / "models" / preset), teacher_cache="/c")
    assert config.num_epochs == 10
    assert config.sakd == SAKDConfig(
        ratio=0.1,
        selection_interval=5,
        schedule="polynomial",
        eta=0.5,
        memory=0.1,
        gamma=0.5,
        mapping="paper",
    )
    assert config.sakd == SAKDConfig(ratio=0.1, selection_interval=5)
    # Self-contained: everything else is the distilled preset it extends.
    distilled = yflags.read_flagfile(str(REPO_ROOT / "models" / base), teacher_cache="/c")
    assert dataclasses.replace(config, sakd=None) == distilled


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--num_epochs=0", "flag --num_epochs=0: 0 is not a positive integer"),
        ("--seeds=0,0", "flag --seeds=0,0: repeats a value"),
        ("--temperature=0", "flag --temperature=0.0: must be positive"),
        ("--eval_videos=30", "--eval_videos=30 must be a positive multiple of 4"),
        (
            "--init=pretrained",
            "flag --init=pretrained: 'pretrained' is not one of scratch, teacher, student",
        ),
        ("--init=", "flag --init=[]: names no initialisation"),
        ("--settings=sakd_r10_i5", "flag --settings=['sakd_r10_i5']: must include vanilla"),
    ],
)
def test_bad_flags_fail_in_one_line(launcher, tmp_path, flag, message):
    result = launcher.run("sakd_experiment.py", *tiny_args(tmp_path, flag))
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == f"sakd_experiment.py: error: {message}"
    assert not (tmp_path / "data").exists()  # stopped before any work


@pytest.mark.slow
def test_experiment_end_to_end_and_reused(launcher, tmp_path):
    work_dir = tmp_path / "runs"
    first = launcher.run("sakd_experiment.py", *tiny_args(tmp_path), timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    # The teacher and its cache were made in the teacher work dir.
    assert (tmp_path / "teachers" / "seed0" / "teacher" / "metrics.json").exists()
    assert (tmp_path / "teachers" / "seed0" / "teacher_cache" / "teacher_cache.json").exists()

    results = json.loads((work_dir / "results.json").read_text())
    assert results["settings"] == SETTINGS
    runs = results["per_seed"]["0"]
    assert sorted(runs) == sorted(SETTINGS)
    for name, run in runs.items():
        for metric in ("gap", "map", "hit_at_one", "perr"):
            assert 0.0 <= run[metric] <= 1.0, (name, metric)
        assert run["seconds_per_epoch"] > 0 and run["train_seconds_per_epoch"] > 0, name
        assert run["wall_s"] > 0 and run["steps"] > 0, name
        assert 0.0 <= run["difficulty_pass_fraction_of_wall"] < 1.0, name
        assert run["resumed_from_step"] == 0, name
        assert run["init_from"] is None, name  # --init=scratch, the default
    # Vanilla: two epochs over all 128 samples at batch 32.
    assert runs["vanilla"]["steps"] == 2 * (128 // 32)
    assert runs["vanilla"]["difficulty_passes"] == 0
    # SAKD: 13 or 64 selected samples per epoch; a pass every epoch (i1) or only at epoch 0 (i5).
    for name, selected, passes in (
        ("sakd_r10_i1", 13, 2),
        ("sakd_r10_i5", 13, 1),
        ("sakd_r50_i1", 64, 2),
        ("sakd_r50_i5", 64, 1),
        ("sakd_r10_i5_balanced", 13, 1),
    ):
        run = runs[name]
        assert run["samples_per_epoch"] == selected, name
        assert run["steps"] == 2 * max(1, selected // 32), name
        assert run["difficulty_passes"] == passes, name
        assert run["difficulty_pass_seconds"] > 0, name
        assert run["seconds_per_epoch"] >= run["train_seconds_per_epoch"], name
    assert runs["sakd_r10_i1"]["steps"] < runs["vanilla"]["steps"]
    assert runs["sakd_r10_i5"]["steps"] < runs["vanilla"]["steps"]
    summary = results["summary"]
    assert summary["vanilla"]["speedup_vs_vanilla"]["mean"] == pytest.approx(1.0)
    assert summary["sakd_r10_i5"]["gap"]["mean"] == runs["sakd_r10_i5"]["gap"]

    # The balanced setting passes --sakd_class_balance, the others do not.
    assert "--sakd_class_balance" in flags_of(work_dir / "seed0" / "sakd_r10_i5_balanced")
    assert "--nosakd_class_balance" in flags_of(work_dir / "seed0" / "sakd_r10_i5")
    assert results["summary"]["sakd_r10_i5_balanced"]["class_balance"] is True

    table = (work_dir / "results.md").read_text()
    assert (work_dir / "time_to_gap.png").read_bytes()[:4] == b"\x89PNG"
    assert [
        "init",
        "setting",
        "samples/epoch",
        "GAP",
        "mAP",
        "Hit@1",
        "steps",
        "train wall s",
        "s/epoch (amortised)",
        "train s/epoch",
        "pass share",
        "speed-up vs vanilla",
    ] in markdown_rows(table)
    for row in (
        ("vanilla KD, all samples", "128"),
        ("SAKD r=10%, re-select every epoch", "13"),
        ("SAKD r=10%, re-select every 5 epochs", "13"),
        ("SAKD r=50%, re-select every epoch", "64"),
        ("SAKD r=50%, re-select every 5 epochs", "64"),
        ("SAKD r=10%, re-select every 5 epochs, class-balanced", "13"),
    ):
        assert has_row(table, "scratch", *row)
        assert has_row(first.stdout, "scratch", *row)  # the table is printed too

    # A second invocation reuses the teacher, its cache and every run: the same results.
    before = (work_dir / "results.json").read_bytes()
    second = launcher.run("sakd_experiment.py", *tiny_args(tmp_path), timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    teacher_dir = tmp_path / "teachers" / "seed0" / "teacher"
    assert f"{teacher_dir}: finished already (step 20), reused" in second.stderr
    assert second.stderr.count("finished already") == 1 + len(SETTINGS)
    assert "teacher cache of" in second.stderr
    assert (work_dir / "results.json").read_bytes() == before


def flags_of(run_dir):
    return (run_dir / "flags.txt").read_text().splitlines()


@pytest.mark.slow
def test_students_start_from_the_teacher_or_a_plain_student(launcher, tmp_path):
    work_dir = tmp_path / "runs"
    chosen = ["vanilla", "sakd_r10_i5"]  # --settings: 4 runs and the plain student, not 14
    args = tiny_args(tmp_path, "--init=teacher,student", f"--settings={','.join(chosen)}")
    result = launcher.run("sakd_experiment.py", *args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    seed_dir, teacher_dir = work_dir / "seed0", tmp_path / "teachers" / "seed0" / "teacher"
    # The plain student the --init=student runs start from: labels only, vanilla's steps.
    plain = json.loads((seed_dir / "student_k6" / "metrics.json").read_text())
    assert plain["step"] == 2 * (128 // 32) and "init_from" not in plain

    results = json.loads((work_dir / "results.json").read_text())
    assert results["config"]["init"] == ["teacher", "student"]
    assert results["settings"] == chosen
    runs = results["per_seed"]["0"]
    assert sorted(runs) == sorted(f"from_{i}/{s}" for i in ("teacher", "student") for s in chosen)
    for init, source in (("teacher", teacher_dir), ("student", seed_dir / "student_k6")):
        for setting in chosen:
            run_dir = seed_dir / f"from_{init}" / setting
            assert f"--init_from_run={source}" in flags_of(run_dir), (init, setting)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert metrics["init_from"]["run_dir"] == str(source)
            assert runs[f"from_{init}/{setting}"]["init_from"] == metrics["init_from"]
        goal = results["goal"][init]
        assert goal["setting"] == f"from_{init}/sakd_r10_i5"
        assert goal["reached"] == (
            goal["gap_minus_vanilla"] >= -0.005 and goal["speedup_vs_vanilla"] >= 3
        )
    assert set(results["plain_student"]["per_seed"]) == {"0"}
    # No run from scratch was made; the plot and the table cover both inits.
    assert not (seed_dir / "vanilla").exists()
    assert (work_dir / "time_to_gap.png").read_bytes()[:4] == b"\x89PNG"
    table = (work_dir / "results.md").read_text()
    assert has_row(table, "teacher", "vanilla KD, all samples", "128")
    assert has_row(table, "student", "SAKD r=10%, re-select every 5 epochs", "13")
    assert "Goal (issue 14" in table
