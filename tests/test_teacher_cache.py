"""The teacher cache: launchers/cache_teacher.py writes it from a real (tiny) teacher run, and
TeacherCache joins the teacher's outputs onto student batches by video id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import yt8m
from yt8m_kd.distill.teacher_cache import TeacherCache, write_teacher_cache
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training.restore import restore_run

# The sizes of conftest's tiny_yt8m data and of models/tiny_teacher.flags.
NUM_CLASSES = 32
FEATURE_SIZES = (64, 16)
MAX_FRAMES = 60
REPR_SIZE = 64  # hidden_size of models/tiny_teacher.flags
VIDEOS = 32  # tiny_yt8m: 2 train shards x 16 videos
RECORDS_PER_SHARD = 10  # of write_teacher_cache; the launcher writes one part per input file


def _frames(pattern, batch_size: int, **kwargs) -> tf.data.Dataset:
    return yt8m.frame_dataset(
        pattern,
        batch_size=batch_size,
        max_frames=MAX_FRAMES,
        num_classes=NUM_CLASSES,
        feature_sizes=FEATURE_SIZES,
        **kwargs,
    )


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def teacher_run_dir(tiny_yt8m, tiny_train_args, launcher, tmp_path_factory) -> str:
    run_dir = str(tmp_path_factory.mktemp("teacher") / "run")
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def cached(tiny_yt8m, teacher_run_dir, launcher, tmp_path_factory) -> tuple[str, dict]:
    """(cache directory, the JSON cache_teacher.py printed)."""
    cache_dir = str(tmp_path_factory.mktemp("cache") / "teacher")
    result = launcher.run(
        "cache_teacher.py",
        f"--teacher_run_dir={teacher_run_dir}",
        f"--data_pattern={tiny_yt8m.train_pattern}",
        f"--output_dir={cache_dir}",
        "--batch_size=5",  # the last batch of each input file is short
        "--noprogress_bar",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cache_dir, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def teacher(teacher_run_dir):
    return restore_run(teacher_run_dir)


@pytest.fixture(scope="module")
def expected(teacher, tiny_yt8m) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
    """video id -> (logits, repr) of the teacher model called directly, batch by batch."""
    outputs = {}
    for batch in _frames(tiny_yt8m.train_pattern, batch_size=7):
        out = teacher.model(model_inputs(batch, teacher.model_config), training=False)
        for video_id, logits, representation in zip(
            batch["video_id"].numpy(), out["logits"].numpy(), out["repr"].numpy(), strict=True
        ):
            outputs[video_id] = (logits, representation)
    assert len(outputs) == VIDEOS
    return outputs


@pytest.fixture(scope="module")
def cache(cached) -> TeacherCache:
    return TeacherCache.load(cached[0])


def _assert_rows_match(expected, video_ids, logits, representation) -> None:
    assert logits.dtype == np.float32 and representation.dtype == np.float32
    for video_id, row_logits, row_repr in zip(video_ids, logits, representation, strict=True):
        want_logits, want_repr = expected[video_id]
        np.testing.assert_allclose(row_logits, want_logits, rtol=0, atol=1e-6)
        np.testing.assert_allclose(row_repr, want_repr, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ writing
def test_cache_holds_each_video_once_with_the_teachers_outputs(
    cached, expected, teacher, tiny_yt8m
):
    cache_dir, printed = cached
    with open(os.path.join(cache_dir, "teacher_cache.json")) as f:
        metadata = json.load(f)
    assert printed == metadata
    assert metadata["num_videos"] == VIDEOS
    assert metadata["num_classes"] == NUM_CLASSES
    assert metadata["repr_size"] == REPR_SIZE
    assert metadata["checkpoint"] == os.path.abspath(teacher.checkpoint)
    assert metadata["checkpoint"].endswith("ckpt-2")
    assert metadata["data_pattern"].endswith("train-*.tfrecord")
    assert metadata["bad_records"]["total"] == 0
    assert metadata["num_shards"] == 1
    assert metadata["shards"] == [  # one per input file, in the sorted order of the files
        {
            "name": f"teacher-0000{i}.tfrecord",
            "num_videos": 16,
            "input_file": path,
            "input_size": os.path.getsize(path),
        }
        for i, path in enumerate(sorted(tiny_yt8m.train_files))
    ]
    assert sorted(os.listdir(cache_dir)) == sorted(
        ["teacher_cache.json", "teacher_plan.json", "teacher-00000.json", "teacher-00001.json"]
        + [shard["name"] for shard in metadata["shards"]]
    )

    # The shards read back as plain tf.train.Examples.
    features = {
        "video_id": tf.io.FixedLenFeature([], tf.string),
        "logits": tf.io.FixedLenFeature([NUM_CLASSES], tf.float32),
        "repr": tf.io.FixedLenFeature([REPR_SIZE], tf.float32),
    }
    paths = [os.path.join(cache_dir, shard["name"]) for shard in metadata["shards"]]
    records = next(
        iter(
            tf.data.TFRecordDataset(paths)
            .batch(100)
            .map(lambda s: tf.io.parse_example(s, features))
        )
    )
    video_ids = list(records["video_id"].numpy())
    assert len(video_ids) == VIDEOS
    assert set(video_ids) == set(expected)  # every video, once
    _assert_rows_match(expected, video_ids, records["logits"].numpy(), records["repr"].numpy())


def test_load_reads_every_row(cache, cached, expected):
    assert (cache.num_videos, cache.num_classes, cache.repr_size) == (
        VIDEOS,
        NUM_CLASSES,
        REPR_SIZE,
    )
    assert cache.metadata == cached[1]
    video_ids = sorted(expected)
    rows = cache.lookup(tf.constant(video_ids))
    _assert_rows_match(
        expected, video_ids, rows["teacher_logits"].numpy(), rows["teacher_repr"].numpy()
    )


def test_a_teacher_that_sees_k_frames_is_refused(teacher, tmp_path):
    student_config = teacher.model_config.replace(k_frames=6)
    with pytest.raises(ValueError, match="k_frames=6"):
        write_teacher_cache(
            teacher.model, student_config, tf.data.Dataset.range(0), str(tmp_path), metadata={}
        )


def test_an_interrupted_write_leaves_no_loadable_cache(cached, teacher, tiny_yt8m, tmp_path):
    # Rewriting a finished cache with data that fails halfway (every id twice): the old cache is
    # gone at once, the new shards have no json, and the error names the repeated id.
    cache_dir = str(tmp_path / "cache")
    shutil.copytree(cached[0], cache_dir)
    TeacherCache.load(cache_dir)  # complete before
    data = _frames(tiny_yt8m.train_pattern, batch_size=8)
    first_id = next(iter(data))["video_id"][0].numpy().decode()
    with pytest.raises(ValueError, match=f"video id {first_id} appears twice"):
        write_teacher_cache(
            teacher.model,
            teacher.model_config,
            data.concatenate(data),
            cache_dir,
            metadata={"data_pattern": tiny_yt8m.train_pattern},
            records_per_shard=RECORDS_PER_SHARD,
        )
    assert "teacher_cache.json" not in os.listdir(cache_dir)
    assert "teacher-00000.tfrecord" in os.listdir(cache_dir)
    with pytest.raises(FileNotFoundError) as error:
        TeacherCache.load(cache_dir)
    assert str(error.value) == (
        f"no teacher cache at {cache_dir} (teacher_cache.json missing: run "
        "launchers/cache_teacher.py)"
    )


def test_shard_counts_must_match_the_json(cached, tmp_path):
    cache_dir = str(tmp_path / "cache")
    shutil.copytree(cached[0], cache_dir)
    path = os.path.join(cache_dir, "teacher_cache.json")
    with open(path) as f:
        metadata = json.load(f)
    metadata["shards"][0]["num_videos"] -= 1  # same total, shards disagree
    metadata["shards"][1]["num_videos"] += 1
    with open(path, "w") as f:
        json.dump(metadata, f)
    with pytest.raises(ValueError, match="teacher-00000.tfrecord holds 16 videos.* says 15"):
        TeacherCache.load(cache_dir)


# ------------------------------------------------------------------------------------ joining
def test_join_adds_each_ids_rows_to_shuffled_batches(cache, expected, tiny_yt8m):
    dataset = cache.join(_frames(tiny_yt8m.train_pattern, batch_size=6, shuffle=True, seed=3))
    seen = []
    for batch in dataset:
        assert batch["teacher_logits"].shape == [batch["video_id"].shape[0], NUM_CLASSES]
        assert batch["teacher_repr"].shape == [batch["video_id"].shape[0], REPR_SIZE]
        video_ids = list(batch["video_id"].numpy())
        _assert_rows_match(
            expected, video_ids, batch["teacher_logits"].numpy(), batch["teacher_repr"].numpy()
        )
        seen += video_ids
    assert sorted(seen) == sorted(expected)
    assert seen != sorted(seen)  # shuffled: rows are found by id, not by position


def test_a_video_missing_from_the_cache_is_a_clear_error(cache, cached, tiny_yt8m):
    # One batch mixing cached (train) and uncached (validate) videos.
    dataset = _frames([tiny_yt8m.train_files[0], tiny_yt8m.eval_files[0]], batch_size=2 * 16)
    batch_ids = [v.decode() for v in next(iter(dataset))["video_id"].numpy()]
    first_missing = next(v for v in batch_ids if v.startswith("validate-"))
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in cache.join(dataset):
            pass
    message = yt8m.error_message(error.value)
    assert (
        f"video id {first_missing} is not in the teacher cache {cached[0]} (made from "
        f"{cached[1]['data_pattern']}; 16 of the 32 ids in this batch are missing); rebuild it "
        "with launchers/cache_teacher.py"
    ) in message


def test_check_compatible(cache):
    cache.check_compatible(NUM_CLASSES)
    cache.check_compatible(NUM_CLASSES, repr_size=REPR_SIZE)
    with pytest.raises(
        ValueError, match="32 logits per video but the student has num_classes=3862"
    ):
        cache.check_compatible(3862)
    with pytest.raises(ValueError, match="repr of width 64 but the student expects 2048"):
        cache.check_compatible(NUM_CLASSES, repr_size=2048)


def test_join_under_a_one_device_strategy(cache, expected, tiny_yt8m):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

    def dataset_fn(context):
        batch_size = context.get_per_replica_batch_size(8)
        return cache.join(_frames(tiny_yt8m.train_pattern, batch_size, shuffle=True, seed=1))

    @tf.function
    def step(batch):
        return strategy.run(
            lambda b: (b["video_id"], b["teacher_logits"], b["teacher_repr"]), args=(batch,)
        )

    seen = []
    for batch in strategy.distribute_datasets_from_function(dataset_fn):
        video_ids, logits, representation = (t.numpy() for t in step(batch))
        _assert_rows_match(expected, list(video_ids), logits, representation)
        seen += list(video_ids)
    assert sorted(seen) == sorted(expected)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from yt8m_kd.training import strategy as strategy_lib
    strategy_lib.split_cpu(2)  # before TensorFlow sets up its devices
    import tensorflow as tf
    from yt8m_kd.data import yt8m
    from yt8m_kd.distill.teacher_cache import TeacherCache

    cache_dir, pattern = sys.argv[1], sys.argv[2]
    cache = TeacherCache.load(cache_dir)  # outside the strategy's scope
    strategy = strategy_lib.make_strategy("mirrored")

    def dataset_fn(context):
        data = yt8m.frame_dataset(
            pattern, batch_size=context.get_per_replica_batch_size(8), max_frames=60,
            num_classes=32, feature_sizes=(64, 16), shuffle=True, seed=5)
        return cache.join(data)

    @tf.function
    def step(batch):
        return strategy.run(
            lambda b: (b["video_id"], b["teacher_logits"], b["teacher_repr"]), args=(batch,))

    rows = []
    for batch in strategy.distribute_datasets_from_function(dataset_fn):
        local = (strategy.experimental_local_results(t) for t in step(batch))
        for ids, logits, reprs in zip(*local):
            rows += [[i.decode(), l.tolist(), r.tolist()]
                     for i, l, r in zip(ids.numpy(), logits.numpy(), reprs.numpy())]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "rows": rows}))
    """
)


@pytest.mark.slow
def test_join_under_mirrored_on_two_logical_cpus(cached, expected, tiny_yt8m, launcher):
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, cached[0], tiny_yt8m.train_pattern],
        cwd=launcher.repo_root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    video_ids = [row[0].encode() for row in report["rows"]]
    assert sorted(video_ids) == sorted(expected)
    _assert_rows_match(
        expected,
        video_ids,
        np.array([row[1] for row in report["rows"]], np.float32),
        np.array([row[2] for row in report["rows"]], np.float32),
    )


# ------------------------------------------------------------------------------------ launcher
# case -> (flags instead of the valid ones, the error line)
BAD_FLAGS = {
    "missing_teacher_run_dir": (
        {"teacher_run_dir": None},
        "cache_teacher.py: error: --teacher_run_dir is required",
    ),
    "pattern_matches_nothing": (
        {"data_pattern": "{root}/nothing-*.tfrecord"},
        "cache_teacher.py: error: --data_pattern={root}/nothing-*.tfrecord matches no file",
    ),
    "not_a_run_dir": (
        {"teacher_run_dir": "{root}"},
        "cache_teacher.py: error: --teacher_run_dir={root} is not a run directory (no flags.txt)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_flags_fail_with_one_line(case, tiny_yt8m, teacher_run_dir, launcher, tmp_path):
    changes, want = BAD_FLAGS[case]
    values = {
        "teacher_run_dir": teacher_run_dir,
        "data_pattern": tiny_yt8m.train_pattern,
        "output_dir": str(tmp_path / "cache"),
    }
    for name, value in changes.items():
        values[name] = None if value is None else value.format(root=tiny_yt8m.root)
    args = [f"--{name}={value}" for name, value in values.items() if value is not None]
    result = launcher.run("cache_teacher.py", *args)

    assert result.returncode != 0
    assert launcher.last_stderr_line(result) == want.format(root=tiny_yt8m.root)
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if ": error:" in line] == [
        want.format(root=tiny_yt8m.root)
    ]
    assert not (tmp_path / "cache").exists()
