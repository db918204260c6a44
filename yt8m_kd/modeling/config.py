"""The model configuration: a small frozen dataclass that library code takes instead of flags."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a video model (reference/nextvlad.md).

    Field names are the flag names of `yt8m_kd/flags.py` and of the `models/*.flags` presets.
    The defaults are the reference's best single model (88,889,378 trainable parameters).

    Attributes:
      feature_sizes: per-frame size of each feature, in record order (rgb 1024, audio 128).
        The first feature goes through the "video" NeXtVLAD branch (cluster_size, groups); every
        further one through a branch with half the clusters and half the groups (the reference's
        audio branch).
      num_classes: output classes (3862 for the 2018 vocabulary).
      cluster_size: K, NeXtVLAD clusters of the first branch.
      groups: G, NeXtVLAD groups of the first branch.
      expansion: lambda, the NeXtVLAD expansion factor (all branches).
      hidden_size: H, width of the hidden FC and of the video representation `repr`.
      gating_reduction: r, the SE context gating bottleneck is H / r.
      drop_rate: dropout on the concatenated NeXtVLAD outputs (training only).
      classifier: "logistic" or "moe" (multi-label, sigmoid per class), or "softmax" (a single
        FC to logits like "logistic", for single-label classes: the loss applies a softmax).
      moe_num_mixtures: experts per class when classifier == "moe".
      l2_penalty: l2 weight decay on the classifier weights (the reference's l2_penalty, slim
        convention: penalty * sum(w^2) / 2).
      k_frames: frames the model sees per video; 0 means all frames (a teacher), k > 0 a k-frame
        student. Only used to size FLOP counts and to pick frames before the model.
      frame_selection: how a student's k frames are chosen (see `yt8m_kd.data.sampling`).
      backbone: "" for frame features (YouTube-8M, the fields above); else the name of a
        keras.applications image backbone in `yt8m_kd.modeling.frame_encoders.BACKBONES`
        ("mobilenet_v3_small", "efficientnet_b0", "resnet50", ...) run on every frame (UCF101).
        feature_sizes is then unused; the NeXtVLAD fields size the one image-feature branch.
      image_size: input height = width of the frames of an image model (must be set with backbone).
      backbone_weights: "" or "none" (random init), "imagenet" (the Keras download) or a local
        weights file (.weights.h5, .keras, or a Keras application's legacy .h5) for the backbone.
      pooling: how an image model pools its per-frame features: "nextvlad" or "mean" (masked).
      trainable_backbone: False freezes the backbone (weights and batch-norm statistics).
      temporal_encoding: an image model also pools a time-weighted copy of its frame features
        (`frame_encoders.temporal_features`), so that frame order can matter.
    """

    feature_sizes: tuple[int, ...] = (1024, 128)
    num_classes: int = 3862
    cluster_size: int = 128
    groups: int = 8
    expansion: int = 2
    hidden_size: int = 2048
    gating_reduction: int = 8
    drop_rate: float = 0.5
    classifier: str = "logistic"
    moe_num_mixtures: int = 2
    l2_penalty: float = 1e-5
    k_frames: int = 0
    frame_selection: str = "uniform"
    backbone: str = ""
    image_size: int = 0
    backbone_weights: str = ""
    pooling: str = "nextvlad"
    trainable_backbone: bool = True
    temporal_encoding: bool = False

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


MODEL_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
