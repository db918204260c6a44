"""Predictions over records -> a CSV, streaming in batches: the Kaggle submission CSV of
YouTube-8M, or the top-5 class names of UCF101.

  run = restore_run("runs/student_k6")
  batches = run_predictions(run, "data/test-*.tfrecord", batch_size=256)
  write_kaggle_csv(batches, "predictions.csv")      # or saved_model_predictions(export_dir, ...)

  run = restore_run("runs/ucf101_student")            # UCF101
  batches = run_predictions(run, "records/testlist01-*.tfrecord", batch_size=32)
  write_class_name_csv(batches, "predictions.csv", run_class_names(run))

YouTube-8M (docs/yt8m-format-and-metrics.md): the header `VideoId,LabelConfidencePairs`, then
a row per video, `id,label score label score ...`, its top 20 classes by score, descending, each
pair printed with "%i %g".

UCF101: the header `video_id,class_1,score_1,class_2,score_2,...,class_5,score_5`, then a row per
video: its id (the video stem), then its top 5 classes by probability (softmax), descending, each
as its classInd.txt name and the probability printed with "%g" (k = min(5, C) pairs; another
top_k changes the number of pairs in header and rows alike):

  video_id,class_1,score_1,class_2,score_2,class_3,score_3,class_4,score_4,class_5,score_5
  v_ApplyEyeMakeup_g01_c01,ApplyEyeMakeup,0.912346,ApplyLipstick,0.05,Archery,0.0213,...

The names come from the run's --class_index_file (a run directory) or the export's metadata (a
SavedModel), or a classInd.txt given instead (`class_index_file`); without any, a UCF101 CSV is
refused (indices alone would be ambiguous with 1-based classInd numbers).

In both, equal scores keep the lower class index first (tf.math.top_k's order), and fields are
quoted as RFC 4180 says (Python's `csv`, pandas): an id or a class name holding a comma, a quote
or a line break is written in double quotes, its quotes doubled, and reads back as it was.

Video ids (`VideoIdCheck`, in the CSV writer, whatever the reader let through): an empty id, an id
that is not UTF-8 text and an id seen before in the CSV stop it with an InvalidArgumentError naming
the record (file and index in it from a SavedModel, the input pattern from a run) and the id; with
skip_bad_records they are logged, left out and counted (`empty_id`, `non_utf8_id`,
`duplicate_id`; a duplicate's first row stays). Records without labels are read without a word:
test data has none.

Two sources of predictions, both yielding one `PredictionBatch` per batch of records:
- `run_predictions`: a restored run's model over the run's own reader (`RestoredRun.frame_dataset`:
  YouTube-8M records, whose bad records are errors naming file and id or skipped and counted;
  UCF101 frame records, whose bad records are errors naming file and video; both readers skip
  and count them with skip_bad_records).
- `saved_model_predictions`: a SavedModel of `yt8m_kd.export` fed the raw serialized records
  (`serving_default`), read file by file in order. A batch the model refuses is retried record by
  record, so that an error names the file and the record's index in it; with skip_bad_records
  the bad records and a file's damaged regions are skipped, logged and counted instead, the
  intact records after a damaged region read all the same (`tfrecords.salvage_records`).

Row order follows the reader: a run's reader interleaves files, a SavedModel's reads them one after
the other; the rows are the same (a random-k student draws each video's frames from a seed of the
video's id, whatever the batch: `yt8m_kd.modeling.predict.evaluation_seeds`).

Memory: batches flow from the reader through the model into the file one at a time; nothing
holds more than a batch of predictions. The CSV is written to `<output>.partial` and renamed to the
output path only when complete: a crash leaves no file at the output path (or the previous one).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.data import tfrecords, ucf101_splits, yt8m
from yt8m_kd.export import (
    SERVING_SIGNATURE,
    TOP_K,
    UCF101_TOP_K,
    data_family,
    load_export_metadata,
)
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training.restore import RestoredRun

CSV_HEADER = "VideoId,LabelConfidencePairs"
# Classes per video when top_k is not given: the Kaggle CSV's 20, UCF101's top 5.
DEFAULT_TOP_K = {"yt8m": TOP_K, "ucf101": UCF101_TOP_K}


@dataclasses.dataclass(frozen=True)
class PredictionBatch:
    """The top classes of a batch of videos.

    Attributes:
      video_ids: [B] bytes (or str).
      class_indexes: [B, K] int, best first.
      scores: [B, K] float, descending along K.
      sources: [B] str or None: where each video's record is ("record 3 of <file>"), for the
        messages about its id.
    """

    video_ids: np.ndarray
    class_indexes: np.ndarray
    scores: np.ndarray
    sources: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.video_ids)


# ------------------------------------------------------------------------------------ video ids
ID_PROBLEMS = ("empty_id", "non_utf8_id", "duplicate_id")


def _short(video_id: bytes | str, limit: int = 80) -> str:
    """An id for an error line: its repr (non-UTF-8 bytes escaped), cut after `limit` chars."""
    text = repr(video_id)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(video_id)} long)"


class VideoIdCheck:
    """Refuses, or skips and counts, the ids a CSV cannot hold as one row per video: empty, not
    UTF-8 text, or seen before in this CSV.

    Strict (default): the first such id raises InvalidArgumentError naming its record and id,
    one line. With skip_bad_records it is logged, left out of the CSV and counted in `counts`
    (`ID_PROBLEMS`); of a duplicated id the first row stays.

    Memory: the set of ids written (YouTube-8M's 700k test ids take tens of MB).

    Usage:
      check = VideoIdCheck(skip_bad_records=True)
      text = check(b"Ab12", "record 3 of test-0.tfrecord")   # "Ab12", or None when skipped
    """

    def __init__(self, skip_bad_records: bool = False):
        self.skip_bad_records = skip_bad_records
        self.counts = collections.Counter({kind: 0 for kind in ID_PROBLEMS})
        self._seen: set[str] = set()

    def _problem(self, video_id: bytes | str) -> tuple[str | None, str]:
        """(problem kind or None, the id as text)."""
        if isinstance(video_id, bytes):
            try:
                video_id = video_id.decode("utf-8")
            except UnicodeDecodeError:
                return "non_utf8_id", ""
        if not video_id:
            return "empty_id", video_id
        if video_id in self._seen:
            return "duplicate_id", video_id
        return None, video_id

    def __call__(self, video_id: bytes | str, where: str | None = None) -> str | None:
        """The id as text for the CSV, or None for a skipped one."""
        kind, text = self._problem(video_id)
        if kind is None:
            self._seen.add(text)
            return text
        problem = {
            "empty_id": "has an empty video id",
            "non_utf8_id": f"has video id {_short(video_id)}, which is not UTF-8 text",
            "duplicate_id": f"repeats video id {_short(text)} (one CSV row per video)",
        }[kind]
        message = f"{where or 'a record'} {problem}"
        if not self.skip_bad_records:
            raise tf.errors.InvalidArgumentError(None, None, message)
        logging.warning("skipping the prediction of %s", message)
        self.counts[kind] += 1
        return None


# ------------------------------------------------------------------------------------ the CSV
def _csv_line(fields: Sequence[str]) -> str:
    """Fields joined as one CSV record (RFC 4180 quoting: a field holding a comma, a quote or a
    line break is quoted, its quotes doubled), without the line terminator."""
    line = io.StringIO()
    # csv quotes a field holding a character of the line terminator: "\r\n" covers both.
    csv.writer(line, lineterminator="\r\n").writerow(fields)
    return line.getvalue()[: -len("\r\n")]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def format_row(video_id: bytes | str, class_indexes: Sequence[int], scores: Sequence[float]) -> str:
    """One CSV row without its newline: `id,label score label score ...`, scores descending; an
    id holding a comma, quote or line break is quoted as RFC 4180 says (`csv` reads it back).

    >>> format_row(b"Ab12", [3, 7], [0.25, 0.9])
    'Ab12,7 0.9 3 0.25'
    >>> format_row("a,b", [3], [0.5])
    '"a,b",3 0.5'
    """
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")  # equal scores keep their given order
    # The reference's pair format, verbatim.
    pairs = " ".join("%i %g" % (int(class_indexes[i]), float(scores[i])) for i in order)  # noqa: UP031
    return _csv_line([_text(video_id), pairs])


def class_name_header(top_k: int) -> str:
    """The UCF101 CSV header: `video_id,class_1,score_1,...,class_K,score_K`.

    >>> class_name_header(2)
    'video_id,class_1,score_1,class_2,score_2'
    """
    return ",".join(["video_id"] + [f"class_{i},score_{i}" for i in range(1, top_k + 1)])


def format_class_name_row(
    video_id: bytes | str,
    class_indexes: Sequence[int],
    scores: Sequence[float],
    class_names: Sequence[str],
) -> str:
    """One UCF101 CSV row without its newline: `id,name,score,name,score,...`, scores descending
    (fields quoted as `format_row` quotes them).

    >>> format_class_name_row(b"v_a", [1, 0], [0.25, 0.75], ["Archery", "Basketball"])
    'v_a,Archery,0.75,Basketball,0.25'
    """
    scores = np.asarray(scores)
    order = np.argsort(-scores, kind="stable")  # equal scores keep their given order
    fields = [_text(video_id)]
    for i in order:
        fields.append(class_names[int(class_indexes[i])])
        fields.append("%g" % float(scores[i]))  # noqa: UP031
    return _csv_line(fields)


class CsvWriter:
    """Writes a CSV a batch at a time, atomically: a header, then `format_row(video_id,
    class_indexes, scores)` per video whose id `id_check` passes (default: a strict
    `VideoIdCheck`: an empty, non-UTF-8 or repeated id stops the CSV with an error naming it).

    Rows go to `<path>.partial`; leaving the `with` block normally renames it to `path` (replacing
    an older file), leaving it with an exception deletes it.

    Usage:
      with KaggleCsvWriter("predictions.csv") as writer:
          for batch in batches:
              writer.write_batch(batch)
    """

    def __init__(
        self,
        path: str,
        header: str,
        format_row: Callable[..., str],
        id_check: VideoIdCheck | None = None,
    ):
        self.path = path
        self.partial_path = path + ".partial"
        self.rows_written = 0
        self.id_check = id_check or VideoIdCheck()
        self._header = header
        self._format_row = format_row
        self._file = None

    def __enter__(self) -> CsvWriter:
        self._file = tf.io.gfile.GFile(self.partial_path, "w")
        self._file.write(self._header + "\n")
        return self

    def write_batch(self, batch: PredictionBatch) -> None:
        sources = batch.sources if batch.sources is not None else [None] * len(batch)
        rows = []
        for video_id, indexes, scores, where in zip(
            batch.video_ids, batch.class_indexes, batch.scores, sources, strict=True
        ):
            text = self.id_check(video_id, where)
            if text is not None:
                rows.append(self._format_row(text, indexes, scores))
        if rows:
            self._file.write("\n".join(rows) + "\n")
        self.rows_written += len(rows)

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._file.close()
        if exc_type is None:
            tf.io.gfile.rename(self.partial_path, self.path, overwrite=True)
        elif tf.io.gfile.exists(self.partial_path):
            tf.io.gfile.remove(self.partial_path)


class KaggleCsvWriter(CsvWriter):
    """The YouTube-8M submission CSV (module docstring), written as `CsvWriter` writes."""

    def __init__(self, path: str, id_check: VideoIdCheck | None = None):
        super().__init__(path, CSV_HEADER, format_row, id_check)


class ClassNameCsvWriter(CsvWriter):
    """The UCF101 CSV (module docstring): every row names exactly top_k classes by their names."""

    def __init__(
        self,
        path: str,
        class_names: Sequence[str],
        top_k: int = UCF101_TOP_K,
        id_check: VideoIdCheck | None = None,
    ):
        names = list(class_names)
        k = min(top_k, len(names))

        def row(video_id, class_indexes, scores) -> str:
            if len(class_indexes) != k:
                raise ValueError(
                    f"video {video_id!r}: {len(class_indexes)} classes for a CSV of {k} per row"
                )
            return format_class_name_row(video_id, class_indexes, scores, names)

        super().__init__(path, class_name_header(k), row, id_check)


def write_predictions(
    batches: Iterable[PredictionBatch], writer, progbar: keras.utils.Progbar | None = None
) -> int:
    """Hands each batch to `writer.write_batch` as it arrives; returns the rows written (the
    videos, less those whose ids the writer's id check skipped)."""
    videos, rows_before = 0, writer.rows_written
    for batch in batches:
        writer.write_batch(batch)
        videos += len(batch)
        if progbar is not None:
            progbar.update(videos)
    if progbar is not None:
        progbar.update(videos, finalize=True)
    return writer.rows_written - rows_before


def write_kaggle_csv(
    batches: Iterable[PredictionBatch],
    output_file: str,
    progress_bar: bool = False,
    id_check: VideoIdCheck | None = None,
) -> int:
    """Writes the submission CSV of `batches` to `output_file` (atomically); returns its rows.
    `id_check` (default: strict) refuses or skips empty, non-UTF-8 and repeated ids."""
    progbar = keras.utils.Progbar(None, unit_name="video") if progress_bar else None
    with KaggleCsvWriter(output_file, id_check) as writer:
        return write_predictions(batches, writer, progbar)


def write_class_name_csv(
    batches: Iterable[PredictionBatch],
    output_file: str,
    class_names: Sequence[str],
    top_k: int = UCF101_TOP_K,
    progress_bar: bool = False,
    id_check: VideoIdCheck | None = None,
) -> int:
    """Writes the UCF101 CSV of `batches` (top_k classes per row, by name) to `output_file`
    (atomically); returns its rows. `id_check` as `write_kaggle_csv`."""
    progbar = keras.utils.Progbar(None, unit_name="video") if progress_bar else None
    with ClassNameCsvWriter(output_file, class_names, top_k, id_check) as writer:
        return write_predictions(batches, writer, progbar)


# ------------------------------------------------------------------------------ class names
def _checked_names(names: Sequence[str] | None, num_classes: int, source: str) -> list[str]:
    if names is None:
        raise ValueError(
            f"{source} names no classes (no class index file): give a classInd.txt "
            "(class_index_file, --class_index_file) to name the classes of the CSV"
        )
    if len(names) != num_classes:
        raise ValueError(f"{source}: {len(names)} class names for a model of {num_classes} classes")
    return list(names)


def run_class_names(run: RestoredRun, class_index_file: str | None = None) -> list[str]:
    """The C class names of a UCF101 run: from class_index_file, else its --class_index_file.

    Raises:
      ValueError: no class index file, or one that does not list C classes.
      FileNotFoundError: the class index file does not exist.
    """
    path = class_index_file or run.data_config.class_index_file
    if path and not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"class index file {path} does not exist")
    names = ucf101_splits.read_class_index(path) if path else None
    return _checked_names(names, run.model_config.num_classes, path or "the run")


def export_class_names(export_dir: str, class_index_file: str | None = None) -> list[str]:
    """The C class names of a UCF101 export: from class_index_file, else its metadata."""
    metadata = load_export_metadata(export_dir)
    if class_index_file:
        names, source = ucf101_splits.read_class_index(class_index_file), class_index_file
    else:
        names, source = metadata.get("class_names"), f"the export {export_dir}"
    return _checked_names(names, metadata["num_classes"], source)


# ------------------------------------------------------------------------------------ sources
def run_predictions(
    run: RestoredRun,
    file_pattern: str | Sequence[str],
    *,
    batch_size: int,
    top_k: int | None = None,
    skip_bad_records: bool = False,
    bad_record_counter: yt8m.BadRecordCounter | None = None,
) -> Iterator[PredictionBatch]:
    """The top_k classes (default: 20 for YouTube-8M, 5 for UCF101) of every video of
    `file_pattern` by a restored run's model: the probabilities of `make_predict_fn` (a sigmoid
    per class, or UCF101's softmax; a random-k student's frames seeded by the video id).

    With skip_bad_records, bad records are skipped and counted in bad_record_counter (of the
    run's family's kinds: `videos.bad_record_counter`).
    """
    family = data_family(run)
    dataset = run.frame_dataset(
        file_pattern,
        batch_size=batch_size,
        skip_bad_records=skip_bad_records,
        bad_record_counter=bad_record_counter,
    )
    predict = make_predict_fn(run.model, run.model_config, run.single_label)
    k = min(top_k or DEFAULT_TOP_K[family], run.model_config.num_classes)

    @tf.function(reduce_retracing=True)
    def top_classes(batch):
        return tf.math.top_k(predict(batch), k=k, sorted=True)

    # The run's reader interleaves files and does not say which a video came from.
    where = "a record of " + (
        file_pattern if isinstance(file_pattern, str) else ",".join(file_pattern)
    )
    for batch in dataset:
        inputs = {name: batch[name] for name in ("video_id", "frames", "num_frames")}
        top = top_classes(inputs)
        video_ids = batch["video_id"].numpy()
        sources = np.full(len(video_ids), where, dtype=object)
        yield PredictionBatch(video_ids, top.indices.numpy(), top.values.numpy(), sources)


def _read_records(
    files: Sequence[str], skip_bad_records: bool, skipped: collections.Counter
) -> Iterator[tuple[str, int, bytes]]:
    """(file, index in the file, serialized record) of every record, file after file.

    A file that cannot be read to its end raises DataLossError naming it, or, with
    skip_bad_records, is read on from the damage by `tfrecords.salvage_records` (which
    resynchronises on the next valid TFRecord header): every intact record is kept, and each
    damaged region is logged and counted as one `corrupt_file`.
    """
    for path in files:
        iterator = iter(tf.data.TFRecordDataset(path))
        index, offset = 0, 0  # the next record's number and byte offset
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except tf.errors.OpError as e:  # DataLossError: a truncated or corrupt file
                message = f"bad input file {path} after {index} records: {yt8m.error_message(e)}"
                if not skip_bad_records:
                    raise tf.errors.DataLossError(None, None, message) from e
                found = tfrecords.salvage_records(tfrecords.read_from(path, offset), base=offset)
                for region in found.lost:
                    logging.warning(
                        "skipping bytes %d-%d of %s: no valid TFRecord there (a truncated or "
                        "corrupt file)",
                        region.start,
                        region.end,
                        path,
                    )
                    skipped["corrupt_file"] += 1
                for _, data in found.records:
                    yield path, index, data
                    index += 1
                break
            data = record.numpy()
            yield path, index, data
            index += 1
            offset += len(data) + tfrecords.OVERHEAD_BYTES


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
    """(serving_default's outputs, the records they are of) for `records` [(file, index, bytes)]
    without its bad records: those raise InvalidArgumentError naming file and index, or are
    skipped and counted."""
    try:
        return serve(example_bytes=tf.constant([r for _, _, r in records])), records
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
        good.append((path, index, record))
    if not good:
        return None, []
    # The good ones together, as one batch (a video's outputs do not depend on the batch).
    return serve(example_bytes=tf.constant([r for _, _, r in good], tf.string)), good


def saved_model_predictions(
    export_dir: str,
    file_pattern: str | Sequence[str],
    *,
    batch_size: int,
    top_k: int | None = None,
    skip_bad_records: bool = False,
    skipped: collections.Counter | None = None,
) -> Iterator[PredictionBatch]:
    """The top_k classes (default: the export's top_k, 20 for YouTube-8M, 5 for UCF101) of every
    video of `file_pattern` by an exported SavedModel, fed the serialized records. `skipped`
    counts what skip_bad_records skipped: `bad_record` (records) and `corrupt_file` (files whose
    rest was skipped)."""
    metadata = load_export_metadata(export_dir)
    files = yt8m.list_files(file_pattern)
    serve = tf.saved_model.load(export_dir).signatures[SERVING_SIGNATURE]
    skipped = skipped if skipped is not None else collections.Counter()
    k = min(top_k or metadata["top_k"], metadata["num_classes"])
    records = _read_records(files, skip_bad_records, skipped)
    for chunk in _batches(records, batch_size):
        outputs, served = _serve_checked(serve, chunk, skip_bad_records, skipped)
        if outputs is None:
            continue
        sources = np.array([f"record {index} of {path}" for path, index, _ in served], object)
        if k <= metadata["top_k"]:
            class_indexes = outputs["class_indexes"].numpy()[:, :k]
            scores = outputs["scores"].numpy()[:, :k]
        else:  # more classes than the export ranks: rank its probabilities
            top = tf.math.top_k(outputs["probabilities"], k=k, sorted=True)
            class_indexes, scores = top.indices.numpy(), top.values.numpy()
        yield PredictionBatch(outputs["video_id"].numpy(), class_indexes, scores, sources)
