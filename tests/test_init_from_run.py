"""--init_from_run: a run's model starts from another run's latest checkpoint, model weights only.

A k-frame student starts bit for bit from the all-frames teacher at step 0; a source of another
architecture is refused in one line naming the field, before anything is written; a run with a
checkpoint of its own resumes it and never re-initialises; online and cached distillation, SAKD
and UCF101 accept it; flags.txt, flags_history.json and metrics.json record it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import MAX_FRAMES, REPO_ROOT, run_test_script, tiny_run_config
from tensorflow.core.protobuf import trackable_object_graph_pb2

from yt8m_kd import flags as yflags
from yt8m_kd.configs import FlagError
from yt8m_kd.data import ucf101_prepare
from yt8m_kd.training import runs
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.loop import INIT_FROM_FILE
from yt8m_kd.training.restore import latest_checkpoint, restore_run


@pytest.fixture(scope="module")
def one_device():
    return strategy_lib.make_strategy("one_device")


def _weights(model) -> list[np.ndarray]:
    """Every weight of a model (batch-norm statistics included), in the model's order."""
    return [w.numpy() for w in model.weights]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _fingerprints(arrays) -> list[tuple]:
    """(shape, dtype, bytes) of arrays, sorted: a multiset that ignores names and order."""
    return sorted((a.shape, str(a.dtype), a.tobytes()) for a in arrays)


def _checkpoint_model_tensors(checkpoint: str) -> list[np.ndarray]:
    """Every variable under the checkpoint's "model" object, read raw from the file through its
    object graph (not through a restore; variables the optimizer also tracks are stored under
    the optimizer's path, so their keys do not start with "model/")."""
    reader = tf.train.load_checkpoint(checkpoint)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    todo = [child.node_id for child in graph.nodes[0].children if child.local_name == "model"]
    seen, keys = set(), []
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        keys += [a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"]
        todo += [child.node_id for child in node.children]
    return [reader.get_tensor(key) for key in keys]


def _assert_starts_from(trainer, source_run: str) -> None:
    """`trainer` holds exactly the model weights of `source_run`'s latest checkpoint, at step 0
    with an untouched optimizer."""
    checkpoint = latest_checkpoint(source_run)
    assert _fingerprints(_weights(trainer.model)) == _fingerprints(
        _checkpoint_model_tensors(checkpoint)
    )
    assert _same(_weights(trainer.model), _weights(restore_run(source_run).model))
    assert trainer.step == 0 and int(trainer.optimizer.iterations.numpy()) == 0
    assert trainer.init_from["run_dir"] == source_run
    assert trainer.init_from["checkpoint"].endswith(checkpoint.split("/")[-1])


def _student(tiny_yt8m, source, preset="tiny_student_k6.flags", **overrides):
    options = {"max_steps": 2, "checkpoint_every_steps": 2, "init_from_run": source}
    return tiny_run_config(preset, tiny_yt8m, **{**options, **overrides})


# ------------------------------------------------------------------------ the first weights
def test_k6_student_starts_from_the_teacher_bit_for_bit(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    config = _student(tiny_yt8m, teacher_run, frame_selection="random")
    trainer = runs.make_trainer(config, str(tmp_path / "student"), one_device)
    random_init = _weights(trainer.model)
    assert trainer.restore() == 0
    _assert_starts_from(trainer, teacher_run)
    assert not _same(random_init, _weights(trainer.model))  # the restore did change them
    assert trainer.init_from["source_step"] == 5
    assert json.loads((tmp_path / "student" / INIT_FROM_FILE).read_text()) == trainer.init_from
    # Nothing but the model came from the teacher: Adam's moments are still zero.
    assert all(
        not np.any(v.numpy())
        for v in trainer.optimizer.variables
        if v is not trainer.optimizer.iterations
    )


def test_without_the_flag_the_student_starts_from_random_weights(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    config = _student(tiny_yt8m, None)
    trainer = runs.make_trainer(config, str(tmp_path / "student"), one_device)
    random_init = _weights(trainer.model)
    assert trainer.restore() == 0
    assert _same(random_init, _weights(trainer.model)) and trainer.init_from is None
    assert not _same(random_init, _weights(restore_run(teacher_run).model))


# ------------------------------------------------------------------------ incompatible sources
@pytest.mark.parametrize(
    "overrides, differs",
    [
        ({"cluster_size": 8}, "model.cluster_size: 16 -> 8"),
        ({"num_classes": 16}, "model.num_classes: 32 -> 16"),
        (
            {"hidden_size": 32, "classifier": "moe"},
            "model.hidden_size: 64 -> 32; model.classifier: 'logistic' -> 'moe'",
        ),
        (
            {"feature_names": ["rgb", "sound"]},
            "data.feature_names: ('rgb', 'audio') -> ('rgb', 'sound')",
        ),
    ],
)
def test_another_architecture_is_refused_before_anything_is_written(
    overrides, differs, teacher_run, tiny_yt8m, tmp_path, one_device
):
    config = _student(tiny_yt8m, teacher_run, **overrides)
    run_dir = tmp_path / "student"
    with pytest.raises(FlagError) as error:
        runs.train_or_reuse(config, str(run_dir), one_device)
    assert str(error.value) == f"--init_from_run={teacher_run}: its model differs: {differs}"
    assert not run_dir.exists()


def test_frames_backbone_weights_and_dropout_may_differ(teacher_run, tiny_yt8m):
    source = yflags.read_run_config(teacher_run)
    config = _student(
        tiny_yt8m, teacher_run, k_frames=30, frame_selection="first_middle_last", drop_rate=0.5
    )
    config = config.replace(model=config.model.replace(backbone_weights="none"))
    assert runs.init_differences(source, config) == []
    runs.check_init_source(config)  # no error


def test_a_source_without_flags_or_checkpoint_is_named(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FlagError) as error:
        runs.train_or_reuse(_student(tiny_yt8m, str(empty)), str(tmp_path / "a"), one_device)
    assert str(error.value) == f"--init_from_run={empty} is not a run directory (no flags.txt)"
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    shutil.copy(f"{teacher_run}/flags.txt", no_checkpoint / "flags.txt")
    with pytest.raises(FlagError) as error:
        runs.train_or_reuse(
            _student(tiny_yt8m, str(no_checkpoint)), str(tmp_path / "b"), one_device
        )
    assert str(error.value) == (
        f"--init_from_run={no_checkpoint} has no checkpoint (none in {no_checkpoint}/checkpoints)"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_checkpoint_missing_model_weights_is_refused(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    """The trainer's own check, for a source whose flags.txt fits but whose checkpoint does not
    hold the model (every model variable must be matched, not only those it happens to have)."""
    source = tmp_path / "source"
    (source / "checkpoints").mkdir(parents=True)
    shutil.copy(f"{teacher_run}/flags.txt", source / "flags.txt")
    tf.train.CheckpointManager(
        tf.train.Checkpoint(other=tf.Variable(1.0)), str(source / "checkpoints"), max_to_keep=1
    ).save(checkpoint_number=3)
    trainer = runs.make_trainer(_student(tiny_yt8m, str(source)), str(tmp_path / "s"), one_device)
    with pytest.raises(
        FlagError, match=rf"^--init_from_run={source}: .*ckpt-3 does not fit this model \("
    ):
        trainer.restore()


def test_the_launcher_reports_an_incompatible_source_in_one_line(
    teacher_run, tiny_yt8m, tmp_path, launcher
):
    run_dir = tmp_path / "student"
    result = launcher.run(
        "train.py",
        "--flagfile=models/tiny_student_k6.flags",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--max_steps=2",
        "--noprogress_bar",
        "--cluster_size=8",
        f"--init_from_run={teacher_run}",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
    )
    assert result.returncode == 1
    assert launcher.last_stderr_line(result) == (
        f"train.py: error: --init_from_run={teacher_run}: its model differs: "
        "model.cluster_size: 16 -> 8"
    )
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()


# ------------------------------------------------------------------------ resume beats init
def test_a_rerun_resumes_its_own_checkpoint_and_never_reinitialises(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    source = tmp_path / "source"
    shutil.copytree(teacher_run, source)
    student = tmp_path / "student"
    metrics, _ = runs.train_or_reuse(_student(tiny_yt8m, str(source)), str(student), one_device)
    assert metrics["resumed_from_step"] == 0 and metrics["step"] == 2
    first_checkpoint = latest_checkpoint(str(source))
    assert metrics["init_from"]["checkpoint"] == str(tmp_path / "source" / "checkpoints" / "ckpt-5")
    assert metrics["init_from"]["source_step"] == 5 and first_checkpoint.endswith("ckpt-5")
    own = _weights(restore_run(str(student)).model)

    # The source trains on: its latest checkpoint is another one now.
    teacher = tiny_run_config(
        "tiny_teacher.flags", tiny_yt8m, max_steps=7, checkpoint_every_steps=5
    )
    runs.train_or_reuse(teacher, str(source), one_device)
    assert latest_checkpoint(str(source)).endswith("ckpt-7")
    newer_source = _weights(restore_run(str(source)).model)

    # A trainer of the student restores its own step-2 checkpoint, not the source.
    trainer = runs.make_trainer(_student(tiny_yt8m, str(source)), str(student), one_device)
    assert trainer.restore() == 2
    assert _same(_weights(trainer.model), own)
    assert not _same(_weights(trainer.model), newer_source)

    # A rerun that trains further, now naming another source: resumed, the change recorded,
    # metrics.json still says where the run started.
    rerun = _student(tiny_yt8m, teacher_run, max_steps=3)
    metrics, reused = runs.train_or_reuse(rerun, str(student), one_device)
    assert not reused and metrics["resumed_from_step"] == 2 and metrics["step"] == 3
    assert metrics["init_from"]["run_dir"] == str(source)
    assert metrics["init_from"]["checkpoint"].endswith("ckpt-5")
    history = json.loads((student / "flags_history.json").read_text())["invocations"]
    assert [e["new_run"] for e in history] == [True, False]
    assert history[1]["changed"] == {
        "init_from_run": [str(source), teacher_run],
        "max_steps": [2, 3],
    }
    assert f"--init_from_run={teacher_run}" in (student / "flags.txt").read_text().splitlines()


def test_a_start_without_the_flag_forgets_an_earlier_init(
    teacher_run, tiny_yt8m, tmp_path, one_device
):
    """An init_from.json left by a start killed before its first checkpoint does not describe a
    later start from random weights."""
    student = tmp_path / "student"
    runs.make_trainer(_student(tiny_yt8m, teacher_run), str(student), one_device).restore()
    assert (student / INIT_FROM_FILE).exists()
    trainer = runs.make_trainer(_student(tiny_yt8m, None), str(student), one_device)
    trainer.restore()
    assert trainer.init_from is None and not (student / INIT_FROM_FILE).exists()


# ------------------------------------------------------------------------ distillation and SAKD
@pytest.mark.parametrize("kind", ["online", "cache", "sakd"])
def test_distilled_and_sakd_students_start_from_the_teacher(
    kind, teacher_run, teacher_cache, tiny_yt8m, tmp_path, one_device
):
    if kind == "online":
        config = _student(
            tiny_yt8m, teacher_run, preset="tiny_distilled_k6.flags", teacher_run_dir=teacher_run
        )
    elif kind == "cache":
        config = _student(
            tiny_yt8m, teacher_run, preset="tiny_distilled_k6.flags", teacher_cache=teacher_cache
        )
    else:
        config = _student(
            tiny_yt8m,
            teacher_run,
            preset="tiny_sakd_k6.flags",
            teacher_cache=teacher_cache,
            num_epochs=1,
            sakd_ratio=0.5,
        )
    assert config.kind == {"online": "distill", "cache": "distill", "sakd": "sakd"}[kind]
    trainer = runs.make_trainer(config, str(tmp_path / "student"), one_device)
    assert trainer.restore() == 0
    _assert_starts_from(trainer, teacher_run)
    if kind == "online":  # the teacher is the teacher, and not the same variables
        assert _same(_weights(trainer.teacher), _weights(restore_run(teacher_run).model))
        assert {id(v) for v in trainer.teacher.weights}.isdisjoint(
            id(v) for v in trainer.model.weights
        )
    if kind == "sakd":  # SAKD's state starts fresh
        assert int(trainer.state.epoch.numpy()) == 0
        assert not np.any(trainer.state.strength.numpy())
    metrics, _ = runs.train_or_reuse(config, str(tmp_path / "trained"), one_device)
    assert metrics["init_from"]["run_dir"] == teacher_run
    assert metrics["init_from"]["source_step"] == 5
    assert np.isfinite(metrics["train"]["loss"])
    if kind == "sakd":
        assert metrics["epochs"][0]["difficulty_pass"]["num_selected"] == 16


# ------------------------------------------------------------------------ records
def test_flags_txt_round_trip(tiny_yt8m, tmp_path):
    config = _student(tiny_yt8m, "/runs/teacher")
    yflags.write_run_config(config, str(tmp_path / "a"))
    lines = (tmp_path / "a" / "flags.txt").read_text().splitlines()
    assert "--init_from_run=/runs/teacher" in lines
    assert yflags.read_run_config(str(tmp_path / "a")) == config
    plain = config.replace(train=dataclasses.replace(config.train, init_from_run=None))
    yflags.write_run_config(plain, str(tmp_path / "b"))
    assert "init_from_run" not in (tmp_path / "b" / "flags.txt").read_text()
    assert yflags.read_run_config(str(tmp_path / "b")) == plain
    # Not architectural: a rerun may add it; flags_history.json records it as a change.
    assert runs.differences(plain, config) == []
    assert runs.changed_flags(plain, config) == {"init_from_run": [None, "/runs/teacher"]}
    # The command line's spelling, parsed by the launchers' definitions.
    fv = yflags.flag_values(plain)
    fv["init_from_run"].parse("runs/teacher")
    assert yflags.run_config_from_flags(fv).train.init_from_run == "runs/teacher"


def test_overwrite_never_deletes_the_source(teacher_run, tiny_yt8m, tmp_path, one_device):
    """--overwrite_run_dir on the source itself: the run reads it, so it is left alone."""
    source = tmp_path / "source"
    shutil.copytree(teacher_run, source)
    config = _student(tiny_yt8m, str(source))
    with pytest.raises(FlagError, match="which this run reads"):
        runs.train_or_reuse(config, str(source), one_device, overwrite=True)
    assert latest_checkpoint(str(source)).endswith("ckpt-5")


# ------------------------------------------------------------------------ end to end
@pytest.mark.slow  # train.py in a subprocess, twice
def test_train_launcher_initialises_then_resumes(teacher_run, tiny_yt8m, tmp_path, launcher):
    run_dir = tmp_path / "student"
    args = [
        "--flagfile=models/tiny_student_k6.flags",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--noprogress_bar",
        f"--init_from_run={teacher_run}",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
        f"--run_dir={run_dir}",
    ]
    result = launcher.run("train.py", *args, "--max_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(--init_from_run; model weights only): step 0" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["init_from"] == {
        "run_dir": teacher_run,
        "checkpoint": latest_checkpoint(teacher_run),
        "source_step": 5,
    }
    assert metrics["step"] == 2 and 0.0 <= metrics["eval"]["gap"] <= 1.0
    assert f"--init_from_run={teacher_run}" in (run_dir / "flags.txt").read_text().splitlines()
    result = launcher.run("train.py", *args, "--max_steps=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "init_from_run" not in result.stderr and "Restored" in result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["resumed_from_step"], metrics["step"]) == (2, 3)
    assert metrics["init_from"]["source_step"] == 5


@pytest.mark.slow  # its own process with 2 logical CPUs, training 2 steps
def test_mirrored_replicas_all_start_from_the_teacher(teacher_run, tiny_yt8m, tmp_path):
    report = run_test_script(
        "init_from_run_mirrored.py", str(tiny_yt8m.root), teacher_run, str(tmp_path), timeout=300
    )
    assert report["replicas"] == 2 and report["copies_per_weight"] == [2]
    assert report["equal_to_teacher"] and report["step_after_restore"] == 0
    assert report["trained_step"] == 2 and report["init_from"]["run_dir"] == teacher_run


UCF101_CLASSES = ("Archery", "Basketball", "Biking", "Bowling")


@pytest.fixture(scope="module")
def ucf101_records(tmp_path_factory) -> dict[str, str]:
    """classInd.txt and one shard of 16 clips of 4 to 10 random 40x48 JPEG frames."""
    root = tmp_path_factory.mktemp("ucf101_init")
    class_index = root / "classInd.txt"
    class_index.write_text("".join(f"{i} {n}\n" for i, n in enumerate(UCF101_CLASSES, 1)))
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(str(root / "trainlist01-00000-of-00001.tfrecord")) as writer:
        for i in range(16):
            label = i % len(UCF101_CLASSES)
            frames = [
                tf.io.encode_jpeg(rng.integers(0, 256, (40, 48, 3), np.uint8)).numpy()
                for _ in range(int(rng.integers(4, 11)))
            ]
            name = UCF101_CLASSES[label]
            writer.write(ucf101_prepare.make_record(f"v_{name}_g01_c{i:02d}", label, name, frames))
    return {"pattern": str(root / "trainlist01-*.tfrecord"), "class_index_file": str(class_index)}


def _ucf101(preset: str, records: dict, **overrides):
    return yflags.read_flagfile(
        str(REPO_ROOT / "models" / preset),
        train_data_pattern=records["pattern"],
        class_index_file=records["class_index_file"],
        num_classes=len(UCF101_CLASSES),
        batch_size=4,
        shuffle_buffer=8,
        eval_every_steps=0,
        progress_bar=False,
        **overrides,
    )


@pytest.mark.slow  # trains a small CNN teacher and two students on images
@pytest.mark.parametrize("preset", ["ucf101_student.flags", "ucf101_kd.flags"])
def test_ucf101_students_start_from_the_teacher(preset, ucf101_records, tmp_path, one_device):
    teacher = str(tmp_path / "teacher")
    runs.train_or_reuse(
        _ucf101("ucf101_teacher.flags", ucf101_records, max_steps=3, checkpoint_every_steps=3),
        teacher,
        one_device,
    )
    extra = {"teacher_run_dir": teacher} if preset == "ucf101_kd.flags" else {}
    config = _ucf101(
        preset,
        ucf101_records,
        max_steps=2,
        checkpoint_every_steps=2,
        init_from_run=teacher,
        **extra,
    )
    assert config.model.k_frames == 2
    trainer = runs.make_trainer(config, str(tmp_path / "student"), one_device)
    assert trainer.restore() == 0
    _assert_starts_from(trainer, teacher)
    metrics, _ = runs.train_or_reuse(config, str(tmp_path / "trained"), one_device)
    assert metrics["step"] == 2 and metrics["init_from"]["source_step"] == 3
    # Another image size is another model.
    wrong = _ucf101(preset, ucf101_records, image_size=48, init_from_run=teacher, **extra)
    with pytest.raises(FlagError, match=r"its model differs: model.image_size: 32 -> 48$"):
        runs.check_init_source(wrong)
