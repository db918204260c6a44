"""YouTube-8M evaluation metrics in pure numpy: GAP, mAP, Hit@1, PERR and top-k accuracy.

Every formula follows docs/yt8m-format-and-metrics.md (sections "GAP" and
"Other metrics"), which records the definitions of the public YouTube-8M starter code.

Two ways to evaluate:
- the in-memory functions take the whole `predictions` [N, C] and `labels` [N, C] at once;
- `EvaluationAccumulator` streams batches and keeps only each video's top_k, so a full validation
  set (millions of videos x 3862 classes) never has to sit in memory. Both share the same
  top-k selection and AP code, so on the same data they give the same numbers.

Ties are resolved deterministically everywhere: within a video, equal scores rank the lower class
index first; in a pooled AP list, equal scores are ordered by a fixed seeded shuffle.

Non-finite scores (NaN or infinite, the output of a diverged model) have no rank: every function
and accumulator here raises `NonFinitePredictionsError` on them rather than report a metric.
"""

from __future__ import annotations

import numpy as np

# Seed of the fixed shuffle that breaks score ties in a pooled AP list.
TIE_BREAK_SEED = 0


class NonFinitePredictionsError(ValueError):
    """Some scores are NaN or infinite: a diverged model, whose metrics would mean nothing."""


def check_finite(predictions: np.ndarray) -> None:
    """Raises NonFinitePredictionsError naming how many videos have a NaN or infinite score."""
    bad = ~np.isfinite(predictions)
    if bad.any():
        videos = int(bad.reshape(bad.shape[0], -1).any(axis=1).sum()) if bad.ndim else 1
        raise NonFinitePredictionsError(
            f"{videos} of {bad.shape[0] if bad.ndim else 1} videos have NaN or infinite scores: "
            "the model's weights are not finite (a diverged run); evaluate an earlier checkpoint "
            "or retrain with a lower learning rate"
        )


def _check_multi_hot(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validates [N, C] predictions and labels; returns them as arrays (labels as bool)."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 2 or predictions.shape != labels.shape:
        raise ValueError(
            f"predictions and labels must both be [N, C], got {predictions.shape} and "
            f"{labels.shape}"
        )
    check_finite(predictions)
    return predictions, labels > 0


def top_k_indices(predictions: np.ndarray, k: int) -> np.ndarray:
    """Class indices of each row's k highest scores, best first.

    Ties are broken by the lower class index, so the result is canonical: it does not depend on
    how the rows are batched, and the first n columns of `top_k_indices(p, k)` equal
    `top_k_indices(p, n)` for any n <= k.

    Args:
      predictions: [N, C] scores.
      k: how many classes to keep per row; clipped to C.

    Returns:
      [N, min(k, C)] int64 class indices, sorted by score descending.
    """
    predictions = np.asarray(predictions)
    num_videos, num_classes = predictions.shape
    k = min(int(k), num_classes)
    if k <= 0 or num_videos == 0:
        return np.zeros((num_videos, max(k, 0)), dtype=np.int64)
    # The k-th largest score of each row, by a linear-time partition: [N, 1].
    threshold = np.partition(predictions, num_classes - k, axis=1)[:, num_classes - k, None]
    above = predictions > threshold
    at = predictions == threshold
    # Fill the places left after the strictly-greater scores with the lowest-index ties.
    num_missing = k - above.sum(axis=1, keepdims=True)
    selected = above | (at & (np.cumsum(at, axis=1) <= num_missing))
    # np.nonzero walks row-major, so each row's k indices come out in ascending class order...
    indices = np.nonzero(selected)[1].reshape(num_videos, k)
    # ...and a stable sort by descending score keeps that order among equal scores.
    scores = np.take_along_axis(predictions, indices, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(indices, order, axis=1)


def average_precision(scores: np.ndarray, positives: np.ndarray, num_positives: int) -> float:
    """Average precision of a pooled list of (score, is_positive) pairs.

    The shared core of GAP and mAP. Reference, "GAP" steps 2 and 4: sort the pairs by score,
    descending, ties broken by a fixed shuffle; then
    AP = sum over ranks i (0-based) holding a positive of (positives_so_far_i / (i + 1)),
    divided by `num_positives`.

    Args:
      scores: [P] scores of the pooled pairs.
      positives: [P] whether each pair is a true label.
      num_positives: the denominator: all true labels, including those that are not in the list
        (reference, "GAP" step 3).

    Returns:
      The AP, or 0.0 when `num_positives` is 0.
    """
    if num_positives <= 0:
        return 0.0
    scores = np.asarray(scores).ravel()
    positives = np.asarray(positives, dtype=bool).ravel()
    # Fixed shuffle, then a stable sort: equal scores keep the shuffled (seeded) order.
    shuffle = np.random.RandomState(TIE_BREAK_SEED).permutation(scores.size)
    order = shuffle[np.argsort(-scores[shuffle], kind="stable")]
    sorted_positives = positives[order]
    positives_so_far = np.cumsum(sorted_positives)
    ranks = np.nonzero(sorted_positives)[0]
    return float(np.sum(positives_so_far[ranks] / (ranks + 1)) / num_positives)


def _gap_from_top_k(top_scores: np.ndarray, top_positives: np.ndarray, num_positives: int) -> float:
    # Reference, "GAP": pool every video's top_k pairs, in video order, into one list.
    return average_precision(top_scores.ravel(), top_positives.ravel(), num_positives)


def _map_from_top_k(
    top_classes: np.ndarray,
    top_scores: np.ndarray,
    top_positives: np.ndarray,
    class_num_positives: np.ndarray,
) -> float:
    # Reference, "Other metrics", mAP: one AP per class over the pairs of the videos whose top_k
    # holds that class; its denominator is the class's positives over all videos; the mean runs
    # over classes with at least one positive (filter_empty_classes=True).
    classes = top_classes.ravel()
    scores = top_scores.ravel()
    positives = top_positives.ravel()
    # Group the pairs by class; the stable sort keeps video order inside each class.
    by_class = np.argsort(classes, kind="stable")
    bounds = np.searchsorted(classes[by_class], np.arange(class_num_positives.size + 1))
    nonempty = np.nonzero(class_num_positives > 0)[0]
    if nonempty.size == 0:
        return 0.0
    aps = []
    for c in nonempty:  # one AP per class; a class never in any top_k gets AP 0
        pairs = by_class[bounds[c] : bounds[c + 1]]
        aps.append(average_precision(scores[pairs], positives[pairs], int(class_num_positives[c])))
    return float(np.mean(aps))


def _top_k_pairs(
    predictions: np.ndarray, labels: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each video's top_k (class index, score, is_positive), each [N, top_k]."""
    top_classes = top_k_indices(predictions, top_k)
    top_scores = np.take_along_axis(predictions, top_classes, axis=1)
    top_positives = np.take_along_axis(labels, top_classes, axis=1)
    return top_classes, top_scores, top_positives


def _hit_at_one_sum(predictions: np.ndarray, labels: np.ndarray) -> int:
    # Reference, "Other metrics", Hit@1: is the top-1 class a true label (argmax: lowest index
    # among ties, like top_k_indices).
    top_one = np.argmax(predictions, axis=1)
    return int(labels[np.arange(labels.shape[0]), top_one].sum())


def _perr_sum(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    # Reference, "Other metrics", PERR: precision over a video's top n_labels predictions. Returns
    # (sum of the per-video precisions, number of videos with at least one label).
    num_labels = labels.sum(axis=1)
    max_labels = int(num_labels.max()) if num_labels.size else 0
    if max_labels == 0:
        return 0.0, 0
    # One top-max_labels per batch, then each video keeps its first n_labels columns.
    top = top_k_indices(predictions, max_labels)
    hits = np.take_along_axis(labels, top, axis=1) & (np.arange(max_labels) < num_labels[:, None])
    has_labels = num_labels > 0
    precisions = hits[has_labels].sum(axis=1) / num_labels[has_labels]
    return float(precisions.sum()), int(has_labels.sum())


def global_average_precision(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """GAP, the YouTube-8M competition metric (reference, "GAP").

    Args:
      predictions: [N, C] float scores.
      labels: [N, C] multi-hot (0/1) ground truth.
      top_k: classes kept per video (20 in the competition).

    Returns:
      GAP in [0, 1]; 0.0 when there are no positive labels. Positives outside a video's top_k
      count in the denominator, so they lower GAP.

    Example:
      >>> predictions = np.array([[0.9, 0.8, 0.7, 0.6, 0.1]])
      >>> global_average_precision(predictions, np.array([[1, 0, 1, 1, 1]]), top_k=4)
      0.6041666666666666
    """
    predictions, labels = _check_multi_hot(predictions, labels)
    _, top_scores, top_positives = _top_k_pairs(predictions, labels, top_k)
    # Reference, "GAP" step 3: num_positives counts every label, not only those in a top_k.
    return _gap_from_top_k(top_scores, top_positives, int(labels.sum()))


def mean_average_precision(predictions: np.ndarray, labels: np.ndarray, top_k: int = 20) -> float:
    """mAP as the YouTube-8M starter code computes it (reference, "Other metrics").

    For each class: AP over the (score, is_positive) pairs of the videos whose top_k holds that
    class, divided by the class's positives over all videos. The mean is over classes with at
    least one positive (filter_empty_classes=True), not over all C classes.

    Args:
      predictions: [N, C] float scores.
      labels: [N, C] multi-hot (0/1) ground truth.
      top_k: classes kept per video.

    Returns:
      mAP in [0, 1]; 0.0 when no class has a positive.
    """
    predictions, labels = _check_multi_hot(predictions, labels)
    top_classes, top_scores, top_positives = _top_k_pairs(predictions, labels, top_k)
    return _map_from_top_k(top_classes, top_scores, top_positives, labels.sum(axis=0))


def hit_at_one(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of videos whose top-1 class is a true label (reference, "Other metrics").

    Args:
      predictions: [N, C] float scores.
      labels: [N, C] multi-hot (0/1) ground truth.

    Returns:
      Hit@1 in [0, 1], over all N videos; 0.0 when N is 0.
    """
    predictions, labels = _check_multi_hot(predictions, labels)
    if predictions.shape[0] == 0:
        return 0.0
    return _hit_at_one_sum(predictions, labels) / predictions.shape[0]


def precision_at_equal_recall_rate(predictions: np.ndarray, labels: np.ndarray) -> float:
    """PERR (reference, "Other metrics").

    Per video with n_labels >= 1 true labels: the fraction of its top n_labels predictions that
    are true labels. Averaged over the videos that have labels.

    Args:
      predictions: [N, C] float scores.
      labels: [N, C] multi-hot (0/1) ground truth.

    Returns:
      PERR in [0, 1]; 0.0 when no video has a label.
    """
    predictions, labels = _check_multi_hot(predictions, labels)
    total, num_videos_with_labels = _perr_sum(predictions, labels)
    return total / num_videos_with_labels if num_videos_with_labels else 0.0


def top_k_accuracy(predictions: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of single-label videos whose label is among their k highest scores.

    For single-label data such as UCF101. Ties rank the lower class index first.

    Args:
      predictions: [N, C] float scores.
      labels: [N] int class indices.
      k: how many top classes count as a hit.

    Returns:
      Top-k accuracy in [0, 1]; 0.0 when N is 0.
    """
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 2 or labels.shape != (predictions.shape[0],):
        raise ValueError(
            f"predictions must be [N, C] and labels [N], got {predictions.shape} and {labels.shape}"
        )
    if labels.size == 0:
        return 0.0
    top = top_k_indices(predictions, k)
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


class EvaluationAccumulator:
    """Streaming GAP, mAP, Hit@1 and PERR over data too large to hold in memory.

    `update` keeps only each video's top_k (score, class index, is_positive) and the per-class
    positive counts - all that GAP and mAP need (reference, "GAP" step 3 needs the counts of
    positives outside the top_k too). Hit@1 and PERR are exact per-video quantities, so their sums
    are accumulated in `update` (PERR's top n_labels can exceed top_k). On the same data,
    `result()` equals the in-memory functions whatever the batching.

    Args:
      num_classes: C, the width of the predictions.
      top_k: classes kept per video for GAP and mAP (20 in the competition).

    Example:
      >>> acc = EvaluationAccumulator(num_classes=4, top_k=2)
      >>> acc.update(np.array([[0.9, 0.8, 0.1, 0.0]]), np.array([[1, 0, 0, 0]]))
      >>> acc.result()["hit_at_one"]
      1.0
    """

    def __init__(self, num_classes: int, top_k: int = 20) -> None:
        if num_classes <= 0 or top_k <= 0:
            raise ValueError(f"num_classes and top_k must be positive, got {num_classes}, {top_k}")
        self.num_classes = int(num_classes)
        self.top_k = min(int(top_k), self.num_classes)
        self.reset()

    def reset(self) -> None:
        """Forgets every video seen so far."""
        self._top_classes: list[np.ndarray] = []  # each [B, top_k] int32
        self._top_scores: list[np.ndarray] = []  # each [B, top_k], the predictions' dtype
        self._top_positives: list[np.ndarray] = []  # each [B, top_k] bool
        self.class_num_positives = np.zeros(self.num_classes, dtype=np.int64)  # [C]
        self.num_videos = 0
        self._hit_at_one_sum = 0
        self._perr_sum = 0.0
        self._num_videos_with_labels = 0

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        """Adds a batch.

        Args:
          predictions: [B, C] float scores.
          labels: [B, C] multi-hot (0/1) ground truth.
        """
        predictions, labels = _check_multi_hot(predictions, labels)
        if predictions.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {predictions.shape[1]}")
        top_classes, top_scores, top_positives = _top_k_pairs(predictions, labels, self.top_k)
        self._top_classes.append(top_classes.astype(np.int32))
        self._top_scores.append(top_scores)
        self._top_positives.append(top_positives)
        self.class_num_positives += labels.sum(axis=0)
        self.num_videos += predictions.shape[0]
        self._hit_at_one_sum += _hit_at_one_sum(predictions, labels)
        perr_sum, num_with_labels = _perr_sum(predictions, labels)
        self._perr_sum += perr_sum
        self._num_videos_with_labels += num_with_labels

    @property
    def top_classes(self) -> np.ndarray:
        """[num_videos, top_k] stored class indices, best first."""
        return self._stacked(self._top_classes, np.int32)

    @property
    def top_scores(self) -> np.ndarray:
        """[num_videos, top_k] stored scores, descending."""
        return self._stacked(self._top_scores, np.float32)

    @property
    def top_positives(self) -> np.ndarray:
        """[num_videos, top_k] whether each stored class is a true label."""
        return self._stacked(self._top_positives, bool)

    def _stacked(self, parts: list[np.ndarray], dtype: type) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.top_k), dtype=dtype)
        return np.concatenate(parts, axis=0)

    def result(self) -> dict[str, float | int]:
        """The metrics over every video seen since the last `reset`.

        Returns:
          {"gap", "map", "hit_at_one", "perr": float, "num_videos": int}.
        """
        top_classes = self.top_classes
        top_scores = self.top_scores
        top_positives = self.top_positives
        num_positives = int(self.class_num_positives.sum())
        return {
            "gap": _gap_from_top_k(top_scores, top_positives, num_positives),
            "map": _map_from_top_k(
                top_classes, top_scores, top_positives, self.class_num_positives
            ),
            "hit_at_one": self._hit_at_one_sum / self.num_videos if self.num_videos else 0.0,
            "perr": (
                self._perr_sum / self._num_videos_with_labels
                if self._num_videos_with_labels
                else 0.0
            ),
            "num_videos": self.num_videos,
        }


class AccuracyAccumulator:
    """Streaming top-1, top-5 and per-class accuracy of single-label data (UCF101).

    Args:
      num_classes: C, the width of the predictions.
      class_names: optional names of the C classes, used as the keys of "per_class_accuracy".

    Example:
      >>> acc = AccuracyAccumulator(num_classes=3)
      >>> acc.update(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]), np.array([1, 2]))
      >>> acc.result()["top1"]
      0.5
    """

    def __init__(self, num_classes: int, class_names: list[str] | None = None) -> None:
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.class_names = (
            list(class_names) if class_names else [str(c) for c in range(num_classes)]
        )
        self.reset()

    def reset(self) -> None:
        self.num_videos = 0
        self._top1_hits = 0
        self._top5_hits = 0
        self._class_videos = np.zeros(self.num_classes, np.int64)
        self._class_hits = np.zeros(self.num_classes, np.int64)

    def update(self, predictions: np.ndarray, labels: np.ndarray) -> None:
        """Adds a batch: predictions [B, C] scores, labels [B] int class indices."""
        predictions, labels = np.asarray(predictions), np.asarray(labels)
        if predictions.ndim != 2 or labels.shape != (predictions.shape[0],):
            raise ValueError(
                f"predictions must be [B, C] and labels [B], got {predictions.shape} and "
                f"{labels.shape}"
            )
        check_finite(predictions)
        if predictions.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {predictions.shape[1]}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels}")
        top = top_k_indices(predictions, min(5, self.num_classes))
        hit1 = top[:, 0] == labels
        self.num_videos += labels.size
        self._top1_hits += int(hit1.sum())
        self._top5_hits += int(np.any(top == labels[:, None], axis=1).sum())
        np.add.at(self._class_videos, labels, 1)
        np.add.at(self._class_hits, labels, hit1.astype(np.int64))

    def result(self) -> dict:
        """{"top1", "top5", "mean_class_accuracy": float, "num_videos": int,
        "per_class_accuracy": {class name: top-1 accuracy}} (classes with held-out videos only;
        mean_class_accuracy averages those)."""
        n = self.num_videos
        seen = self._class_videos > 0
        per_class = {
            name: float(self._class_hits[c] / self._class_videos[c])
            for c, name in enumerate(self.class_names)
            if seen[c]
        }
        return {
            "top1": self._top1_hits / n if n else 0.0,
            "top5": self._top5_hits / n if n else 0.0,
            "mean_class_accuracy": float(np.mean(list(per_class.values()))) if per_class else 0.0,
            "per_class_accuracy": per_class,
            "num_videos": n,
        }
