"""UCF101 export and inference: a tiny random-k student trained on records of random JPEGs is
exported; both signatures, loaded in a process without yt8m_kd, give the model's outputs; the
graph parses records as the eval pipeline does; a video's scores do not depend on its batch; the
CSV names the top-5 classes; a run restores without its backbone weights file."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT, serve_in_fresh_process

from yt8m_kd import export as export_lib
from yt8m_kd import inference
from yt8m_kd.data import ucf101, ucf101_prepare, videos, yt8m
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training.restore import restore_run

CLASS_NAMES = (
    "Archery",
    "Basketball",
    "Biking",
    "Bowling",
    "Diving",
    "Fencing",
    "Rowing",
    "Surfing",
)
NUM_CLASSES = len(CLASS_NAMES)  # the preset's --num_classes
MAX_FRAMES = 8  # the preset's T
IMAGE_SIZE = 32  # the preset's S
VIDEOS_PER_SHARD = 12
BATCH_SIZE = 5  # 24 records: batches of 5, one across the two files


def _jpeg(rng: np.random.Generator, height: int = 40, width: int = 48) -> bytes:
    return tf.io.encode_jpeg(rng.integers(0, 256, (height, width, 3), np.uint8)).numpy()


@pytest.fixture(scope="module")
def ucf101_records(tmp_path_factory):
    """classInd.txt and two shards of 12 videos each (3 to 14 random 40x48 JPEG frames: some
    shorter than T = 8), every class in both."""
    root = tmp_path_factory.mktemp("ucf101_records")
    class_index = root / "classInd.txt"
    class_index.write_text("".join(f"{i} {name}\n" for i, name in enumerate(CLASS_NAMES, 1)))
    rng = np.random.default_rng(0)
    files = []
    for shard in range(2):
        path = str(root / f"testlist01-{shard:05d}-of-00002.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for i in range(VIDEOS_PER_SHARD):
                label = (shard * VIDEOS_PER_SHARD + i) % NUM_CLASSES
                name = CLASS_NAMES[label]
                frames = [_jpeg(rng) for _ in range(int(rng.integers(3, 15)))]
                video_id = f"v_{name}_g{shard + 1:02d}_c{i + 1:02d}"
                writer.write(ucf101_prepare.make_record(video_id, label, name, frames))
        files.append(path)
    return {
        "class_index_file": str(class_index),
        "files": files,
        "pattern": str(root / "testlist01-*.tfrecord"),
    }


@pytest.fixture(scope="module")
def student_run(ucf101_records, tmp_path_factory) -> str:
    """models/ucf101_student.flags (small_cnn, S = 32, T = 8, k = 2) with random frame selection,
    trained for 20 steps."""
    from yt8m_kd import flags as yflags
    from yt8m_kd.training import strategy as strategy_lib
    from yt8m_kd.training.runs import train_or_reuse

    run_dir = str(tmp_path_factory.mktemp("ucf101_student"))
    config = yflags.read_flagfile(
        str(REPO_ROOT / "models" / "ucf101_student.flags"),
        train_data_pattern=ucf101_records["pattern"],
        class_index_file=ucf101_records["class_index_file"],
        frame_selection="random",
        batch_size=4,
        max_steps=20,
        checkpoint_every_steps=20,
        base_learning_rate=0.01,
        shuffle_buffer=8,
        progress_bar=False,
    )
    train_or_reuse(config, run_dir, strategy_lib.make_strategy("one_device"))
    return run_dir


@pytest.fixture(scope="module")
def student_export(student_run, tmp_path_factory) -> str:
    return export_lib.export_saved_model(
        student_run, str(tmp_path_factory.mktemp("ucf101_export") / "export")
    )


def _records(files) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(list(files))]


def _ids(files) -> list[bytes]:
    """The video ids of the records of `files`, file after file."""
    return [
        tf.train.SequenceExample.FromString(record).context.feature["id"].bytes_list.value[0]
        for record in _records(files)
    ]


def _in_memory(run_dir: str, files) -> dict[bytes, dict[str, np.ndarray]]:
    """video id -> the restored model's inputs and probabilities for it, over `files`."""
    run = restore_run(run_dir)
    predict = make_predict_fn(run.model, run.model_config, run.single_label)
    rows = {}
    for batch in run.frame_dataset(list(files), batch_size=BATCH_SIZE):
        # serve_frames gets no ids: its random-k seed comes from the frames (evaluation_seeds).
        frames_only = {"frames": batch["frames"], "num_frames": batch["num_frames"]}
        outputs = {
            "probabilities": predict(batch).numpy(),
            "frames_probabilities": predict(frames_only).numpy(),
            "frames": batch["frames"].numpy(),
            "num_frames": batch["num_frames"].numpy(),
        }
        for i, video_id in enumerate(batch["video_id"].numpy()):
            rows[video_id] = {name: values[i] for name, values in outputs.items()}
    return rows


def _stack(rows: dict, ids, name: str) -> np.ndarray:
    return np.stack([rows[video_id][name] for video_id in ids])


# ------------------------------------------------------------------- served = trained model
def test_fresh_process_serves_the_trained_model(
    student_run, student_export, ucf101_records, tmp_path
):
    files = ucf101_records["files"]
    expected = _in_memory(student_run, files)  # read interleaved, in batches of its own
    ids = _ids(files)  # the loader's order: file after file
    assert sorted(ids) == sorted(expected) and len(ids) == 2 * VIDEOS_PER_SHARD
    signatures, served = serve_in_fresh_process(
        student_export,
        files,
        _stack(expected, ids, "frames"),
        _stack(expected, ids, "num_frames"),
        BATCH_SIZE,
        tmp_path,
    )

    assert signatures["serving_default"]["inputs"] == {"example_bytes": ["string", [None]]}
    assert signatures["serving_default"]["outputs"] == {
        "video_id": ["string", [None]],
        "class_indexes": ["int32", [None, 5]],
        "scores": ["float32", [None, 5]],
        "probabilities": ["float32", [None, NUM_CLASSES]],
    }
    assert signatures["serve_frames"]["inputs"] == {
        "frames": ["uint8", [None, None, IMAGE_SIZE, IMAGE_SIZE, 3]],
        "num_frames": ["int32", [None]],
    }
    assert set(signatures["serve_frames"]["outputs"]) == {
        "class_indexes",
        "scores",
        "probabilities",
    }

    np.testing.assert_array_equal(served["video_id"], ids)
    for prefix in ("", "frames_"):
        probabilities = served[prefix + "probabilities"]
        np.testing.assert_allclose(
            probabilities, _stack(expected, ids, prefix + "probabilities"), rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)  # a softmax
        ranking = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]
        np.testing.assert_array_equal(served[prefix + "class_indexes"], ranking)
        np.testing.assert_array_equal(
            served[prefix + "scores"], np.take_along_axis(probabilities, ranking, axis=1)
        )


def test_student_selects_its_frames_in_the_graph(student_run, student_export, ucf101_records):
    """The served student is not the student on all T frames: its k-frame selection is exported."""
    run = restore_run(student_run)
    assert run.model_config.k_frames == 2 and run.model_config.frame_selection == "random"
    batch = next(iter(run.frame_dataset(ucf101_records["files"][0], batch_size=8)))
    all_frames = tf.nn.softmax(run.model(batch, training=False)["logits"]).numpy()
    serve = tf.saved_model.load(student_export).signatures["serve_frames"]
    served = serve(frames=batch["frames"], num_frames=batch["num_frames"])["probabilities"]
    assert np.abs(served.numpy() - all_frames).max() > 1e-3


# ------------------------------------------------------------------- parsing in the graph
def _without_label(record: bytes, label: int | None = None) -> bytes:
    """The record with its context label removed (or replaced by `label`)."""
    example = tf.train.SequenceExample.FromString(record)
    del example.context.feature["label"]
    if label is not None:
        example.context.feature["label"].int64_list.value.append(label)
    return example.SerializeToString()


def _parse(records) -> dict[str, np.ndarray]:
    parsed = export_lib.parse_ucf101_records(
        tf.constant(records, tf.string), max_frames=MAX_FRAMES, image_size=IMAGE_SIZE
    )
    return {name: value.numpy() for name, value in parsed.items()}


def test_parsing_matches_the_eval_pipeline(ucf101_records):
    path = ucf101_records["files"][0]
    records = _records([path])
    batch = next(
        iter(
            ucf101.frame_dataset(
                path,
                batch_size=len(records),
                num_frames=MAX_FRAMES,
                image_size=IMAGE_SIZE,
                training=False,
            )
        )
    )
    parsed = _parse(records)
    assert set(parsed) == {"video_id", "frames", "num_frames"}
    for name in ("video_id", "frames", "num_frames"):
        np.testing.assert_array_equal(parsed[name], batch[name].numpy())
    assert parsed["frames"].shape == (len(records), MAX_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert parsed["frames"].dtype == np.uint8
    assert 0 < parsed["num_frames"].min() < MAX_FRAMES  # some videos are shorter than T ...
    short = int(np.argmin(parsed["num_frames"]))
    assert not parsed["frames"][short, parsed["num_frames"][short] :].any()  # ... zero-padded

    # Labels are not read: missing, or outside the classes, the clip is the same.
    unlabelled = _parse([_without_label(records[0]), _without_label(records[1], label=-3)])
    for name in ("video_id", "frames", "num_frames"):
        np.testing.assert_array_equal(unlabelled[name], parsed[name][:2])


def test_bad_record_in_a_request_is_named(ucf101_records):
    rng = np.random.default_rng(1)
    good = ucf101_prepare.make_record("v_Good_g01_c01", 0, "Archery", [_jpeg(rng)] * 3)
    cut = _jpeg(rng)[:-40]  # a truncated JPEG
    for video_id, frames, words in (
        ("v_Cut_g01_c01", [_jpeg(rng), cut], "frame 2 is not a complete JPEG"),
        ("v_Empty_g01_c01", [], "no frames"),
    ):
        bad = ucf101_prepare.make_record(video_id, 0, "Archery", frames)
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            _parse([good, bad])
        message = yt8m.error_message(error.value)
        assert f"video {video_id}: {words}" in message, message

    # Bytes that are not a SequenceExample of the schema (a frame that is an int64 list) are
    # named by their position in the request.
    example = tf.train.SequenceExample.FromString(good)
    example.feature_lists.feature_list["frames"].feature[1].int64_list.value.append(7)
    for bad in (b"not a proto at all", example.SerializeToString()):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            _parse([good, good, bad])
        message = yt8m.error_message(error.value)
        assert "bad record at position 2 of the request" in message, message


def test_empty_request(student_export):
    served = tf.saved_model.load(student_export).signatures["serving_default"]
    outputs = served(example_bytes=tf.constant([], tf.string))
    assert outputs["video_id"].shape == (0,) and outputs["class_indexes"].shape == (0, 5)
    assert outputs["probabilities"].shape == (0, NUM_CLASSES)


# ------------------------------------------------------------------- what is exported
def test_metadata_names_the_classes(student_export, ucf101_records):
    metadata = export_lib.load_export_metadata(student_export)
    assert {
        name: metadata[name]
        for name in (
            "data_family",
            "num_classes",
            "max_frames",
            "image_size",
            "k_frames",
            "frame_selection",
            "top_k",
            "single_label",
            "class_names",
        )
    } == {
        "data_family": "ucf101",
        "num_classes": NUM_CLASSES,
        "max_frames": MAX_FRAMES,
        "image_size": IMAGE_SIZE,
        "k_frames": 2,
        "frame_selection": "random",
        "top_k": 5,
        "single_label": True,
        "class_names": list(CLASS_NAMES),
    }
    assert "feature_names" not in metadata and "feature_sizes" not in metadata


def test_export_without_the_class_index_file(student_run, ucf101_records, tmp_path):
    """A class index file that is gone leaves the names out; another one can be given; one of
    the wrong size is refused."""
    run = restore_run(student_run)
    gone = tmp_path / "gone.txt"
    shutil.copy(ucf101_records["class_index_file"], gone)
    run.config = run.config.replace(
        data=dataclasses.replace(run.config.data, class_index_file=str(gone))
    )
    gone.unlink()
    assert export_lib.ExportSpec.from_run(run).class_names is None
    other = tmp_path / "classInd.txt"
    other.write_text("".join(f"{i} Class{i}\n" for i in range(1, NUM_CLASSES + 1)))
    spec = export_lib.ExportSpec.from_run(run, class_index_file=str(other))
    assert spec.class_names == tuple(f"Class{i}" for i in range(1, NUM_CLASSES + 1))
    other.write_text("1 Archery\n2 Basketball\n")
    with pytest.raises(ValueError, match="lists 2 classes; the model has 8"):
        export_lib.ExportSpec.from_run(run, class_index_file=str(other))


def test_saved_model_cli_lists_both_signatures(student_export):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = (
        [cli]
        if os.path.exists(cli)
        else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )
    result = subprocess.run(
        [*command, "show", "--all", "--dir", student_export],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    serving = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "inputs['example_bytes']" in serving and "DT_STRING" in serving
    for output, shape in (
        ("video_id", "(-1)"),
        ("class_indexes", "(-1, 5)"),
        ("scores", "(-1, 5)"),
        ("probabilities", f"(-1, {NUM_CLASSES})"),
    ):
        assert f"outputs['{output}']" in serving
        assert shape in serving.split(f"outputs['{output}']")[1].split("outputs[")[0]
    frames = out.split("signature_def['serve_frames']")[1].split("signature_def[")[0]
    assert "inputs['frames']" in frames and "DT_UINT8" in frames
    assert f"(-1, -1, {IMAGE_SIZE}, {IMAGE_SIZE}, 3)" in frames
    assert "inputs['num_frames']" in frames and "DT_INT32" in frames


# ------------------------------------------------------------------- random-k: per video
def test_random_k_scores_do_not_depend_on_the_batch(student_run, student_export, ucf101_records):
    """A video's scores are the same at any position of a batch and in a batch of any size: in
    memory, through serving_default and through serve_frames."""
    run = restore_run(student_run)
    predict = make_predict_fn(run.model, run.model_config, run.single_label)
    batch = next(iter(run.frame_dataset(ucf101_records["files"][0], batch_size=8)))
    batch = {name: batch[name] for name in ("video_id", "frames", "num_frames")}
    reference = predict(batch).numpy()
    reversed_order = predict({k: tf.reverse(v, [0]) for k, v in batch.items()}).numpy()[::-1]
    np.testing.assert_allclose(reversed_order, reference, rtol=0, atol=1e-6)
    for i in (0, 5):
        alone = predict({k: v[i : i + 1] for k, v in batch.items()}).numpy()
        np.testing.assert_allclose(alone[0], reference[i], rtol=0, atol=1e-6)
    # Other ids draw other frames: the seed really is per video.
    renamed = predict({**batch, "video_id": tf.strings.join([batch["video_id"], "x"])}).numpy()
    assert np.abs(renamed - reference).max() > 1e-4

    loaded = tf.saved_model.load(student_export)
    records = _records(ucf101_records["files"][:1])
    serve = loaded.signatures["serving_default"]
    full = serve(example_bytes=tf.constant(records))["probabilities"].numpy()
    backwards = serve(example_bytes=tf.constant(records[::-1]))["probabilities"].numpy()[::-1]
    single = np.concatenate(
        [serve(example_bytes=tf.constant([r]))["probabilities"].numpy() for r in records]
    )
    np.testing.assert_allclose(backwards, full, rtol=0, atol=1e-6)
    np.testing.assert_allclose(single, full, rtol=0, atol=1e-6)
    np.testing.assert_allclose(full[:8], reference, rtol=0, atol=1e-5)

    serve_frames = loaded.signatures["serve_frames"]
    frames, num_frames = batch["frames"].numpy(), batch["num_frames"].numpy()
    full = serve_frames(frames=frames, num_frames=num_frames)["probabilities"].numpy()
    order = np.array([3, 7, 0, 1, 6, 2, 5, 4])
    shuffled = serve_frames(frames=frames[order], num_frames=num_frames[order])
    np.testing.assert_allclose(shuffled["probabilities"].numpy(), full[order], rtol=0, atol=1e-6)
    pair = serve_frames(frames=frames[2:4], num_frames=num_frames[2:4])["probabilities"]
    np.testing.assert_allclose(pair.numpy(), full[2:4], rtol=0, atol=1e-6)


# ------------------------------------------------------------------- restoring
def test_restores_without_its_backbone_weights_file(student_run, ucf101_records, tmp_path):
    """The checkpoint holds every weight: a --backbone_weights file that is gone (trained on
    another machine) does not stop a restore, and the config still names it."""
    moved = tmp_path / "run"
    shutil.copytree(student_run, moved)
    flags_txt = moved / "flags.txt"
    lines = flags_txt.read_text().splitlines()
    missing = str(tmp_path / "gone" / "backbone.weights.h5")
    lines = [line for line in lines if not line.startswith("--backbone_weights")]
    flags_txt.write_text("\n".join([*lines, f"--backbone_weights={missing}"]) + "\n")
    checkpoint = restore_run(student_run).checkpoint
    checkpoint = str(moved / os.path.relpath(checkpoint, student_run))

    run = restore_run(str(moved), checkpoint)
    assert run.model_config.backbone_weights == missing
    original = restore_run(student_run)
    batch = next(iter(run.frame_dataset(ucf101_records["files"][0], batch_size=4)))
    for restored, reference in zip(run.model.weights, original.model.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), reference.numpy())
    predict = make_predict_fn(run.model, run.model_config, True)
    expected = make_predict_fn(original.model, original.model_config, True)
    np.testing.assert_array_equal(predict(batch).numpy(), expected(batch).numpy())


# ------------------------------------------------------------------- the CSV
def _csv_rows(path) -> dict[str, list[tuple[str, float]]]:
    """id -> [(class name, score)] of a UCF101 CSV, which must start with the top-5 header."""
    lines = path.read_text().splitlines()
    assert lines[0] == (
        "video_id,class_1,score_1,class_2,score_2,class_3,score_3,class_4,score_4,class_5,score_5"
    )
    rows = {}
    for line in lines[1:]:
        fields = line.split(",")
        assert len(fields) == 11, line
        rows[fields[0]] = [(fields[i], float(fields[i + 1])) for i in range(1, 11, 2)]
    assert len(rows) == len(lines) - 1  # ids are unique
    return rows


def test_csv_names_the_top_5_classes(student_run, student_export, ucf101_records, tmp_path):
    """From the run directory and from the SavedModel: the same rows, each the model's top 5
    classes by name with their probabilities as "%g" prints them."""
    expected = {}
    for video_id, row in _in_memory(student_run, ucf101_records["files"]).items():
        top = np.argsort(-row["probabilities"], kind="stable")[:5]
        expected[video_id.decode()] = [
            (CLASS_NAMES[c], float("%g" % row["probabilities"][c]))  # noqa: UP031
            for c in top
        ]
    run = restore_run(student_run)
    sources = {
        "run.csv": (
            inference.run_predictions(run, ucf101_records["pattern"], batch_size=5),
            inference.run_class_names(run),
        ),
        "saved.csv": (
            inference.saved_model_predictions(
                student_export, ucf101_records["pattern"], batch_size=7
            ),
            inference.export_class_names(student_export),
        ),
    }
    for name, (batches, class_names) in sources.items():
        assert class_names == list(CLASS_NAMES)
        assert inference.write_class_name_csv(batches, str(tmp_path / name), class_names) == 24
        rows = _csv_rows(tmp_path / name)
        assert set(rows) == set(expected)
        for video_id, pairs in rows.items():
            assert [c for c, _ in pairs] == [c for c, _ in expected[video_id]], video_id
            np.testing.assert_allclose(
                [s for _, s in pairs], [s for _, s in expected[video_id]], rtol=1e-5
            )
            scores = [s for _, s in pairs]
            assert scores == sorted(scores, reverse=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "saved.csv"]


def test_csv_needs_class_names(student_run, student_export, ucf101_records, tmp_path):
    nameless = tmp_path / "export"
    shutil.copytree(student_export, nameless)
    metadata_file = nameless / export_lib.METADATA_FILE
    metadata = json.loads(metadata_file.read_text())
    metadata_file.write_text(json.dumps({**metadata, "class_names": None}))
    with pytest.raises(ValueError, match="names no classes"):
        inference.export_class_names(str(nameless))
    given = inference.export_class_names(str(nameless), ucf101_records["class_index_file"])
    assert given == list(CLASS_NAMES)
    run = restore_run(student_run)
    run.config = run.config.replace(
        data=dataclasses.replace(run.config.data, class_index_file=None)
    )
    with pytest.raises(ValueError, match="names no classes"):
        inference.run_class_names(run)


def _with_a_bad_record(ucf101_records, tmp_path) -> str:
    """A shard: the first shard's records with one whose second frame is not a JPEG in third
    place, its id v_Bad_g09_c01."""
    records = _records(ucf101_records["files"][:1])
    rng = np.random.default_rng(2)
    bad = ucf101_prepare.make_record("v_Bad_g09_c01", 0, "Archery", [_jpeg(rng), b"not a jpeg"])
    path = str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records[:2] + [bad] + records[2:]:
            writer.write(record)
    return path


def test_run_predictions_skip_ucf101_bad_records(student_run, ucf101_records, tmp_path):
    """A run's own reader over UCF101 records: a bad record stops it with a line naming file and
    video, or is skipped and counted as its kind with skip_bad_records."""
    path = _with_a_bad_record(ucf101_records, tmp_path)
    run = restore_run(student_run)
    with pytest.raises(tf.errors.InvalidArgumentError, match="v_Bad_g09_c01"):
        list(inference.run_predictions(run, path, batch_size=4))
    counter = videos.bad_record_counter(run.data_config)
    batches = inference.run_predictions(
        run, path, batch_size=4, skip_bad_records=True, bad_record_counter=counter
    )
    ids = [video_id for batch in batches for video_id in batch.video_ids]
    assert len(ids) == VIDEOS_PER_SHARD and b"v_Bad_g09_c01" not in ids
    counts = counter.counts()
    assert counts["bad_jpeg"] == 1 and counts["total"] == 1


def test_saved_model_bad_record_is_named_or_skipped(student_export, ucf101_records, tmp_path):
    path = _with_a_bad_record(ucf101_records, tmp_path)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(inference.saved_model_predictions(student_export, path, batch_size=5))
    assert f"record 2 of {path}" in error.value.message
    assert "v_Bad_g09_c01" in error.value.message and "not a complete JPEG" in error.value.message
    skipped = collections.Counter()
    batches = inference.saved_model_predictions(
        student_export, path, batch_size=5, skip_bad_records=True, skipped=skipped
    )
    ids = [video_id for batch in batches for video_id in batch.video_ids]
    assert len(ids) == VIDEOS_PER_SHARD and b"v_Bad_g09_c01" not in ids
    assert skipped == {"bad_record": 1}


@pytest.mark.slow  # two launcher processes that load TensorFlow: export, then infer
def test_export_and_infer_launchers(student_run, ucf101_records, launcher, tmp_path):
    export_dir = tmp_path / "served"
    result = launcher.run("export.py", f"--run_dir={student_run}", f"--export_dir={export_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["data_family"] == "ucf101" and printed["class_names"] == list(CLASS_NAMES)
    output = tmp_path / "predictions.csv"
    result = launcher.run(
        "infer.py",
        f"--saved_model={export_dir}",
        f"--input_data_pattern={ucf101_records['pattern']}",
        f"--output_file={output}",
        "--batch_size=7",
        "--noprogress_bar",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["videos"] == 24 and summary["data_family"] == "ucf101"
    assert len(_csv_rows(output)) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "served"]


@pytest.mark.slow  # a launcher process that loads TensorFlow and the run
def test_infer_launcher_skips_ucf101_run_records(student_run, ucf101_records, launcher, tmp_path):
    path = _with_a_bad_record(ucf101_records, tmp_path)
    output = tmp_path / "predictions.csv"
    result = launcher.run(
        "infer.py",
        f"--run_dir={student_run}",
        f"--input_data_pattern={path}",
        f"--output_file={output}",
        "--skip_bad_records",
        "--noprogress_bar",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["videos"] == VIDEOS_PER_SHARD == len(_csv_rows(output))
    assert summary["bad_records"]["bad_jpeg"] == 1 and summary["bad_records"]["total"] == 1
    assert "v_Bad_g09_c01" not in output.read_text()
