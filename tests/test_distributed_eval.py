"""Evaluation on every replica (training/evaluation.py) gives one-device metrics, each video once."""

import json

import pytest
import tensorflow as tf
from conftest import NUM_CLASSES, run_test_script, tiny_configs

from yt8m_kd.data import videos
from yt8m_kd.modeling import build_video_model
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training import evaluation
from yt8m_kd.training import strategy as strategy_lib

# Metric tolerance between one-device and distributed evaluation. Per-video scores differ by float32
# round-off only (a replica's batch is smaller, and a matrix product may sum in another order; the
# script measures 1.2e-7, one ulp below 1.0); the metrics are sums in float64 of ranks and counts,
# so they agree to float64 round-off unless a score difference that small reorders two videos.
METRIC_TOLERANCE = 1e-9


def test_per_replica_batch_rounds_up():
    assert evaluation.per_replica_batch_size(6, 2) == 3
    assert evaluation.per_replica_batch_size(7, 2) == 4
    assert evaluation.per_replica_batch_size(1, 2) == 1


def test_one_replica_does_not_distribute():
    assert not evaluation.distributes(None)
    assert not evaluation.distributes(strategy_lib.make_strategy("one_device"))
    assert not evaluation.distributes(tf.distribute.get_strategy())


def test_global_batch_j_goes_to_replica_j_mod_replicas():
    """3 workers of 2 replicas: each pipeline's batches, handed to its replicas in turn, put
    global batch j on replica j mod 6, so that replica order is the records' order."""
    workers, replicas_per_worker = 3, 2
    replica_of = {}
    for pipeline in range(workers):
        context = tf.distribute.InputContext(workers, pipeline, workers * replicas_per_worker)
        kept = evaluation.shard_batches(tf.data.Dataset.range(20), context)
        for position, j in enumerate(kept.as_numpy_iterator()):
            step, replica = divmod(position, replicas_per_worker)
            replica_of[int(j)] = (step, pipeline * replicas_per_worker + replica)
    assert replica_of == {j: divmod(j, workers * replicas_per_worker) for j in range(20)}
    one_pipeline = tf.distribute.InputContext(1, 0, 2)
    assert list(evaluation.shard_batches(tf.data.Dataset.range(3), one_pipeline)) == [0, 1, 2]


def test_an_empty_replica_batch_skips_the_model():
    """Past the end of the data a replica gets a 0-row batch; the model is not called on it."""

    def predict(batch):  # a model that cannot take 0 rows
        tf.debugging.assert_positive(tf.shape(batch["labels"])[0], message="0-row batch")
        return tf.ones([tf.shape(batch["labels"])[0], 4], tf.bfloat16)

    replica_predict = evaluation.make_replica_predict_fn(
        strategy_lib.make_strategy("one_device"), predict, num_classes=4
    )
    for rows in (0, 2):
        batch = {"frames": tf.zeros([rows, 3, 5]), "labels": tf.zeros([rows, 4], tf.int32)}
        probabilities, labels = replica_predict(batch)
        assert probabilities.shape == (rows, 4) and probabilities.dtype == tf.float32
        assert labels.shape == (rows, 4)


def test_one_device_strategy_evaluates_as_without_strategy(tiny_yt8m):
    """With one replica, evaluation is today's loop: the same numbers exactly."""
    model_config, _, data_config = tiny_configs("tiny_student_k6.flags", tiny_yt8m)
    model_config = model_config.replace(frame_selection="random")
    model = build_video_model(model_config)

    def dataset():
        return videos.read_videos(
            data_config, model_config, tiny_yt8m.eval_pattern, batch_size=5, training=False
        )

    predict = make_predict_fn(model, model_config)  # traced once for both
    plain = evaluation.evaluate(model, model_config, dataset(), predict=predict)
    strategy = strategy_lib.make_strategy("one_device")
    assert (
        evaluation.evaluate(model, model_config, dataset(), predict=predict, strategy=strategy)
        == plain
    )
    assert plain["num_videos"] == 32


def _assert_close(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, dict):  # per-class accuracy
            _assert_close(found[name], value)
        else:
            assert found[name] == pytest.approx(value, abs=METRIC_TOLERANCE), name


@pytest.mark.slow
def test_two_replicas_evaluate_like_one_device(tiny_yt8m, tmp_path):
    """Mirrored over 2 logical CPUs, 32 videos in global batches of 6 (not a multiple: the last
    step gives one replica 2 videos and the other none) and a set of 1 video (fewer than the
    replicas): the metrics of one device, every video counted once; a random-k student too."""
    report = run_test_script("distributed_eval.py", str(tiny_yt8m.root), str(tmp_path), timeout=300)
    for name in ("teacher", "random_k"):
        case = report[name]
        assert case["replicas"] == [1, 2]
        assert case["weight_diff"] == 0.0  # the same initial weights under both strategies
        assert case["scores_shape"] == [[32, NUM_CLASSES], [32, NUM_CLASSES]]
        assert case["score_diff"] < 1e-6
        # 3 videos per replica per step, then 2 for replica 0 and an empty batch for replica 1.
        assert case["rows_per_replica"] == [3] * 10 + [2, 0]
        one, mirrored = case["one_device"], case["mirrored"]
        assert one["all_6"]["num_videos"] == mirrored["all_6"]["num_videos"] == 32
        _assert_close(mirrored["all_6"], one["all_6"])
        assert one["all_6"]["gap"] > 0  # an untrained model, but not a degenerate one
    random_k = report["random_k"]
    one, mirrored = random_k["one_device"], random_k["mirrored"]
    assert one["one_video"]["num_videos"] == mirrored["one_video"]["num_videos"] == 1
    _assert_close(mirrored["one_video"], one["one_video"])
    # A random-k student's frames follow the video, not the replica: batches of 10 (5 per
    # replica) put most videos on another replica than batches of 6 do, same metrics.
    _assert_close(
        report["random_k"]["mirrored"]["all_10"], report["random_k"]["one_device"]["all_6"]
    )
    assert report["plain_dataset_error"] == (
        "evaluate: 2 replicas need the batches of distributed_eval_dataset, got a tf.data.Dataset"
    )
    single = report["teacher"]["single_label"]
    assert single["one_device"]["num_videos"] == single["mirrored"]["num_videos"] == 32
    _assert_close(single["mirrored"], single["one_device"])


@pytest.mark.slow  # two launcher processes
def test_evaluate_launcher_mirrored_matches_one_device(teacher_run, tiny_yt8m, tmp_path, launcher):
    """evaluate.py --strategy=mirrored over 2 logical CPUs writes the one-device metrics."""
    args = [f"--run_dir={teacher_run}", f"--eval_data_pattern={tiny_yt8m.eval_pattern}"]
    reports = {}
    for name, flags in (
        ("one_device", []),
        ("mirrored", ["--strategy=mirrored", "--num_logical_cpus=2"]),
    ):
        out = tmp_path / f"{name}.json"
        result = launcher.run(
            "evaluate.py", *args, "--eval_batch_size=6", *flags, f"--output_json={out}"
        )
        assert result.returncode == 0, result.stderr[-2000:]
        reports[name] = json.loads(out.read_text())
    assert reports["mirrored"]["eval"]["num_videos"] == 32
    _assert_close(reports["mirrored"]["eval"], reports["one_device"]["eval"])
