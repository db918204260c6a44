"""SavedModel export: both signatures, loaded in a process without yt8m_kd, give the trained
model's outputs; a random-k student's scores for a video do not depend on its batch; parsing in
the graph is the input pipeline's; an interrupted export leaves nothing loadable at export_dir;
only the model's variables are exported. (UCF101 exports: test_export_ucf101.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import MAX_FRAMES, NUM_CLASSES, REPO_ROOT, serve_in_fresh_process

from yt8m_kd import export as export_lib
from yt8m_kd.data import yt8m
from yt8m_kd.data.synthetic import make_example
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training.restore import restore_run

BATCH_SIZE = 11  # 32 records: batches of 11, 11 and 10, one across the two files


@pytest.fixture(scope="module")
def exports(distilled_student_run, teacher_run, tmp_path_factory) -> dict[str, str]:
    """name -> (run_dir, export_dir) of the random-k student and the all-frames teacher."""
    root = tmp_path_factory.mktemp("exports")
    return {
        name: (run_dir, export_lib.export_saved_model(run_dir, str(root / name)))
        for name, run_dir in (("student", distilled_student_run), ("teacher", teacher_run))
    }


def _in_memory(run_dir: str, files) -> dict[str, np.ndarray]:
    """The restored model's inputs and probabilities over `files`, read in order; also the
    probabilities without the video ids (`frames_probabilities`), as serve_frames predicts."""
    run = restore_run(run_dir)
    predict = make_predict_fn(run.model, run.model_config)
    parts = {
        "video_id": [],
        "frames": [],
        "num_frames": [],
        "probabilities": [],
        "frames_probabilities": [],
    }
    for batch in run.frame_dataset(list(files), batch_size=BATCH_SIZE, num_parallel_reads=1):
        parts["probabilities"].append(predict(batch).numpy())
        # No ids: a random-k student seeds each video by its frames (evaluation_seeds).
        frames_only = {"frames": batch["frames"], "num_frames": batch["num_frames"]}
        parts["frames_probabilities"].append(predict(frames_only).numpy())
        for name in ("video_id", "frames", "num_frames"):
            parts[name].append(batch[name].numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


# ------------------------------------------------------------------- served = trained model
@pytest.mark.parametrize("name", ["student", "teacher"])
def test_fresh_process_serves_the_trained_model(name, exports, tiny_yt8m, tmp_path):
    run_dir, export_dir = exports[name]
    expected = _in_memory(run_dir, tiny_yt8m.eval_files)
    signatures, served = serve_in_fresh_process(
        export_dir,
        tiny_yt8m.eval_files,
        expected["frames"],
        expected["num_frames"],
        BATCH_SIZE,
        tmp_path,
    )

    assert set(signatures) == {"serving_default", "serve_frames"}
    assert signatures["serving_default"]["inputs"] == {"example_bytes": ["string", [None]]}
    assert signatures["serving_default"]["outputs"] == {
        "video_id": ["string", [None]],
        "class_indexes": ["int32", [None, 20]],
        "scores": ["float32", [None, 20]],
        "probabilities": ["float32", [None, NUM_CLASSES]],
    }
    assert signatures["serve_frames"]["inputs"] == {
        "frames": ["uint8", [None, None, 80]],
        "num_frames": ["int32", [None]],
    }
    assert set(signatures["serve_frames"]["outputs"]) == {
        "class_indexes",
        "scores",
        "probabilities",
    }

    assert len(expected["video_id"]) == 32
    np.testing.assert_array_equal(served["video_id"], expected["video_id"])
    if name == "teacher":  # all frames: the ids play no part
        np.testing.assert_array_equal(expected["probabilities"], expected["frames_probabilities"])
    for prefix in ("", "frames_"):
        probabilities = served[prefix + "probabilities"]
        np.testing.assert_allclose(
            probabilities, expected[prefix + "probabilities"], rtol=0, atol=1e-5
        )
        ranking = np.argsort(-probabilities, axis=1, kind="stable")[:, :20]
        np.testing.assert_array_equal(served[prefix + "class_indexes"], ranking)
        np.testing.assert_array_equal(
            served[prefix + "scores"], np.take_along_axis(probabilities, ranking, axis=1)
        )


def test_student_selects_its_frames_in_the_graph(exports, tiny_yt8m):
    """The served student is not the student on all frames: its k-frame selection is exported."""
    run_dir, export_dir = exports["student"]
    run = restore_run(run_dir)
    assert run.model_config.k_frames == 6 and run.model_config.frame_selection == "random"
    batch = next(iter(run.frame_dataset(tiny_yt8m.eval_files[0], batch_size=8)))
    all_frames = tf.sigmoid(run.model(batch, training=False)["logits"]).numpy()
    serve = tf.saved_model.load(export_dir).signatures["serve_frames"]
    served = serve(frames=batch["frames"], num_frames=batch["num_frames"])["probabilities"]
    assert np.abs(served.numpy() - all_frames).max() > 1e-3


def test_random_k_scores_do_not_depend_on_the_batch(exports, tiny_yt8m):
    """A random-k student gives a video the same scores at any position of a batch and in a
    batch of any size: in memory (the evaluation path), through serving_default (seeded by the
    id) and through serve_frames (seeded by the frames)."""
    run_dir, export_dir = exports["student"]
    run = restore_run(run_dir)
    predict = make_predict_fn(run.model, run.model_config)
    batch = next(iter(run.frame_dataset(tiny_yt8m.eval_files[0], batch_size=16)))
    batch = {name: batch[name] for name in ("video_id", "frames", "num_frames")}
    reference = predict(batch).numpy()
    backwards = predict({k: tf.reverse(v, [0]) for k, v in batch.items()}).numpy()[::-1]
    np.testing.assert_allclose(backwards, reference, rtol=0, atol=1e-6)
    for start, size in ((0, 1), (5, 1), (3, 7)):
        part = predict({k: v[start : start + size] for k, v in batch.items()}).numpy()
        np.testing.assert_allclose(part, reference[start : start + size], rtol=0, atol=1e-6)
    renamed = predict({**batch, "video_id": tf.strings.join([batch["video_id"], "x"])}).numpy()
    assert np.abs(renamed - reference).max() > 1e-4  # the seed is the video's

    loaded = tf.saved_model.load(export_dir)
    serve = loaded.signatures["serving_default"]
    records = [r.numpy() for r in tf.data.TFRecordDataset(tiny_yt8m.eval_files[0])]
    full = serve(example_bytes=tf.constant(records))["probabilities"].numpy()
    np.testing.assert_allclose(full, reference, rtol=0, atol=1e-5)
    backwards = serve(example_bytes=tf.constant(records[::-1]))["probabilities"].numpy()[::-1]
    np.testing.assert_allclose(backwards, full, rtol=0, atol=1e-6)
    pair = serve(example_bytes=tf.constant(records[9:11]))["probabilities"].numpy()
    np.testing.assert_allclose(pair, full[9:11], rtol=0, atol=1e-6)

    serve_frames = loaded.signatures["serve_frames"]
    frames, num_frames = batch["frames"].numpy(), batch["num_frames"].numpy()
    full = serve_frames(frames=frames, num_frames=num_frames)["probabilities"].numpy()
    order = np.random.default_rng(0).permutation(len(frames))
    shuffled = serve_frames(frames=frames[order], num_frames=num_frames[order])["probabilities"]
    np.testing.assert_allclose(shuffled.numpy(), full[order], rtol=0, atol=1e-6)
    single = serve_frames(frames=frames[4:5], num_frames=num_frames[4:5])["probabilities"]
    np.testing.assert_allclose(single.numpy(), full[4:5], rtol=0, atol=1e-6)


def test_serve_frames_cuts_and_pads_to_max_frames(exports, tiny_yt8m):
    """Frames past max_frames are cut (as the reader cuts them) and shorter inputs padded: the
    same outputs for the same video, even for a random-k student whose draw depends on T (and
    whose seed on the frames of the padded length)."""
    run_dir, export_dir = exports["student"]
    run = restore_run(run_dir)
    batch = next(iter(run.frame_dataset(tiny_yt8m.eval_files[0], batch_size=8)))
    frames, num_frames = batch["frames"].numpy(), batch["num_frames"].numpy()
    serve = tf.saved_model.load(export_dir).signatures["serve_frames"]
    reference = serve(frames=frames, num_frames=num_frames)["probabilities"].numpy()
    longest = int(num_frames.max())
    shorter = serve(frames=frames[:, :longest], num_frames=num_frames)["probabilities"]
    np.testing.assert_allclose(shorter.numpy(), reference, atol=1e-6)
    # A video of 75 frames is read as its first 60 (the zero padding counted as frames here).
    full = np.full_like(num_frames, MAX_FRAMES)
    reference = serve(frames=frames, num_frames=full)["probabilities"].numpy()
    extra = np.full((len(frames), 15, frames.shape[2]), 255, np.uint8)
    longer = np.concatenate([frames, extra], axis=1)
    cut = serve(frames=longer, num_frames=full + 15)["probabilities"]
    np.testing.assert_allclose(cut.numpy(), reference, atol=1e-6)


def test_saved_model_cli_lists_both_signatures(exports):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = (
        [cli]
        if os.path.exists(cli)
        else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    )
    result = subprocess.run(
        [*command, "show", "--all", "--dir", exports["student"][1]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for signature in ("serving_default", "serve_frames"):
        assert f"signature_def['{signature}']" in out
    serving = out.split("signature_def['serving_default']")[1]
    assert "inputs['example_bytes']" in serving and "DT_STRING" in serving
    for output in ("video_id", "class_indexes", "scores", "probabilities"):
        assert f"outputs['{output}']" in serving
    frames = out.split("signature_def['serve_frames']")[1].split("signature_def[")[0]
    assert "inputs['frames']" in frames and "DT_UINT8" in frames and "(-1, -1, 80)" in frames
    assert "inputs['num_frames']" in frames and "DT_INT32" in frames


# ------------------------------------------------------------------- parsing in the graph
def _parse(records, **kwargs) -> dict[str, np.ndarray]:
    options = {"max_frames": 4, "feature_names": ("rgb", "audio"), "feature_sizes": (4, 2)}
    parsed = export_lib.parse_yt8m_records(tf.constant(records), **{**options, **kwargs})
    return {name: value.numpy() for name, value in parsed.items()}


def test_parsing_matches_the_input_pipeline(tiny_yt8m):
    records = [r.numpy() for r in tf.data.TFRecordDataset(tiny_yt8m.eval_files[0])]
    parsed = export_lib.parse_yt8m_records(
        tf.constant(records),
        max_frames=MAX_FRAMES,
        feature_names=("rgb", "audio"),
        feature_sizes=(64, 16),
    )
    batch = next(
        iter(
            yt8m.frame_dataset(
                tiny_yt8m.eval_files[0],
                batch_size=len(records),
                max_frames=MAX_FRAMES,
                num_classes=NUM_CLASSES,
                feature_sizes=(64, 16),
            )
        )
    )
    for name in ("video_id", "frames", "num_frames"):
        np.testing.assert_array_equal(parsed[name].numpy(), batch[name].numpy())
    assert parsed["frames"].dtype == tf.uint8 and parsed["frames"].shape[1:] == (MAX_FRAMES, 80)


def test_parsing_cuts_pads_and_reads_2017_ids():
    rng = np.random.default_rng(0)
    long = {
        "rgb": rng.integers(0, 256, (6, 4), np.uint8),
        "audio": rng.integers(0, 256, (6, 2), np.uint8),
    }
    short = {"rgb": long["rgb"][:2], "audio": long["audio"][:2]}
    old = tf.train.SequenceExample()  # 2017 data: the id is in `video_id`
    old.ParseFromString(make_example("x", [], short))
    old.context.feature["video_id"].bytes_list.value.append(b"old-id")
    del old.context.feature["id"]
    parsed = _parse([make_example("long", [1], long), old.SerializeToString()])
    assert list(parsed["video_id"]) == [b"long", b"old-id"]
    np.testing.assert_array_equal(parsed["num_frames"], [4, 2])
    expected_long = np.concatenate([long["rgb"], long["audio"]], axis=1)[:4]
    np.testing.assert_array_equal(parsed["frames"][0], expected_long)
    np.testing.assert_array_equal(parsed["frames"][1, :2], expected_long[:2])
    assert not parsed["frames"][1, 2:].any()  # zero padding


@pytest.mark.parametrize(
    "frames, words",
    [
        (
            {"rgb": np.zeros((3, 3), np.uint8), "audio": np.zeros((3, 2), np.uint8)},
            "wrong number of bytes",
        ),
        ({"rgb": np.zeros((3, 4), np.uint8)}, "absent or empty"),
        (
            {"rgb": np.zeros((3, 4), np.uint8), "audio": np.zeros((2, 2), np.uint8)},
            "different frame counts",
        ),
        ({"rgb": np.zeros((0, 4), np.uint8), "audio": np.zeros((0, 2), np.uint8)}, "no frames"),
    ],
)
def test_bad_record_in_a_request_is_named(frames, words):
    good = make_example(
        "good", [1], {"rgb": np.zeros((3, 4), np.uint8), "audio": np.zeros((3, 2), np.uint8)}
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        _parse([good, make_example("the-bad-one", [1], frames)])
    message = yt8m.error_message(error.value)
    assert "position 1" in message and "record id the-bad-one" in message and words in message


# ------------------------------------------------------------------- what is exported
def test_export_holds_the_model_variables_only(exports):
    run_dir, export_dir = exports["student"]
    run = restore_run(run_dir)
    trained = [name for name, _ in tf.train.list_variables(run.checkpoint)]
    assert any(name.startswith("projection/") for name in trained)  # the run has one ...
    assert any(name.startswith("optimizer/") for name in trained)
    exported = [
        name
        for name, _ in tf.train.list_variables(os.path.join(export_dir, "variables", "variables"))
        if name.endswith("VARIABLE_VALUE")
    ]
    assert len(exported) == len(run.model.weights)  # ... the export has the model's only
    assert all(name.startswith("model/") for name in exported)
    metadata = export_lib.load_export_metadata(export_dir)
    assert metadata["model_variables"] == len(run.model.weights)
    assert {k: metadata[k] for k in ("num_classes", "max_frames", "k_frames", "top_k")} == {
        "num_classes": NUM_CLASSES,
        "max_frames": MAX_FRAMES,
        "k_frames": 6,
        "top_k": 20,
    }
    assert metadata["feature_names"] == ["rgb", "audio"] and metadata["feature_sizes"] == [64, 16]
    assert metadata["data_family"] == "yt8m" and metadata["single_label"] is False
    assert "image_size" not in metadata and "class_names" not in metadata  # UCF101's only


# ------------------------------------------------------------------- atomic writes
def _loads(path) -> bool:
    try:
        tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError):
        return False
    return True


def test_killed_export_leaves_nothing_at_export_dir(teacher_run, tmp_path):
    """SIGKILL after the SavedModel is complete but before the rename: the worst moment."""
    export_dir = tmp_path / "export"
    script = (
        "import os, signal\n"
        "from yt8m_kd import export\n"
        "save = export._save\n"
        "def save_then_die(module, path):\n"
        "    save(module, path)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "export._save = save_then_die\n"
        f"export.export_saved_model({teacher_run!r}, {str(export_dir)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, timeout=120
    )
    assert result.returncode == -9, result.stderr[-3000:]
    partial = tmp_path / "export.partial"
    assert partial.exists() and _loads(partial)  # a whole model, under another name
    assert not export_dir.exists()

    assert export_lib.export_saved_model(teacher_run, str(export_dir)) == str(export_dir)
    assert _loads(export_dir) and not partial.exists()  # the rerun replaced the leftover


def test_interrupted_overwrite_keeps_the_old_export(teacher_run, tmp_path, monkeypatch):
    export_dir = tmp_path / "export"
    export_lib.export_saved_model(teacher_run, str(export_dir))
    with pytest.raises(FileExistsError, match="overwrite"):
        export_lib.export_saved_model(teacher_run, str(export_dir))
    before = (export_dir / "saved_model.pb").read_bytes()

    save = export_lib._save

    def save_then_fail(module, path):
        save(module, path)
        raise KeyboardInterrupt  # Ctrl-C after the files were written

    monkeypatch.setattr(export_lib, "_save", save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export_lib.export_saved_model(teacher_run, str(export_dir), overwrite=True)
    assert (export_dir / "saved_model.pb").read_bytes() == before and _loads(export_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]

    monkeypatch.undo()
    shutil.rmtree(export_dir / "variables")  # so that the replacement is visible
    export_lib.export_saved_model(teacher_run, str(export_dir), overwrite=True)
    assert _loads(export_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no .old, no .partial


def test_a_crash_between_the_overwrite_renames_is_recovered(teacher_run, tmp_path):
    """A kill after the old export was renamed to .old and before the new one came in leaves no
    export_dir: the next export moves the old one back first (so without --overwrite it is
    refused as before); a .old left beside a complete export is deleted."""
    export_dir = tmp_path / "export"
    export_lib.export_saved_model(teacher_run, str(export_dir))
    before = (export_dir / "saved_model.pb").read_bytes()
    export_dir.rename(tmp_path / "export.old")  # the state between the renames
    with pytest.raises(FileExistsError, match="overwrite"):
        export_lib.export_saved_model(teacher_run, str(export_dir))
    assert (export_dir / "saved_model.pb").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]

    shutil.copytree(export_dir, tmp_path / "export.old")  # a crash before .old was deleted
    export_lib.export_saved_model(teacher_run, str(export_dir), overwrite=True)
    assert _loads(export_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.slow  # a launcher process that loads TensorFlow and exports
def test_export_launcher(teacher_run, launcher, tmp_path):
    export_dir = tmp_path / "served"
    result = launcher.run(
        "export.py",
        f"--run_dir={teacher_run}",
        f"--export_dir={export_dir}",
        "--export_dtype=float16",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["export_dir"] == str(export_dir) and printed["k_frames"] == 0
    assert printed["export_dtype"] == "float16" and _variable_dtypes(export_dir) == {"float16"}
    assert _loads(export_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


def test_export_launcher_refuses_an_existing_export_dir(teacher_run, launcher, tmp_path):
    export_dir = tmp_path / "served"
    export_dir.mkdir()
    result = launcher.run("export.py", f"--run_dir={teacher_run}", f"--export_dir={export_dir}")
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == (
        f"export.py: error: --export_dir={export_dir} exists already; pass --overwrite to "
        "replace it"
    )
    assert "Traceback" not in result.stderr and not list(export_dir.iterdir())


# ------------------------------------------------------------------- bad requests
def test_bytes_that_are_no_record_are_named_by_position():
    good = make_example(
        "good", [1], {"rgb": np.zeros((3, 4), np.uint8), "audio": np.zeros((3, 2), np.uint8)}
    )
    for records, position in (([good, b"garbage", good], 1), ([b"\x0a\xff", good], 0)):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            _parse(records)
        message = yt8m.error_message(error.value)
        assert f"bad record at position {position} of the request" in message, message
        assert "not a tf.train.SequenceExample" in message
    assert list(_parse([good, good])["video_id"]) == [b"good", b"good"]  # the check passes


def test_empty_requests_get_empty_outputs(exports):
    _, export_dir = exports["teacher"]
    loaded = tf.saved_model.load(export_dir)
    served = loaded.signatures["serving_default"](example_bytes=tf.constant([], tf.string))
    assert served["video_id"].shape == (0,)
    assert served["class_indexes"].shape == (0, 20) and served["scores"].shape == (0, 20)
    assert served["probabilities"].shape == (0, NUM_CLASSES)
    frames = loaded.signatures["serve_frames"](
        frames=tf.zeros([0, 5, 80], tf.uint8), num_frames=tf.constant([], tf.int32)
    )
    assert frames["probabilities"].shape == (0, NUM_CLASSES)


@pytest.mark.parametrize(
    "num_frames, length", [([3, 0], 5), ([3, -2], 5), ([3, 3], 0)], ids=["zero", "negative", "T0"]
)
def test_serve_frames_refuses_videos_of_no_frames(exports, num_frames, length):
    _, export_dir = exports["teacher"]
    serve = tf.saved_model.load(export_dir).signatures["serve_frames"]
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve(frames=tf.zeros([2, length, 80], tf.uint8), num_frames=tf.constant(num_frames))
    message = yt8m.error_message(error.value)
    assert "every video needs num_frames >= 1" in message, message
    assert str(num_frames[1]) in message
    # The same call with frames for every video answers.
    served = serve(frames=tf.zeros([2, 5, 80], tf.uint8), num_frames=tf.constant([3, 1]))
    assert served["probabilities"].shape == (2, NUM_CLASSES)


# ------------------------------------------------------------------- compact exports
def _variables_bytes(export_dir: str) -> int:
    folder = os.path.join(export_dir, "variables")
    return sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))


def _variable_dtypes(export_dir: str) -> set[str]:
    reader = tf.train.load_checkpoint(os.path.join(export_dir, "variables", "variables"))
    return {
        dtype.name
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if name.endswith("VARIABLE_VALUE") and dtype.is_floating
    }


# Largest |probability| difference to the float32 export: float16 keeps 11 significant bits,
# bfloat16 8, and both round every weight and every activation of the model. (Trained tiny models
# differ by up to 0.0042 and 0.019: benchmarks/results/export_dtype.json.)
COMPACT_TOLERANCE = {"float16": 1e-2, "bfloat16": 4e-2}


@pytest.mark.parametrize("export_dtype", ["float16", "bfloat16"])
def test_compact_export_loads_and_matches_the_float32_export(
    export_dtype, exports, tiny_yt8m, tmp_path
):
    """Weights stored in the compact type at about half the bytes; a fresh process serves it with
    the float32 export's inputs and outputs, and probabilities within COMPACT_TOLERANCE."""
    run_dir, float32_dir = exports["student"]
    compact_dir = export_lib.export_saved_model(
        run_dir, str(tmp_path / export_dtype), export_dtype=export_dtype
    )
    assert export_lib.load_export_metadata(compact_dir)["export_dtype"] == export_dtype
    assert export_lib.load_export_metadata(float32_dir)["export_dtype"] == "float32"
    assert _variable_dtypes(float32_dir) == {"float32"}
    assert _variable_dtypes(compact_dir) == {export_dtype}
    ratio = _variables_bytes(compact_dir) / _variables_bytes(float32_dir)
    assert 0.45 < ratio < 0.6, ratio

    expected = _in_memory(run_dir, tiny_yt8m.eval_files)
    served = {}
    for name, export_dir in (("float32", float32_dir), (export_dtype, compact_dir)):
        (tmp_path / f"serve_{name}").mkdir()
        signatures, served[name] = serve_in_fresh_process(
            export_dir,
            tiny_yt8m.eval_files,
            expected["frames"],
            expected["num_frames"],
            BATCH_SIZE,
            tmp_path / f"serve_{name}",
        )
        assert signatures["serving_default"]["outputs"]["probabilities"] == [
            "float32",
            [None, NUM_CLASSES],
        ]
    np.testing.assert_array_equal(served[export_dtype]["video_id"], expected["video_id"])
    for prefix in ("", "frames_"):
        compact = served[export_dtype][prefix + "probabilities"]
        full = served["float32"][prefix + "probabilities"]
        difference = np.abs(compact - full).max()
        assert 0 < difference < COMPACT_TOLERANCE[export_dtype], difference  # rounded, not far


def test_unknown_export_dtype_is_refused_before_anything_is_written(teacher_run, tmp_path):
    with pytest.raises(ValueError, match="export dtype 'float64' is not one of"):
        export_lib.export_saved_model(teacher_run, str(tmp_path / "e"), export_dtype="float64")
    assert not os.listdir(tmp_path)
