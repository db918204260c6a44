"""One training step under MirroredStrategy on 2 logical CPUs against the update computed by hand.

Run as its own process (logical devices are set before TensorFlow starts):
  python tests/scripts/clipped_update.py DATA_DIR OUT_DIR
Prints JSON: the step's global gradient norm and the one computed by hand on the whole batch, and
the largest difference between the weights after the step and w - lr * clip(g) (SGD, so that the
update is linear in the gradient: Adam's nearly is not, and would hide a wrong scale).
"""

import json
import os
import sys

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from yt8m_kd import flags as yflags  # noqa: E402
from yt8m_kd.data import videos  # noqa: E402
from yt8m_kd.distill import losses  # noqa: E402
from yt8m_kd.modeling import build_video_model  # noqa: E402
from yt8m_kd.modeling.predict import model_inputs  # noqa: E402
from yt8m_kd.training.loop import Trainer  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")
LEARNING_RATE = 0.1


def hand_update(config, weights, batch):
    """(global norm of the whole batch's gradient, the weights after a clipped SGD step), on one
    device: the loss is the batch mean of the label loss plus the l2 penalty."""
    model = build_video_model(config.model)
    model.set_weights(weights)
    with tf.GradientTape() as tape:
        outputs = model(model_inputs(batch, config.model), training=True)
        loss = tf.reduce_mean(losses.label_loss(batch["labels"], outputs["logits"]))
        loss += tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    norm = float(tf.linalg.global_norm(grads))
    scale = min(1.0, config.train.clip_gradient_norm / norm)
    after = [
        v.numpy() - LEARNING_RATE * scale * g.numpy()
        for v, g in zip(model.trainable_variables, grads, strict=True)
    ]
    return norm, after


def main() -> None:
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    config = yflags.read_flagfile(
        os.path.join(MODELS, "tiny_teacher.flags"),
        train_data_pattern=os.path.join(data_dir, "train-*"),
        max_frames=60,
        batch_size=8,
        drop_rate=0.0,  # dropout masks differ per replica
        clip_gradient_norm=0.05,  # far below the norm: the clipping decides the update's size
        progress_bar=False,
    )
    strategy = strategy_lib.make_strategy("mirrored")
    trainer = Trainer(config.model, config.train, config.data, out_dir, strategy)
    with strategy.scope():  # SGD instead of Adam, before the step is traced
        trainer.optimizer = keras.optimizers.SGD(LEARNING_RATE)
        trainer.optimizer.build(trainer.trainable_variables)
    batch = next(
        iter(
            videos.read_videos(
                config.data,
                config.model,
                config.data.train_data_pattern,
                batch_size=8,
                training=True,
            )
        )
    )
    before = [v.numpy() for v in trainer.model.trainable_variables]
    norm, expected = hand_update(config, trainer.model.get_weights(), batch)
    # The same global batch of 8, split 4 + 4 over the replicas.
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    outputs = trainer._train_step(iterator, tf.constant(1, tf.int64))
    after = [v.numpy() for v in trainer.model.trainable_variables]

    def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))

    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "step_grad_norm": float(outputs["grad_norm"]),
                "hand_grad_norm": norm,
                "max_weight_diff": max_diff(after, expected),
                "max_update": max_diff(before, expected),
            }
        )
    )


if __name__ == "__main__":
    main()
