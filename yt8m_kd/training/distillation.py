"""Fewer-frames distillation (Bhardwaj et al., CVPR 2019): a k-frame student learns from the labels
and from a frozen all-frames teacher.

Per sample: L = L_label + w_pred * L_pred + w_rep * L_rep (+ w_kl * L_kl), see
`yt8m_kd.distill.losses`. The teacher is either restored from a teacher run's checkpoint and run in
the step on all frames (online), or replaced by a teacher cache that holds its logits and `repr` per
video (`--teacher_cache`), which is what makes trying many students against one teacher cheap.

Frames: an online teacher reads all frames in the step, so the batches carry all frames and the
student's k are selected in the step. With a teacher cache nothing in the step needs all frames:
the student's k are selected in tf.data on the host and only they are sent to the device
(`Trainer._select_on_host`).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

from yt8m_kd.distill import losses
from yt8m_kd.distill.cache_stream import StreamedTeacherCache, open_teacher_cache
from yt8m_kd.modeling.predict import model_inputs
from yt8m_kd.training.loop import Trainer
from yt8m_kd.training.restore import restore_run


class DistillationTrainer(Trainer):
    """Trains a student (usually k frames) against a frozen teacher (all frames).

    The teacher runs in inference mode: its batch-norm statistics never move, and no gradient
    reaches it (its variables are not in `trainable_variables`; losses stop gradients at it too).
    When the student's `repr` is narrower or wider than the teacher's, a linear projection of the
    student's `repr` feeds L_rep; it trains with the student, is checkpointed with it, and is not
    part of the student model (nothing exports it).
    """

    def __init__(self, model_config, train_config, data_config, run_dir, strategy, distill_config):
        self.distill_config = distill_config
        self.teacher = None
        self.teacher_config = None
        self.teacher_cache = None
        if distill_config.teacher_cache_dir:
            join = distill_config.teacher_cache_join
            if data_config.data_service:
                # A streamed cache would be joined inside the service's workers: not tried yet.
                if join == "stream":
                    raise ValueError(
                        "--teacher_cache_join=stream with --data_service: the per-file join "
                        "would run in the service's workers, which is not supported yet; use "
                        "--teacher_cache_join=auto or memory"
                    )
                join = "memory"
            self.teacher_cache = open_teacher_cache(
                distill_config.teacher_cache_dir,
                join,
                dataset=data_config.dataset,
                train_pattern=data_config.train_data_pattern,
            )
        elif not distill_config.teacher_run_dir:
            raise ValueError("distillation needs a teacher run directory or a teacher cache")
        super().__init__(model_config, train_config, data_config, run_dir, strategy)

    # ------------------------------------------------------------------ teacher and projection
    def _build_training_parts(self) -> None:  # called in the strategy scope
        config = self.distill_config
        if self.teacher_cache is not None:
            self.teacher_cache.check_compatible(self.model_config.num_classes, None)
            teacher_repr_size = self.teacher_cache.repr_size
        else:
            run = restore_run(config.teacher_run_dir, config.teacher_checkpoint, self.strategy)
            self._check_teacher(run.model_config)
            self.teacher, self.teacher_config = run.model, run.model_config
            self.teacher.trainable = False
            teacher_repr_size = self.teacher_config.hidden_size
            logging.info("Teacher: %s", run.checkpoint)
        self.projection = None
        if config.weights.w_rep > 0 and teacher_repr_size != self.model_config.hidden_size:
            # L_rep compares representations; a student of another width is mapped linearly.
            self.projection = keras.layers.Dense(
                teacher_repr_size, use_bias=False, name="rep_projection"
            )
            self.projection.build((None, self.model_config.hidden_size))

    def _check_teacher(self, teacher_config) -> None:
        student = self.model_config
        if teacher_config.num_classes != student.num_classes:
            raise ValueError(
                f"the teacher predicts {teacher_config.num_classes} classes, the student "
                f"{student.num_classes}"
            )
        if tuple(teacher_config.feature_sizes) != tuple(student.feature_sizes):
            raise ValueError(
                f"the teacher reads features of sizes {teacher_config.feature_sizes}, the student "
                f"{student.feature_sizes}: they must read the same records"
            )

    def _checkpointed_parts(self) -> dict:
        return {"projection": self.projection} if self.projection is not None else {}

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        variables = list(self.model.trainable_variables)
        if self.projection is not None:
            variables += self.projection.trainable_variables
        return variables

    @property
    def streams_teacher_cache(self) -> bool:
        return isinstance(self.teacher_cache, StreamedTeacherCache)

    def _file_join(self) -> StreamedTeacherCache | None:
        return self.teacher_cache if self.streams_teacher_cache else None

    def _join(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        if self.teacher_cache is None or self.streams_teacher_cache:
            return dataset  # nothing to join, or joined per file by the reader
        return self.teacher_cache.join(dataset)

    def _step_needs_all_frames(self) -> bool:
        return self.teacher_cache is None  # the online teacher sees all frames in the step

    # ------------------------------------------------------------------------------- the loss
    def teacher_outputs(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The teacher's (logits, repr) for a batch: from the cache, or the teacher on all frames."""
        if self.teacher_cache is not None:
            return batch["teacher_logits"], batch["teacher_repr"]
        outputs = self.teacher(model_inputs(batch, self.teacher_config), training=False)
        return tf.stop_gradient(outputs["logits"]), tf.stop_gradient(outputs["repr"])

    def _losses(self, batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
        teacher_logits, teacher_repr = self.teacher_outputs(batch)
        student = self.model(model_inputs(batch, self.model_config, seed), training=True)
        student_repr = student["repr"]
        if self.projection is not None:
            student_repr = self.projection(student_repr)
        per_sample = losses.distillation_losses(
            labels=batch["labels"],
            student_logits=student["logits"],
            student_repr=student_repr,
            teacher_logits=teacher_logits,
            teacher_repr=teacher_repr,
            weights=self.distill_config.weights,
        )
        values = {
            name: tf.nn.compute_average_loss(value, global_batch_size=self.config.batch_size)
            for name, value in per_sample.items()
        }
        regularization = self._regularization_loss()
        values["regularization_loss"] = regularization
        values["loss"] = values.pop("total") + regularization
        return values
