"""What both video models (frame features: `video_models`; images: `frame_encoders`) share after
pooling their frames: the classifier choice, the head's call and the config round trip.

A video model maps a batch dict (`frames`, `num_frames`) to `{"logits": [B, C], "repr": [B, H]}`
(docs/design.md, "The batch contract"); `repr` is the context-gated hidden vector the classifier reads.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from yt8m_kd.configs import ModelConfig
from yt8m_kd.modeling.classifiers import LogisticClassifier, MixtureOfExpertsClassifier


def model_config_from_dict(config: dict) -> ModelConfig:
    """The `ModelConfig` of its `dataclasses.asdict` (as `get_config` stores it, a JSON round trip
    turning the feature_sizes tuple into a list)."""
    config = dict(config)
    config["feature_sizes"] = tuple(int(s) for s in config["feature_sizes"])
    return ModelConfig(**config)


def make_classifier(config: ModelConfig) -> keras.layers.Layer:
    """The video-level classifier of `config`, named "classifier"; it returns logits in every case.

    "softmax" is the same single FC to logits as "logistic": only the loss differs (a softmax over
    single-label classes, UCF101, instead of a sigmoid per class, YouTube-8M).
    """
    if config.classifier in ("logistic", "softmax"):
        return LogisticClassifier(config.num_classes, config.l2_penalty, name="classifier")
    if config.classifier == "moe":
        return MixtureOfExpertsClassifier(
            config.num_classes, config.moe_num_mixtures, config.l2_penalty, name="classifier"
        )
    raise ValueError(f"unknown classifier {config.classifier!r} (logistic, moe or softmax)")


class VideoHeadMixin:
    """What both video models share after pooling their frames, and their config round trip.

    The model defines `dropout`, `hidden`, `hidden_bn`, `gating` and `classifier` layers and a
    `model_config`; `video_head` maps the pooled frames to the model outputs.
    """

    def video_head(self, x, training):
        """Pooled frames [B, D] -> {"logits": [B, C], "repr": [B, H]} (float32)."""
        x = self.dropout(x, training=training)
        h = self.hidden_bn(self.hidden(x), training=training)  # [B, H]
        h = self.gating(h, training=training)  # [B, H], the video representation
        logits = self.classifier(h)  # [B, C]
        return {"logits": ops.cast(logits, "float32"), "repr": ops.cast(h, "float32")}

    def get_config(self):
        config = super().get_config()
        config["config"] = dataclasses.asdict(self.model_config)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model_config = model_config_from_dict(config.pop("config"))
        return cls(model_config, **config)
