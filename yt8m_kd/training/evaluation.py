"""Evaluation of a model over a dataset, on one device or on every replica of a strategy.

One device (`evaluate` without a strategy, or with one replica): the batches are predicted one
after the other and streamed into the metric accumulator (`yt8m_kd.metrics`).

Several replicas (`distributes`: MirroredStrategy over GPUs or logical CPUs, or
MultiWorkerMirroredStrategy): the evaluation records are cut into batches of
ceil(eval_batch_size / replicas) videos, in file order, and global batch j goes to replica
j mod R, R replicas in all (`distributed_eval_dataset`). Each replica predicts its batch
(`strategy.run` of the predict function), and every process takes all replicas' predictions and
labels in replica order, which is the records' order, into the same accumulator: its own
replicas' (`experimental_local_results`) in one process, every worker's (`strategy.gather`)
across workers. Every video is counted once:
- the records are neither padded, repeated nor dropped: the last batch may be partial;
- at the end of a dataset whose size is not a multiple of the global batch, the distributed
  iterator gives the replicas past the last batch an empty batch (0 rows; measured with TF 2.21,
  tests/test_distributed_eval.py); a replica skips the model on an empty batch and returns 0 rows.
So the accumulator sees exactly the videos, in exactly the order, of a one-device evaluation, and
every worker of a multi-worker run computes the same metrics. A random-k student draws a video's
frames from a seed of its video id (`evaluation_seeds`), not of its replica. Scores agree with
one-device scores to float32 round-off (a replica's batch is smaller, and matrix products may sum
in another order for another batch size).

Under multi_worker, every worker reads the whole evaluation set and keeps its replicas' batches
(`shard_batches`): training's shards of whole files would need as many evaluation files as
workers and would put the videos out of order; the model, not the reading, is what is shared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from yt8m_kd import metrics as metrics_lib
from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training import strategy as strategy_lib


def distributes(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether evaluation under `strategy` runs on every replica (there are several)."""
    return strategy is not None and strategy.num_replicas_in_sync > 1


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
    """Videos per replica batch: ceil(global / replicas), so that any --eval_batch_size works (a
    global batch that the replicas do not share evenly is rounded up, not refused)."""
    return math.ceil(global_batch_size / num_replicas)


def shard_batches(
    dataset: tf.data.Dataset, input_context: tf.distribute.InputContext
) -> tf.data.Dataset:
    """The batches of one input pipeline, out of every global batch of the records: with W
    pipelines of r replicas each, pipeline p keeps batches j with (j // r) mod W = p, so that its
    replicas, which the strategy hands its batches in turn, get global batches s * W * r + p * r +
    i at step s (replica p * r + i): batch j on replica j mod (W * r). All batches with one
    pipeline."""
    pipelines = input_context.num_input_pipelines
    if pipelines == 1:
        return dataset
    replicas = input_context.num_replicas_in_sync // pipelines
    pipeline = input_context.input_pipeline_id
    mine = dataset.enumerate().filter(lambda j, _: (j // replicas) % pipelines == pipeline)
    return mine.map(lambda _, batch: batch)


def distributed_eval_dataset(
    strategy: tf.distribute.Strategy,
    dataset_fn: Callable[[int], tf.data.Dataset],
    global_batch_size: int,
) -> tf.distribute.DistributedDataset:
    """The evaluation batches of every replica: `dataset_fn(batch_size)` reads all the records in
    batches of `batch_size` (in a fixed order, not repeated, no drop_remainder); global batch j
    goes to replica j mod R (`shard_batches`)."""

    def replica_batches(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = per_replica_batch_size(global_batch_size, input_context.num_replicas_in_sync)
        return shard_batches(dataset_fn(batch_size), input_context)

    return strategy.distribute_datasets_from_function(replica_batches)


def make_replica_predict_fn(
    strategy: tf.distribute.Strategy, predict: Callable, num_classes: int
) -> Callable:
    """A tf.function: a distributed batch -> (probabilities, labels) of every replica: per-replica
    values in one process, every worker's rows gathered in replica order across workers.

    `predict` is a one-device predict function (`make_predict_fn`). A replica's empty batch (past
    the end of the data) skips the model, which need not accept 0 rows, and gives [0, C]
    probabilities. They are float32 whatever the compute dtype (bfloat16 scores convert exactly).
    """
    across_workers = strategy_lib.is_multi_worker(strategy)

    def replica_fn(batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        probabilities = tf.cond(
            tf.shape(batch["labels"])[0] > 0,
            lambda: tf.cast(predict(batch), tf.float32),
            lambda: tf.zeros([0, num_classes], tf.float32),
        )
        return probabilities, batch["labels"]

    @tf.function(reduce_retracing=True)
    def replica_predict(batch):
        probabilities, labels = strategy.run(replica_fn, args=(batch,))
        if across_workers:  # the replicas' rows may differ in number (0 past the end): allowed
            return strategy.gather(probabilities, axis=0), strategy.gather(labels, axis=0)
        return probabilities, labels

    return replica_predict


def _one_device_batches(
    dataset: tf.data.Dataset, predict: Callable
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for batch in dataset:
        yield predict(batch).numpy(), batch["labels"].numpy()


def _replica_batches(
    strategy: tf.distribute.Strategy,
    dataset: tf.distribute.DistributedDataset,
    replica_predict: Callable,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each step's predictions and labels of all replicas, in replica order (the records' order);
    a step whose replicas all got empty batches does not occur. (A value gathered across workers
    is its own single local result.)"""
    for batch in dataset:
        probabilities, labels = replica_predict(batch)
        yield (
            np.concatenate([p.numpy() for p in strategy.experimental_local_results(probabilities)]),
            np.concatenate([y.numpy() for y in strategy.experimental_local_results(labels)]),
        )


def evaluate(
    model: keras.Model,
    model_config: ModelConfig,
    dataset: tf.data.Dataset | tf.distribute.DistributedDataset,
    top_k: int = 20,
    predict: Callable | None = None,
    single_label: bool = False,
    class_names: list[str] | None = None,
    between_batches: Callable[[], None] | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Metrics over `dataset`, streaming: GAP, mAP, Hit@1 and PERR of multi-label data (keeping
    each video's top_k only), or top-1, top-5 and per-class accuracy of single-label data.

    `predict` (from make_predict_fn) lets repeated evaluations reuse one traced function;
    `between_batches` runs after each batch (a trainer's check for a stop signal).

    With a `strategy` that `distributes`, `dataset` is its `distributed_eval_dataset` and every
    replica predicts its share (`predict`, if given, is then a `make_replica_predict_fn`);
    otherwise `dataset` is a tf.data.Dataset predicted here, batch after batch.

    Raises:
      metrics.NonFinitePredictionsError: a score is NaN or infinite.
      TypeError: a strategy that distributes, with a dataset that is not distributed.
    """
    if single_label:
        accumulator = metrics_lib.AccuracyAccumulator(model_config.num_classes, class_names)
    else:
        accumulator = metrics_lib.EvaluationAccumulator(model_config.num_classes, top_k=top_k)
    if distributes(strategy):
        if not isinstance(dataset, tf.distribute.DistributedDataset):
            # Each replica would predict the same whole batch: every video counted r times.
            raise TypeError(
                f"evaluate: {strategy.num_replicas_in_sync} replicas need the batches of "
                "distributed_eval_dataset, got a tf.data.Dataset"
            )
        replica_predict = predict or make_replica_predict_fn(
            strategy,
            make_predict_fn(model, model_config, single_label),
            model_config.num_classes,
        )
        batches = _replica_batches(strategy, dataset, replica_predict)
    else:
        batches = _one_device_batches(
            dataset, predict or make_predict_fn(model, model_config, single_label)
        )
    for predictions, labels in batches:
        accumulator.update(predictions, labels)
        if between_batches is not None:
            between_batches()
    return accumulator.result()
