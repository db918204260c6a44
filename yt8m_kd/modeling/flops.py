"""Analytic forward FLOPs of the pieces both video models share: NeXtVLAD pooling and the video head.

Conventions (those of `yt8m_kd.modeling.count_flops_per_video`): a multiply-add is 2 FLOPs (a matmul
[n, a] @ [a, b] costs 2*n*a*b); every other elementwise op is 1 FLOP per element, with the composites
below. Inference mode: dropout is the identity, batch norms use their folded scale and shift.
"""

from __future__ import annotations

from yt8m_kd.configs import ModelConfig

_SIGMOID = 3  # exp, add, reciprocal
_SOFTMAX = 3  # exp, sum, divide
_BATCH_NORM = 2  # inference: one multiply and one add with the folded scale and shift
_L2_NORMALISE = 3  # square, sum, divide (one sqrt per column is negligible)


def nextvlad_flops(feature_size: int, cluster_size: int, groups: int, expansion: int, m: int):
    """Forward FLOPs of one NeXtVLAD layer on m frames, step by step (docs/nextvlad.md)."""
    expanded = expansion * feature_size  # lambda*F
    group_size = expanded // groups  # lambda*F/G
    assignments = m * groups * cluster_size  # entries of the [M*G, K] assignment
    descriptor = group_size * cluster_size  # entries of the [lambda*F/G, K] descriptor
    return (
        m * (2 * feature_size * expanded + expanded)  # 1. expansion FC + bias
        + m * (2 * expanded * groups + groups + _SIGMOID * groups)  # 2. attention FC, bias, sigmoid
        + m * groups  # 2. times the frame mask
        + m * 2 * expanded * groups * cluster_size  # 3. cluster-assignment FC (no bias)
        + assignments * (_BATCH_NORM + _SOFTMAX)  # 3. batch norm, softmax over K
        + assignments  # 4. act = softmax * alpha
        + assignments  # 5. a_sum, the sum over M*G
        + descriptor  # 5. a = a_sum * C
        + 2 * assignments * group_size  # 7. act^T @ x_tilde
        + descriptor  # 7. minus a
        + _L2_NORMALISE * descriptor  # 8. intra-normalisation
        + _BATCH_NORM * descriptor  # 9. output batch norm
    )


def head_flops(config: ModelConfig, descriptor_size: int) -> int:
    """Forward FLOPs of the video-level head on a descriptor_size-wide pooled vector: hidden FC,
    its batch norm, context gating and the classifier (the conventions above)."""
    hidden = config.hidden_size
    bottleneck = hidden // config.gating_reduction
    classes = config.num_classes
    flops = 2 * descriptor_size * hidden + _BATCH_NORM * hidden  # hidden FC, batch norm
    flops += (
        2 * hidden * bottleneck  # squeeze FC
        + (_BATCH_NORM + 1) * bottleneck  # batch norm, ReLU
        + 2 * bottleneck * hidden  # excite FC
        + _SIGMOID * hidden  # sigmoid
        + hidden  # h * g
    )
    if config.classifier in ("logistic", "softmax"):
        flops += 2 * hidden * classes + classes  # FC + bias (the loss's softmax is not counted)
    else:
        mixtures = config.moe_num_mixtures
        flops += (
            2 * hidden * classes * (mixtures + 1)  # gate FC
            + 2 * hidden * classes * mixtures  # expert FC
            + classes * mixtures  # expert bias
            + _SOFTMAX * classes * (mixtures + 1)  # gate softmax
            + _SIGMOID * classes * mixtures  # expert sigmoids
            + 2 * classes * mixtures  # weighted sum over experts
            + 4 * classes  # clip, logit (two logs and a subtract)
        )
    return int(flops)
