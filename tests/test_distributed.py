"""MirroredStrategy over two logical CPUs trains exactly like one device on the same global batches."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import mirrored_vs_one_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(tmp_path, tiny_yt8m):
    steps = 8
    report = mirrored_vs_one_device(tiny_yt8m.root, steps, tmp_path / "runs")
    assert report["replicas"] == [1, 2]
    assert report["steps"] == [steps, steps]
    assert report["initial_diff"] == 0.0
    # Every weight, batch-norm statistics included, agrees to float32 round-off (sums in another
    # order). Per-replica batch-norm statistics instead would leave a difference near 0.07 here.
    assert report["final_diff"] < 1e-4
    assert report["max_update"] > 1e-2  # the weights did move


def free_port_base(count: int) -> int:
    """A port p such that p .. p + count - 1 were free a moment ago."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            base = s.getsockname()[1]
        if base + count < 65535 and all(_port_free(base + i) for i in range(1, count)):
            return base
    raise RuntimeError("no free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("localhost", port)) != 0


@pytest.mark.slow
def test_two_multi_worker_processes_train_the_same_model(tmp_path, tiny_yt8m, tiny_train_args):
    run_dir = tmp_path / "run"
    env = dict(os.environ, BASE_PORT=str(free_port_base(2)))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    result = subprocess.run(
        [
            "bash",
            "launchers/multi_worker.sh",
            "2",
            *tiny_train_args,
            f"--train_data_pattern={tiny_yt8m.train_pattern}",
            f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
            f"--run_dir={run_dir}",
            "--max_steps=6",
            "--checkpoint_every_steps=3",
            # 32 videos in 11 batches of 3, one per replica: worker 1 gets an empty last batch.
            "--eval_batch_size=6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Each worker prints its final evaluation: identical weights give identical metrics.
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 2
    assert reports[0] == reports[1]
    assert reports[0]["step"] == 6
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["eval"]["gap"] == reports[0]["eval"]["gap"]
    assert (run_dir / "checkpoints" / "ckpt-6.index").exists()
    assert not (run_dir / "tmp" / "worker_1").exists()  # the other worker's copies are gone
    # The workers evaluated their shares; their metrics are those of one device, every video once.
    one_device = subprocess.run(
        [
            sys.executable,
            "launchers/evaluate.py",
            f"--run_dir={run_dir}",
            "--eval_batch_size=6",
            f"--output_json={tmp_path / 'one_device.json'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert one_device.returncode == 0, one_device.stderr[-2000:]
    expected = json.loads((tmp_path / "one_device.json").read_text())["eval"]
    assert expected["num_videos"] == 32
    for name, value in expected.items():
        assert metrics["eval"][name] == pytest.approx(value, abs=1e-9), name
