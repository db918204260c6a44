"""The README's main command: the demo trains a teacher and 6-frame students (plain, distilled,
SAKD) on synthetic data, exports the best student, predicts from the export and plots."""

import json
import os
import subprocess
import sys

import pytest
from conftest import has_row, markdown_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_demo_trains_exports_predicts_and_plots(tmp_path):
    work_dir, data_dir = tmp_path / "runs", tmp_path / "data"
    result = subprocess.run(
        [
            sys.executable,
            "launchers/demo.py",
            f"--work_dir={work_dir}",
            f"--data_dir={data_dir}",
            "--max_steps=300",
            "--train_videos=1024",
            "--eval_videos=256",
            "--noprogress_bar",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [
        "model",
        "frames",
        "GAP",
        "mAP",
        "Hit@1",
        "PERR",
        "trainable params",
        "GFLOPs/video",
        "steps",
        "time s",
    ] in markdown_rows(result.stdout)
    assert has_row(result.stdout, "teacher (all frames)", "300")
    assert has_row(result.stdout, "plain student (k=6)", "6")
    assert has_row(result.stdout, "distilled student (k=6)", "6")
    assert has_row(result.stdout, "SAKD student (k=6, 50%, from teacher)", "6")
    metrics = {
        name: json.loads((work_dir / name / "metrics.json").read_text())
        for name in ("teacher", "student_k6", "distilled_k6")
    }
    for m in metrics.values():
        assert m["step"] == 300
        assert m["eval"]["num_videos"] == 256
        assert m["bad_records"]["total"] == 0
    # The synthetic evidence sits in a few bursts of frames: 6 frames miss much of it.
    teacher_gap = metrics["teacher"]["eval"]["gap"]
    student_gap = metrics["student_k6"]["eval"]["gap"]
    assert teacher_gap > student_gap + 0.1, (teacher_gap, student_gap)
    # The distilled student trained on every loss component, from the teacher cache, with its
    # preset's loss weights.
    flags_txt = (work_dir / "distilled_k6" / "flags.txt").read_text().splitlines()
    assert "--w_pred=1.0" in flags_txt and "--w_rep=0.05" in flags_txt
    assert f"--teacher_cache={work_dir / 'teacher_cache'}" in flags_txt
    assert f"--teacher_checkpoint={work_dir / 'teacher' / 'checkpoints' / 'ckpt-300'}" in flags_txt
    train = metrics["distilled_k6"]["train"]
    assert train["l_pred"] > 0 and train["l_rep"] > 0 and train["distill_loss"] > 0
    assert (
        json.loads((work_dir / "teacher_cache" / "teacher_cache.json").read_text())["num_videos"]
        == 1024
    )
    assert metrics["student_k6"]["model"]["gflops_per_video"] < (
        metrics["teacher"]["model"]["gflops_per_video"] / 10
    )
    # SAKD: the others' step budget over epochs of half the videos, with its selections.
    sakd = json.loads((work_dir / "sakd_k6" / "metrics.json").read_text())
    assert sakd["step"] == (300 // 16) * 16  # 512 selected videos / 32 per batch = 16 steps
    assert (work_dir / "sakd_k6" / "sakd" / "selection_epoch0000.txt").exists()
    # ... fine-tuned from the demo teacher's weights, at the teacher's last checkpoint.
    sakd_flags = (work_dir / "sakd_k6" / "flags.txt").read_text().splitlines()
    assert f"--init_from_run={work_dir / 'teacher'}" in sakd_flags
    assert sakd["init_from"]["run_dir"] == str(work_dir / "teacher")
    assert sakd["init_from"]["source_step"] == 300
    # The best student's SavedModel, and its predictions of every held-out video.
    gaps = {
        name: json.loads((work_dir / name / "metrics.json").read_text())["eval"]["gap"]
        for name in ("student_k6", "distilled_k6", "sakd_k6")
    }
    best = max(gaps, key=gaps.get)
    export_info = json.loads((work_dir / "export" / "yt8m_kd_export.json").read_text())
    assert os.path.samefile(export_info["run_dir"], work_dir / best)
    rows = (work_dir / "predictions.csv").read_text().splitlines()
    assert rows[0] == "VideoId,LabelConfidencePairs" and len(rows) == 1 + 256
    assert len(rows[1].split(",")[1].split()) == 2 * 20
    for name in ("gap_vs_step", "train_losses", "gap_vs_gflops"):
        for ext in ("png", "svg"):
            assert (work_dir / "plots" / f"{name}.{ext}").stat().st_size > 1000


def test_demo_sakd_student_starts_from_the_demo_teacher(tmp_path):
    """The demo's run list, without training: the SAKD student is fine-tuned from the teacher's
    run directory (trained first), the other runs start from random weights."""
    code = (
        "import json, sys\n"
        "sys.path.insert(0, 'launchers')\n"
        "import demo\n"
        "specs = demo.run_specs(sys.argv[1], ('train-*', 'validate-*'), max_steps=300,\n"
        "                       train_videos=1024, seed=0, progress_bar=False)\n"
        "print(json.dumps([\n"
        "    {'name': s.name, 'label': s.title, 'teacher': s.teacher, 'run_dir': s.run_dir,\n"
        "     'init_from_run': s.config(teacher_cache='cache').train.init_from_run}\n"
        "    for s in specs]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    specs = {spec["name"]: spec for spec in json.loads(result.stdout.splitlines()[-1])}
    assert list(specs) == ["teacher", "student_k6", "distilled_k6", "sakd_k6"]
    assert specs["sakd_k6"]["init_from_run"] == specs["teacher"]["run_dir"]
    assert specs["teacher"]["run_dir"] == str(tmp_path / "teacher")
    assert specs["sakd_k6"]["teacher"] == "teacher"
    assert specs["sakd_k6"]["label"] == "SAKD student (k=6, 50%, from teacher)"
    for name in ("teacher", "student_k6", "distilled_k6"):
        assert specs[name]["init_from_run"] is None
