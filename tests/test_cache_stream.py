"""The teacher cache streamed per input file (yt8m_kd.distill.cache_stream): the batches of the
in-memory join, a student trained the same, mismatches refused with one line, and the choice
between streaming and memory (--teacher_cache_join)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import FEATURE_SIZES, MAX_FRAMES, NUM_CLASSES, checkpoint_weights, tiny_run_config

from yt8m_kd.cache_layout import METADATA_FILE, shard_name
from yt8m_kd.configs import FlagError
from yt8m_kd.data import yt8m
from yt8m_kd.distill.cache_build import ensure_plan, make_plan
from yt8m_kd.distill.cache_stream import (
    CannotStream,
    StreamedTeacherCache,
    open_teacher_cache,
)
from yt8m_kd.distill.teacher_cache import FORMAT, TeacherCache, example
from yt8m_kd.files import write_json
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.distillation import DistillationTrainer
from yt8m_kd.training.runs import comparable, make_trainer, train_or_reuse
from yt8m_kd.training.sakd_trainer import diversity_projection

REPR_SIZE = 24
READ = {
    "max_frames": MAX_FRAMES,
    "num_classes": NUM_CLASSES,
    "feature_sizes": FEATURE_SIZES,
}


def _ids_in_order(path: str) -> list[bytes]:
    dataset = yt8m.frame_dataset(path, batch_size=64, **READ)
    return [i for batch in dataset for i in batch["video_id"].numpy()]


def write_per_file_cache(files, cache_dir: str, seed: int = 0, dtype: str = "float32") -> str:
    """A finished cache laid out as launchers/cache_teacher.py lays it out (part k: the rows of
    input file k in record order), with random outputs: the join, not the teacher, is tested."""
    rng = np.random.default_rng(seed)
    os.makedirs(cache_dir, exist_ok=True)
    shards = []
    for index, path in enumerate(sorted(files)):
        ids = _ids_in_order(path)
        with tf.io.TFRecordWriter(os.path.join(cache_dir, shard_name(index))) as writer:
            for video_id in ids:
                logits = rng.normal(size=NUM_CLASSES).astype(np.float32)
                representation = rng.normal(size=REPR_SIZE).astype(np.float32)
                writer.write(example(video_id, logits, representation, dtype))
        shards.append(
            {
                "name": shard_name(index),
                "num_videos": len(ids),
                "input_file": os.path.abspath(path),
                "input_size": os.path.getsize(path),
            }
        )
    write_json(
        os.path.join(cache_dir, METADATA_FILE),
        {
            "format": FORMAT,
            "num_classes": NUM_CLASSES,
            "repr_size": REPR_SIZE,
            "num_videos": sum(s["num_videos"] for s in shards),
            "records_per_shard": None,
            "num_shards": 1,
            "shards": shards,
            "data_pattern": ",".join(sorted(files)),
            "dtype": dtype,
        },
    )
    return cache_dir


@pytest.fixture(scope="module")
def per_file_cache(tiny_yt8m, tmp_path_factory) -> str:
    return write_per_file_cache(tiny_yt8m.train_files, str(tmp_path_factory.mktemp("stream")))


def _copy(cache_dir: str, tmp_path) -> str:
    copy = str(tmp_path / "cache")
    shutil.copytree(cache_dir, copy)
    return copy


def _assert_same_batches(streamed: list[dict], joined: list[dict]) -> None:
    assert len(streamed) == len(joined) > 1
    for got, want in zip(streamed, joined, strict=True):
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)


# ------------------------------------------------------------------------------ the batches
@pytest.mark.parametrize("shuffle", [False, True])
def test_streamed_batches_equal_the_in_memory_join(per_file_cache, tiny_yt8m, shuffle):
    options = {"batch_size": 5, "shuffle": shuffle, "seed": 7, **READ}
    streamed = yt8m.frame_dataset(
        tiny_yt8m.train_pattern, file_join=StreamedTeacherCache.open(per_file_cache), **options
    )
    joined = TeacherCache.load(per_file_cache).join(
        yt8m.frame_dataset(tiny_yt8m.train_pattern, **options)
    )
    streamed, joined = list(streamed), list(joined)
    _assert_same_batches(streamed, joined)
    # Every cached video once, with its dense sample index.
    indices = np.concatenate([b["index"].numpy() for b in streamed])
    assert sorted(indices) == list(range(32))


def test_data_moved_elsewhere_still_streams_by_name_and_size(per_file_cache, tiny_yt8m, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_yt8m.root, moved)
    cache = StreamedTeacherCache.open(per_file_cache)
    pattern = str(moved / "train-*.tfrecord")
    assert cache.part_of(str(moved / os.path.basename(sorted(tiny_yt8m.train_files)[1]))) == 1
    streamed = list(yt8m.frame_dataset(pattern, batch_size=8, file_join=cache, **READ))
    joined = list(
        TeacherCache.load(per_file_cache).join(yt8m.frame_dataset(pattern, batch_size=8, **READ))
    )
    _assert_same_batches(streamed, joined)


def test_a_file_the_cache_was_not_made_from_cannot_stream(per_file_cache, tiny_yt8m):
    cache = StreamedTeacherCache.open(per_file_cache)
    other = tiny_yt8m.eval_files[0]
    with pytest.raises(CannotStream, match=f"{other} is not one of the input files of the teacher"):
        cache.part_of(other)


# ------------------------------------------------------------------------------ float16
def test_a_float16_cache_holds_the_float32_values_rounded_and_streams_the_same(
    per_file_cache, tiny_yt8m, tmp_path
):
    half_dir = write_per_file_cache(tiny_yt8m.train_files, str(tmp_path / "half"), dtype="float16")
    full, half = TeacherCache.load(per_file_cache), TeacherCache.load(half_dir)
    assert half.metadata["dtype"] == "float16"
    np.testing.assert_array_equal(half.video_ids, full.video_ids)
    for name in ("_logits", "_repr"):
        want = getattr(full, name).numpy().astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(getattr(half, name).numpy(), want)
    sizes = [
        sum(os.path.getsize(os.path.join(d, shard_name(i))) for i in range(2))
        for d in (per_file_cache, half_dir)
    ]
    assert sizes[1] < 0.65 * sizes[0]  # 4 bytes a value become 2 (plus the ids)

    options = {"batch_size": 5, "shuffle": True, "seed": 3, **READ}
    streamed = yt8m.frame_dataset(
        tiny_yt8m.train_pattern, file_join=StreamedTeacherCache.open(half_dir), **options
    )
    joined = half.join(yt8m.frame_dataset(tiny_yt8m.train_pattern, **options))
    streamed = list(streamed)
    assert streamed[0]["teacher_logits"].dtype == tf.float32
    _assert_same_batches(streamed, list(joined))


def test_a_plan_of_another_storage_type_is_refused(tmp_path):
    plan = {
        "teacher_run_dir": "t",
        "checkpoint": "c",
        "data_pattern": "p",
        "input_files": [{"path": "a", "size": 1}],
        "num_shards": 1,
        "feature_names": ["rgb"],
        "max_frames": 5,
        "teacher_model_config": {},
    }
    ensure_plan(str(tmp_path), make_plan(**plan, cache_dtype="float16"))
    with pytest.raises(ValueError, match="another storage type \\(--cache_dtype\\): 'float16' "):
        ensure_plan(str(tmp_path), make_plan(**plan))
    # A plan written before --cache_dtype existed is a float32 plan.
    older = make_plan(**plan)
    del older["cache_dtype"]
    ensure_plan(str(tmp_path / "old"), older)
    ensure_plan(str(tmp_path / "old"), make_plan(**plan))


# ------------------------------------------------------------------------------ mismatches
def _first_error(cache_dir: str, pattern: str) -> str:
    dataset = yt8m.frame_dataset(
        pattern, batch_size=5, file_join=StreamedTeacherCache.open(cache_dir), **READ
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        for _ in dataset:
            pass
    return yt8m.error_message(raised.value)


def _rewrite_part(cache_dir: str, index: int, change) -> None:
    path = os.path.join(cache_dir, shard_name(index))
    rows = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    with tf.io.TFRecordWriter(path) as writer:
        for row in change(rows):
            writer.write(row)


def test_a_part_of_another_file_is_refused_naming_both_ids(per_file_cache, tiny_yt8m, tmp_path):
    cache_dir = _copy(per_file_cache, tmp_path)
    first, second = (os.path.join(cache_dir, shard_name(i)) for i in (0, 1))
    os.rename(first, first + ".x")
    os.rename(second, first)
    os.rename(first + ".x", second)
    message = _first_error(cache_dir, tiny_yt8m.train_pattern)
    files = sorted(tiny_yt8m.train_files)
    assert message.startswith(
        f"{files[0]}: its good record 0 has video id train-00000-00000 but row 0 of its teacher "
        f"cache part {first} is video id train-00001-00000: the part was made from other records"
    )
    assert message.endswith("or train with --teacher_cache_join=memory")


@pytest.mark.parametrize("rows", ["fewer", "more"])
def test_a_part_with_fewer_or_more_rows_is_refused(per_file_cache, tiny_yt8m, tmp_path, rows):
    cache_dir = _copy(per_file_cache, tmp_path)
    if rows == "fewer":
        _rewrite_part(cache_dir, 1, lambda r: r[:-1])
    else:
        _rewrite_part(cache_dir, 1, lambda r: r + r[:1])
    message = _first_error(cache_dir, tiny_yt8m.train_pattern)
    path, part = sorted(tiny_yt8m.train_files)[1], os.path.join(cache_dir, shard_name(1))
    if rows == "fewer":
        want = (
            f"{path} has more good records than the 15 rows of its teacher cache part {part}; "
            "video id train-00001-00015 is the first without one"
        )
    else:
        want = f"{path} has 16 good records, but its teacher cache part {part} has more rows"
    assert message.startswith(want + ": the part was made from other records")


# ------------------------------------------------------------------------- stream or memory
def test_auto_streams_a_per_file_cache_and_loads_a_one_pass_cache(
    per_file_cache, teacher_cache, tiny_yt8m
):
    def opened(cache_dir, join="auto", **kwargs):
        options = {"dataset": "yt8m", "train_pattern": tiny_yt8m.train_pattern, **kwargs}
        return type(open_teacher_cache(cache_dir, join, **options))

    assert opened(per_file_cache) is StreamedTeacherCache
    assert opened(per_file_cache, "memory") is TeacherCache
    assert opened(per_file_cache, dataset="ucf101") is TeacherCache
    assert opened(per_file_cache, train_pattern=tiny_yt8m.eval_pattern) is TeacherCache
    assert opened(teacher_cache) is TeacherCache  # written in one pass (conftest)
    with pytest.raises(ValueError, match="^--teacher_cache_join=stream: the teacher cache .* was "):
        opened(teacher_cache, "stream")
    with pytest.raises(ValueError, match="^--teacher_cache_join=stream: the ucf101 reader "):
        opened(per_file_cache, "stream", dataset="ucf101")


def test_a_cache_that_dropped_repeated_ids_is_joined_in_memory(per_file_cache, tmp_path):
    cache_dir = _copy(per_file_cache, tmp_path)
    metadata = TeacherCache.load(cache_dir).metadata
    metadata["duplicate_ids"] = [{"video_id": "x", "files": ["a", "b"], "same_frames": True}]
    write_json(os.path.join(cache_dir, METADATA_FILE), metadata)
    with pytest.raises(CannotStream, match="dropped repeated video ids"):
        StreamedTeacherCache.open(cache_dir)


def _student_config(tiny_yt8m, cache_dir: str, join: str, **overrides):
    return tiny_run_config(
        "tiny_distilled_k6.flags",
        tiny_yt8m,
        teacher_cache=cache_dir,
        teacher_cache_join=join,
        frame_selection="random",
        **overrides,
    )


def test_the_join_is_not_part_of_what_a_run_is(per_file_cache, tiny_yt8m):
    streamed = _student_config(tiny_yt8m, per_file_cache, "stream")
    assert comparable(streamed) == comparable(_student_config(tiny_yt8m, per_file_cache, "memory"))


@pytest.mark.slow  # two SAKD runs
def test_sakd_from_the_streamed_cache_equals_sakd_from_memory(per_file_cache, tiny_yt8m, tmp_path):
    """Same selections, strengths and weights: the streamed rows filtered by selection after the
    pairing, against the in-memory cache's id filter before the frames are decoded."""
    weights, selections = {}, {}
    for join in ("stream", "memory"):
        config = tiny_run_config(
            "tiny_sakd_k6.flags",
            tiny_yt8m,
            teacher_cache=per_file_cache,
            teacher_cache_join=join,
            num_epochs=3,
            sakd_ratio=0.5,
            sakd_selection_interval=2,
        )
        run_dir = str(tmp_path / join)
        strategy = strategy_lib.make_strategy("one_device")
        assert make_trainer(config, run_dir, strategy).streams_teacher_cache == (join == "stream")
        train_or_reuse(config, run_dir, strategy)
        weights[join] = checkpoint_weights(run_dir, ("model/", "sakd/"))
        selections[join] = [
            open(os.path.join(run_dir, "sakd", f"selection_epoch{epoch:04d}.txt")).read()
            for epoch in (0, 2)
        ]
    assert selections["stream"] == selections["memory"]
    assert len(selections["stream"][0].split()) == 16  # half of the 32 videos
    assert any(name.startswith("sakd/") for name in weights["memory"])
    assert weights["stream"].keys() == weights["memory"].keys()
    for name, value in weights["memory"].items():
        np.testing.assert_allclose(weights["stream"][name], value, atol=1e-5, err_msg=name)


def test_a_student_trained_from_the_streamed_cache_equals_one_from_memory(
    per_file_cache, tiny_yt8m, tmp_path
):
    weights = {}
    for join in ("stream", "memory"):
        config = _student_config(
            tiny_yt8m, per_file_cache, join, max_steps=6, checkpoint_every_steps=6
        )
        run_dir = str(tmp_path / join)
        strategy = strategy_lib.make_strategy("one_device")
        trainer = make_trainer(config, run_dir, strategy)
        assert isinstance(trainer, DistillationTrainer)
        assert trainer.streams_teacher_cache == (join == "stream")
        train_or_reuse(config, run_dir, strategy)
        weights[join] = checkpoint_weights(run_dir)
    assert len(weights["stream"]) > 5 and weights["stream"].keys() == weights["memory"].keys()
    for name, value in weights["memory"].items():
        np.testing.assert_allclose(weights["stream"][name], value, atol=1e-5, err_msg=name)


def test_the_diversity_projection_keeps_cosine_similarities_roughly():
    assert diversity_projection(64, 0) is None and diversity_projection(64, 64) is None
    matrix = diversity_projection(512, 128)
    assert matrix.shape == (512, 128) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, diversity_projection(512, 128))  # fixed
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 512)).astype(np.float32)
    x[20:] = x[:20] + 0.5 * rng.normal(size=(20, 512))  # pairs of similar rows

    def cosine(a):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        return a @ a.T

    error = np.abs(cosine(x @ matrix) - cosine(x))
    assert error.max() < 0.35 and error.mean() < 0.08  # ~ 1 / sqrt(128)


def test_sakd_with_projected_features_selects_from_the_streamed_cache(
    per_file_cache, tiny_yt8m, tmp_path
):
    config = tiny_run_config(
        "tiny_sakd_k6.flags",
        tiny_yt8m,
        teacher_cache=per_file_cache,
        num_epochs=1,
        sakd_ratio=0.25,
        sakd_feature_dim=8,  # of the cache's 24
    )
    metrics, _ = train_or_reuse(config, str(tmp_path), strategy_lib.make_strategy("one_device"))
    ids = open(tmp_path / "sakd" / "selection_epoch0000.txt").read().split()
    assert len(ids) == len(set(ids)) == 8  # a quarter of 32
    assert set(ids) <= {f"train-0000{f}-{i:05d}" for f in (0, 1) for i in range(16)}
    assert metrics["epochs"][0]["difficulty_pass"]["num_samples"] == 32


@pytest.mark.slow  # a launcher process
def test_train_py_names_a_mismatched_part_in_one_line(
    per_file_cache, tiny_yt8m, launcher, tmp_path
):
    cache_dir = _copy(per_file_cache, tmp_path)
    _rewrite_part(cache_dir, 0, lambda rows: rows[1:] + rows[:1])  # the same rows, moved
    result = launcher.run(
        "train.py",
        "--flagfile=models/tiny_distilled_k6.flags",
        f"--teacher_cache={cache_dir}",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--max_steps=2",
        f"--run_dir={tmp_path / 'run'}",
        "--noprogress_bar",
    )
    assert result.returncode == 1
    first = sorted(tiny_yt8m.train_files)[0]
    assert launcher.last_stderr_line(result).startswith(
        f"train.py: error: {first}: its good record 0 has video id train-00000-00000 but row 0 "
        f"of its teacher cache part {os.path.join(cache_dir, shard_name(0))} is video id "
        "train-00000-00001: the part was made from other records"
    )


def test_a_data_service_run_joins_the_cache_in_memory(per_file_cache, tiny_yt8m, tmp_path):
    strategy = strategy_lib.make_strategy("one_device")
    service = {"data_service": "grpc://localhost:5050"}  # no dispatcher needed to build a trainer
    auto = _student_config(tiny_yt8m, per_file_cache, "auto", **service)
    assert not make_trainer(auto, str(tmp_path / "a"), strategy).streams_teacher_cache
    stream = _student_config(tiny_yt8m, per_file_cache, "stream", **service)
    with pytest.raises(FlagError, match="^--teacher_cache_join=stream with --data_service: "):
        make_trainer(stream, str(tmp_path / "s"), strategy)
