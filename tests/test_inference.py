"""Inference: the Kaggle CSV exactly, streaming in batches, the same rows from a run directory and
from its SavedModel, atomic output, bad input."""

from __future__ import annotations

import collections
import csv
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import NUM_CLASSES

from yt8m_kd import inference
from yt8m_kd.data import yt8m
from yt8m_kd.data.synthetic import make_example
from yt8m_kd.export import export_saved_model
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training.restore import restore_run

PAIR = r"\d+ [-+.e\d]+"
ROW = re.compile(rf"^[^,]+,{PAIR}( {PAIR}){{19}}$")  # an id and 20 pairs


@pytest.fixture(scope="module")
def teacher(teacher_run):
    return restore_run(teacher_run)


@pytest.fixture(scope="module")
def teacher_export(teacher_run, tmp_path_factory) -> str:
    return export_saved_model(teacher_run, str(tmp_path_factory.mktemp("served") / "export"))


def _rows(path) -> dict[str, list[tuple[int, float]]]:
    """id -> [(label, score)] of a CSV, which must start with the header."""
    lines = path.read_text().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs"
    rows = {}
    for line in lines[1:]:
        video_id, pairs = line.split(",")
        values = pairs.split(" ")
        rows[video_id] = [(int(values[i]), float(values[i + 1])) for i in range(0, len(values), 2)]
    assert len(rows) == len(lines) - 1  # ids are unique
    return rows


def _assert_same_rows(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for video_id in a:
        assert [label for label, _ in a[video_id]] == [label for label, _ in b[video_id]]
        np.testing.assert_allclose(
            [score for _, score in a[video_id]], [score for _, score in b[video_id]], atol=1e-5
        )


# ------------------------------------------------------------------------------------ the CSV
def test_row_is_the_reference_format():
    # "%i %g": six significant digits, no trailing zeros, exponent for small scores; descending.
    row = inference.format_row(b"Ab12", [3, 7, 1, 30], [0.25, 0.912345678, 1.5e-5, 0.25])
    assert row == "Ab12,7 0.912346 3 0.25 30 0.25 1 1.5e-05"


def test_csv_of_known_predictions(tmp_path):
    batch = inference.PredictionBatch(
        video_ids=np.array([b"vid1", b"vid2"], object),
        class_indexes=np.array([[5, 2, 9], [0, 1, 2]]),
        scores=np.array([[0.9, 0.5, 0.1], [0.3, 0.7, 0.5]], np.float32),
    )
    output = tmp_path / "predictions.csv"
    assert inference.write_kaggle_csv([batch], str(output)) == 2
    assert output.read_text() == (
        "VideoId,LabelConfidencePairs\nvid1,5 0.9 2 0.5 9 0.1\nvid2,1 0.7 2 0.5 0 0.3\n"
    )
    assert not (tmp_path / "predictions.csv.partial").exists()


def test_ucf101_csv_of_known_predictions(tmp_path):
    """The UCF101 CSV: a header of five class/score pairs, rows of class names by descending
    score, "%g" scores (six significant digits)."""
    batch = inference.PredictionBatch(
        video_ids=np.array([b"v_Archery_g01_c01", b"v_Rowing_g02_c03"], object),
        class_indexes=np.array([[2, 0, 5, 1, 4], [0, 6, 3, 2, 1]]),
        scores=np.array(
            [[0.5, 0.25, 0.125, 0.0625, 1.5e-5], [0.02, 0.9123456, 0.05, 0.001, 0.01]], np.float32
        ),
    )
    names = ["Archery", "Basketball", "Biking", "Bowling", "Diving", "Fencing", "Rowing"]
    output = tmp_path / "predictions.csv"
    assert inference.write_class_name_csv([batch], str(output), names) == 2
    assert output.read_text() == (
        "video_id,class_1,score_1,class_2,score_2,class_3,score_3,class_4,score_4,class_5,score_5\n"
        "v_Archery_g01_c01,Biking,0.5,Archery,0.25,Fencing,0.125,Basketball,0.0625,Diving,1.5e-05\n"
        "v_Rowing_g02_c03,Rowing,0.912346,Bowling,0.05,Archery,0.02,Basketball,0.01,Biking,0.001\n"
    )
    assert not (tmp_path / "predictions.csv.partial").exists()


def test_ucf101_csv_refuses_what_it_cannot_write(tmp_path):
    three = inference.PredictionBatch(
        np.array([b"v_a"], object), np.array([[0, 1, 2]]), np.array([[0.5, 0.3, 0.2]])
    )
    # Fewer than five classes: the header has as many pairs as there are classes.
    output = tmp_path / "three.csv"
    inference.write_class_name_csv([three], str(output), ["A", "B", "C"])
    assert output.read_text() == "video_id,class_1,score_1,class_2,score_2,class_3,score_3\n" + (
        "v_a,A,0.5,B,0.3,C,0.2\n"
    )
    with pytest.raises(ValueError, match="3 classes for a CSV of 5 per row"):
        inference.write_class_name_csv([three], str(tmp_path / "five.csv"), list("ABCDEF"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.csv"]
    # A class name holding a comma is quoted, and reads back whole.
    inference.write_class_name_csv([three], str(tmp_path / "comma.csv"), ["A,B", "C", "D"])
    with open(tmp_path / "comma.csv", newline="") as f:
        assert list(csv.reader(f))[1] == ["v_a", "A,B", "0.5", "C", "0.3", "D", "0.2"]


# ------------------------------------------------------------------------------ video ids
AWKWARD_IDS = ["plain", "a,b", 'say "hi"', "two\nlines", "cr\r\nlf", "naïve", " padded "]


def _batch(video_ids, sources=None) -> inference.PredictionBatch:
    n = len(video_ids)
    return inference.PredictionBatch(
        np.array(video_ids, object),
        np.tile([[2, 0]], (n, 1)),
        np.tile([[0.75, 0.25]], (n, 1)),
        None if sources is None else np.array(sources, object),
    )


def test_awkward_ids_round_trip_through_csv_and_pandas(tmp_path):
    import pandas as pd

    output = tmp_path / "predictions.csv"
    ids = [i.encode() for i in AWKWARD_IDS]
    assert inference.write_kaggle_csv([_batch(ids)], str(output)) == len(ids)
    with open(output, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"]
    assert [row[0] for row in rows[1:]] == AWKWARD_IDS
    assert {row[1] for row in rows[1:]} == {"2 0.75 0 0.25"}
    frame = pd.read_csv(output, dtype=str, keep_default_na=False)
    assert list(frame["VideoId"]) == AWKWARD_IDS
    # Plain ids are written as before: the reference's rows, no quotes.
    assert output.read_text().splitlines()[1] == "plain,2 0.75 0 0.25"


@pytest.mark.parametrize(
    "ids, kind, words",
    [
        ([b"a", b"", b"b"], "empty_id", "has an empty video id"),
        (
            [b"a", b"\xff\xfe-x", b"b"],
            "non_utf8_id",
            "video id b'\\xff\\xfe-x', which is not UTF-8",
        ),
        ([b"a", b"a", b"b"], "duplicate_id", "repeats video id 'a'"),
    ],
)
def test_bad_ids_are_refused_or_skipped_and_counted(ids, kind, words, tmp_path):
    sources = [f"record {i} of f.tfrecord" for i in range(3)]
    output = tmp_path / "predictions.csv"
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        inference.write_kaggle_csv([_batch(ids, sources)], str(output))
    assert error.value.message.startswith("record 1 of f.tfrecord ")
    assert words in error.value.message
    assert not list(tmp_path.iterdir())  # no CSV, no .partial

    check = inference.VideoIdCheck(skip_bad_records=True)
    assert inference.write_kaggle_csv([_batch(ids, sources)], str(output), id_check=check) == 2
    assert check.counts == {**dict.fromkeys(inference.ID_PROBLEMS, 0), kind: 1}
    assert [line.split(",")[0] for line in output.read_text().splitlines()[1:]] == ["a", "b"]


def test_a_huge_id_is_cut_short_in_the_error(tmp_path):
    huge = b"x" * 1_000_000
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        inference.write_kaggle_csv([_batch([huge, huge])], str(tmp_path / "p.csv"))
    assert len(error.value.message) < 200 and "(1000000 long)" in error.value.message


def test_run_dir_csv_rows_are_the_models_top_20(teacher, tiny_yt8m, tmp_path):
    output = tmp_path / "predictions.csv"
    batches = inference.run_predictions(teacher, tiny_yt8m.eval_pattern, batch_size=32)
    assert inference.write_kaggle_csv(batches, str(output)) == 32
    lines = output.read_text().splitlines()
    assert all(ROW.match(line) for line in lines[1:]), lines[1]
    rows = _rows(output)

    predict = make_predict_fn(teacher.model, teacher.model_config)
    expected = {}
    for batch in teacher.frame_dataset(tiny_yt8m.eval_pattern, batch_size=32):
        for video_id, probabilities in zip(
            batch["video_id"].numpy(), predict(batch).numpy(), strict=True
        ):
            top = np.argsort(-probabilities, kind="stable")[:20]
            expected[video_id.decode()] = [(int(c), float("%g" % probabilities[c])) for c in top]  # noqa: UP031
    assert rows == expected  # the same labels, scores as printed by "%g"
    for pairs in rows.values():
        scores = [score for _, score in pairs]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= label < NUM_CLASSES for label, _ in pairs)


def test_top_k_below_20(teacher, tiny_yt8m, teacher_export, tmp_path):
    for name, batches in {
        "run": inference.run_predictions(teacher, tiny_yt8m.eval_pattern, batch_size=8, top_k=3),
        "saved": inference.saved_model_predictions(
            teacher_export, tiny_yt8m.eval_pattern, batch_size=8, top_k=3
        ),
    }.items():
        output = tmp_path / f"{name}.csv"
        inference.write_kaggle_csv(batches, str(output))
        assert {len(pairs) for pairs in _rows(output).values()} == {3}


# ------------------------------------------------------------------------------ streaming
class _RecordingWriter(inference.KaggleCsvWriter):
    """Records, at every write, how many batches the source has produced so far."""

    def __init__(self, path, produced: list[int]):
        super().__init__(path)
        self.produced = produced
        self.calls: list[tuple[int, int]] = []  # (batches produced, rows in this batch)

    def write_batch(self, batch):
        self.calls.append((self.produced[0], len(batch)))
        super().write_batch(batch)


def _counted(batches, produced: list[int]):
    for batch in batches:
        produced[0] += 1
        yield batch


@pytest.mark.parametrize("source", ["run_dir", "saved_model"])
def test_batches_stream_to_the_file(source, teacher, teacher_export, tiny_yt8m, tmp_path):
    """Each batch is written before the next one is predicted, and no call holds more than a
    batch of rows; the rows are those of one big batch."""
    if source == "run_dir":
        predictions = inference.run_predictions
        model = teacher
    else:
        predictions = inference.saved_model_predictions
        model = teacher_export
    produced = [0]
    writer = _RecordingWriter(str(tmp_path / "small.csv"), produced)
    with writer:
        batches = predictions(model, tiny_yt8m.eval_pattern, batch_size=7)
        assert inference.write_predictions(_counted(batches, produced), writer) == 32
    assert writer.calls == [(1, 7), (2, 7), (3, 7), (4, 7), (5, 4)]

    inference.write_kaggle_csv(
        predictions(model, tiny_yt8m.eval_pattern, batch_size=64), str(tmp_path / "big.csv")
    )
    _assert_same_rows(_rows(tmp_path / "small.csv"), _rows(tmp_path / "big.csv"))


def test_saved_model_and_run_dir_give_the_same_rows(teacher, teacher_export, tiny_yt8m, tmp_path):
    sources = {
        "run.csv": inference.run_predictions(teacher, tiny_yt8m.eval_pattern, batch_size=7),
        "saved.csv": inference.saved_model_predictions(
            teacher_export, tiny_yt8m.eval_pattern, batch_size=7
        ),
    }
    for name, batches in sources.items():
        inference.write_kaggle_csv(batches, str(tmp_path / name))
    from_run, from_saved = _rows(tmp_path / "run.csv"), _rows(tmp_path / "saved.csv")
    assert len(from_run) == 32
    _assert_same_rows(from_run, {video_id: from_saved[video_id] for video_id in from_run})


def test_a_crash_leaves_no_csv(teacher, tiny_yt8m, tmp_path):
    output = tmp_path / "predictions.csv"
    output.write_text("an older file\n")

    def crashing():
        batches = inference.run_predictions(teacher, tiny_yt8m.eval_pattern, batch_size=7)
        yield next(batches)
        yield next(batches)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        inference.write_kaggle_csv(crashing(), str(output))
    assert output.read_text() == "an older file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


# ------------------------------------------------------------------------------ bad input
def _bad_input(tiny_yt8m, tmp_path) -> str:
    """A file of 16 good records with a bad one (rgb frames of 63 bytes) at index 3."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(tiny_yt8m.eval_files[0])]
    bad = make_example(
        "bad-video",
        [],
        {"rgb": np.zeros((5, 63), np.uint8), "audio": np.zeros((5, 16), np.uint8)},
    )
    path = str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records[:3] + [bad] + records[3:]:
            writer.write(record)
    return path


def test_saved_model_bad_record_is_named_or_skipped(teacher_export, tiny_yt8m, tmp_path):
    path = _bad_input(tiny_yt8m, tmp_path)
    output = tmp_path / "predictions.csv"
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        inference.write_kaggle_csv(
            inference.saved_model_predictions(teacher_export, path, batch_size=7), str(output)
        )
    assert f"record 3 of {path}" in error.value.message and "bad-video" in error.value.message
    assert not output.exists()

    skipped = collections.Counter()
    batches = inference.saved_model_predictions(
        teacher_export, path, batch_size=7, skip_bad_records=True, skipped=skipped
    )
    assert inference.write_kaggle_csv(batches, str(output)) == 16
    assert skipped == {"bad_record": 1}
    assert "bad-video" not in _rows(output)


def test_saved_model_truncated_file(teacher_export, tiny_yt8m, tmp_path):
    data = open(tiny_yt8m.eval_files[0], "rb").read()
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(tf.errors.DataLossError, match="cut.tfrecord"):
        list(inference.saved_model_predictions(teacher_export, str(path), batch_size=4))
    skipped = collections.Counter()
    batches = inference.saved_model_predictions(
        teacher_export, str(path), batch_size=4, skip_bad_records=True, skipped=skipped
    )
    kept = sum(len(batch) for batch in batches)
    assert 0 < kept < 16 and skipped == {"corrupt_file": 1}


def test_saved_model_reads_on_after_a_damaged_record(teacher_export, tiny_yt8m, tmp_path):
    """A byte flipped in the data of the third record: strict mode names the file; skip mode
    skips that record alone and reads every record after it (salvage, as the reader does)."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(tiny_yt8m.eval_files[0])]
    data = bytearray(open(tiny_yt8m.eval_files[0], "rb").read())
    third = sum(len(r) + 16 for r in records[:2])
    data[third + 12 + 5] ^= 0xFF  # inside the third record's data: its CRC fails
    path = tmp_path / "flipped.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError, match="flipped.tfrecord after 2 records"):
        list(inference.saved_model_predictions(teacher_export, str(path), batch_size=4))
    skipped = collections.Counter()
    batches = inference.saved_model_predictions(
        teacher_export, str(path), batch_size=4, skip_bad_records=True, skipped=skipped
    )
    ids = [video_id for batch in batches for video_id in batch.video_ids]
    expected = [tf.train.SequenceExample.FromString(r) for r in records[:2] + records[3:]]
    assert ids == [e.context.feature["id"].bytes_list.value[0] for e in expected]
    assert skipped == {"corrupt_file": 1}


# ------------------------------------------------------------------------------ the launcher
@pytest.mark.slow  # a launcher process that loads TensorFlow and the SavedModel
def test_infer_launcher(teacher_export, tiny_yt8m, launcher, tmp_path):
    output = tmp_path / "predictions.csv"
    result = launcher.run(
        "infer.py",
        f"--saved_model={teacher_export}",
        f"--input_data_pattern={tiny_yt8m.eval_pattern}",
        f"--output_file={output}",
        "--batch_size=7",
        "--noprogress_bar",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["videos"] == 32
    assert summary["bad_records"] == {
        "duplicate_id": 0,
        "empty_id": 0,
        "non_utf8_id": 0,
        "total": 0,
    }
    assert len(_rows(output)) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


def test_infer_launcher_bad_pattern_is_one_line(teacher_run, tiny_yt8m, launcher, tmp_path):
    pattern = f"{tiny_yt8m.root}/nothing-*.tfrecord"
    result = launcher.run(
        "infer.py",
        f"--run_dir={teacher_run}",
        f"--input_data_pattern={pattern}",
        f"--output_file={tmp_path / 'none.csv'}",
    )
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == (
        f"infer.py: error: --input_data_pattern={pattern} matches no file"
    )
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ ids from records
def _frames(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "rgb": rng.integers(0, 256, (12, 64), np.uint8),
        "audio": rng.integers(0, 256, (12, 16), np.uint8),
    }


def _unlabelled(video_id: bytes) -> bytes:
    """A test-set record: frames and an id, no `labels` key at all."""
    example = tf.train.SequenceExample()
    example.ParseFromString(make_example(video_id, [], _frames(9)))
    del example.context.feature["labels"]
    return example.SerializeToString()


ODD_ID = b'a,"b"\nc'


@pytest.fixture
def odd_ids_file(tmp_path) -> str:
    """Records 0-4: ok1, a non-UTF-8 id, ok1 again, an id needing quotes, and an unlabelled
    record. (An empty id never reaches the CSV writer: the record parser refuses it, the
    empty_id problem kind of tests/test_bad_records.py.)"""
    ids = [b"ok1", b"\xff\xfe-x", b"ok1", ODD_ID]
    path = str(tmp_path / "odd.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i, video_id in enumerate(ids):
            writer.write(make_example(video_id, [1], _frames(i)))
        writer.write(_unlabelled(b"no-labels"))
    return path


@pytest.mark.parametrize("source", ["run_dir", "saved_model"])
def test_odd_ids_from_records(source, teacher, teacher_export, odd_ids_file, tmp_path, caplog):
    if source == "run_dir":
        predictions, model = inference.run_predictions, teacher
    else:
        predictions, model = inference.saved_model_predictions, teacher_export
    output = tmp_path / "predictions.csv"
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        inference.write_kaggle_csv(predictions(model, odd_ids_file, batch_size=4), str(output))
    message = yt8m.error_message(error.value)
    assert odd_ids_file in message and "which is not UTF-8 text" in message, message
    assert not output.exists()

    check = inference.VideoIdCheck(skip_bad_records=True)
    caplog.set_level("WARNING")
    rows = inference.write_kaggle_csv(
        predictions(model, odd_ids_file, batch_size=4), str(output), id_check=check
    )
    assert rows == 3
    assert check.counts == {"empty_id": 0, "non_utf8_id": 1, "duplicate_id": 1}
    with open(output, newline="", encoding="utf-8") as f:
        ids = [row[0] for row in list(csv.reader(f))[1:]]
    assert sorted(ids) == sorted(["ok1", ODD_ID.decode(), "no-labels"])
    # Skips are logged; the unlabelled record is not worth a word.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("skipping" in w for w in warnings) == 2
    assert not any("label" in w for w in warnings), warnings


@pytest.mark.slow  # a launcher process that loads TensorFlow and the model
def test_infer_launcher_bad_id_is_one_line_or_counted(
    teacher_run, odd_ids_file, launcher, tmp_path
):
    output = tmp_path / "out" / "predictions.csv"
    output.parent.mkdir()
    args = [f"--run_dir={teacher_run}", f"--input_data_pattern={odd_ids_file}"]
    args += [f"--output_file={output}", "--noprogress_bar"]
    result = launcher.run("infer.py", *args)
    assert result.returncode == 1
    line = launcher.last_stderr_line(result)
    assert line.startswith(f"infer.py: error: a record of {odd_ids_file} has video id "), line
    assert line.endswith("which is not UTF-8 text"), line
    assert "Traceback" not in result.stderr and not list(output.parent.iterdir())

    result = launcher.run("infer.py", *args, "--skip_bad_records")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["videos"] == 3
    bad = summary["bad_records"]
    assert (bad["empty_id"], bad["non_utf8_id"], bad["duplicate_id"], bad["total"]) == (0, 1, 1, 2)
