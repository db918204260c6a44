"""Losing a worker of a MultiWorkerMirroredStrategy run (training/strategy.py, "Losing a worker").

The survivors exit within a bounded time with one line naming the lost worker and the checkpoint
to resume from (never a hang in a collective, never a traceback), and restarting all workers
resumes there, every worker from the chief's checkpoint. The end-to-end tests run 2 local worker
processes, as launchers/multi_worker.sh does; the messages are TensorFlow's as seen in them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from test_distributed import free_port_base

from yt8m_kd.configs import FlagError
from yt8m_kd.training import strategy as strategy_lib

ROOT = Path(__file__).resolve().parent.parent


class _FakeResolver:
    """What `describe_lost_worker` reads of a MultiWorkerMirroredStrategy's cluster resolver."""

    def __init__(self, jobs: dict):
        self._jobs = jobs

    def cluster_spec(self) -> tf.train.ClusterSpec:
        return tf.train.ClusterSpec(self._jobs)


class _FakeStrategy:
    def __init__(self, jobs: dict | None = None):
        self.cluster_resolver = _FakeResolver(jobs or {"worker": ["a:1", "b:2"]})


# What TensorFlow 2.21 raised in the survivors, measured with 2 local workers (abridged).
KILLED = (
    "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error "
    "information from remote target /job:worker/replica:0/task:1 while calling "
    "/tensorflow.WorkerService/RecvBuf:"
)
FROZEN = (
    "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks "
    "are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have "
    "crashed."
)
LEADER_LOST = (
    "Collective ops is aborted by: Deadline Exceeded\nRPC: /tensorflow.CoordinationService/"
    "Heartbeat\nThe error could be from a previous operation."
)
TIMED_OUT = (
    "Collective has timed out waiting for other workers.\n\t [[{{node CollectiveReduceV2}}]]"
)


@pytest.mark.parametrize(
    "error, expected",
    [
        (tf.errors.UnavailableError(None, None, KILLED), "worker 1 died (its connection closed)"),
        (
            tf.errors.UnavailableError(None, None, FROZEN),
            "worker 1 stopped responding (no heartbeat for 10 s)",
        ),
        (
            tf.errors.DeadlineExceededError(None, None, LEADER_LOST),
            "worker 0 stopped responding (it runs the coordination service, which this worker "
            "can no longer reach)",
        ),
        (
            tf.errors.DeadlineExceededError(None, None, TIMED_OUT),
            "a collective timed out waiting for the other workers (one is alive but stuck, or "
            "much slower)",
        ),
    ],
)
def test_lost_worker_is_named(error, expected):
    assert strategy_lib.describe_lost_worker(error, _FakeStrategy()) == expected
    assert strategy_lib.is_worker_failure(error, _FakeStrategy())


def test_the_chief_runs_the_coordination_service():
    error = tf.errors.DeadlineExceededError(None, None, LEADER_LOST)
    jobs = {"chief": ["a:1"], "worker": ["b:2"]}
    assert strategy_lib.describe_lost_worker(error, _FakeStrategy(jobs)).startswith("chief 0 ")


@pytest.mark.parametrize(
    "error",
    [
        tf.errors.UnavailableError(None, None, "gs://bucket/x: 503 Service Unavailable"),
        tf.errors.DeadlineExceededError(None, None, "reading gs://bucket/x timed out"),
        ValueError(KILLED),  # not a TensorFlow error
        None,
    ],
)
def test_other_errors_are_not_lost_workers(error):
    assert not strategy_lib.is_worker_failure(error, _FakeStrategy())


def test_a_single_process_never_loses_a_worker():
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert not strategy_lib.is_worker_failure(
        tf.errors.UnavailableError(None, None, KILLED), one_device
    )


def test_worker_failures_names_the_checkpoint_to_resume_from(tmp_path):
    checkpoint = tf.train.Checkpoint(v=tf.Variable(1.0))
    tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=2).save(checkpoint_number=40)
    with pytest.raises(strategy_lib.WorkerLostError) as raised:
        with strategy_lib.worker_failures(_FakeStrategy(), str(tmp_path)):
            raise tf.errors.UnavailableError(None, None, FROZEN)
    assert str(raised.value) == (
        "worker 1 stopped responding (no heartbeat for 10 s); restart all workers with the same "
        f"command: they resume from the last checkpoint (step 40, {tmp_path}/ckpt-40)"
    )
    with pytest.raises(
        strategy_lib.WorkerLostError, match="no checkpoint yet: they start from step 0"
    ):
        with strategy_lib.worker_failures(_FakeStrategy(), str(tmp_path / "none")):
            raise tf.errors.UnavailableError(None, None, KILLED)
    with pytest.raises(tf.errors.UnavailableError, match="503"):  # not ours: unchanged
        with strategy_lib.worker_failures(_FakeStrategy(), str(tmp_path)):
            raise tf.errors.UnavailableError(None, None, "503 Service Unavailable")


def test_workers_at_different_steps_are_refused():
    assert strategy_lib.steps_disagree([40, 40, 40, 40]) is None
    problem = strategy_lib.steps_disagree([40, 40, 0, 0])
    assert "restored different steps (40, 40, 0, 0, one per replica)" in problem
    assert "--run_dir must be on a file system that all workers share" in problem
    # a single process has nothing to compare
    strategy_lib.check_same_step(tf.distribute.OneDeviceStrategy("/cpu:0"), 7)
    assert issubclass(strategy_lib.WorkerLostError, RuntimeError)
    assert not issubclass(FlagError, strategy_lib.WorkerLostError)


# ------------------------------------------------------------------- 2 local worker processes
def _tf_config(ports: list[int], index: int) -> str:
    workers = [f"localhost:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _start_workers(command: list[str], logs: Path, name: str) -> list[subprocess.Popen]:
    """Starts 2 workers of `command` (a python script and its flags) with their TF_CONFIGs."""
    base = free_port_base(2)
    ports = [base, base + 1]
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=_tf_config(ports, index))
        workers.append(
            subprocess.Popen(
                [sys.executable, *command],
                cwd=ROOT,
                env=env,
                stdout=(logs / f"{name}{index}.out").open("w"),
                stderr=(logs / f"{name}{index}.err").open("w"),
            )
        )
    return workers


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _checkpoint_step(checkpoint_dir: Path) -> int:
    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _last_json(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])


@pytest.mark.slow
def test_collective_timeout_bounds_the_wait_for_a_stuck_worker(tmp_path):
    # Worker 1 is alive (heartbeating) but joins the all-reduce only after 15 s; worker 0 gives
    # up after the 3 s collective timeout. Without the timeout it would wait the 15 s and succeed.
    workers = _start_workers(
        ["tests/scripts/stuck_worker.py", "3", "15", str(tmp_path)], tmp_path, "stuck"
    )
    try:
        assert workers[0].wait(timeout=120) == 0, (tmp_path / "stuck0.err").read_text()[-3000:]
    finally:
        _stop(workers)
    report = _last_json(tmp_path / "stuck0.out")
    assert 2.5 < report["seconds"] < 12, report
    assert report["error"].startswith("a collective timed out waiting for the other workers")
    assert report["error"].endswith("there is no checkpoint yet: they start from step 0")


@pytest.mark.slow
def test_frozen_worker_stops_the_other_within_the_heartbeat_timeout(tmp_path):
    # SIGSTOP: worker 1 holds its sockets open but answers nothing, as a lost host or network
    # would. The 600 s collective timeout cannot fire here: only the heartbeats can end the wait.
    workers = _start_workers(
        ["tests/scripts/stuck_worker.py", "600", "60", str(tmp_path)], tmp_path, "frozen"
    )
    try:
        deadline = time.monotonic() + 90
        while "ready" not in (tmp_path / "frozen1.out").read_text():
            assert workers[1].poll() is None, (tmp_path / "frozen1.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "worker 1 did not start within 90 s"
            time.sleep(0.05)
        os.kill(workers[1].pid, signal.SIGSTOP)
        frozen = time.monotonic()
        assert workers[0].wait(timeout=90) == 0, (tmp_path / "frozen0.err").read_text()[-3000:]
        seconds = time.monotonic() - frozen
    finally:
        _stop(workers)  # SIGKILL ends a stopped process too
    print(f"worker 0 gave up {seconds:.1f} s after worker 1 froze")
    assert strategy_lib.HEARTBEAT_TIMEOUT_S - 1 < seconds < strategy_lib.HEARTBEAT_TIMEOUT_S + 30
    report = _last_json(tmp_path / "frozen0.out")
    assert report["error"] == (
        "worker 1 stopped responding (no heartbeat for 10 s); restart all workers with the same "
        "command: there is no checkpoint yet: they start from step 0"
    )


def _train_command(tiny_yt8m, tiny_train_args, run_dir: Path, max_steps: int) -> list[str]:
    return [
        "launchers/train.py",
        "--strategy=multi_worker",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        f"--max_steps={max_steps}",
        "--checkpoint_every_steps=2",
    ]


def _lose_worker_1(run_dir: Path, workers, how: signal.Signals, logs: Path) -> float:
    """Sends `how` to worker 1 once the chief has a checkpoint; returns how long worker 0 took
    to exit."""
    checkpoints = run_dir / "checkpoints"
    deadline = time.monotonic() + 150
    while _checkpoint_step(checkpoints) < 2:
        assert workers[0].poll() is None, (logs / "first0.err").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 150 s"
        time.sleep(0.05)
    os.kill(workers[1].pid, how)
    lost = time.monotonic()
    workers[0].wait(timeout=90)  # a hang fails here
    return time.monotonic() - lost


def _last_line(path: Path) -> str:
    return [line for line in path.read_text().splitlines() if line.strip()][-1]


@pytest.mark.slow
def test_killed_worker_stops_the_other_and_a_restart_resumes(tmp_path, tiny_yt8m, tiny_train_args):
    run_dir = tmp_path / "run"
    command = _train_command(tiny_yt8m, tiny_train_args, run_dir, 1000)
    workers = _start_workers(command, tmp_path, "first")
    try:
        seconds = _lose_worker_1(run_dir, workers, signal.SIGKILL, tmp_path)
    finally:
        _stop(workers)
    print(f"worker 0 exited {seconds:.1f} s after worker 1 was killed")
    assert workers[0].returncode == 1
    assert seconds < 30
    stderr = (tmp_path / "first0.err").read_text()
    assert "Traceback" not in stderr
    line = _last_line(tmp_path / "first0.err")
    found = re.fullmatch(
        r"train\.py: error: worker 1 died \(its connection closed\); restart all workers with "
        r"the same command: they resume from the last checkpoint \(step (\d+), (.*)\)",
        line,
    )
    assert found, line
    # Nothing was saved after the failed step: the latest checkpoint is a periodic one.
    step = int(found[1])
    assert step == _checkpoint_step(run_dir / "checkpoints") and step % 2 == 0
    assert found[2] == str(run_dir / "checkpoints" / f"ckpt-{step}")

    # Both workers restart and resume from the chief's checkpoint, whatever copies worker 1 had.
    workers = _start_workers(
        _train_command(tiny_yt8m, tiny_train_args, run_dir, step + 2), tmp_path, "again"
    )
    try:
        codes = [worker.wait(timeout=150) for worker in workers]
    finally:
        _stop(workers)
    for index in range(2):
        stderr = (tmp_path / f"again{index}.err").read_text()
        assert codes[index] == 0, stderr[-3000:]
        assert f"ckpt-{step}: resuming at step {step}" in stderr
        assert json.loads((tmp_path / f"again{index}.out").read_text())["step"] == step + 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == step
    assert metrics["step"] == step + 2
