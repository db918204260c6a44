"""Metrics against hand-worked values from the reference definitions, and streaming == in-memory."""

from __future__ import annotations

import numpy as np
import pytest

from yt8m_kd import metrics
from yt8m_kd.metrics import (
    EvaluationAccumulator,
    average_precision,
    global_average_precision,
    hit_at_one,
    mean_average_precision,
    precision_at_equal_recall_rate,
    top_k_accuracy,
    top_k_indices,
)

# Four videos, four classes, evaluated with top_k=2. Each video's top 2 is marked with *.
#   video  scores                     labels     top 2 (class: score, positive)
#   v0     [0.9*, 0.8*, 0.1,  0.0 ]   [1,0,0,0]  c0: 0.9 +, c1: 0.8 -
#   v1     [0.7*, 0.2,  0.6*, 0.0 ]   [0,1,1,0]  c0: 0.7 -, c2: 0.6 +   (c1 positive not in top 2)
#   v2     [0.3,  0.5*, 0.4*, 0.1 ]   [1,1,0,0]  c1: 0.5 +, c2: 0.4 -   (c0 positive not in top 2)
#   v3     [0.1,  0.2*, 0.3*, 0.05]   [0,0,0,0]  c2: 0.3 -, c1: 0.2 -   (no labels)
# Class 3 has no positive anywhere.
SMALL_PREDICTIONS = np.array(
    [
        [0.9, 0.8, 0.1, 0.0],
        [0.7, 0.2, 0.6, 0.0],
        [0.3, 0.5, 0.4, 0.1],
        [0.1, 0.2, 0.3, 0.05],
    ]
)
SMALL_LABELS = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 1, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)


def test_gap_reference_worked_example():
    # Reference, "GAP": sorted labels 1,0,1,1 with 4 positives in all. One video, top_k=4: its
    # top 4 gives the sorted labels 1,0,1,1 and its fourth positive (class 4) is outside the top 4.
    predictions = np.array([[0.9, 0.8, 0.7, 0.6, 0.1]])
    labels = np.array([[1, 0, 1, 1, 1]])
    gap = global_average_precision(predictions, labels, top_k=4)
    assert gap == pytest.approx(0.6042, abs=1e-4)
    # (1/1 + 2/3 + 3/4) / 4 = 29/48.
    assert gap == pytest.approx(29 / 48, rel=1e-15, abs=0)


def test_gap_counts_positives_outside_top_k():
    # 25 classes, scores descending with the class index; positives at ranks 0 and 24.
    predictions = np.linspace(1.0, 0.0, 25)[None, :]
    labels = np.zeros((1, 25), dtype=int)
    labels[0, 0] = 1
    only_inside = global_average_precision(predictions, labels, top_k=20)
    assert only_inside == 1.0
    labels[0, 24] = 1
    # The rank-24 positive never enters the top 20 but is in the denominator: (1/1) / 2.
    assert global_average_precision(predictions, labels, top_k=20) == pytest.approx(0.5)
    # With every class kept it is found at rank 24: (1/1 + 2/25) / 2 = 0.54.
    assert global_average_precision(predictions, labels, top_k=25) == pytest.approx(0.54)


def test_gap_small_case():
    # Pooled top-2 pairs by score: 0.9+ 0.8- 0.7- 0.6+ 0.5+ 0.4- 0.3- 0.2-, 5 positives in all.
    # Positives at ranks 0, 3, 4: (1/1 + 2/4 + 3/5) / 5 = 2.1 / 5 = 0.42.
    gap = global_average_precision(SMALL_PREDICTIONS, SMALL_LABELS, top_k=2)
    assert gap == pytest.approx(0.42)


def test_gap_no_positives_is_zero():
    assert global_average_precision(np.ones((3, 5)), np.zeros((3, 5))) == 0.0


def test_gap_ties_are_deterministic():
    # All scores equal: the order comes only from the seeded shuffle, so repeated calls agree.
    rng = np.random.RandomState(3)
    predictions = np.full((40, 10), 0.5)
    labels = (rng.rand(40, 10) < 0.3).astype(int)
    first = global_average_precision(predictions, labels, top_k=5)
    assert 0.0 < first < 1.0
    assert global_average_precision(predictions, labels, top_k=5) == first


def test_average_precision_helper():
    # Sorted 0,1,1 with 4 positives in all: (1/2 + 2/3) / 4 = 7/24.
    ap = average_precision(np.array([0.2, 0.9, 0.5]), np.array([1, 0, 1]), num_positives=4)
    assert ap == pytest.approx(7 / 24)
    assert average_precision(np.array([0.3]), np.array([0]), num_positives=0) == 0.0


def test_map_small_case_filters_empty_classes():
    # Per-class pairs (video order), sorted by score, and AP (denominator: positives over all):
    #   c0: 0.9+ 0.7-       2 positives (v0, v2)  AP = (1/1) / 2       = 0.5
    #   c1: 0.8- 0.5+ 0.2-  2 positives (v1, v2)  AP = (1/2) / 2       = 0.25
    #   c2: 0.6+ 0.4- 0.3-  1 positive  (v1)      AP = (1/1) / 1       = 1.0
    #   c3: no pairs, no positives -> filtered out of the mean.
    # mAP = (0.5 + 0.25 + 1.0) / 3 = 0.58333 (dividing by all 4 classes would give 0.4375).
    result = mean_average_precision(SMALL_PREDICTIONS, SMALL_LABELS, top_k=2)
    assert result == pytest.approx(1.75 / 3)


def test_map_class_never_in_top_k_counts_as_zero():
    # top_k=1. v0 keeps c0 (0.9, +); v1 keeps c1 (0.8, +). Class 2 has a positive (v0) but never
    # reaches a top 1: AP 0, and it is not filtered since it has a positive.
    # mAP = (1 + 1 + 0) / 3.
    predictions = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.1]])
    labels = np.array([[1, 0, 1], [0, 1, 0]])
    assert mean_average_precision(predictions, labels, top_k=1) == pytest.approx(2 / 3)


def test_hit_at_one_small_case():
    # Top-1 classes: v0 c0 (+), v1 c0 (-), v2 c1 (+), v3 c2 (-): 2 of 4 videos.
    assert hit_at_one(SMALL_PREDICTIONS, SMALL_LABELS) == pytest.approx(0.5)


def test_perr_small_case_skips_unlabelled_videos():
    # v0: 1 label, top 1 = {c0}: 1/1. v1: 2 labels, top 2 = {c0, c2}: 1/2.
    # v2: 2 labels, top 2 = {c1, c2}: 1/2. v3 has no labels and is left out.
    # PERR = (1 + 1/2 + 1/2) / 3 = 2/3 (averaging over all 4 videos would give 0.5).
    assert precision_at_equal_recall_rate(SMALL_PREDICTIONS, SMALL_LABELS) == pytest.approx(2 / 3)


def test_perr_uses_more_than_top_k_labels():
    # 25 labels on one video, the top 25 scores hold 24 of them: PERR = 24/25.
    predictions = np.linspace(1.0, 0.0, 30)[None, :]
    labels = np.zeros((1, 30), dtype=int)
    labels[0, :24] = 1
    labels[0, 29] = 1
    assert precision_at_equal_recall_rate(predictions, labels) == pytest.approx(24 / 25)


def test_top_k_accuracy():
    predictions = np.array(
        [
            [0.1, 0.5, 0.4],  # label 2: rank 2
            [0.7, 0.2, 0.1],  # label 0: rank 1
            [0.3, 0.3, 0.4],  # label 1: tied with class 0 at 0.3, the lower index ranks first
        ]
    )
    labels = np.array([2, 0, 1])
    assert top_k_accuracy(predictions, labels, k=1) == pytest.approx(1 / 3)
    assert top_k_accuracy(predictions, labels, k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(predictions, labels, k=3) == 1.0


def test_top_k_indices_breaks_ties_by_class_index():
    predictions = np.array([[0.2, 0.5, 0.5, 0.1, 0.5]])
    np.testing.assert_array_equal(top_k_indices(predictions, 2), [[1, 2]])
    np.testing.assert_array_equal(top_k_indices(predictions, 4), [[1, 2, 4, 0]])
    np.testing.assert_array_equal(top_k_indices(predictions, 10), [[1, 2, 4, 0, 3]])


def _random_multi_label(num_videos: int, num_classes: int, seed: int, decimals: int | None):
    rng = np.random.RandomState(seed)
    predictions = rng.rand(num_videos, num_classes)
    if decimals is not None:
        predictions = np.round(predictions, decimals)  # coarse scores: many ties
    labels = np.zeros((num_videos, num_classes), dtype=np.int64)
    num_labels = rng.randint(1, 5, size=num_videos)
    for video, n in enumerate(num_labels):
        labels[video, rng.choice(num_classes, size=n, replace=False)] = 1
    # Make scores informative so the metrics are far from 0 and 1.
    predictions = predictions + 0.5 * labels * rng.rand(num_videos, num_classes)
    if decimals is not None:
        predictions = np.round(predictions, decimals)
    return predictions, labels


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("top_k", [20, 5])
def test_accumulator_matches_in_memory(decimals, top_k):
    predictions, labels = _random_multi_label(500, 50, seed=7, decimals=decimals)
    expected = {
        "gap": global_average_precision(predictions, labels, top_k=top_k),
        "map": mean_average_precision(predictions, labels, top_k=top_k),
        "hit_at_one": hit_at_one(predictions, labels),
        "perr": precision_at_equal_recall_rate(predictions, labels),
    }
    assert 0.2 < expected["gap"] < 0.95  # a non-trivial case

    accumulator = EvaluationAccumulator(num_classes=50, top_k=top_k)
    for start, stop in [(0, 37), (37, 200), (200, 201), (201, 450), (450, 500)]:
        accumulator.update(predictions[start:stop], labels[start:stop])
    result = accumulator.result()

    assert result["num_videos"] == 500
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-12, abs=0), name
    # Only each video's top_k is stored, never the [500, 50] scores.
    assert accumulator.top_scores.shape == (500, top_k)
    assert accumulator.top_classes.shape == (500, top_k)
    assert accumulator.top_positives.shape == (500, top_k)
    assert accumulator.class_num_positives.shape == (50,)
    assert accumulator.class_num_positives.sum() == labels.sum()


def test_accumulator_reset_and_empty():
    accumulator = EvaluationAccumulator(num_classes=4, top_k=2)
    empty = accumulator.result()
    assert empty == {"gap": 0.0, "map": 0.0, "hit_at_one": 0.0, "perr": 0.0, "num_videos": 0}

    accumulator.update(SMALL_PREDICTIONS, SMALL_LABELS)
    result = accumulator.result()
    assert result["gap"] == pytest.approx(0.42)
    assert result["map"] == pytest.approx(1.75 / 3)
    assert result["hit_at_one"] == pytest.approx(0.5)
    assert result["perr"] == pytest.approx(2 / 3)
    assert result["num_videos"] == 4

    accumulator.reset()
    assert accumulator.result() == empty
    assert accumulator.top_scores.shape == (0, 2)


def test_accumulator_rejects_wrong_num_classes():
    accumulator = EvaluationAccumulator(num_classes=5)
    with pytest.raises(ValueError):
        accumulator.update(np.zeros((2, 4)), np.zeros((2, 4)))


def test_accuracy_accumulator_by_hand_over_uneven_batches():
    rng = np.random.default_rng(3)
    predictions = rng.random((13, 7))
    labels = rng.integers(0, 7, 13)
    labels[:3] = 6  # class 6 three times
    predictions[0] = np.eye(7)[6]  # right
    predictions[1] = np.eye(7)[0]  # wrong
    predictions[2] = np.eye(7)[6]  # right
    accumulator = metrics.AccuracyAccumulator(7, [f"c{i}" for i in range(7)])
    for start, stop in [(0, 2), (2, 9), (9, 13)]:
        accumulator.update(predictions[start:stop], labels[start:stop])
    result = accumulator.result()
    assert result["num_videos"] == 13
    assert result["top1"] == pytest.approx(metrics.top_k_accuracy(predictions, labels, 1))
    assert result["top5"] == pytest.approx(metrics.top_k_accuracy(predictions, labels, 5))
    assert result["per_class_accuracy"]["c6"] == pytest.approx(
        np.mean(predictions[labels == 6].argmax(1) == 6)
    )
    assert set(result["per_class_accuracy"]) == {f"c{c}" for c in set(labels.tolist())}


def test_accuracy_accumulator_worked_example():
    accumulator = metrics.AccuracyAccumulator(3)
    accumulator.update(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]), [1, 2, 2])
    result = accumulator.result()
    assert result["top1"] == pytest.approx(2 / 3)
    assert result["top5"] == 1.0  # 3 classes: every label is in the top min(5, 3)
    assert result["per_class_accuracy"] == {"1": 1.0, "2": 0.5}
    assert result["mean_class_accuracy"] == 0.75
    with pytest.raises(ValueError, match="labels must be in"):
        accumulator.update(np.zeros((1, 3)), np.array([3]))
