"""tf.distribute strategies for the custom loop: one device, mirrored, multi-worker."""

from __future__ import annotations

import keras
import tensorflow as tf

from yt8m_kd.configs import STRATEGIES, FlagError, TrainConfig


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


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy called `name` over the devices of this process.

    one_device: the first GPU if any, else the CPU. mirrored: every GPU, or every logical CPU when
    there is no GPU (see `split_cpu`). multi_worker: MultiWorkerMirroredStrategy, configured by the
    TF_CONFIG environment variable (see launchers/multi_worker.sh).
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        # Before anything else touches the devices: collective ops are configured at start-up.
        return tf.distribute.MultiWorkerMirroredStrategy()
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
