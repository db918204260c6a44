"""tf.distribute strategies for the custom loop: one device, mirrored, multi-worker.

Losing a worker (MultiWorkerMirroredStrategy). A collective (the all-reduce of a training step, a
synchronised batch norm) needs every worker; TensorFlow aborts the collectives of the survivors,
which then raise, in three ways (times measured with 2 local CPU workers, tests/test_worker_loss.py):
- the worker's process died (SIGKILL, OOM kill, crash) and its host is up: its sockets close and
  the survivors' collectives fail at once (2 to 12 s after the kill, on a loaded 2-core machine);
- the worker or its host stopped responding (a frozen process, a lost machine or network): the
  coordination service, which MultiWorkerMirroredStrategy starts on worker 0 (the chief if there
  is one), misses its heartbeats for HEARTBEAT_TIMEOUT_S (TensorFlow's default, 10 s) and aborts
  everyone's collectives (10 to 15 s after the stop, worker 0 included);
- a worker is alive and heartbeating but never reaches the collective (stuck reading a hung
  file system, say): the collective times out after COLLECTIVE_TIMEOUT_S
  (tf.distribute.experimental.CommunicationOptions(timeout_seconds=...)).
`worker_failures` turns each into `WorkerLostError`, one line naming the worker and the checkpoint
that a restart of all workers resumes from. A cluster cannot go on with fewer workers
(MultiWorkerMirroredStrategy's collectives need every worker of TF_CONFIG), so every worker must
be restarted; all of them restore the chief's checkpoint (training/loop.py).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import keras
import tensorflow as tf

from yt8m_kd.configs import STRATEGIES, FlagError, TrainConfig

# How long one collective may wait for the other workers before it fails with
# DeadlineExceededError. It must exceed the longest legitimate wait: the work a worker does
# between two collectives that the others do not (the chief writing a checkpoint, metrics or
# TensorBoard events to a slow file system; a slower worker filling its shuffle buffer). Workers
# that died or froze are found by the heartbeats long before this; it only bounds the wait for a
# worker that is alive but stuck. TensorFlow runs a watchdog thread per collective for it (its
# docs call the timeout a debugging aid for that reason; the cost is not measured here).
COLLECTIVE_TIMEOUT_S = 600.0

# The coordination service's heartbeat timeout: TensorFlow's default (a heartbeat_timeout_in_ms
# of 0 in its CoordinationServiceConfig), which MultiWorkerMirroredStrategy keeps. Stated here
# for the error message; measured with a frozen (SIGSTOPped) worker in tests/test_worker_loss.py.
HEARTBEAT_TIMEOUT_S = 10

# TensorFlow errors that an aborted or timed out collective raises.
_COLLECTIVE_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.InternalError,
)
_TASK = r"/job:(\w+)/replica:\d+/task:(\d+)"


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run died, froze or got stuck: the others cannot go on."""


def split_cpu(num_logical_cpus: int) -> None:
    """Split the first CPU into `num_logical_cpus` logical devices.

    Lets MirroredStrategy run over several replicas on a CPU-only machine (tests, debugging). Must
    run before TensorFlow initialises its devices, so call it first thing in a process.
    """
    if num_logical_cpus <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_logical_cpus)]
    )


def make_strategy(
    name: str, collective_timeout_s: float = COLLECTIVE_TIMEOUT_S
) -> tf.distribute.Strategy:
    """Returns the strategy called `name` over the devices of this process.

    one_device: the first GPU if any, else the CPU. mirrored: every GPU, or every logical CPU when
    there is no GPU (see `split_cpu`). multi_worker: MultiWorkerMirroredStrategy, configured by the
    TF_CONFIG environment variable (see launchers/multi_worker.sh), whose collectives fail after
    waiting `collective_timeout_s` for the other workers (see the module docstring).
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        # Before anything else touches the devices: collective ops are configured at start-up.
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=collective_timeout_s
            )
        )
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        if len(devices) == 1:
            return tf.distribute.MirroredStrategy(devices)
        cross_device_ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=cross_device_ops)


def setup_devices(config: TrainConfig) -> tf.distribute.Strategy:
    """The devices of a run, first thing in its process: logical CPUs (--num_logical_cpus), the
    strategy (--strategy), and bfloat16 compute (--mixed_precision; default: on with a GPU).

    Raises:
      FlagError: a global batch that the replicas cannot share evenly.
    """
    split_cpu(config.num_logical_cpus)
    strategy = make_strategy(config.strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise FlagError(
            f"--batch_size={config.batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas of --strategy={config.strategy}"
        )
    mixed = config.mixed_precision
    if mixed is None:
        mixed = bool(tf.config.list_logical_devices("GPU"))
    if mixed:
        # bfloat16 has float32's range: no loss scaling is needed.
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    return strategy


# ------------------------------------------------------------------------------ lost workers
def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` spans several worker processes."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(resolver is not None and resolver.cluster_spec().as_dict())


def _coordination_leader(strategy: tf.distribute.Strategy) -> str:
    """The task that runs the coordination service: the chief if any, else worker 0 (as
    MultiWorkerMirroredStrategy chooses it)."""
    jobs = strategy.cluster_resolver.cluster_spec().as_dict()
    return "chief 0" if "chief" in jobs else "worker 0"


def describe_lost_worker(error: BaseException, strategy: tf.distribute.Strategy) -> str | None:
    """What a collective error of a multi-worker run says about the lost worker, in a few words
    ("worker 1 stopped responding (...)"); None when `error` is not about a lost worker."""
    if not isinstance(error, _COLLECTIVE_ERRORS) or not is_multi_worker(strategy):
        return None
    message = getattr(error, "message", None) or str(error)
    # The coordination service saw a worker's heartbeats stop.
    stopped = re.search(r"stopped sending heartbeats\)?:?\s*" + _TASK, message)
    if stopped:
        return (
            f"{stopped[1]} {stopped[2]} stopped responding "
            f"(no heartbeat for {HEARTBEAT_TIMEOUT_S} s)"
        )
    # This worker's own heartbeats to the coordination service failed: its host is lost.
    if "CoordinationService" in message:
        return (
            f"{_coordination_leader(strategy)} stopped responding (it runs the coordination "
            "service, which this worker can no longer reach)"
        )
    if "Collective has timed out" in message:
        return (
            "a collective timed out waiting for the other workers (one is alive but stuck, or "
            "much slower)"
        )
    peer = re.search(r"remote target " + _TASK, message)
    if peer:
        return f"{peer[1]} {peer[2]} died (its connection closed)"
    if "Collective ops is aborted" in message:
        return "a worker was lost (collective ops aborted)"
    return None


def is_worker_failure(error: BaseException | None, strategy: tf.distribute.Strategy) -> bool:
    """Whether `error` is a collective that failed because a worker was lost."""
    return error is not None and describe_lost_worker(error, strategy) is not None


def _resume_point(checkpoint_dir: str) -> str:
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        return "there is no checkpoint yet: they start from step 0"
    return f"they resume from the last checkpoint (step {latest.rsplit('-', 1)[1]}, {latest})"


@contextlib.contextmanager
def worker_failures(strategy: tf.distribute.Strategy, checkpoint_dir: str) -> Iterator[None]:
    """Within it, a collective aborted because a worker was lost becomes WorkerLostError: one
    line naming the worker and how it was lost, and the checkpoint (in `checkpoint_dir`, the
    chief's) that a restart of all workers resumes from. Other errors pass unchanged."""
    try:
        yield
    except _COLLECTIVE_ERRORS as e:
        what = describe_lost_worker(e, strategy)
        if what is None:
            raise
        raise WorkerLostError(
            f"{what}; restart all workers with the same command: {_resume_point(checkpoint_dir)}"
        ) from None


def steps_disagree(steps: list[int]) -> str | None:
    """The problem with the steps the workers restored, one per replica; None when they agree."""
    if len(set(steps)) <= 1:
        return None
    return (
        f"the workers restored different steps ({', '.join(map(str, steps))}, one per replica): "
        "every worker must read the chief's checkpoints, so --run_dir must be on a file system "
        "that all workers share"
    )


def check_same_step(strategy: tf.distribute.Strategy, step: int) -> None:
    """Raises FlagError unless every worker of a multi-worker run restored the same step (one
    all-gather; nothing for a single-process strategy). Workers that trained on from different
    checkpoints would silently average gradients of different models."""
    if not is_multi_worker(strategy):
        return

    @tf.function  # eagerly, MultiWorkerMirroredStrategy warns of its overhead
    def gather_steps() -> tf.Tensor:
        per_replica = strategy.run(lambda: tf.constant([step], tf.int64))
        return strategy.gather(per_replica, axis=0)

    steps = [int(s) for s in gather_steps().numpy()]
    problem = steps_disagree(steps)
    if problem:
        raise FlagError(problem)
