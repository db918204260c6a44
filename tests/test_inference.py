"""Inference: the Kaggle CSV exactly, streaming in batches, the same rows from a run directory and
from its SavedModel, atomic output, bad input."""

from __future__ import annotations

import collections
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from conftest import NUM_CLASSES

from yt8m_kd import inference
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
    with pytest.raises(ValueError, match="class name 'A,B'"):
        inference.write_class_name_csv([three], str(tmp_path / "comma.csv"), ["A,B", "C", "D"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.csv"]


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
    assert summary["videos"] == 32 and summary["bad_records"] == {"total": 0}
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
