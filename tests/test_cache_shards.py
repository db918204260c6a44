"""A teacher cache built in parts by several processes (launchers/cache_teacher.py --num_shards):
the same rows as one process, resumable per input file, refused while incomplete."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import MAX_FRAMES
from test_teacher_cache_faults import _video, _write

from yt8m_kd.data.synthetic import make_example
from yt8m_kd.distill.cache_build import ensure_plan, finalize, make_plan, part_sizes, write_part
from yt8m_kd.distill.teacher_cache import TeacherCache
from yt8m_kd.training.restore import restore_run

NUM_CLASSES = 32
REPR_SIZE = 64  # hidden_size of models/tiny_teacher.flags


def _cache_args(teacher_run, pattern, output_dir, *extra) -> list[str]:
    return [
        f"--teacher_run_dir={teacher_run}",
        f"--data_pattern={pattern}",
        f"--output_dir={output_dir}",
        "--batch_size=5",
        "--noprogress_bar",
        *extra,
    ]


def _shard(launcher, teacher_run, pattern, output_dir, index, num_shards, *extra):
    return launcher.run(
        "cache_teacher.py",
        *_cache_args(
            teacher_run,
            pattern,
            output_dir,
            f"--num_shards={num_shards}",
            f"--shard_index={index}",
            *extra,
        ),
    )


def _rows(cache_dir: str) -> dict[str, np.ndarray]:
    """Every row of a finished cache, shard by shard in the json's order."""
    with open(os.path.join(cache_dir, "teacher_cache.json")) as f:
        metadata = json.load(f)
    features = {
        "video_id": tf.io.FixedLenFeature([], tf.string),
        "logits": tf.io.FixedLenFeature([NUM_CLASSES], tf.float32),
        "repr": tf.io.FixedLenFeature([REPR_SIZE], tf.float32),
    }
    paths = [os.path.join(cache_dir, shard["name"]) for shard in metadata["shards"]]
    rows = next(
        iter(
            tf.data.TFRecordDataset(paths)
            .batch(1000)
            .map(lambda s: tf.io.parse_example(s, features))
        )
    )
    return {key: value.numpy() for key, value in rows.items()}


def _incomplete_line(cache_dir: str, cached: int, total: int, missing: list[str]) -> str:
    return (
        f"teacher cache {cache_dir} is incomplete: {cached} of {total} input files cached "
        f"(missing: {', '.join(missing)}); run launchers/cache_teacher.py for the missing shards "
        "or --finalize"
    )


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def one_shard(teacher_run, tiny_yt8m, launcher, tmp_path_factory) -> str:
    cache_dir = str(tmp_path_factory.mktemp("one") / "cache")
    result = _shard(launcher, teacher_run, tiny_yt8m.train_pattern, cache_dir, 0, 1)
    assert result.returncode == 0, result.stderr[-3000:]
    return cache_dir


@pytest.fixture(scope="module")
def two_shards(teacher_run, tiny_yt8m, launcher, tmp_path_factory) -> dict:
    """The two processes of a 2-shard build, and a copy of the cache between them."""
    root = tmp_path_factory.mktemp("two")
    cache_dir = str(root / "cache")
    first = _shard(launcher, teacher_run, tiny_yt8m.train_pattern, cache_dir, 0, 2)
    assert first.returncode == 0, first.stderr[-3000:]
    after_first = str(root / "after_first")
    shutil.copytree(cache_dir, after_first)
    second = _shard(launcher, teacher_run, tiny_yt8m.train_pattern, cache_dir, 1, 2)
    assert second.returncode == 0, second.stderr[-3000:]
    return {"cache": cache_dir, "after_first": after_first, "first": first, "second": second}


def _copy(directory: str, tmp_path) -> str:
    copy = str(tmp_path / "cache")
    shutil.copytree(directory, copy)
    return copy


# ------------------------------------------------------------------------------------ building
@pytest.mark.slow  # three launcher processes
def test_two_shards_give_the_rows_of_one(one_shard, two_shards, tiny_yt8m):
    want, got = _rows(one_shard), _rows(two_shards["cache"])
    np.testing.assert_array_equal(got["video_id"], want["video_id"])
    np.testing.assert_array_equal(got["logits"], want["logits"])  # exactly: the same batches
    np.testing.assert_array_equal(got["repr"], want["repr"])
    assert len(want["video_id"]) == 32

    printed = json.loads(two_shards["second"].stdout.strip().splitlines()[-1])
    with open(os.path.join(two_shards["cache"], "teacher_cache.json")) as f:
        assert printed == json.load(f)
    files = sorted(tiny_yt8m.train_files)
    assert printed["num_shards"] == 2
    assert printed["shards"] == [
        {
            "name": f"teacher-0000{i}.tfrecord",
            "num_videos": 16,
            "input_file": path,
            "input_size": os.path.getsize(path),
        }
        for i, path in enumerate(files)
    ]
    assert printed["bad_records"]["total"] == 0
    # Part i holds input file i in its record order.
    ids = {"id": tf.io.FixedLenFeature([], tf.string)}
    first_ids = [
        tf.io.parse_single_example(r, ids)["id"].numpy() for r in tf.data.TFRecordDataset(files[0])
    ]
    assert list(got["video_id"][:16]) == first_ids
    cache = TeacherCache.load(two_shards["cache"])
    assert cache.num_videos == 32
    np.testing.assert_array_equal(cache.video_ids.astype(bytes), want["video_id"])


@pytest.mark.slow
def test_after_the_first_shard_the_cache_is_refused(two_shards, tiny_yt8m, launcher, tmp_path):
    first = two_shards["first"]
    missing = sorted(tiny_yt8m.train_files)[1]
    assert first.stdout.strip().splitlines()[-1] == (
        f"shard 0 of 2 done: 1 of 2 input files cached (missing: {missing}); the cache is "
        "finished by the last shard to finish, or by rerunning with --finalize"
    )
    cache_dir = _copy(two_shards["after_first"], tmp_path)
    want = _incomplete_line(cache_dir, 1, 2, [missing])
    with pytest.raises(FileNotFoundError) as error:
        TeacherCache.load(cache_dir)
    assert str(error.value) == want

    student = launcher.run(
        "train.py",
        "--flagfile=models/tiny_distilled_k6.flags",
        f"--max_frames={MAX_FRAMES}",
        "--batch_size=8",
        "--noprogress_bar",
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--teacher_cache={cache_dir}",
        f"--run_dir={tmp_path / 'student'}",
        "--max_steps=1",
    )
    assert student.returncode != 0
    assert launcher.last_stderr_line(student) == f"train.py: error: --teacher_cache: {want}"
    assert "Traceback" not in student.stderr

    final = launcher.run("cache_teacher.py", f"--output_dir={cache_dir}", "--finalize")
    assert final.returncode != 0
    assert launcher.last_stderr_line(final) == (
        f"cache_teacher.py: error: --finalize: teacher cache {cache_dir} cannot be finished "
        f"yet: 1 of 2 input files cached (missing: {missing})"
    )
    assert "Traceback" not in final.stderr
    assert not os.path.exists(os.path.join(cache_dir, "teacher_cache.json"))


@pytest.mark.slow
def test_a_killed_part_is_redone_and_complete_parts_are_skipped(
    one_shard, two_shards, teacher_run, tiny_yt8m, launcher, tmp_path
):
    cache_dir = _copy(two_shards["after_first"], tmp_path)
    # What a process killed while writing part 1 leaves: its temporary file, or the part
    # renamed but without its marker.
    with open(os.path.join(cache_dir, "teacher-00001.tfrecord.tmp-12345"), "wb") as f:
        f.write(b"half a part")
    with open(os.path.join(cache_dir, "teacher-00001.tfrecord"), "wb") as f:
        f.write(b"not yet marked")
    part0 = os.path.join(cache_dir, "teacher-00000.tfrecord")
    before = os.stat(part0).st_mtime_ns
    files = sorted(tiny_yt8m.train_files)

    again = _shard(launcher, teacher_run, tiny_yt8m.train_pattern, cache_dir, 0, 2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"skipping 1 input files whose parts are complete: {files[0]} (teacher-00000.tfrecord)"
        in again.stderr
    )
    assert again.stdout.strip().splitlines()[-1].startswith("shard 0 of 2 done: 1 of 2")
    assert os.stat(part0).st_mtime_ns == before

    second = _shard(launcher, teacher_run, tiny_yt8m.train_pattern, cache_dir, 1, 2)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "skipping" not in second.stderr
    assert not [name for name in os.listdir(cache_dir) if ".tmp" in name]
    assert os.stat(part0).st_mtime_ns == before
    want, got = _rows(one_shard), _rows(cache_dir)
    np.testing.assert_array_equal(got["video_id"], want["video_id"])
    np.testing.assert_array_equal(got["logits"], want["logits"])
    assert TeacherCache.load(cache_dir).num_videos == 32


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, flags, named",
    [
        ("checkpoint", ["--num_shards=2", "--shard_index=1"], "teacher checkpoint (--checkpoint)"),
        ("num_shards", ["--num_shards=3", "--shard_index=1"], "number of shards (--num_shards)"),
    ],
)
def test_a_rerun_with_another_plan_is_refused(
    change, flags, named, two_shards, teacher_run, tiny_yt8m, launcher, tmp_path
):
    cache_dir = _copy(two_shards["after_first"], tmp_path)
    plan_path = os.path.join(cache_dir, "teacher_plan.json")
    with open(plan_path) as f:
        plan = json.load(f)
    if change == "checkpoint":  # as if the first shard had run before the teacher trained on
        plan["checkpoint"] = plan["checkpoint"].replace("ckpt-", "ckpt-1")
        with open(plan_path, "w") as f:
            json.dump(plan, f)
    result = launcher.run(
        "cache_teacher.py", *_cache_args(teacher_run, tiny_yt8m.train_pattern, cache_dir, *flags)
    )
    assert result.returncode != 0
    line = launcher.last_stderr_line(result)
    assert line.startswith(
        f"cache_teacher.py: error: --output_dir={cache_dir}: {cache_dir} holds a teacher cache "
        f"planned with another {named}: "
    )
    assert line.endswith("rerun with the same flags, or use another --output_dir")
    assert "Traceback" not in result.stderr
    assert not os.path.exists(os.path.join(cache_dir, "teacher-00001.tfrecord"))


@pytest.mark.parametrize(
    "pattern, flags, want",
    [
        (
            "{train}",
            ["--num_shards=2", "--shard_index=2"],
            "--shard_index=2 must be in 0..1 (--num_shards=2)",
        ),
        (
            "{train}",
            ["--num_shards=2", "--shard_index=-1"],
            "--shard_index=-1 must be in 0..1 (--num_shards=2)",
        ),
        ("{train}", ["--num_shards=0"], "--num_shards=0 must be at least 1"),
        (
            "{train}",
            ["--split_file={root}/trainlist01.txt"],
            "--split_file is only for a UCF101 frames directory; --data_pattern={train} names "
            "records, which hold one split",
        ),
        (
            "{root}",
            ["--num_shards=2", "--shard_index=1"],
            "--num_shards=2: --data_pattern={root} is a (UCF101 frames) directory, which one "
            "process caches; shard its frame records instead",
        ),
    ],
)
def test_bad_shard_flags_are_one_line(
    pattern, flags, want, teacher_run, tiny_yt8m, launcher, tmp_path
):
    values = {"train": tiny_yt8m.train_pattern, "root": tiny_yt8m.root}
    result = launcher.run(
        "cache_teacher.py",
        *_cache_args(teacher_run, pattern.format(**values), tmp_path / "c", *flags),
    )
    assert result.returncode != 0
    assert launcher.last_stderr_line(result) == f"cache_teacher.py: error: {want.format(**values)}"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------------------ duplicates
@pytest.fixture
def parts_with_a_shared_id(teacher_run, tmp_path) -> tuple[str, list[str]]:
    """A cache whose two parts are written (in process) but not finished: 'twin' and 'copy' are
    in both input files."""
    first = _write(
        tmp_path / "a.tfrecord",
        [make_example("twin", [1], _video(1)), make_example("copy", [2], _video(3))],
    )
    second = _write(
        tmp_path / "b.tfrecord",
        [
            make_example("other", [1], _video(4)),
            make_example("twin", [1], _video(2)),
            make_example("copy", [2], _video(3)),
        ],
    )
    run = restore_run(teacher_run)
    cache_dir = str(tmp_path / "cache")
    inputs = part_sizes([first, second])
    ensure_plan(
        cache_dir,
        make_plan(
            teacher_run_dir=teacher_run,
            checkpoint=run.checkpoint,
            data_pattern=str(tmp_path / "*.tfrecord"),
            input_files=inputs,
            num_shards=1,
            feature_names=["rgb", "audio"],
            max_frames=MAX_FRAMES,
            teacher_model_config={},
        ),
    )
    for index, item in enumerate(inputs):
        dataset = run.frame_dataset(item["path"], batch_size=2, source_files=True)
        write_part(run.model, run.model_config, dataset, cache_dir, index, item)
    return cache_dir, [first, second]


def test_an_id_in_two_input_files_is_refused_naming_both(parts_with_a_shared_id):
    cache_dir, (first, second) = parts_with_a_shared_id
    with pytest.raises(ValueError) as error:
        finalize(cache_dir)
    assert str(error.value).startswith(
        f"video id twin appears twice in the data, in {first} and in {second} (in two input "
        "files): a teacher cache needs unique ids (with --skip_bad_records the first is kept"
    )
    assert not os.path.exists(os.path.join(cache_dir, "teacher_cache.json"))


def test_with_skip_the_first_of_an_id_is_kept_and_counted(parts_with_a_shared_id):
    cache_dir, (first, second) = parts_with_a_shared_id
    part1 = os.path.join(cache_dir, "teacher-00001.tfrecord")
    kept_logits = {  # the rows of part 0: the first video of each id
        r["video_id"]: r["logits"]
        for r in _part_rows(os.path.join(cache_dir, "teacher-00000.tfrecord"))
    }
    metadata = finalize(cache_dir, skip_duplicates=True)
    assert metadata["num_videos"] == 3
    assert [s["num_videos"] for s in metadata["shards"]] == [2, 1]
    assert metadata["bad_records"] == {"duplicate_id": 2, "total": 2}
    assert metadata["duplicate_ids"] == [
        {"video_id": "twin", "files": [first, second], "same_frames": None},
        {"video_id": "copy", "files": [first, second], "same_frames": None},
    ]
    assert [r["video_id"] for r in _part_rows(part1)] == [b"other"]
    cache = TeacherCache.load(cache_dir)
    assert sorted(cache.video_ids.astype(bytes)) == [b"copy", b"other", b"twin"]
    rows = cache.lookup(tf.constant([b"twin", b"copy"]))["teacher_logits"].numpy()
    np.testing.assert_array_equal(rows, np.stack([kept_logits[b"twin"], kept_logits[b"copy"]]))
    assert finalize(cache_dir, skip_duplicates=True) == metadata  # idempotent


def _part_rows(path: str) -> list[dict]:
    features = {
        "video_id": tf.io.FixedLenFeature([], tf.string),
        "logits": tf.io.FixedLenFeature([NUM_CLASSES], tf.float32),
    }
    return [
        {key: value.numpy() for key, value in tf.io.parse_single_example(r, features).items()}
        for r in tf.data.TFRecordDataset(path)
    ]


@pytest.mark.slow  # two launcher processes
def test_launcher_refuses_an_id_in_two_files_until_skip(teacher_run, launcher, tmp_path):
    first = _write(tmp_path / "a.tfrecord", [make_example("twin", [1], _video(1))])
    second = _write(
        tmp_path / "b.tfrecord",
        [make_example("other", [1], _video(4)), make_example("twin", [1], _video(2))],
    )
    pattern, cache_dir = str(tmp_path / "*.tfrecord"), str(tmp_path / "cache")
    strict = _shard(launcher, teacher_run, pattern, cache_dir, 0, 1)
    assert strict.returncode == 1
    assert launcher.last_stderr_line(strict).startswith(
        f"cache_teacher.py: error: --output_dir={cache_dir}: video id twin appears twice in the "
        f"data, in {first} and in {second} (in two input files)"
    )
    assert "Traceback" not in strict.stderr

    # The parts are complete: finishing with --skip_bad_records keeps the first 'twin'.
    final = launcher.run(
        "cache_teacher.py", f"--output_dir={cache_dir}", "--finalize", "--skip_bad_records"
    )
    assert final.returncode == 0, final.stderr[-3000:]
    printed = json.loads(final.stdout.strip().splitlines()[-1])
    assert printed["num_videos"] == 2
    assert printed["bad_records"]["duplicate_id"] == 1
    assert printed["duplicate_ids"] == [
        {"video_id": "twin", "files": [first, second], "same_frames": None}
    ]
    assert [s["num_videos"] for s in printed["shards"]] == [1, 1]
