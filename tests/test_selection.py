"""SAKD selection: the kernel by hand, duplicates and difficulty, the fast greedy against a brute-force
log-det greedy, and the chunked selection's count, order and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from yt8m_kd.distill.selection import (
    class_quotas,
    greedy_map_selection,
    quality_diversity_kernel,
    select_samples,
)


def _random_case(seed: int, num: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(num, dim)).astype(np.float32), rng.uniform(size=num)


def _brute_force_greedy(kernel: np.ndarray, k: int) -> list[int]:
    """Greedy on the explicit kernel: each step adds the candidate whose log det(L_Y) is largest."""
    selected: list[int] = []
    for _ in range(k):
        best, best_logdet = -1, -np.inf
        for i in range(kernel.shape[0]):
            if i in selected:
                continue
            rows = selected + [i]
            sign, logdet = np.linalg.slogdet(kernel[np.ix_(rows, rows)])
            if sign > 0 and logdet > best_logdet:
                best, best_logdet = i, logdet
        selected.append(best)
    return selected


# ------------------------------------------------------------------------------ kernel
def test_kernel_matches_hand_computed_3x3():
    # Rows normalise to e1, e2 and (e1 + e2) / sqrt(2): S = [[1, 0, r], [0, 1, r], [r, r, 1]],
    # r = 1 / sqrt(2). Diagonal: 0.5 * 1 + 0.5 * (1 - d_hat) = 1, 0.75, 0.5.
    features = [[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]
    d_hat = [0.0, 0.5, 1.0]
    r = 0.5 / np.sqrt(2.0)  # gamma * S_13
    expected = np.array([[1.0, 0.0, r], [0.0, 0.75, r], [r, r, 0.5]])
    np.testing.assert_allclose(quality_diversity_kernel(features, d_hat, gamma=0.5), expected)


def test_kernel_extremes_of_gamma():
    features, d_hat = _random_case(0, 5, 3)
    normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(
        quality_diversity_kernel(features, d_hat, gamma=1.0), normalised @ normalised.T, rtol=1e-6
    )
    np.testing.assert_allclose(
        quality_diversity_kernel(features, d_hat, gamma=0.0), np.diag(1 - d_hat)
    )


# ------------------------------------------------------------------------------ greedy
@pytest.mark.parametrize("gamma", [0.5, 1.0])
@pytest.mark.parametrize("order", [[0, 1, 2], [0, 2, 1], [2, 0, 1]])
def test_greedy_skips_a_duplicate_while_a_distinct_candidate_remains(gamma, order):
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    rows = [a, a, b]
    features = np.array([rows[i] for i in order])
    picks = greedy_map_selection(features, [0.3, 0.3, 0.3], k=2, gamma=gamma)
    b_index = order.index(2)
    a_indices = [i for i in range(3) if i != b_index]
    assert sorted(picks.tolist()) == sorted([a_indices[0], b_index])  # ties: the lowest index


def test_greedy_prefers_low_difficulty_at_equal_diversity():
    # Orthogonal features: no candidate reduces another's gain, so the order is by difficulty.
    d_hat = np.array([0.6, 0.1, 0.9, 0.3, 0.0])
    picks = greedy_map_selection(np.eye(5), d_hat, k=5)
    assert picks[0] == 4
    np.testing.assert_array_equal(picks, [4, 1, 3, 0, 2])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [0.3, 0.5, 0.8])
def test_greedy_order_matches_brute_force_log_det(seed, gamma):
    # dim < num makes the features linearly dependent, so diversity really shapes the order.
    num, dim = 10, 3 + seed
    features, d_hat = _random_case(seed, num, dim)
    kernel = quality_diversity_kernel(features, d_hat, gamma=gamma)
    picks = greedy_map_selection(features, d_hat, k=num, gamma=gamma)
    assert picks.tolist() == _brute_force_greedy(kernel, num)


def test_greedy_fills_by_difficulty_once_gains_run_out():
    # gamma = 1: L = S has rank 2, so after two picks every gain is 0; the rest go by d_hat.
    features = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]
    d_hat = [0.9, 0.8, 0.5, 0.1]
    picks = greedy_map_selection(features, d_hat, k=4, gamma=1.0)
    np.testing.assert_array_equal(picks, [0, 1, 3, 2])


def test_greedy_returns_k_distinct_ints():
    features, d_hat = _random_case(1, 50, 8)
    picks = greedy_map_selection(features, d_hat, k=20)
    assert picks.dtype == np.int64 and picks.shape == (20,)
    assert len(set(picks.tolist())) == 20
    assert greedy_map_selection(features, d_hat, k=0).shape == (0,)


# ------------------------------------------------------------------------------ select_samples
@pytest.mark.parametrize(
    "num, ratio, chunk_size",
    [
        (1000, 0.1, 128),
        (1000, 0.37, 100),
        (37, 0.3, 8),
        (37, 0.001, 8),
        (37, 1.0, 5),
        (500, 0.5, 2048),
    ],
)
def test_select_samples_count_distinct_sorted(num, ratio, chunk_size):
    features, d_hat = _random_case(2, num, 8)
    picks = select_samples(features, d_hat, ratio, chunk_size=chunk_size)
    assert picks.shape == (max(1, round(ratio * num)),)
    assert np.all(np.diff(picks) > 0)  # sorted and distinct
    assert picks[0] >= 0 and picks[-1] < num


def test_select_samples_deterministic_for_a_seed():
    features, d_hat = _random_case(3, 1000, 8)
    first = select_samples(features, d_hat, 0.1, chunk_size=128, seed=7)
    np.testing.assert_array_equal(
        first, select_samples(features, d_hat, 0.1, chunk_size=128, seed=7)
    )
    assert not np.array_equal(first, select_samples(features, d_hat, 0.1, chunk_size=128, seed=8))


@pytest.mark.parametrize("chunk_size", [300, 4096])
def test_select_samples_single_chunk_is_exact_greedy(chunk_size):
    features, d_hat = _random_case(4, 300, 8)
    picks = select_samples(features, d_hat, 0.2, chunk_size=chunk_size, seed=5)
    exact = greedy_map_selection(features, d_hat, k=60)
    np.testing.assert_array_equal(picks, np.sort(exact))


def test_select_samples_favours_easy_samples():
    features, d_hat = _random_case(5, 2000, 16)
    picks = select_samples(features, d_hat, 0.1, chunk_size=256)
    assert d_hat[picks].mean() < d_hat.mean() - 0.1


# ------------------------------------------------------------------------------ class balance
def _head_class_case(num: int = 200) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Class 0 (the head) in 60% of the samples, and those samples the easiest: the paper's
    selection leans on it. Every sample also has one of 4 tail classes (1..4)."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(num, 8))
    head = np.arange(num) < int(0.6 * num)
    d_hat = np.where(head, rng.uniform(0.0, 0.3, num), rng.uniform(0.5, 1.0, num))
    labels = [
        np.array([0, 1 + i % 4]) if is_head else np.array([1 + i % 4])
        for i, is_head in enumerate(head)
    ]
    return features, d_hat, labels


def _class_counts(labels, picks, num_classes: int = 5) -> np.ndarray:
    return np.bincount(np.concatenate([labels[i] for i in picks]), minlength=num_classes)


@pytest.mark.parametrize("chunk_size", [200, 64])
def test_class_balance_keeps_every_class_within_its_quota(chunk_size):
    features, d_hat, labels = _head_class_case()
    paper = select_samples(features, d_hat, 0.1, chunk_size=chunk_size)
    balanced = select_samples(
        features, d_hat, 0.1, chunk_size=chunk_size, labels=labels, num_classes=5
    )
    assert len(balanced) == len(paper) == 20
    assert len(set(balanced.tolist())) == 20
    # The paper's selection: the head class in nearly every pick (its share of the data: 60%).
    assert _class_counts(labels, paper)[0] >= 18
    # Balanced: quotas ceil(picks * frequency) per chunk's share; one chunk: exactly 12 of 20.
    counts = _class_counts(labels, balanced)
    frequency = _class_counts(labels, range(200)) / 200
    if chunk_size == 200:
        np.testing.assert_array_equal(class_quotas(frequency, 20), [12, 5, 5, 5, 5])
        assert counts[0] == 12
    # Per chunk the quotas round up; over 4 chunks a class can exceed its share by at most 4.
    assert np.all(counts <= np.ceil(20 * frequency) + (200 // chunk_size + 1)), counts
    # Within the quotas the selection still prefers easy samples: all head picks allowed are made.
    assert counts[0] >= 12


def test_class_balance_single_label_takes_each_class_share():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(100, 6))
    labels = [np.array([0])] * 70 + [np.array([1])] * 20 + [np.array([2])] * 10
    d_hat = np.concatenate([np.full(70, 0.0), np.full(30, 1.0)])  # class 0 easiest
    picks = select_samples(features, d_hat, 0.1, labels=labels, num_classes=3, chunk_size=100)
    np.testing.assert_array_equal(_class_counts(labels, picks, 3), [7, 2, 1])


def test_class_balance_gives_way_when_nothing_else_is_left():
    """Ten easy samples of classes 0 and 1 are picked first; then quotas of 12 (0.75 * 16) leave
    too few allowed samples for 16 picks, and the quotas give way rather than pick fewer."""
    features = np.random.default_rng(4).normal(size=(20, 8))
    labels = [np.array([0, 1])] * 10 + [np.array([0])] * 5 + [np.array([1])] * 5
    d_hat = np.array([0.0] * 10 + [1.0] * 10)
    picks = select_samples(features, d_hat, 0.8, labels=labels, num_classes=2, chunk_size=20)
    assert len(set(picks.tolist())) == 16
    assert set(range(10)) <= set(picks.tolist())
    assert _class_counts(labels, picks, 2).max() > 12  # a quota was exceeded: they gave way


def test_class_balance_off_is_the_papers_selection():
    features, d_hat, _ = _head_class_case()
    np.testing.assert_array_equal(
        select_samples(features, d_hat, 0.1, chunk_size=64),
        select_samples(features, d_hat, 0.1, chunk_size=64, labels=None, num_classes=5),
    )


# ------------------------------------------------------------------------------ validation
_FEATURES, _D_HAT = _random_case(6, 10, 4)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: greedy_map_selection(_FEATURES[0], _D_HAT, 2), "features must be"),
        (lambda: greedy_map_selection(_FEATURES, _D_HAT[:9], 2), r"d_hat must be \[M\]"),
        (lambda: greedy_map_selection(_FEATURES, _D_HAT + 1.0, 2), "d_hat must lie in"),
        (lambda: greedy_map_selection(_FEATURES, np.full(10, np.nan), 2), "d_hat contains NaN"),
        (lambda: greedy_map_selection(np.full((10, 4), np.inf), _D_HAT, 2), "features contain NaN"),
        (lambda: greedy_map_selection(_FEATURES, _D_HAT, 11), r"k must be \[0, 10\]"),
        (lambda: greedy_map_selection(_FEATURES, _D_HAT, 2.0), "k must be an integer"),
        (lambda: quality_diversity_kernel(_FEATURES, _D_HAT, gamma=1.5), "gamma must be in"),
        (lambda: select_samples(_FEATURES, _D_HAT, 0.0), "ratio must be"),
        (lambda: select_samples(_FEATURES, _D_HAT, 1.01), "ratio must be"),
        (lambda: select_samples(_FEATURES, _D_HAT, float("nan")), "ratio must be"),
        (lambda: select_samples(_FEATURES, _D_HAT, 0.5, chunk_size=0), "chunk_size must be"),
        (lambda: select_samples(_FEATURES, _D_HAT, 0.5, seed=-1), "seed must be"),
        (
            lambda: select_samples(_FEATURES, _D_HAT, 0.5, labels=[[0]] * 9, num_classes=2),
            "labels must hold N = 10",
        ),
        (
            lambda: select_samples(_FEATURES, _D_HAT, 0.5, labels=[[2]] * 10, num_classes=2),
            r"class indices in \[0, 2\)",
        ),
    ],
)
def test_invalid_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
