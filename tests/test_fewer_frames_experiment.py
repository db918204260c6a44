"""launchers/fewer_frames_experiment.py: teacher, plain and distilled students over seeds, results
files and plots, and a rerun that reuses every finished run."""

import json
import time

import pytest
from conftest import has_row, markdown_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODELS = ["teacher", "plain_k6", "distilled_k6"]


def tiny_args(tmp_path, *extra):
    return [
        f"--work_dir={tmp_path / 'runs'}",
        f"--data_dir={tmp_path / 'data'}",
        "--seeds=0,1",
        "--ks=6",
        "--max_steps=20",
        "--eval_every_steps=10",
        "--train_videos=128",
        "--eval_videos=64",
        "--noprogress_bar",
        *extra,
    ]


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--ks=0", "flag --ks=0: every value must be >= 1"),
        ("--ks=6,400", "--ks: k=400 is more than the 300 frames kept"),
        ("--seeds=0,0", "flag --seeds=0,0: repeats a value"),
        ("--w_pred=-1", "flag --w_pred=-1: -1.0 is not a non-negative number"),
        ("--train_videos=100", "--train_videos=100 must be a positive multiple of 8"),
    ],
)
def test_bad_flags_fail_in_one_line(launcher, tmp_path, flag, message):
    result = launcher.run("fewer_frames_experiment.py", *tiny_args(tmp_path, flag))
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == (f"fewer_frames_experiment.py: error: {message}")
    assert not (tmp_path / "data").exists()  # stopped before any work


@pytest.mark.slow
def test_experiment_end_to_end_and_resumed(launcher, tmp_path):
    work_dir = tmp_path / "runs"
    started = time.perf_counter()
    first = launcher.run("fewer_frames_experiment.py", *tiny_args(tmp_path), timeout=900)
    first_s = time.perf_counter() - started
    assert first.returncode == 0, first.stderr[-3000:]

    results = json.loads((work_dir / "results.json").read_text())
    assert results["models"] == MODELS
    assert sorted(results["per_seed"]) == ["0", "1"]
    for seed, runs in results["per_seed"].items():
        assert sorted(runs) == sorted(MODELS)
        for name, run in runs.items():
            for metric in ("gap", "map", "hit_at_one", "perr"):
                assert 0.0 <= run[metric] <= 1.0, (seed, name, metric)
            assert run["step"] == 20
            assert [e["step"] for e in run["eval_history"]] == [10, 20]
            assert run["eval_history"][-1]["gap"] == run["gap"]  # the final evaluation
            assert run["inference_ms_per_video"] > 0
            assert run["train_wall_s"] > 0
            assert run["resumed_from_step"] == 0
            assert run["frames"] == (300 if name == "teacher" else 6)
        assert runs["teacher"]["teacher_cache_wall_s"] > 0
        # Same architecture; the student's cost is that of 6 of the 300 frames (plus fixed parts).
        assert runs["plain_k6"]["trainable_params"] == runs["teacher"]["trainable_params"]
        assert runs["plain_k6"]["gflops_per_video"] < runs["teacher"]["gflops_per_video"] / 10
        assert runs["distilled_k6"]["gflops_per_video"] == runs["plain_k6"]["gflops_per_video"]
        assert (work_dir / f"seed{seed}" / "teacher_cache" / "teacher_cache.json").exists()

    gaps = {name: [results["per_seed"][s][name]["gap"] for s in ("0", "1")] for name in MODELS}
    for name in MODELS:
        gap = results["summary"][name]["gap"]
        assert gap["mean"] == pytest.approx(sum(gaps[name]) / 2)
        assert (gap["min"], gap["max"]) == (min(gaps[name]), max(gaps[name]))
        assert gap["std"] == pytest.approx(abs(gaps[name][0] - gaps[name][1]) / 2**0.5)
    gain = results["distilled_minus_plain"]["6"]
    for i, seed in enumerate(("0", "1")):
        assert gain["per_seed"][seed] == pytest.approx(
            gaps["distilled_k6"][i] - gaps["plain_k6"][i]
        )
    assert gain["mean"] == pytest.approx(sum(gain["per_seed"].values()) / 2)

    table = (work_dir / "results.md").read_text()
    header = ["model", "frames", "GAP", "mAP", "Hit@1", "trainable params", "GFLOPs/video"]
    assert header + ["inference ms/video", "train wall s"] in markdown_rows(table)
    for row in (("teacher (all frames)", "300"), ("plain k=6", "6"), ("distilled k=6", "6")):
        assert has_row(table, *row)
        assert has_row(first.stdout, *row)  # the table is printed too
    assert ["k", "seed 0", "seed 1", "mean"] in markdown_rows(table)
    assert has_row(table, "6")
    for stem in ("gap_vs_step", "gap_vs_gflops"):
        assert (work_dir / f"{stem}.png").read_bytes()[:8] == PNG_MAGIC
        assert "<svg" in (work_dir / f"{stem}.svg").read_text()

    # A second invocation trains nothing, caches nothing, times nothing: same results, fast.
    outputs = {name: (work_dir / name).read_bytes() for name in ("results.json", "results.md")}
    started = time.perf_counter()
    second = launcher.run("fewer_frames_experiment.py", *tiny_args(tmp_path), timeout=300)
    second_s = time.perf_counter() - started
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("finished already (step 20), reused") == 6
    assert second.stderr.count("teacher cache of") == 2
    assert "inference timed" not in second.stderr  # read back, not measured again
    for name, content in outputs.items():
        assert (work_dir / name).read_bytes() == content
    assert second_s < first_s / 2, (first_s, second_s)

    # Runs trained with other flags are not silently reused for a different experiment.
    third = launcher.run(
        "fewer_frames_experiment.py", *tiny_args(tmp_path, "--w_pred=0.1"), timeout=300
    )
    assert third.returncode == 1
    refused = launcher.last_stderr_line(third)
    assert refused.startswith(f"fewer_frames_experiment.py: error: {work_dir}/seed0/distilled_k6 ")
    assert "holds a run with other flags" in refused and "distill.weights" in refused
