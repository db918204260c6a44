"""yt8m-kd: cheap video classification by knowledge distillation (TensorFlow 2 / Keras 3)."""

__version__ = "0.1.0"
