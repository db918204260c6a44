"""Per-sample losses. Every function returns a [B] vector; the training loop reduces it once.

Per-sample first because SAKD weights samples individually; the reduction to a scalar is
`tf.nn.compute_average_loss(per_sample, global_batch_size=...)` in the step.

Everything is computed in float32, whatever the input dtype (a mixed-precision model hands over
bfloat16 logits; sums over 3862 classes and the T^2 factor lose too much in bfloat16). Branches
depend on static facts only (label rank, Python weights), so the functions trace under tf.function
and compile under XLA.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from yt8m_kd.configs import DistillationWeights


def _float32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def _check_same_shape(what: str, teacher: tf.Tensor, student: tf.Tensor) -> None:
    # Broadcasting [B, C] against [1, C] or [B, 1] would silently give a wrong loss.
    if not teacher.shape.is_compatible_with(student.shape):
        raise ValueError(
            f"{what}: teacher shape {teacher.shape} and student shape {student.shape} differ"
        )


def is_multi_label(labels) -> bool:
    """Static check of the label format: [B, C] multi-hot (YouTube-8M) or [B] class ids (UCF101)."""
    labels = tf.convert_to_tensor(labels)
    rank = labels.shape.rank
    if rank == 2:
        return True
    if rank == 1 and labels.dtype.is_integer:
        return False
    raise ValueError(
        "labels must be [B, C] multi-hot or [B] integer class ids; "
        f"got shape {labels.shape} and dtype {labels.dtype.name}"
    )


# ------------------------------------------------------------------------------ label losses
def sigmoid_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Multi-label cross-entropy, summed over classes: [B, C] -> [B].

    docs/yt8m-format-and-metrics.md, "CrossEntropyLoss": per video
    `sum_c -[y log p + (1 - y) log(1 - p)]`, summed (not averaged) over classes as in the starter
    and NeXtVLAD code. We compute it from logits with TensorFlow's stable formula instead of adding
    eps to p; the two agree to within eps-sized terms.
    """
    logits = _float32(logits)
    labels = _float32(labels)
    per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.reduce_sum(per_class, axis=-1)


def softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Single-label cross-entropy `-log softmax(z)_y`: labels [B] class ids, logits [B, C] -> [B].

    The standard classification loss of the student in SAKD on UCF101 (docs/sakd.md, the
    "vanilla loss"), computed from logits (log-softmax), not from eps-clipped probabilities.
    """
    logits = _float32(logits)
    labels = tf.convert_to_tensor(labels)
    if labels.dtype not in (tf.int32, tf.int64):
        labels = tf.cast(labels, tf.int32)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def label_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The loss against ground truth, chosen by the label format: [B].

    [B, C] multi-hot labels (YouTube-8M) -> `sigmoid_cross_entropy`; [B] integer class ids
    (UCF101) -> `softmax_cross_entropy`. The choice is made on the static rank, in Python.
    """
    if is_multi_label(labels):
        return sigmoid_cross_entropy(labels, logits)
    return softmax_cross_entropy(labels, logits)


# ------------------------------------------------------------------------ distillation losses
def prediction_loss(
    teacher_logits: tf.Tensor, student_logits: tf.Tensor, multi_label: bool
) -> tf.Tensor:
    """L_pred: `sum_c (p_t,c - p_s,c)^2` per sample, [B, C] -> [B].

    Bhardwaj, Srinivasan, Khapra, "Efficient Video Classification Using Fewer Frames" (CVPR 2019;
    docs/nextvlad.md, last section): squared error between the teacher's and the student's
    predicted class probabilities. Probabilities are sigmoids for multi-label data and a softmax
    for single-label data. The teacher is a fixed target: no gradient flows into it.
    """
    teacher_logits = tf.stop_gradient(_float32(teacher_logits))
    student_logits = _float32(student_logits)
    _check_same_shape("prediction_loss", teacher_logits, student_logits)
    to_probabilities = tf.sigmoid if multi_label else tf.nn.softmax
    difference = to_probabilities(teacher_logits) - to_probabilities(student_logits)
    return tf.reduce_sum(tf.square(difference), axis=-1)


def representation_loss(teacher_repr: tf.Tensor, student_repr: tf.Tensor) -> tf.Tensor:
    """L_rep: `sum_h (r_t,h - r_s,h)^2` per sample, [B, H] -> [B].

    Bhardwaj et al. (CVPR 2019; docs/nextvlad.md, last section): squared error between the
    teacher's and the student's video representations (for NeXtVLAD, the gated hidden vector).
    The widths must be equal; when they differ the training loop projects the student's
    representation first. No gradient flows into the teacher.
    """
    teacher_repr = tf.stop_gradient(_float32(teacher_repr))
    student_repr = _float32(student_repr)
    _check_same_shape("representation_loss", teacher_repr, student_repr)
    return tf.reduce_sum(tf.square(teacher_repr - student_repr), axis=-1)


def kl_distillation_loss(
    teacher_logits: tf.Tensor,
    student_logits: tf.Tensor,
    temperature: float | tf.Tensor,
    multi_label: bool,
) -> tf.Tensor:
    """Temperature-softened KL(teacher || student) times T^2, per sample: [B, C] -> [B].

    Single-label: `T^2 * KL(softmax(z_t / T) || softmax(z_s / T))` (Hinton, Vinyals, Dean,
    "Distilling the Knowledge in a Neural Network", 2015; the KD loss of SAKD, docs/sakd.md,
    with T = 4). The T^2 keeps the gradient scale independent of T (Hinton et al., section 2).

    Multi-label: each class is its own Bernoulli, so the KL is the binary one summed over classes,
    `T^2 * sum_c KL(Bern(sigmoid(z_t,c / T)) || Bern(sigmoid(z_s,c / T)))`, with
    `KL(Bern(p) || Bern(q)) = p log(p / q) + (1 - p) log((1 - p) / (1 - q))`.

    Logs come from log_softmax / log_sigmoid of the logits (log(1 - sigmoid(z)) = log_sigmoid(-z)),
    so saturated logits give finite values instead of log(0).
    """
    if isinstance(temperature, numbers.Real) and temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    temperature = _float32(temperature)
    teacher_logits = tf.stop_gradient(_float32(teacher_logits))
    student_logits = _float32(student_logits)
    _check_same_shape("kl_distillation_loss", teacher_logits, student_logits)
    z_t = teacher_logits / temperature
    z_s = student_logits / temperature
    if multi_label:
        log_p_t, log_q_t = tf.math.log_sigmoid(z_t), tf.math.log_sigmoid(-z_t)  # log p, log(1-p)
        log_p_s, log_q_s = tf.math.log_sigmoid(z_s), tf.math.log_sigmoid(-z_s)
        per_class = tf.exp(log_p_t) * (log_p_t - log_p_s) + tf.exp(log_q_t) * (log_q_t - log_q_s)
    else:
        log_p_t = tf.nn.log_softmax(z_t, axis=-1)
        log_p_s = tf.nn.log_softmax(z_s, axis=-1)
        per_class = tf.exp(log_p_t) * (log_p_t - log_p_s)
    return tf.square(temperature) * tf.reduce_sum(per_class, axis=-1)


# ------------------------------------------------------------------------------ the combination
def distillation_losses(
    *,
    labels: tf.Tensor,
    student_logits: tf.Tensor,
    student_repr: tf.Tensor | None,
    teacher_logits: tf.Tensor,
    teacher_repr: tf.Tensor | None,
    weights: DistillationWeights,
) -> dict[str, tf.Tensor]:
    """Every per-sample term of the student's loss, each a float32 [B] vector.

    Returns "label_loss", "l_pred", "l_rep", "l_kl", "distill_loss" = w_pred l_pred +
    w_rep l_rep + w_kl l_kl (the part SAKD weighs against the label loss, docs/sakd.md), and
    "total" = label_loss + distill_loss (Bhardwaj et al.'s `L_CE + L_pred + L_rep` with weights,
    docs/nextvlad.md). Multi- or single-label is read from the rank of `labels`. l_kl when
    w_kl == 0, and l_rep when w_rep == 0 or either representation is None, are not computed and
    read as zeros.
    """
    multi_label = is_multi_label(labels)
    per_sample_label = label_loss(labels, student_logits)
    zeros = tf.zeros_like(per_sample_label)

    # L_pred is cheap and a useful log even at weight 0, so it is always computed.
    l_pred = prediction_loss(teacher_logits, student_logits, multi_label)
    l_rep = zeros
    if weights.w_rep != 0 and teacher_repr is not None and student_repr is not None:
        l_rep = representation_loss(teacher_repr, student_repr)
    l_kl = zeros
    if weights.w_kl != 0:
        l_kl = kl_distillation_loss(
            teacher_logits, student_logits, weights.temperature, multi_label
        )

    distill = weights.w_pred * l_pred + weights.w_rep * l_rep + weights.w_kl * l_kl
    return {
        "label_loss": per_sample_label,
        "l_pred": l_pred,
        "l_rep": l_rep,
        "l_kl": l_kl,
        "distill_loss": distill,
        "total": per_sample_label + distill,
    }
