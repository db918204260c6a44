"""Synthetic YouTube-8M records: exact format, reproducible bytes, and the documented process."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.data import synthetic, yt8m, yt8m_records

SIZES = (16, 8)
NAMES = ("rgb", "audio")


def _write(output_dir, **overrides):
    kwargs = dict(
        split="train",
        num_shards=2,
        videos_per_shard=10,
        num_classes=12,
        feature_sizes=SIZES,
        min_frames=20,
        max_frames=40,
        seed=3,
    )
    kwargs.update(overrides)
    return synthetic.write_synthetic_yt8m(str(output_dir), **kwargs)


def _raw_records(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_records_parse_with_plain_tensorflow(tmp_path):
    paths = _write(tmp_path)
    assert [os.path.basename(p) for p in paths] == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]
    classes = synthetic.make_classes(12, SIZES, class_seed=3)
    for shard, path in enumerate(paths):
        videos = list(
            synthetic.generate_videos(
                classes,
                split="train",
                shard_index=shard,
                num_videos=10,
                seed=3,
                min_frames=20,
                max_frames=40,
            )
        )
        records = _raw_records(path)
        assert len(records) == 10
        for video, record in zip(videos, records, strict=True):
            context, sequences = tf.io.parse_single_sequence_example(
                record,
                context_features={
                    "id": tf.io.FixedLenFeature([], tf.string),
                    "labels": tf.io.VarLenFeature(tf.int64),
                },
                sequence_features={
                    name: tf.io.FixedLenSequenceFeature([], tf.string) for name in NAMES
                },
            )
            assert context["id"].numpy().decode() == video.video_id
            assert context["labels"].values.numpy().tolist() == video.labels
            for name, size in zip(NAMES, SIZES, strict=True):
                frames = sequences[name].numpy()
                assert all(len(frame) == size for frame in frames)  # one bytes value per frame
                decoded = tf.io.decode_raw(sequences[name], tf.uint8).numpy()
                np.testing.assert_array_equal(decoded, video.features[name])


def test_video_id_key_of_the_2017_data(tmp_path):
    (path,) = _write(tmp_path, num_shards=1, id_key="video_id")
    example = tf.train.SequenceExample.FromString(_raw_records(path)[0])
    assert set(example.context.feature) == {"video_id", "labels"}
    assert set(example.feature_lists.feature_list) == set(NAMES)


def test_same_seed_same_bytes(tmp_path):
    first = _write(tmp_path / "a")
    second = _write(tmp_path / "b")
    other = _write(tmp_path / "c", seed=4)
    for a, b, c in zip(first, second, other, strict=True):
        assert open(a, "rb").read() == open(b, "rb").read()
        assert open(a, "rb").read() != open(c, "rb").read()


def test_splits_share_classes_not_videos(tmp_path):
    train = _write(tmp_path, split="train", num_shards=1)
    validate = _write(tmp_path, split="validate", num_shards=1)
    assert os.path.basename(validate[0]) == "validate-00000-of-00001.tfrecord"
    assert _raw_records(train[0]) != _raw_records(validate[0])
    # The classes come from the dataset seed only.
    a = synthetic.make_classes(12, SIZES, class_seed=3)
    b = synthetic.make_classes(12, SIZES, class_seed=3)
    for pa, pb in zip(a.prototypes, b.prototypes, strict=True):
        np.testing.assert_array_equal(pa, pb)
    np.testing.assert_allclose(np.linalg.norm(a.prototypes[0], axis=1), 1.0, rtol=1e-5)


def test_the_reader_reads_them(tmp_path):
    _write(tmp_path, num_shards=3, videos_per_shard=7, split="validate")
    counter = yt8m.BadRecordCounter()
    batches = list(
        yt8m.frame_dataset(
            str(tmp_path / "validate-*"),
            batch_size=8,
            max_frames=40,
            num_classes=12,
            feature_sizes=SIZES,
            skip_bad_records=True,
            bad_record_counter=counter,
        )
    )
    num_frames = np.concatenate([b["num_frames"].numpy() for b in batches])
    assert len(num_frames) == 21
    assert counter.counts()["total"] == 0
    assert ((num_frames >= 20) & (num_frames <= 40)).all()


def _videos(num_videos=600, num_classes=20, **kwargs):
    classes = synthetic.make_classes(num_classes, SIZES, class_seed=0)
    videos = list(
        synthetic.generate_videos(
            classes, split="train", shard_index=0, num_videos=num_videos, seed=0, **kwargs
        )
    )
    return classes, videos


def test_lengths_and_labels():
    _, videos = _videos(min_frames=60, max_frames=100, label_miss_rate=0.3)
    lengths = np.array([v.features["rgb"].shape[0] for v in videos])
    assert lengths.min() >= 60 and lengths.max() <= 100
    assert lengths.min() < 65 and lengths.max() > 95  # spread over the whole range
    assert all(v.features["audio"].shape == (len(v.features["rgb"]), 8) for v in videos)
    num_true = np.array([len(v.true_labels) for v in videos])
    assert num_true.min() == 1 and num_true.max() >= 3  # co-occurring classes
    for v in videos:
        assert len(v.labels) >= 1
        assert set(v.labels) <= set(v.true_labels)
        assert len(set(v.true_labels)) == len(v.true_labels)
    # Each true label is missing from the record with probability about 0.3 (a kept-one rule
    # makes it a bit lower).
    missed = 1 - sum(len(v.labels) for v in videos) / num_true.sum()
    assert 0.2 < missed < 0.35


def test_label_frequencies_are_long_tailed():
    _, videos = _videos(num_videos=1500)
    counts = np.bincount([label for v in videos for label in v.true_labels], minlength=20)
    top = np.sort(counts)[::-1]
    assert top[:4].sum() > 0.5 * counts.sum()  # a fifth of the classes hold most labels
    assert counts[0] > 5 * counts[10:].mean()
    assert (counts > 0).sum() >= 18  # the tail is rare, not absent


def test_evidence_sits_in_a_few_frames():
    classes, videos = _videos(num_videos=200, num_classes=50, min_frames=60, max_frames=300)
    prototypes = np.concatenate(classes.prototypes, axis=1)  # [C, 24], rows of norm sqrt(2)
    mean = np.concatenate(classes.means)
    fractions, all_frames_hits, six_frames_hits = [], 0, 0
    for v in videos:
        frames = np.concatenate([v.features[name] for name in NAMES], axis=1)
        x = yt8m_records.dequantize(frames).numpy() - mean
        scores = x @ prototypes.T / 2  # [frames, classes]: mean evidence per feature
        # Bursts add 3.0 along the prototype on top of a 0.25 whole-video signal; frame noise
        # projects to std 0.35 here: frames above 2.0 are burst frames.
        for label in v.true_labels:
            fractions.append(np.mean(scores[:, label] > 2.0))
        # An oracle that knows the prototypes: all frames vs 6 uniformly spaced frames.
        all_frames_hits += int(np.argmax(scores.mean(0)) in v.true_labels)
        six = ((2 * np.arange(6) + 1) * len(x)) // 12
        six_frames_hits += int(np.argmax(scores[six].mean(0)) in v.true_labels)
    assert 0.03 < np.mean(fractions) < 0.10
    assert max(fractions) < 0.2
    # The all-frames view almost always finds a true label; six frames often miss the bursts but
    # are far above chance (about 0.05 here).
    assert all_frames_hits / len(videos) > 0.9
    assert 0.3 < six_frames_hits / len(videos) < 0.85


def test_quantize_inverts_dequantize():
    q = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(synthetic.quantize(yt8m_records.dequantize(q).numpy()), q)
    assert synthetic.quantize(np.array([-5.0, 5.0])).tolist() == [0, 255]


def test_make_example_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        synthetic.make_example("v", [0], {"rgb": np.zeros((2, 4), np.float32)})


def test_command_line_script(tmp_path):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "data_scripts", "make_synthetic_yt8m.py")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), ".."))
    subprocess.run(
        [
            sys.executable,
            script,
            f"--output_dir={tmp_path}",
            "--num_train_shards=2",
            "--num_eval_shards=1",
            "--videos_per_shard=3",
            "--num_classes=5",
            "--feature_sizes=4,2",
            "--min_frames=5",
            "--max_frames=9",
            "--seed=1",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "*.tfrecord")))
    assert names == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "validate-00000-of-00001.tfrecord",
    ]
