"""--data_service (issue 12, item 7): the training pipeline run by a tf.data service cluster reads
every record once per epoch, exactly as the local pipeline reads it; what the service workers
cannot run is refused in one line; launchers/data_service.py starts and stops its servers."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, tiny_configs, tiny_run_config

from yt8m_kd import flags as yflags
from yt8m_kd.configs import FlagError
from yt8m_kd.data import data_service, videos, yt8m
from yt8m_kd.data.synthetic import make_example
from yt8m_kd.training import runs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.loop import Trainer

BATCH = 4


@pytest.fixture(scope="module")
def service() -> str:
    """An in-process dispatcher and two in-process workers; the dispatcher's address."""
    service_lib = tf.data.experimental.service
    # A job its client has left (a trainer's endless one) is dropped within a second, so that
    # the workers stop at the end in no time.
    dispatcher = service_lib.DispatchServer(
        service_lib.DispatcherConfig(port=0, job_gc_check_interval_ms=500, job_gc_timeout_ms=500)
    )
    address = dispatcher.target.split("://")[1]
    workers = [
        service_lib.WorkerServer(
            # Frequent heartbeats: a worker hears of a new job sooner (default 30 s).
            service_lib.WorkerConfig(dispatcher_address=address, port=0, heartbeat_interval_ms=200)
        )
        for _ in range(2)
    ]
    yield dispatcher.target
    for server in (*workers, dispatcher):
        server._stop()


def _records(dataset: tf.data.Dataset) -> dict[str, list[dict[str, np.ndarray]]]:
    """video id -> each time the dataset gave it: its frames, num_frames and labels."""
    seen = collections.defaultdict(list)
    for batch in dataset:
        for i, video_id in enumerate(batch["video_id"].numpy()):
            seen[video_id.decode()].append(
                {name: batch[name][i].numpy() for name in ("frames", "num_frames", "labels")}
            )
    return seen


def _read(tiny_yt8m, **kwargs) -> tf.data.Dataset:
    model_config, _, data_config = tiny_configs("tiny_teacher.flags", tiny_yt8m)
    return videos.read_videos(
        data_config,
        model_config,
        tiny_yt8m.train_pattern,
        batch_size=BATCH,
        training=True,
        **kwargs,
    )


def _assert_same_records(local: dict, served: dict) -> None:
    assert sorted(served) == sorted(local)
    for video_id, (record,) in local.items():
        assert len(served[video_id]) == 1, video_id  # once per epoch, not once per worker
        for name, value in record.items():
            np.testing.assert_array_equal(served[video_id][0][name], value, err_msg=video_id)


def test_one_epoch_through_the_service_reads_every_record_once(tiny_yt8m, service):
    """Shuffled as in training, one epoch through two workers: the multiset of ids of the local
    pipeline (every id once), with identical frames, num_frames and labels per id."""
    local = _records(_read(tiny_yt8m))
    served = _records(data_service.distribute(_read(tiny_yt8m, shuffle=True, seed=3), service))
    assert len(local) == 32
    _assert_same_records(local, served)


def test_input_pipelines_each_read_their_files_once(tiny_yt8m, service):
    """Two input pipelines (as under MultiWorkerMirroredStrategy), each its own service job over
    its own files: together every record once."""
    served = collections.defaultdict(list)
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
        dataset = _read(tiny_yt8m, shuffle=True, seed=1, input_context=context)
        for video_id, records in _records(data_service.distribute(dataset, service)).items():
            served[video_id] += records
    _assert_same_records(_records(_read(tiny_yt8m)), served)


def test_records_without_labels_are_counted_on_the_client(tmp_path, service):
    """The service pipeline has no counter; `count_unlabelled` counts what the local reader
    counts, and names the file of the first one."""
    frames = {"rgb": np.zeros((3, 4), np.uint8), "audio": np.zeros((3, 2), np.uint8)}
    path = str(tmp_path / "part.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for video_id, labels in (("a", [1]), ("none-1", []), ("b", [0, 2]), ("none-2", [])):
            writer.write(make_example(video_id, labels, frames))
    options = {"batch_size": 2, "max_frames": 4, "num_classes": 3, "feature_sizes": (4, 2)}

    local = yt8m.BadRecordCounter()
    list(yt8m.frame_dataset(path, bad_record_counter=local, **options))
    here = yt8m.BadRecordCounter()
    served = data_service.distribute(
        yt8m.frame_dataset(path, source_files=True, **options), service
    )
    batches = list(data_service.count_unlabelled(served, here))

    assert here.counts() == local.counts() and here.counts()["unlabelled"] == 2
    assert "source_file" not in batches[0]
    assert path in here.unlabelled_example()


def test_trainer_trains_through_the_service(tiny_yt8m, service, tmp_path):
    """A k-frame student (frames selected on the client, after the service) trains a few steps
    and saves its checkpoint."""
    model_config, train_config, data_config = tiny_configs(
        "tiny_student_k6.flags",
        tiny_yt8m,
        data_service=service,
        max_steps=3,
        checkpoint_every_steps=3,
        log_every_steps=1,
    )
    trainer = Trainer(
        model_config,
        train_config,
        data_config,
        str(tmp_path),
        strategy_lib.make_strategy("one_device"),
    )
    assert trainer.selects_frames_on_host
    results = trainer.fit()
    assert results["step"] == 3 and np.isfinite(results["train"]["loss"])
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
    assert results["bad_records"]["total"] == 0


# ------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            {"data_service": "grpc://host:5050", "skip_bad_records": True},
            ["--data_service=grpc://host:5050", "--skip_bad_records"],
        ),
        ({"data_service": "host"}, ["--data_service=host", "grpc://HOST:PORT"]),
        ({"data_service": "grpc://host:70000"}, ["--data_service=grpc://host:70000"]),
        ({"data_service": "http://host:5050"}, ["--data_service=http://host:5050"]),
    ],
)
def test_unsupported_combinations_are_refused_in_one_line(tiny_yt8m, overrides, words):
    config = tiny_run_config("tiny_teacher.flags", tiny_yt8m, **overrides)
    with pytest.raises(FlagError) as error:
        yflags.validate_run_config(config, training=True)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_sakd_is_refused_in_one_line(tiny_yt8m):
    config = tiny_run_config(
        "tiny_sakd_k6.flags",
        tiny_yt8m,
        data_service="grpc://host:5050",
        teacher_cache=str(tiny_yt8m.root),  # never opened: the refusal comes first
    )
    with pytest.raises(FlagError, match=r"^--data_service=grpc://host:5050 cannot run --sakd"):
        yflags.validate_run_config(config, training=True)


def test_a_rerun_may_add_or_drop_the_service(tiny_yt8m):
    """Where the records are parsed is not what the run is: no difference that refuses a rerun,
    but flags_history.json records the change."""
    plain = tiny_run_config("tiny_teacher.flags", tiny_yt8m)
    served = tiny_run_config("tiny_teacher.flags", tiny_yt8m, data_service="grpc://host:5050")
    assert runs.differences(plain, served) == []
    assert runs.changed_flags(plain, served) == {"data_service": [None, "grpc://host:5050"]}
    assert "--data_service=grpc://host:5050" in yflags.flags_text(yflags.flag_values(served))


def test_a_dispatcher_that_does_not_answer_is_refused(tiny_yt8m, tmp_path):
    """TensorFlow's client would retry for ever: the trainer refuses at once, in one line."""
    model_config, train_config, data_config = tiny_configs(
        "tiny_teacher.flags", tiny_yt8m, data_service=f"grpc://localhost:{_free_port()}"
    )
    trainer = Trainer(
        model_config,
        train_config,
        data_config,
        str(tmp_path),
        strategy_lib.make_strategy("one_device"),
    )
    with pytest.raises(
        FlagError, match=r"^--data_service=grpc://localhost:\d+: no tf.data service"
    ):
        trainer.fit()


# ------------------------------------------------------------------------------- launcher
def _launcher(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, os.path.join("launchers", "data_service.py"), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "args, words",
    [
        # Each case starts TensorFlow (~6 s): the flag checks' own cases are tested in-process.
        (["--role=worker"], "--role=worker needs --dispatcher"),
        (["--role=worker", "--dispatcher=host"], "--dispatcher=host is not a tf.data service"),
    ],
)
def test_launcher_refuses_bad_flags_in_one_line(args, words, launcher):
    result = launcher.run("data_service.py", *args, timeout=60)
    assert result.returncode == 1
    line = launcher.last_stderr_line(result)
    assert line.startswith("data_service.py: error: ") and words in line, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_for_line(process: subprocess.Popen, words: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if words in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no line with {words!r} from {process.args}")


@pytest.mark.slow
def test_train_py_through_launched_servers(tiny_yt8m, tiny_train_args, launcher, tmp_path):
    """A dispatcher and a worker in their own processes (launchers/data_service.py): train.py
    --data_service trains and writes its checkpoint; both servers stop on SIGTERM with one line
    and status 0."""
    port = _free_port()
    dispatcher = _launcher("--role=dispatcher", f"--port={port}")
    worker = None
    try:
        _wait_for_line(dispatcher, f"serving on port {port}")
        worker = _launcher(
            "--role=worker", f"--dispatcher=localhost:{port}", "--worker_host=localhost"
        )
        _wait_for_line(worker, "tf.data service worker localhost:")
        run_dir = tmp_path / "run"
        result = launcher.run(
            "train.py",
            *tiny_train_args,
            f"--train_data_pattern={tiny_yt8m.train_pattern}",
            f"--data_service=grpc://localhost:{port}",
            f"--run_dir={run_dir}",
            "--max_steps=4",
            "--checkpoint_every_steps=4",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-4")
        assert f"--data_service=grpc://localhost:{port}" in (run_dir / "flags.txt").read_text()
    finally:
        for process in (worker, dispatcher):
            if process is not None:
                process.send_signal(signal.SIGTERM)
    for process, role in ((worker, "worker"), (dispatcher, "dispatcher")):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == f"tf.data service {role} stopped by SIGTERM"
