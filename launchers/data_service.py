"""Starts one server of a tf.data service cluster, for `train.py --data_service=grpc://HOST:PORT`.

One dispatcher, then any number of workers, each on a host with CPUs to spare and the training
files under the same paths as the trainer (a shared file system, or gs://):

  python launchers/data_service.py --role=dispatcher --port=5050
  python launchers/data_service.py --role=worker --dispatcher=HOST:5050 --port=5051
  python launchers/train.py ... --data_service=grpc://HOST:5050

Each prints one line saying where it serves, then runs until SIGINT or SIGTERM, and exits 0 with
one line. The dispatcher hands every training pipeline's input files out to the workers one at a
time, so each record is read once per epoch however many workers there are (see
yt8m_kd/data/data_service.py, also for what runs in the workers and what the trainer refuses).
Workers may join or leave while a run trains; a worker that leaves mid-epoch loses the rest of
its file for that epoch. The dispatcher keeps its state in memory only: if it stops, the runs
using it stop with an error, and a rerun resumes from their checkpoints.

Both roles load the reader's native frame decoder (docs/reader-fast-path.md), which the pipelines
of training processes that have it use; a server that cannot build it cannot run them: set
YT8M_KD_NATIVE=0 for the trainer too then.

--worker_host is the name the trainer reaches a worker by (default: this machine's host name);
the worker tells the dispatcher HOST:PORT with it.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import signal  # noqa: E402
import socket  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from yt8m_kd import cli  # noqa: E402
from yt8m_kd.configs import FlagError  # noqa: E402
from yt8m_kd.data import native  # noqa: E402
from yt8m_kd.flag_checks import service_address  # noqa: E402

flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "Which server to start.")
flags.DEFINE_integer(
    "port",
    None,
    "Port to serve on (default: 5050 for a dispatcher; a free port for a worker, which tells "
    "the dispatcher its port itself).",
    lower_bound=1,
    upper_bound=65535,
)
flags.DEFINE_string(
    "dispatcher", None, "Workers: the dispatcher's HOST:PORT (or grpc://HOST:PORT)."
)
flags.DEFINE_string(
    "worker_host",
    None,
    "Workers: the host name the trainer reaches this worker by (default: this machine's).",
)
FLAGS = flags.FLAGS

DEFAULT_DISPATCHER_PORT = 5050
HEARTBEAT_MS = 1000
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _check_flags() -> None:
    """One line naming the flag for each combination that cannot start a server."""
    if FLAGS.role is None:
        raise FlagError("--role is required: dispatcher or worker")
    if FLAGS.role == "dispatcher":
        for name in ("dispatcher", "worker_host"):
            if FLAGS[name].value is not None:
                raise FlagError(f"--{name} is for --role=worker; a dispatcher takes only --port")
    elif FLAGS.dispatcher is None:
        raise FlagError("--role=worker needs --dispatcher=HOST:PORT (the dispatcher's address)")
    else:
        service_address("dispatcher", FLAGS.dispatcher)


def _start_dispatcher(tf_service):
    port = FLAGS.port or DEFAULT_DISPATCHER_PORT
    server = tf_service.DispatchServer(tf_service.DispatcherConfig(port=port))
    host = socket.gethostname()
    cli.stage(
        f"tf.data service dispatcher serving on port {port}: train with "
        f"--data_service=grpc://{host}:{port}, start workers with --dispatcher={host}:{port}"
    )
    return server


def _start_worker(tf_service):
    dispatcher = service_address("dispatcher", FLAGS.dispatcher)
    host = FLAGS.worker_host or socket.gethostname()
    server = tf_service.WorkerServer(
        tf_service.WorkerConfig(
            dispatcher_address=dispatcher,
            worker_address=f"{host}:%port%",  # TensorFlow fills in the port it bound
            port=FLAGS.port or 0,
            # A worker hears of a new job (a training run starting) at its next heartbeat;
            # TensorFlow's default of 30 s would hold back a run's first batch that long.
            heartbeat_interval_ms=HEARTBEAT_MS,
        )
    )
    port = server._address.rsplit(":", 1)[1]  # noqa: SLF001 (the bound port, when --port is free)
    cli.stage(f"tf.data service worker {host}:{port} serving dispatcher {dispatcher}")
    return server


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise FlagError(f"unexpected arguments: {' '.join(argv[1:])}")
    _check_flags()
    # Blocked before any server thread starts (threads inherit the mask), so that the stop
    # signals reach only the sigwait below, never a gRPC thread or a blocked C++ call.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    # The reader's native frame decoder (docs/reader-fast-path.md): the pipeline graph of a
    # training process that has it holds its op, which the dispatcher (it builds the graph to
    # hand out the files) and the workers need registered.
    native.load()
    start = _start_dispatcher if FLAGS.role == "dispatcher" else _start_worker
    server = start(tf.data.experimental.service)
    received = signal.sigwait(_STOP_SIGNALS)
    server._stop()  # noqa: SLF001 (TensorFlow's servers have no public stop)
    cli.stage(f"tf.data service {FLAGS.role} stopped by {signal.Signals(received).name}")


if __name__ == "__main__":
    cli.run(main)
