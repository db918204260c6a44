"""A training pipeline's reading, parsing and batching handed to a tf.data service cluster.

When one host's CPUs cannot feed its accelerators, `--data_service=grpc://HOST:PORT` names the
dispatcher of a tf.data service cluster (TensorFlow's own distributed input engine; started with
launchers/data_service.py), and `distribute` moves everything `videos.read_videos` builds (file
list, interleaved reads, parse and checks, shuffle, repeat, batch) onto its workers. The client
(the training process) only receives finished batches.

Every record once per epoch: the processing mode is `ShardingPolicy.DYNAMIC` ("distributed
epoch"): the dispatcher hands out the pipeline's input files one at a time to whichever worker
asks next, so each file, and so each record, is read by exactly one worker per epoch, however
many workers there are (`ShardingPolicy.OFF` would give every record once per worker). The
pipeline's `repeat` stays inside: at the end of an epoch the dispatcher hands the file list out
again; an epoch's last batches may mix with the next epoch's first ones. If a worker dies in the
middle of an epoch, the records of the file it was reading are lost for that epoch (TensorFlow's
guarantee is at most once then). With several input pipelines (MultiWorkerMirroredStrategy), each
pipeline reads its own files (input_pipeline_id, + num_input_pipelines, ...) as without the
service and distributes them as its own anonymous job: together they read every record once per
epoch, and two runs on one cluster never share a job.

What runs where. The workers run a serialized copy of the dataset graph in their own processes;
state of the training process cannot be captured in it (measured with workers in other
processes: a `BadRecordCounter`'s variables count into copies that nobody reads, and skip mode's
`tf.py_function` that salvages a damaged file fails there, "Could not find callback", silently
losing the rest of the file). So:
- strict mode only: a bad record is an error named by its file and record, raised in the
  training process like without the service (`flag_checks.check_data_service` refuses
  --skip_bad_records, and SAKD, whose id filter reads a variable and whose subset cache is a
  file of the training host);
- records without labels are counted on the client (`count_unlabelled`, from each batch's
  labels and `source_file`), so bad_records["unlabelled"] is the same as without the service;
- per-batch steps that need the training process (the teacher-cache join, the host-side frame
  selection of a student) run after `distribute`, on the client: the join's table is in the
  client's memory, and the frame selection's per-step seeds follow the order in which batches
  reach the client (`Trainer._select_on_host`), which only the client knows.

A --data_service address where nothing listens is refused at once (`check_dispatcher`):
TensorFlow's client would otherwise wait for a dispatcher for ever.

Not guaranteed under the service: a seeded, reproducible record order (the workers race for
files), and bitwise-identical runs. Every worker must read the input files under the same paths
as the client (a shared file system or gs://). Evaluation does not use the service.
"""

from __future__ import annotations

import socket

import tensorflow as tf

from yt8m_kd.configs import FlagError
from yt8m_kd.data.yt8m import BadRecordCounter
from yt8m_kd.flag_checks import service_address

# Seconds to wait for the dispatcher's port to accept a connection.
_CONNECT_TIMEOUT_S = 10


def check_dispatcher(address: str) -> None:
    """Refuses a dispatcher address where nothing listens. Without this check TensorFlow's
    client retries for ever: a run with a mistyped --data_service would wait silently.

    Raises:
      FlagError: naming --data_service and the connection error.
    """
    host, port = service_address("data_service", address).rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), _CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise FlagError(
            f"--data_service={address}: no tf.data service dispatcher answers there "
            f"({e.strerror or e}); start one with launchers/data_service.py --role=dispatcher"
        ) from None


def distribute(dataset: tf.data.Dataset, address: str) -> tf.data.Dataset:
    """`dataset` produced by the tf.data service at `address`, every input file read by one
    worker per epoch (ShardingPolicy.DYNAMIC; see the module docstring).

    No job name: each iterator is its own job, so every input pipeline of a run, and every run
    on the cluster, reads its whole file list."""
    return dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=f"grpc://{service_address('data_service', address)}",
        )
    )


def count_unlabelled(dataset: tf.data.Dataset, counter: BadRecordCounter) -> tf.data.Dataset:
    """Counts the records without labels of YouTube-8M batches in `counter`, on the client, and
    drops the batches' `source_file` (which the service pipeline adds for the message).

    A YouTube-8M record's multi-hot labels are all zero exactly when it has no labels (a label
    out of range is an error), so this counts what the reader counts without the service; the
    first is logged with its file and id, as there."""

    def count(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        unlabelled = tf.where(tf.reduce_sum(batch["labels"], axis=1) == 0)[:, 0]

        def add_each():
            def add(i):
                path, video_id = batch["source_file"][i], batch["video_id"][i]
                with tf.control_dependencies([counter.add_unlabelled(path, video_id)]):
                    return tf.constant(0, tf.int64)

            return tf.reduce_sum(
                tf.map_fn(add, unlabelled, fn_output_signature=tf.int64, parallel_iterations=1)
            )

        done = tf.cond(tf.size(unlabelled) > 0, add_each, lambda: tf.constant(0, tf.int64))
        with tf.control_dependencies([done]):
            return {
                name: tf.identity(value) for name, value in batch.items() if name != "source_file"
            }

    # Sequential (no num_parallel_calls): the batches keep the order in which they arrive, which
    # the frame selection's seeds follow.
    return dataset.map(count)
