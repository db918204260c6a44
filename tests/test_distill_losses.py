"""Per-sample losses of yt8m_kd.distill.losses against values worked by hand.

Logits are chosen as log-odds / log-probabilities so the probabilities are round numbers:
sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4, sigmoid(ln 4) = 4/5,
sigmoid(-ln 4) = 1/5, and softmax(log p) = p (also after adding a constant to every logit).
"""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from yt8m_kd.configs import DistillationWeights
from yt8m_kd.distill import losses

LN2, LN3, LN4 = math.log(2.0), math.log(3.0), math.log(4.0)


def _f32(x) -> tf.Tensor:
    return tf.constant(x, tf.float32)


# ------------------------------------------------------------------------------ label losses
def test_softmax_cross_entropy_by_hand():
    logits = _f32([[-LN2, -LN4, -LN4], [0.0, 0.0, 0.0]])  # softmax: [1/2, 1/4, 1/4], [1/3] * 3
    got = losses.softmax_cross_entropy(tf.constant([0, 2]), logits).numpy()
    # -log(1/2) = ln 2 = 0.693147; -log(1/3) = ln 3 = 1.098612
    np.testing.assert_allclose(got, [0.693147, 1.098612], atol=1e-6)
    got = losses.softmax_cross_entropy(tf.constant([1, 0], tf.int64), logits).numpy()
    # -log(1/4) = ln 4 = 1.386294
    np.testing.assert_allclose(got, [1.386294, 1.098612], atol=1e-6)


def test_label_loss_dispatches_on_label_rank():
    logits = _f32([[0.0, 0.0, 0.0], [-LN2, -LN4, -LN4]])
    # Rank 2, multi-hot: sigmoid CE summed over classes. Row 1: every class has p = 1/2, so
    # 3 * ln 2 = 2.079442 whatever the labels.
    multi_hot = _f32([[1, 0, 1], [0, 0, 0]])
    got = losses.label_loss(multi_hot, logits).numpy()
    assert got.shape == (2,)
    np.testing.assert_allclose(got[0], 2.079442, atol=1e-6)
    np.testing.assert_allclose(got, losses.sigmoid_cross_entropy(multi_hot, logits), rtol=1e-6)
    # Rank 1, integer: softmax CE. Row 1: -log(1/3) = 1.098612; row 2: -log(1/4) = 1.386294.
    got = losses.label_loss(tf.constant([2, 1]), logits).numpy()
    np.testing.assert_allclose(got, [1.098612, 1.386294], atol=1e-6)
    # Rank 1 floats are neither format.
    with pytest.raises(ValueError, match="labels must be"):
        losses.label_loss(_f32([1.0, 0.0]), logits)


# ------------------------------------------------------------------------------------ L_pred
def test_prediction_loss_multi_label_by_hand():
    teacher = _f32([[0.0, LN3, -LN3], [LN4, 0.0, -LN4]])  # p_t = [.5, .75, .25], [.8, .5, .2]
    student = _f32([[LN3, LN3, 0.0], [0.0, 0.0, 0.0]])  # p_s = [.75, .75, .5], [.5, .5, .5]
    got = losses.prediction_loss(teacher, student, multi_label=True).numpy()
    # Row 1: .25^2 + 0 + .25^2 = 0.125. Row 2: .3^2 + 0 + .3^2 = 0.18.
    np.testing.assert_allclose(got, [0.125, 0.18], atol=1e-6)


def test_prediction_loss_single_label_by_hand():
    # Row 1: p_t = [1/2, 1/4, 1/4], p_s = [1/3, 1/3, 1/3].
    # Row 2: p_t = [.2, .3, .5] (+7 on every logit changes nothing), p_s = [.5, .3, .2].
    teacher = _f32([np.log([0.5, 0.25, 0.25]), np.log([0.2, 0.3, 0.5]) + 7.0])
    student = _f32([[0.0, 0.0, 0.0], np.log([0.5, 0.3, 0.2])])
    got = losses.prediction_loss(teacher, student, multi_label=False).numpy()
    # Row 1: (1/6)^2 + 2 (1/12)^2 = 4/144 + 2/144 = 1/24 = 0.0416667. Row 2: .3^2 + 0 + .3^2 = .18.
    np.testing.assert_allclose(got, [1 / 24, 0.18], atol=1e-6)


# ------------------------------------------------------------------------------------- L_rep
def test_representation_loss_by_hand():
    teacher = _f32([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    student = _f32([[1.0, 0.0, 1.0], [0.5, -0.5, 1.0]])
    got = losses.representation_loss(teacher, student).numpy()
    # Row 1: 0 + 4 + 4 = 8. Row 2: .25 + .25 + 1 = 1.5.
    np.testing.assert_allclose(got, [8.0, 1.5], atol=1e-6)


def test_representation_loss_rejects_mismatched_widths():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        losses.representation_loss(tf.zeros([2, 3]), tf.zeros([2, 4]))


# --------------------------------------------------------------------------------------- KL
def test_binary_kl_per_class_at_t1_by_hand():
    teacher = _f32([[0.0, LN3, 0.0], [LN4, -LN3, 2.0]])  # p_t row 1 = [.5, .75, .5]
    student = _f32(
        [[LN3, 0.0, 0.0], [LN4, -LN3, 2.0]]
    )  # p_s row 1 = [.75, .5, .5]; row 2 = teacher
    got = losses.kl_distillation_loss(teacher, student, 1.0, multi_label=True).numpy()
    # KL(Bern(p) || Bern(q)) = p ln(p/q) + (1-p) ln((1-p)/(1-q)), row 1 per class:
    #   .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3)              = 0.143841
    #   .75 ln(.75/.5) + .25 ln(.25/.5) = .75 ln 1.5 - .25 ln 2  = 0.130812
    #   p = q                                                     = 0
    # sum = ln(3) / 4 = 0.274653 (the ln 2 terms cancel). Row 2: student == teacher, 0.
    np.testing.assert_allclose(got, [0.274653, 0.0], atol=1e-6)


def test_binary_kl_at_t2_carries_t_squared():
    # Twice the logits of the T = 1 test: at T = 2 the softened probabilities are the same,
    # so the KL sum is again ln(3)/4 and T^2 = 4 makes it ln 3 = 1.098612.
    teacher = _f32([[0.0, 2 * LN3, 0.0]])
    student = _f32([[2 * LN3, 0.0, 0.0]])
    got = losses.kl_distillation_loss(teacher, student, 2.0, multi_label=True).numpy()
    np.testing.assert_allclose(got, [1.098612], atol=1e-6)
    # At T = 1 the same logits give a different, un-scaled value (p = [.5, .9, .5] vs [.9, .5, .5]):
    #   .5 ln(.5/.9) + .5 ln(.5/.1) = .5 ln(25/9) = 0.510826
    #   .9 ln(.9/.5) + .1 ln(.1/.5) = .9 ln 1.8 - .1 ln 5 = 0.368064
    got = losses.kl_distillation_loss(teacher, student, 1.0, multi_label=True).numpy()
    np.testing.assert_allclose(got, [0.510826 + 0.368064], atol=1e-5)


def test_softmax_kl_at_t4_by_hand_and_against_numpy():
    # Logits 4 log p: at T = 4 the teacher is p = [1/2, 1/4, 1/4], the student uniform.
    teacher = _f32([4.0 * np.log([0.5, 0.25, 0.25])])
    student = _f32([[0.0, 0.0, 0.0]])
    got = losses.kl_distillation_loss(teacher, student, 4.0, multi_label=False).numpy()
    # KL = .5 ln(.5/(1/3)) + 2 * .25 ln(.25/(1/3)) = .5 (ln 1.5 + ln .75) = .5 ln 1.125 = 0.058892;
    # times T^2 = 16: 0.942264.
    np.testing.assert_allclose(got, [0.942264], atol=1e-5)

    rng = np.random.default_rng(0)
    z_t = rng.normal(scale=3.0, size=(5, 7))
    z_s = rng.normal(scale=3.0, size=(5, 7))

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(z_t / 4.0), softmax(z_s / 4.0)
    expected = 16.0 * (p * np.log(p / q)).sum(axis=1)
    got = losses.kl_distillation_loss(_f32(z_t), _f32(z_s), 4.0, multi_label=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("multi_label", [True, False])
def test_kl_is_zero_for_equal_logits_and_positive_otherwise(multi_label):
    rng = np.random.default_rng(1)
    teacher = _f32(rng.normal(scale=4.0, size=(4, 6)))
    student = teacher + _f32(rng.normal(scale=0.5, size=(4, 6)))
    same = losses.kl_distillation_loss(teacher, teacher, 4.0, multi_label).numpy()
    np.testing.assert_allclose(same, np.zeros(4), atol=1e-6)
    different = losses.kl_distillation_loss(teacher, student, 4.0, multi_label).numpy()
    assert np.all(different > 1e-4)


def test_kl_is_finite_for_saturated_logits():
    # log(sigmoid(-200)) would be log(0) in float32; the log-sigmoid form stays finite.
    teacher = _f32([[200.0, -200.0]])
    student = _f32([[-200.0, 200.0]])
    got = losses.kl_distillation_loss(teacher, student, 1.0, multi_label=True).numpy()
    # Each class: p = 1, q = e^-200 -> KL = ln(1/q) = 200 (to float32 precision).
    np.testing.assert_allclose(got, [400.0], rtol=1e-5)


# ------------------------------------------------------------------------------ combination
def _multi_label_batch():
    return dict(
        labels=_f32([[1, 0, 0], [0, 1, 0]]),
        student_logits=_f32([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),  # every p_s = 1/2
        teacher_logits=_f32([[0.0, LN3, -LN3], [LN4, 0.0, -LN4]]),
        student_repr=_f32([[1.0, 0.0, 1.0], [0.5, -0.5, 1.0]]),
        teacher_repr=_f32([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),
    )


def test_distillation_weights_defaults_and_frozen():
    weights = DistillationWeights()
    assert (weights.w_pred, weights.w_rep, weights.w_kl, weights.temperature) == (
        0.01,
        0.001,
        0.0,
        4.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        weights.w_pred = 1.0
    with pytest.raises(ValueError):
        DistillationWeights(temperature=0.0)


def test_distillation_losses_total_with_default_weights():
    out = losses.distillation_losses(**_multi_label_batch(), weights=DistillationWeights())
    assert set(out) == {"label_loss", "l_pred", "l_rep", "l_kl", "distill_loss", "total"}
    for value in out.values():
        assert value.shape == (2,) and value.dtype == tf.float32
    # label: every class at p = 1/2 -> 3 ln 2 = 2.0794415 per video.
    # l_pred: row 1 (0, .25, -.25) -> .125; row 2 (.3, 0, -.3) -> .18.
    # l_rep: 8 and 1.5 (as in test_representation_loss_by_hand). l_kl: weight 0 -> zeros.
    np.testing.assert_allclose(out["label_loss"], [2.0794415, 2.0794415], atol=1e-6)
    np.testing.assert_allclose(out["l_pred"], [0.125, 0.18], atol=1e-6)
    np.testing.assert_allclose(out["l_rep"], [8.0, 1.5], atol=1e-6)
    np.testing.assert_array_equal(out["l_kl"], [0.0, 0.0])
    # distill = .01 l_pred + .001 l_rep: .00125 + .008 = .00925 and .0018 + .0015 = .0033.
    np.testing.assert_allclose(out["distill_loss"], [0.00925, 0.0033], atol=1e-7)
    np.testing.assert_allclose(out["total"], [2.0886915, 2.0827415], atol=1e-6)


def test_distillation_losses_without_representations_or_rep_weight():
    batch = _multi_label_batch()
    weights = DistillationWeights()
    for changes in ({"teacher_repr": None}, {"student_repr": None}):
        out = losses.distillation_losses(**{**batch, **changes}, weights=weights)
        np.testing.assert_array_equal(out["l_rep"], [0.0, 0.0])
        np.testing.assert_allclose(out["total"], [2.0794415 + 0.00125, 2.0794415 + 0.0018])
    out = losses.distillation_losses(**batch, weights=DistillationWeights(w_rep=0.0))
    np.testing.assert_array_equal(out["l_rep"], [0.0, 0.0])


def test_distillation_losses_single_label_with_kl():
    # Single-label (rank-1 int labels): softmax CE, softmax L_pred, softmax KL.
    out = losses.distillation_losses(
        labels=tf.constant([0]),
        student_logits=_f32([[0.0, 0.0, 0.0]]),  # uniform
        teacher_logits=_f32([4.0 * np.log([0.5, 0.25, 0.25])]),  # p = [.5, .25, .25] at T = 4
        student_repr=None,
        teacher_repr=None,
        weights=DistillationWeights(w_pred=0.0, w_rep=0.0, w_kl=1.0, temperature=4.0),
    )
    # label: ln 3 = 1.098612; l_kl: 0.942264 (test_softmax_kl_at_t4_by_hand_and_against_numpy).
    # l_pred (no temperature) is logged though its weight is 0: exp(4 log p) = [1/16, 1/256, 1/256],
    # normalised by 18/256 -> p_t = [16/18, 1/18, 1/18], against 6/18 each:
    # (16/18 - 6/18)^2 + 2 (1/18 - 6/18)^2 = (100 + 50) / 324 = 0.462963.
    np.testing.assert_allclose(out["label_loss"], [1.098612], atol=1e-6)
    np.testing.assert_allclose(out["l_kl"], [0.942264], atol=1e-5)
    np.testing.assert_allclose(out["l_pred"], [150 / 324], atol=1e-6)
    np.testing.assert_allclose(out["distill_loss"], [0.942264], atol=1e-5)
    np.testing.assert_allclose(out["total"], [1.098612 + 0.942264], atol=1e-5)


def test_no_gradient_reaches_the_teacher():
    batch = _multi_label_batch()
    weights = DistillationWeights(w_kl=1.0)
    watched = [
        batch[k] for k in ("teacher_logits", "teacher_repr", "student_logits", "student_repr")
    ]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(watched)
        out = losses.distillation_losses(**batch, weights=weights)
        l_pred = losses.prediction_loss(batch["teacher_logits"], batch["student_logits"], True)
        l_rep = losses.representation_loss(batch["teacher_repr"], batch["student_repr"])
        l_kl = losses.kl_distillation_loss(
            batch["teacher_logits"], batch["student_logits"], 2.0, True
        )
    for loss in (out["total"], out["distill_loss"], l_pred, l_rep, l_kl):
        t_logits, t_repr, s_logits, s_repr = tape.gradient(loss, watched)
        for grad in (t_logits, t_repr):
            assert grad is None or not np.any(grad.numpy())
        assert s_logits is not None or s_repr is not None
    # The student does get a gradient from each term.
    assert np.any(tape.gradient(l_pred, batch["student_logits"]).numpy())
    assert np.any(tape.gradient(l_rep, batch["student_repr"]).numpy())
    assert np.any(tape.gradient(l_kl, batch["student_logits"]).numpy())


def test_bfloat16_inputs_give_float32_losses():
    batch = {k: tf.cast(v, tf.bfloat16) for k, v in _multi_label_batch().items()}
    weights = DistillationWeights(w_kl=1.0)
    out = losses.distillation_losses(**batch, weights=weights)
    for value in out.values():
        assert value.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa in the inputs only; the sums are float32.
    np.testing.assert_allclose(out["l_rep"], [8.0, 1.5], atol=1e-6)
    np.testing.assert_allclose(out["label_loss"], [2.0794415, 2.0794415], atol=1e-6)
    np.testing.assert_allclose(out["l_pred"], [0.125, 0.18], atol=2e-3)


@pytest.mark.parametrize("single_label", [False, True])
def test_distillation_losses_compile_under_xla(single_label):
    batch = _multi_label_batch()
    if single_label:
        batch["labels"] = tf.constant([0, 2])
    weights = DistillationWeights(w_kl=0.5)

    @tf.function(jit_compile=True)
    def compiled(batch):
        return losses.distillation_losses(**batch, weights=weights)

    eager = losses.distillation_losses(**batch, weights=weights)
    got = compiled(batch)
    for key, value in eager.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
