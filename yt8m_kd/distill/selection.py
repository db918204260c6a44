"""SAKD sample selection: low distillation difficulty and high diversity, by greedy DPP MAP.

docs/sakd.md, "The spec for this project", point 3: select `ratio * N` samples with the kernel

    L = gamma * S + (1 - gamma) * diag(1 - d_hat)

where S is the cosine similarity of L2-normalised teacher features and d_hat the min-max normalised
distillation difficulty. A determinant over L rewards sets whose features span many directions (S)
and whose members are easy to transfer (the diagonal term grows as d_hat falls); gamma = 0.5 weighs
the two equally, as in the paper.

The MAP set of that determinantal point process is found greedily with the fast algorithm of Chen,
Zhang and Zhou ("Fast Greedy MAP Inference for Determinantal Point Process to Improve
Recommendation Diversity", NeurIPS 2018): the gain of adding candidate i to the selected set Y is
log det(L_{Y+i}) - log det(L_Y) = log d_i^2, with d_i^2 = L_ii - ||c_i||^2 the conditional variance
of i given Y and c_i its row of the Cholesky factor of L_Y. After picking j both are updated in
O(M) per candidate:

    e_i = (L_ji - <c_j, c_i>) / d_j,    c_i <- [c_i, e_i],    d_i^2 <- d_i^2 - e_i^2

so k picks from M candidates cost O(M k (D + k)) with the column L[:, j] computed from the features
on the fly; the M x M kernel is never formed. YouTube-8M train has 3.9M videos, so even that is run
over chunks of candidates (`select_samples`), which makes the cost linear in N.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

# Below this conditional variance a candidate is (numerically) in the span of the selected set:
# its log-det gain is -inf or noise, so the greedy stops there (see `greedy_map_selection`).
DEFAULT_EPSILON = 1e-10


# ------------------------------------------------------------------------------ validation
def _check_features_and_difficulty(features, d_hat) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features)
    d_hat = np.asarray(d_hat)
    if features.ndim != 2:
        raise ValueError(f"features must be [M, D]; got shape {features.shape}")
    if features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(
            f"features must hold at least one candidate and one dim; got {features.shape}"
        )
    if not np.issubdtype(features.dtype, np.number) or np.issubdtype(
        features.dtype, np.complexfloating
    ):
        raise ValueError(f"features must be real numbers; got dtype {features.dtype}")
    if d_hat.shape != (features.shape[0],):
        raise ValueError(
            f"d_hat must be [M] with M = {features.shape[0]} (one per feature row); "
            f"got shape {d_hat.shape}"
        )
    if not np.issubdtype(d_hat.dtype, np.number) or np.issubdtype(d_hat.dtype, np.complexfloating):
        raise ValueError(f"d_hat must be real numbers; got dtype {d_hat.dtype}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features contain NaN or inf")
    d_hat = d_hat.astype(np.float64)
    if not np.all(np.isfinite(d_hat)):
        raise ValueError("d_hat contains NaN or inf")
    # The spec's d_hat is min-max normalised; outside [0, 1] the diagonal can turn negative and L
    # stops being a valid (positive semi-definite) DPP kernel.
    if d_hat.min() < 0.0 or d_hat.max() > 1.0:
        raise ValueError(
            f"d_hat must lie in [0, 1] (min-max normalised difficulty); "
            f"got range [{d_hat.min()}, {d_hat.max()}]"
        )
    return features, d_hat


def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise ValueError(f"gamma must be a real number in [0, 1]; got {gamma!r}")
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1]; got {gamma}")
    return gamma


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bounds}; got {value}")
    return value


# ------------------------------------------------------------------------------ kernel
def _normalise(features: np.ndarray) -> np.ndarray:
    """L2-normalised rows in float64. An all-zero row stays zero (similar to nothing, itself
    included) rather than dividing by zero."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0.0, norms, 1.0)


def quality_diversity_kernel(features, d_hat, gamma: float = 0.5) -> np.ndarray:
    """The SAKD selection kernel `gamma * S + (1 - gamma) * diag(1 - d_hat)`, [M, M] float64.

    docs/sakd.md, spec point 3. Builds the full matrix, so it is meant for small M (tests,
    inspection); `greedy_map_selection` works from the features without it.

    Args:
      features: [M, D] teacher representations; rows are L2-normalised here, so S is their cosine
        similarity.
      d_hat: [M] normalised distillation difficulty in [0, 1]; low means easy to transfer.
      gamma: weight of diversity (S) against quality (1 - d_hat); 0.5 in the paper.

    Example:
      >>> quality_diversity_kernel([[1.0, 0.0], [1.0, 1.0]], [0.0, 1.0]).round(3)
      array([[1.   , 0.354],
             [0.354, 0.5  ]])
    """
    features, d_hat = _check_features_and_difficulty(features, d_hat)
    gamma = _check_gamma(gamma)
    normalised = _normalise(features)
    similarity = normalised @ normalised.T  # [M, M]
    return gamma * similarity + (1.0 - gamma) * np.diag(1.0 - d_hat)


# ------------------------------------------------------------------------------ class quotas
class ClassQuotas:
    """Beyond the paper (`--sakd_class_balance`): how many picks each class may have.

    A pick counts for every class of its labels (multi-label videos count for several classes). A
    candidate is `allowed` while none of its classes has reached its quota; a candidate without
    labels is always allowed. `relax` lifts the quotas for good (when no allowed candidate is
    left worth a greedy step).
    """

    def __init__(self, labels: np.ndarray, quota: np.ndarray):
        self._labels = labels  # [M, C] bool
        self._quota = quota  # [C] int
        self._counts = np.zeros(labels.shape[1], np.int64)
        self.allowed = np.ones(labels.shape[0], bool)
        self.enforced = True

    def pick(self, j: int) -> None:
        classes = self._labels[j]
        self._counts[classes] += 1
        if not self.enforced:
            return
        full = classes & (self._counts >= self._quota)
        if full.any():
            self.allowed &= ~self._labels[:, full].any(axis=1)

    def relax(self) -> None:
        self.enforced = False
        self.allowed[:] = True


def class_quotas(class_frequency: np.ndarray, picks: int) -> np.ndarray:
    """[C] quotas for `picks` picks: ceil(picks * f_c), f_c the fraction of all samples that have
    class c, so a class's share of a selection stays at most its share of the data (plus the
    rounding up, which keeps every present class selectable)."""
    return np.ceil(picks * np.asarray(class_frequency, np.float64) - 1e-9).astype(np.int64)


def _dense_labels(labels, rows: np.ndarray, num_classes: int) -> np.ndarray:
    dense = np.zeros([len(rows), num_classes], bool)
    for r, i in enumerate(rows):
        dense[r, labels[i]] = True
    return dense


# ------------------------------------------------------------------------------ greedy MAP
def _greedy_map(
    normalised: np.ndarray,
    d_hat: np.ndarray,
    k: int,
    gamma: float,
    epsilon: float,
    quotas: ClassQuotas | None = None,
) -> np.ndarray:
    """Chen et al. (2018), Algorithm 1, on pre-validated float64 inputs. Returns k indices.

    With `quotas`, a candidate is picked only while none of its classes has reached its quota
    (the gains of all candidates are still updated after every pick, so the log-det gains stay
    exact); once no candidate is both allowed and worth a step, the quotas are lifted for the rest
    of the k (`ClassQuotas.relax`).
    """
    num_candidates = normalised.shape[0]
    selected = np.empty(k, dtype=np.int64)
    if k == 0:
        return selected
    # Row t of `cholesky` holds e_i of step t for every candidate i, so column i is c_i.
    cholesky = np.zeros((k, num_candidates), dtype=np.float64)  # [k, M]
    quality = (1.0 - gamma) * (1.0 - d_hat)  # [M], the diagonal term of L
    gains = gamma * np.einsum("md,md->m", normalised, normalised) + quality  # d_i^2 = L_ii, [M]

    num_selected = 0

    def best() -> int:
        # argmax returns the first maximum: ties go to the lowest index.
        if quotas is None:
            return int(np.argmax(gains))
        j = int(np.argmax(np.where(quotas.allowed, gains, -np.inf)))
        if gains[j] <= epsilon or not quotas.allowed[j]:
            quotas.relax()  # no allowed candidate is worth a step: the quotas give way
            j = int(np.argmax(gains))
        return j

    j = best()
    while gains[j] > epsilon:
        selected[num_selected] = j
        num_selected += 1
        if quotas is not None:
            quotas.pick(j)
        if num_selected == k:
            return selected
        d_j = math.sqrt(gains[j])
        gains[j] = -np.inf  # picked; stays -inf through the updates below
        # L[:, j] = gamma * S[:, j] plus the quality term at j, from the features: [M D] x [D].
        kernel_column = gamma * (normalised @ normalised[j])
        kernel_column[j] += quality[j]
        t = num_selected - 1
        # e_i = (L_ji - <c_j, c_i>) / d_j for all i at once: one [t] x [t, M] product.
        e = (kernel_column - cholesky[:t, j] @ cholesky[:t]) / d_j  # [M]
        cholesky[t] = e
        gains -= e * e
        j = best()

    # Every remaining candidate is (numerically) in the span of the selected set: more log-det
    # gain is impossible, so fill up with the easiest remaining samples, lowest index on ties.
    picked = np.zeros(num_candidates, dtype=bool)
    picked[selected[:num_selected]] = True
    remaining = np.flatnonzero(~picked)
    easiest = remaining[np.argsort(d_hat[remaining], kind="stable")]
    selected[num_selected:] = easiest[: k - num_selected]
    return selected


def greedy_map_selection(
    features, d_hat, k: int, gamma: float = 0.5, *, epsilon: float = DEFAULT_EPSILON
) -> np.ndarray:
    """Greedy MAP of the quality/diversity DPP: k distinct indices, in the order they were picked.

    Each step adds the candidate with the largest log-det gain, i.e. the largest conditional
    variance d_i^2 = L_ii - ||c_i||^2 given those already picked, updated incrementally after each
    pick (Chen, Zhang and Zhou, NeurIPS 2018). The kernel column of the pick is computed from the
    normalised features and d_hat, so memory is O(M (D + k)) and time O(M k (D + k)); the M x M
    kernel is never built. Ties go to the lowest index, so the result is deterministic.

    If the best remaining gain drops to `epsilon` or below (every remaining candidate duplicates
    the span of the selected set; possible only where the diagonal quality term vanishes, e.g.
    gamma = 1 or d_hat = 1), the greedy stops and the rest of the k are the remaining candidates
    with the lowest d_hat, lowest index on ties.

    Args:
      features: [M, D] teacher representations (any real dtype; float64 internally).
      d_hat: [M] normalised distillation difficulty in [0, 1].
      k: how many to select, 0 <= k <= M.
      gamma: diversity weight of the kernel, in [0, 1].
      epsilon: the smallest gain (conditional variance) still worth a greedy step.

    Returns:
      [k] int64 indices into the M candidates, distinct, in selection order.

    Example:
      >>> greedy_map_selection([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [0.2, 0.2, 0.2], k=2)
      array([0, 2])
    """
    features, d_hat = _check_features_and_difficulty(features, d_hat)
    gamma = _check_gamma(gamma)
    k = _check_int("k", k, 0, features.shape[0])
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon >= 0.0:
        raise ValueError(f"epsilon must be a real number >= 0; got {epsilon!r}")
    return _greedy_map(_normalise(features), d_hat, k, gamma, float(epsilon))


# ------------------------------------------------------------------------------ chunked selection
def _proportional_shares(chunk_sizes: np.ndarray, target: int) -> np.ndarray:
    """Split `target` over chunks in proportion to their sizes, summing exactly to `target`.

    Largest remainder: everyone gets the floor of their exact share, the leftover units go to the
    largest fractional parts (earlier chunks first on ties). No share exceeds its chunk's size.
    """
    total = int(chunk_sizes.sum())
    exact = chunk_sizes.astype(np.int64) * target  # share * total, kept in integers to stay exact
    shares = exact // total
    remainders = exact - shares * total
    leftover = target - int(shares.sum())
    order = np.argsort(-remainders, kind="stable")
    shares[order[:leftover]] += 1
    return shares


def select_samples(
    features,
    d_hat,
    ratio: float,
    *,
    gamma: float = 0.5,
    chunk_size: int = 2048,
    seed: int = 0,
    labels=None,
    num_classes: int = 0,
) -> np.ndarray:
    """SAKD sample selection (docs/sakd.md, spec point 3): round(ratio * N) sample indices.

    The N candidates are shuffled with `seed` and split into ceil(N / chunk_size) chunks of nearly
    equal size (at most chunk_size each). Each chunk contributes its proportional share of the
    target (shares sum exactly to it) by `greedy_map_selection` on that chunk alone, with the
    chunk's candidates in index order. The work per chunk is fixed, so the cost grows linearly with
    N and no N x N kernel is built.

    Approximation: diversity is enforced within a chunk, not across chunks; two near-duplicates in
    different chunks can both be selected. The random split makes every chunk a uniform sample of
    the data, so each chunk sees the same mix of easy and hard samples. With chunk_size >= N there
    is a single chunk and the result is the exact greedy MAP set.

    Args:
      features: [N, D] teacher representations (e.g. cached teacher features; float32 is fine).
      d_hat: [N] normalised distillation difficulty in [0, 1].
      ratio: fraction to keep, in (0, 1]; 0.1 for video in the paper.
      gamma: diversity weight of the kernel, in [0, 1].
      chunk_size: the most candidates one greedy run sees.
      seed: seeds the split into chunks; the same seed gives the same selection.
      labels: None (the paper), or, beyond the paper, the N samples' class indices (a sequence
        of int arrays; one class each for single-label data): class-balanced selection. Each
        chunk's greedy then respects `class_quotas` for its share, from the class frequencies of
        all N samples (`ClassQuotas`: quotas give way only when nothing else is left to pick).
      num_classes: C, with labels.

    Returns:
      [max(1, round(ratio * N))] distinct int64 indices into the N samples, sorted ascending.
      (Python's round: halves go to the even neighbour.)
    """
    features, d_hat = _check_features_and_difficulty(features, d_hat)
    gamma = _check_gamma(gamma)
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be a real number in (0, 1]; got {ratio!r}")
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    seed = _check_int("seed", seed, 0)

    num_samples = features.shape[0]
    target = min(num_samples, max(1, round(ratio * num_samples)))
    num_chunks = math.ceil(num_samples / chunk_size)
    permutation = np.random.default_rng(seed).permutation(num_samples)
    # Sorted within a chunk: ties in the greedy then go to the lowest sample index, and a single
    # chunk is exactly the full problem.
    chunks = [np.sort(chunk) for chunk in np.array_split(permutation, num_chunks)]
    shares = _proportional_shares(np.array([len(chunk) for chunk in chunks]), target)

    frequency = None
    if labels is not None:
        if len(labels) != num_samples:
            raise ValueError(f"labels must hold N = {num_samples} entries; got {len(labels)}")
        num_classes = _check_int("num_classes", num_classes, 1)
        all_labels = np.concatenate([np.asarray(x, np.int64).reshape(-1) for x in labels])
        if all_labels.size and (all_labels.min() < 0 or all_labels.max() >= num_classes):
            raise ValueError(f"labels must be class indices in [0, {num_classes})")
        frequency = np.bincount(all_labels, minlength=num_classes) / num_samples

    selected = []
    for chunk, share in zip(chunks, shares, strict=True):
        if share == 0:
            continue
        quotas = None
        if frequency is not None:
            quotas = ClassQuotas(
                _dense_labels(labels, chunk, num_classes), class_quotas(frequency, int(share))
            )
        picks = _greedy_map(
            _normalise(features[chunk]), d_hat[chunk], int(share), gamma, DEFAULT_EPSILON, quotas
        )
        selected.append(chunk[picks])
    return np.sort(np.concatenate(selected))
