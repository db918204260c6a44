"""Predictions over records -> the Kaggle submission CSV, streaming in batches.

  run = restore_run("runs/student_k6")
  batches = run_predictions(run, "data/test-*.tfrecord", batch_size=256)
  write_kaggle_csv(batches, "predictions.csv")      # or saved_model_predictions(export_dir, ...)

The CSV (reference/yt8m-format-and-metrics.md): the header `VideoId,LabelConfidencePairs`, then a
row per video, `id,label score label score ...`, its top 20 classes by score, descending, each
pair printed with "%i %g". Equal scores keep the lower class index first (tf.math.top_k's order).

Two sources of predictions, both yielding one `PredictionBatch` per batch of records:
- `run_predictions`: a restored run's model over `yt8m_kd.data.yt8m.frame_dataset` (the training
  code's reader: bad records are errors naming file and id, or skipped and counted).
- `saved_model_predictions`: a SavedModel of `yt8m_kd.export` fed the raw serialized records
  (`serving_default`), read file by file in order. A batch the model refuses is retried record by
  record, so that an error names the file and the record's index in it; with skip_bad_records
  the bad records and the rest of a corrupt file are skipped, logged and counted instead.

Row order follows the reader: a run's reader interleaves files, a SavedModel's reads them one after
the other; the rows are the same.

Memory: batches flow from the reader through the model into the file one at a time; nothing
holds more than a batch of predictions. The CSV is written to `<output>.partial` and renamed to the
output path only when complete: a crash leaves no file at the output path (or the previous one).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.data import yt8m
from yt8m_kd.export import SERVING_SIGNATURE, TOP_K, data_family, load_export_metadata
from yt8m_kd.training.loop import make_predict_fn
from yt8m_kd.training.runs import RestoredRun

CSV_HEADER = "VideoId,LabelConfidencePairs"


@dataclasses.dataclass(frozen=True)
class PredictionBatch:
    """The top classes of a batch of videos.

    Attributes:
      video_ids: [B] bytes (or str).
      class_indexes: [B, K] int, best first.
      scores: [B, K] float, descending along K.
    """

    video_ids: np.ndarray
    class_indexes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.video_ids)


# ------------------------------------------------------------------------------------ the CSV
def format_row(video_id: bytes | str, class_indexes: Sequence[int], scores: Sequence[float]) -> str:
    """One CSV row without its newline: `id,label score label score ...`, scores descending.

    >>> format_row(b"Ab12", [3, 7], [0.25, 0.9])
    'Ab12,7 0.9 3 0.25'
    """
    if isinstance(video_id, bytes):
        video_id = video_id.decode("utf-8")
    if any(c in video_id for c in ",\r\n"):
        raise ValueError(f"video id {video_id!r} cannot be written to a CSV row")
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")  # equal scores keep their given order
    # The reference's pair format, verbatim.
    pairs = " ".join("%i %g" % (int(class_indexes[i]), float(scores[i])) for i in order)  # noqa: UP031
    return f"{video_id},{pairs}"


class KaggleCsvWriter:
    """Writes the submission CSV a batch at a time, atomically.

    Rows go to `<path>.partial`; leaving the `with` block normally renames it to `path` (replacing
    an older file), leaving it with an exception deletes it.

    Usage:
      with KaggleCsvWriter("predictions.csv") as writer:
          for batch in batches:
              writer.write_batch(batch)
    """

    def __init__(self, path: str):
        self.path = path
        self.partial_path = path + ".partial"
        self.rows_written = 0
        self._file = None

    def __enter__(self) -> KaggleCsvWriter:
        self._file = tf.io.gfile.GFile(self.partial_path, "w")
        self._file.write(CSV_HEADER + "\n")
        return self

    def write_batch(self, batch: PredictionBatch) -> None:
        rows = [
            format_row(video_id, indexes, scores)
            for video_id, indexes, scores in zip(
                batch.video_ids, batch.class_indexes, batch.scores, strict=True
            )
        ]
        if rows:
            self._file.write("\n".join(rows) + "\n")
        self.rows_written += len(rows)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._file.close()
        if exc_type is None:
            tf.io.gfile.rename(self.partial_path, self.path, overwrite=True)
        elif tf.io.gfile.exists(self.partial_path):
            tf.io.gfile.remove(self.partial_path)


def write_predictions(
    batches: Iterable[PredictionBatch], writer, progbar: keras.utils.Progbar | None = None
) -> int:
    """Hands each batch to `writer.write_batch` as it arrives; returns the rows written."""
    rows = 0
    for batch in batches:
        writer.write_batch(batch)
        rows += len(batch)
        if progbar is not None:
            progbar.update(rows)
    if progbar is not None:
        progbar.update(rows, finalize=True)
    return rows


def write_kaggle_csv(
    batches: Iterable[PredictionBatch], output_file: str, progress_bar: bool = False
) -> int:
    """Writes the submission CSV of `batches` to `output_file` (atomically); returns its rows."""
    progbar = keras.utils.Progbar(None, unit_name="video") if progress_bar else None
    with KaggleCsvWriter(output_file) as writer:
        return write_predictions(batches, writer, progbar)


# ------------------------------------------------------------------------------------ sources
def run_predictions(
    run: RestoredRun,
    file_pattern: str | Sequence[str],
    *,
    batch_size: int,
    top_k: int = TOP_K,
    skip_bad_records: bool = False,
    bad_record_counter: yt8m.BadRecordCounter | None = None,
) -> Iterator[PredictionBatch]:
    """The top_k classes of every video of `file_pattern` by a restored run's model (the
    probabilities of `make_predict_fn`: a student's frames chosen with the evaluation seed)."""
    if data_family(run) != "yt8m":  # multi-label sigmoid scores: YouTube-8M only, for now
        raise ValueError(f"predicting {data_family(run)!r} data is not supported yet")
    dataset = run.frame_dataset(
        file_pattern,
        batch_size=batch_size,
        skip_bad_records=skip_bad_records,
        bad_record_counter=bad_record_counter,
    )
    predict = make_predict_fn(run.model, run.model_config)
    k = min(top_k, run.model_config.num_classes)

    @tf.function(reduce_retracing=True)
    def top_classes(batch):
        return tf.math.top_k(predict(batch), k=k, sorted=True)

    for batch in dataset:
        top = top_classes({"frames": batch["frames"], "num_frames": batch["num_frames"]})
        yield PredictionBatch(batch["video_id"].numpy(), top.indices.numpy(), top.values.numpy())


def _read_records(
    files: Sequence[str], skip_bad_records: bool, skipped: collections.Counter
) -> Iterator[tuple[str, int, bytes]]:
    """(file, index in the file, serialized record) of every record, file after file.

    A file that cannot be read to its end raises DataLossError naming it, or, with
    skip_bad_records, keeps the records before the damage and counts one `corrupt_file`.
    """
    for path in files:
        iterator = iter(tf.data.TFRecordDataset(path))
        index = 0
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except tf.errors.OpError as e:  # DataLossError: a truncated or corrupt file
                message = f"bad input file {path} after {index} records: {yt8m.error_message(e)}"
                if not skip_bad_records:
                    raise tf.errors.DataLossError(None, None, message) from e
                logging.warning("skipping the rest of %s", message)
                skipped["corrupt_file"] += 1
                break
            yield path, index, record.numpy()
            index += 1


def _batches(items: Iterator, batch_size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _serve_checked(serve, records: list, skip_bad_records: bool, skipped: collections.Counter):
    """serving_default's outputs for `records` [(file, index, bytes)] without its bad records:
    those raise InvalidArgumentError naming file and index, or are skipped and counted."""
    try:
        return serve(example_bytes=tf.constant([r for _, _, r in records]))
    except tf.errors.InvalidArgumentError:
        pass  # find the bad records, one at a time
    good = []
    for path, index, record in records:
        try:
            serve(example_bytes=tf.constant([record]))
        except tf.errors.InvalidArgumentError as e:
            message = f"record {index} of {path}: {yt8m.error_message(e)}"
            if not skip_bad_records:
                raise tf.errors.InvalidArgumentError(None, None, message) from e
            logging.warning("skipping %s", message)
            skipped["bad_record"] += 1
            continue
        good.append(record)
    # The good ones together, as a batch: a random-k student's frames depend on the batch.
    return serve(example_bytes=tf.constant(good, tf.string)) if good else None


def saved_model_predictions(
    export_dir: str,
    file_pattern: str | Sequence[str],
    *,
    batch_size: int,
    top_k: int = TOP_K,
    skip_bad_records: bool = False,
    skipped: collections.Counter | None = None,
) -> Iterator[PredictionBatch]:
    """The top_k classes of every video of `file_pattern` by an exported SavedModel, fed the
    serialized records. `skipped` counts what skip_bad_records skipped: `bad_record` (records)
    and `corrupt_file` (files whose rest was skipped)."""
    metadata = load_export_metadata(export_dir)
    files = yt8m.list_files(file_pattern)
    serve = tf.saved_model.load(export_dir).signatures[SERVING_SIGNATURE]
    skipped = skipped if skipped is not None else collections.Counter()
    k = min(top_k, metadata["num_classes"])
    records = _read_records(files, skip_bad_records, skipped)
    for chunk in _batches(records, batch_size):
        outputs = _serve_checked(serve, chunk, skip_bad_records, skipped)
        if outputs is None:
            continue
        if k <= metadata["top_k"]:
            class_indexes = outputs["class_indexes"].numpy()[:, :k]
            scores = outputs["scores"].numpy()[:, :k]
        else:  # more classes than the export ranks: rank its probabilities
            top = tf.math.top_k(outputs["probabilities"], k=k, sorted=True)
            class_indexes, scores = top.indices.numpy(), top.values.numpy()
        yield PredictionBatch(outputs["video_id"].numpy(), class_indexes, scores)
