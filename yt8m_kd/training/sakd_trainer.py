"""SAKD training (Li et al., ACM MM 2025), the spec at the end of docs/sakd.md.

Every `selection_interval` epochs (counting from epoch 0):
  1. difficulty pass over the whole training set: the student sees temporally interrupted frames
     (drop below eta, shuffle from eta on, at rate beta(epoch)); d_i is its per-sample distillation
     loss against the clean teacher targets of the teacher cache; d_hat = min-max normalised d;
  2. strength alpha_i = lambda * alpha_i + (1 - lambda) * (1 - d_hat_i) (or the released mapping);
  3. selection of ratio * N samples by chunked greedy MAP on gamma * S + (1 - gamma) diag(1 - d_hat),
     S the cosine similarity of the cached teacher representations (or, with --sakd_feature_dim,
     of their projection by a fixed random Gaussian matrix: N x feature_dim floats); with
     --sakd_class_balance (beyond the paper) no class's share of the selection exceeds its share
     of the training set (`selection.ClassQuotas`).
The epochs until the next pass iterate over the selected samples only (a tf.data filter on the
sample index: with the cache in memory applied to a record's id before its frames are checked and
decoded, with a streamed cache to the rows paired with each file's records; the first epoch of a
selection caches the selected records in <run_dir>/sakd/cache/ and the others read them from
there), with the per-sample loss (1 - alpha_i) L_label_i + alpha_i L_distill_i.

SAKD runs from a teacher cache: its rows are the dense sample index that the per-sample state
(difficulty, strength, selection) is kept in, and its representations are the diversity features,
gathered from the batches of the difficulty pass (the cache may be streamed, never whole in
memory).
That state lives in the checkpoint, so a resumed run goes on with SAKD where it stopped; every
selection's video ids are written to <run_dir>/sakd/.

Frames: the training steps need only the student's k frames (the teacher is the cache), so they are
selected in tf.data on the host, after the subset cache (which keeps all frames, since random
selection draws new frames every step). The difficulty pass reads its own pipeline of all frames
(built once, for every pass): the interruption drops and shuffles among all of a video's frames
before the student's selection, so tf.data works out where each of the student's k positions of the
interrupted video takes its frame from and gathers only those (`sakd.interrupted_selection`); the
step gets [B, k, ...] and a mask of the dropped ones, the same frames as interrupting all of them in
the step and then selecting (tests/test_sakd_trainer.py).
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from yt8m_kd.configs import SAKDConfig
from yt8m_kd.data import videos, yt8m_records
from yt8m_kd.distill import losses, sakd, selection
from yt8m_kd.distill.cache_stream import SelectedRows
from yt8m_kd.files import write_json, write_text
from yt8m_kd.modeling.predict import FRAME_INDICES, model_inputs
from yt8m_kd.training.distillation import DistillationTrainer

# The pass's batches: where the student's frames of the interrupted video are kept (False: a dropped
# frame or padding, zero in feature space).
_KEPT = "interruption_kept"


class SAKDState(tf.Module):
    """Per-sample SAKD state on the host, indexed by teacher-cache row; checkpointed."""

    def __init__(self, num_samples: int):
        super().__init__(name="sakd_state")
        with tf.init_scope(), tf.device("/CPU:0"):
            self.difficulty = tf.Variable(tf.zeros([num_samples]), trainable=False)
            self.strength = tf.Variable(tf.zeros([num_samples]), trainable=False)  # alpha
            # int32 rather than bool: read by the tf.data filter and gathered in the step.
            self.selected = tf.Variable(tf.ones([num_samples], tf.int32), trainable=False)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # epochs completed
            # The step at which the current epoch started and how many steps it has, so that a
            # run resumed mid-epoch finishes that epoch instead of starting it again.
            self.epoch_start_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
            self.epoch_steps = tf.Variable(0, dtype=tf.int64, trainable=False)


class SAKDTrainer(DistillationTrainer):
    """Distillation with sample-level adaptive strength and training on a selected subset.

    Training length is `num_epochs` epochs (the N of the interruption schedule); an epoch is one
    pass over the currently selected samples (floor(selected / batch_size) steps).
    """

    def __init__(
        self,
        model_config,
        train_config,
        data_config,
        run_dir,
        strategy,
        distill_config,
        sakd_config: SAKDConfig,
        num_epochs: int,
    ):
        if not distill_config.teacher_cache_dir:
            raise ValueError(
                "SAKD needs a teacher cache (--teacher_cache): its rows index the per-sample "
                "state and its representations are the diversity features"
            )
        if num_epochs <= 0:
            raise ValueError(f"num_epochs={num_epochs} must be positive")
        self.sakd_config = sakd_config
        self.num_epochs = num_epochs
        super().__init__(model_config, train_config, data_config, run_dir, strategy, distill_config)
        self._difficulty_fn = tf.function(self._difficulty, reduce_retracing=True)
        self._pass_data: tf.data.Dataset | None = None  # built by the first pass (`_pass_frames`)
        self._pass_interrupted: tf.data.Dataset | None = None  # and `_interrupted`
        # The current pass's beta (float64: floor(beta * n) exact) and seed, read by its tf.data
        # map, so that one pipeline serves every pass.
        with tf.init_scope(), tf.device("/CPU:0"):
            self._pass_beta = tf.Variable(0.0, dtype=tf.float64, trainable=False)
            self._pass_seed = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _build_host_state(self) -> None:
        # Read by the tf.data filter on the host: plain variables, never mirrored.
        self.state = SAKDState(self.teacher_cache.num_videos)

    def _checkpointed_parts(self) -> dict:
        return {**super()._checkpointed_parts(), "sakd": self.state}

    def _id_filter(self):
        if self.streams_teacher_cache:
            return None  # the streamed cache's rows are filtered instead (`_file_join`)
        selected, cache = self.state.selected, self.teacher_cache

        def keep(video_id):
            row = cache.rows(video_id)
            # An id missing from the cache (row -1) is kept, so that the join names it.
            return (row < 0) | (tf.gather(selected, tf.maximum(row, 0)) > 0)

        return keep

    def _file_join(self):
        if not self.streams_teacher_cache:
            return None
        selected = self.state.selected
        return SelectedRows(self.teacher_cache, lambda index: tf.gather(selected, index) > 0)

    def _cache_file(self, input_context):
        # The selected records of this selection, checked and decoded once: the epochs after the
        # first one of a selection read ~ratio * N records from here instead of all N files.
        # A new name per pipeline and iterator, so a cache cut short by a kill is never reused.
        # None when no later epoch of the selection is left to read it (re-selection every
        # epoch, or its last epoch): the cache would only be written and discarded.
        epoch, interval = int(self.state.epoch.numpy()), self.sakd_config.selection_interval
        if min(interval - epoch % interval, self.num_epochs - epoch) <= 1:
            return None
        directory = os.path.join(self.run_dir, "sakd", "cache")
        tf.io.gfile.makedirs(directory)
        pipeline = f"pipeline{input_context.input_pipeline_id}"
        for stale in tf.io.gfile.glob(os.path.join(directory, f"*_{pipeline}*")):
            tf.io.gfile.remove(stale)
        return os.path.join(
            directory, f"epoch{int(self.state.epoch.numpy()):04d}_step{self.step}_{pipeline}"
        )

    # ------------------------------------------------------------------------------- the loss
    def _losses(self, batch, seed):
        student = self.model(model_inputs(batch, self.model_config, seed), training=True)
        per_sample = self._per_sample_losses(batch, student, batch["teacher_logits"])
        alpha = tf.gather(self.state.strength, batch["index"])
        # L_i = (1 - alpha_i) L_label_i + alpha_i L_distill_i (docs/sakd.md, spec 2)
        adaptive = sakd.sample_adaptive_loss(
            per_sample["label_loss"], per_sample["distill_loss"], alpha
        )
        gb = self.config.batch_size
        values = {
            name: tf.nn.compute_average_loss(value, global_batch_size=gb)
            for name, value in per_sample.items()
            if name != "total"
        }
        values["mean_strength"] = tf.nn.compute_average_loss(alpha, global_batch_size=gb)
        values["regularization_loss"] = self._regularization_loss()
        values["loss"] = (
            tf.nn.compute_average_loss(adaptive, global_batch_size=gb)
            + values["regularization_loss"]
        )
        return values

    def _per_sample_losses(self, batch, student, teacher_logits):
        student_repr = student["repr"]
        if self.projection is not None:
            student_repr = self.projection(student_repr)
        return losses.distillation_losses(
            labels=batch["labels"],
            student_logits=student["logits"],
            student_repr=student_repr,
            teacher_logits=teacher_logits,
            teacher_repr=batch["teacher_repr"],
            weights=self.distill_config.weights,
        )

    # ------------------------------------------------------------------------- difficulty
    def _difficulty(self, batch):
        """Per-sample distillation loss of the student on interrupted input (spec 1), from the
        student's frames of the interrupted video (`_interrupted`)."""
        frames = batch["frames"]
        if not self.single_label:  # YouTube-8M: a dropped frame is zero in feature space
            frames = yt8m_records.dequantize(frames)
        # UCF101 images stay uint8: a dropped frame is a black image.
        inputs = {
            "frames": sakd.zero_dropped(frames, batch[_KEPT]),
            "num_frames": batch["num_frames"],
        }
        if FRAME_INDICES in batch:  # selected in tf.data: model_inputs passes them on
            inputs[FRAME_INDICES] = batch[FRAME_INDICES]
        student = self.model(model_inputs(inputs, self.model_config), training=False)
        return self._per_sample_losses(batch, student, batch["teacher_logits"])["distill_loss"]

    def _pass_frames(self) -> tf.data.Dataset:
        """Every training sample with its teacher targets, in file order. Built once and read by
        every pass: building it traces the reader's functions, which cost as much as reading a
        few thousand tiny records."""
        if self._pass_data is None:
            data = self.data_config
            frames = videos.read_videos(
                data,
                self.model_config,
                data.train_data_pattern,
                batch_size=self.config.eval_batch_size,
                training=False,  # UCF101: the clean clip of the teacher cache
                split_file=data.train_split_file,
                bad_record_counter=self.bad_records,
                **({"file_join": self.teacher_cache} if self.streams_teacher_cache else {}),
            )
            self._pass_data = (
                frames if self.streams_teacher_cache else self.teacher_cache.join(frames)
            )
        return self._pass_data

    def _interrupted(self, epoch: int, beta: float) -> tf.data.Dataset:
        """The pass's batches with the student's frames of the interrupted videos in place of all
        frames, gathered in tf.data (`sakd.interrupted_selection`): the model gets [B, k, ...]
        and the kept mask, not all T frames. Batch j is interrupted and selected with the seed
        [seed * 1000 + epoch, j]. One pipeline for every pass (beta and the seed are variables
        it reads), so a pass does not trace it again."""
        self._pass_beta.assign(beta)
        self._pass_seed.assign(self.config.seed * 1000 + epoch)
        if self._pass_interrupted is not None:
            return self._pass_interrupted
        cfg, model = self.sakd_config, self.model_config

        def interrupt(batch_number, batch):
            picked = sakd.interrupted_selection(
                batch["frames"],
                batch["num_frames"],
                self._pass_beta.read_value(),
                tf.stack([self._pass_seed.read_value(), batch_number]),
                k=model.k_frames,
                method=model.frame_selection,
                eta=cfg.eta,
            )
            out = {**batch, "frames": picked["frames"], "num_frames": picked["num_frames"]}
            out[_KEPT] = picked["kept"]
            if "frame_indices" in picked:
                out[FRAME_INDICES] = picked["frame_indices"]
            return out

        self._pass_interrupted = (
            self._pass_frames().enumerate().map(interrupt).prefetch(tf.data.AUTOTUNE)
        )
        return self._pass_interrupted

    def difficulty_pass(self, epoch: int) -> dict:
        """Difficulty of every training sample, then strength and selection; returns a summary."""
        cfg, started = self.sakd_config, time.perf_counter()
        beta = sakd.interruption_rate(epoch, self.num_epochs, cfg.schedule, cfg.power)
        num_samples = self.teacher_cache.num_videos
        difficulty = np.full([num_samples], np.nan)
        labels: list[np.ndarray] = [np.zeros(0, np.int64)] * num_samples
        # The diversity features and ids of the selection, gathered from the batches: a streamed
        # cache is never whole in memory, and these are all the pass needs of it.
        projection = diversity_projection(self.teacher_cache.repr_size, cfg.feature_dim)
        width = self.teacher_cache.repr_size if projection is None else cfg.feature_dim
        features = np.zeros([num_samples, width], np.float32)
        video_ids = np.full([num_samples], b"", object)
        for batch in self._interrupted(epoch, beta):
            d = self._difficulty_fn(batch).numpy()
            index = batch["index"].numpy()
            difficulty[index] = d
            representation = batch["teacher_repr"].numpy()
            features[index] = representation if projection is None else representation @ projection
            video_ids[index] = batch["video_id"].numpy()
            batch_labels = batch["labels"].numpy()
            for row, label in zip(index, batch_labels, strict=True):
                labels[row] = np.flatnonzero(label) if batch_labels.ndim == 2 else np.array([label])
            # A stop signal ends the pass here; the rerun makes it again (nothing was assigned).
            self.signals.check()
        seen = ~np.isnan(difficulty)
        if not seen.all():
            # Skipped bad records, or a cache made from other records: they are never selected.
            logging.warning("%d cached samples were not in the training data", (~seen).sum())
        d_hat = np.ones(num_samples)
        d_hat[seen] = sakd.normalise_difficulty(difficulty[seen])
        alpha = sakd.update_strength(
            self.state.strength.numpy(), d_hat, cfg.memory, cfg.mapping, beta=beta
        )
        rows = np.flatnonzero(seen)
        chosen = selection.select_samples(
            features[seen],
            d_hat[seen],
            cfg.ratio,
            gamma=cfg.gamma,
            seed=self.config.seed * 1000 + epoch,
            labels=[labels[i] for i in rows] if cfg.class_balance else None,
            num_classes=self.model_config.num_classes,
        )
        chosen = rows[chosen]
        selected = np.zeros(num_samples, np.int32)
        selected[chosen] = 1
        self.state.difficulty.assign(np.where(seen, difficulty, 0.0).astype(np.float32))
        self.state.strength.assign(alpha.astype(np.float32))
        self.state.selected.assign(selected)
        summary = {
            "epoch": epoch,
            "beta": beta,
            "interruption": "drop" if beta < cfg.eta else "shuffle",
            "num_samples": int(seen.sum()),
            "num_selected": int(len(chosen)),
            "seconds": time.perf_counter() - started,
            "selected_per_class": _class_counts(labels, chosen, self.model_config.num_classes),
        }
        self._write_selection(epoch, video_ids[chosen], d_hat, alpha, summary)
        return summary

    def _write_selection(self, epoch, chosen_ids, d_hat, alpha, summary) -> None:
        with self.train_writer.as_default(step=self.step):
            tf.summary.histogram("sakd/difficulty", d_hat)
            tf.summary.histogram("sakd/strength", alpha)
            tf.summary.scalar("sakd/selected_fraction", len(chosen_ids) / len(d_hat))
            tf.summary.scalar("sakd/difficulty_pass_seconds", summary["seconds"])
            per_class = np.asarray(summary["selected_per_class"])
            # One value per selected (sample, label): a histogram over class indices.
            tf.summary.histogram(
                "sakd/selected_per_class", np.repeat(np.arange(len(per_class)), per_class)
            )
        self.train_writer.flush()
        if not self.is_chief:
            return
        directory = os.path.join(self.run_dir, "sakd")
        tf.io.gfile.makedirs(directory)
        # Atomic writes: a kill leaves each file whole or absent (a rerun redoes the selection).
        write_text(
            os.path.join(directory, f"selection_epoch{epoch:04d}.txt"),
            "\n".join(v.decode() for v in chosen_ids) + "\n",
        )
        write_json(os.path.join(directory, f"selection_epoch{epoch:04d}.json"), summary)

    # ------------------------------------------------------------------------------ epochs
    def _fit(self) -> dict:  # Trainer.fit adds the signal handling around it
        start_step = self.restore()
        results = {"resumed_from_step": start_step, "epochs": []}
        state, interval = self.state, self.sakd_config.selection_interval
        # One repeating iterator per selection, not per epoch: starting a pipeline (file reads,
        # shuffle buffer) costs more than a 10% epoch of a small model. A new selection gets a new
        # iterator, so no record of the previous one lingers in the shuffle and prefetch buffers.
        iterator = None
        for epoch in range(int(state.epoch.numpy()), self.num_epochs):
            in_progress = int(state.epoch_start_step.numpy()) >= 0
            record = {"epoch": epoch}
            if not in_progress:
                if epoch % interval == 0:
                    record["difficulty_pass"] = self.difficulty_pass(epoch)
                    iterator = None
                steps = int(state.selected.numpy().sum()) // self.config.batch_size
                state.epoch_start_step.assign(self.step)
                state.epoch_steps.assign(max(1, steps))
            end = int(state.epoch_start_step.numpy() + state.epoch_steps.numpy())
            started = time.perf_counter()
            if self.step < end:
                iterator = iterator or iter(self._train_dataset(self.step))
                # An epoch's last step is the run's last only in the last epoch (evaluated by
                # `finish`); other epoch ends get their periodic evaluation.
                final = end if epoch == self.num_epochs - 1 else -1
                record["train"] = self._train_until(end, self.step, iterator, final_step=final)
            record["train_seconds"] = time.perf_counter() - started
            state.epoch.assign(epoch + 1)
            state.epoch_start_step.assign(-1)
            with self.train_writer.as_default(step=self.step):
                tf.summary.scalar("sakd/train_epoch_seconds", record["train_seconds"])
            self.save(force=True)  # the epoch is done: a resumed run starts the next one
            results["epochs"].append(record)
            logging.info("SAKD epoch %d done at step %d", epoch, self.step)
        iterator = None
        cache = os.path.join(self.run_dir, "sakd", "cache")
        if tf.io.gfile.exists(cache):
            tf.io.gfile.rmtree(cache)  # only needed while training
        # The last logged values, and the wall time and steps of all the epochs of this call.
        trained = [e["train"] for e in results["epochs"] if "train" in e]
        results["train"] = dict(trained[-1]) if trained else {}
        if trained:
            results["train"]["wall_time_s"] = sum(t["wall_time_s"] for t in trained)
            results["train"]["steps"] = sum(t["steps"] for t in trained)
        results["sakd"] = epoch_time_summary(results["epochs"], interval)
        return self.finish(results)


# Seeds the diversity projection: one fixed matrix, so that every run and every selection of a
# run measures similarity the same way.
_PROJECTION_SEED = 12


def diversity_projection(repr_size: int, feature_dim: int) -> np.ndarray | None:
    """[repr_size, feature_dim] Gaussian entries / sqrt(feature_dim), or None (no projection:
    feature_dim 0, or not narrower than the repr). Inner products, and so the cosine similarities
    of the selection kernel, are kept in expectation, with errors ~ 1 / sqrt(feature_dim)."""
    if feature_dim == 0 or feature_dim >= repr_size:
        return None
    rng = np.random.default_rng(_PROJECTION_SEED)
    matrix = rng.standard_normal((repr_size, feature_dim)) / np.sqrt(feature_dim)
    return matrix.astype(np.float32)


def _class_counts(labels: list[np.ndarray], chosen: np.ndarray, num_classes: int) -> list[int]:
    picked = [labels[i] for i in chosen]
    flat = np.concatenate(picked) if picked else np.zeros(0, np.int64)
    return np.bincount(flat, minlength=num_classes).astype(int).tolist()


def epoch_time_summary(epochs: list[dict], interval: int) -> dict:
    """Wall time per epoch with the difficulty passes amortised over the epochs they serve."""
    train = [e["train_seconds"] for e in epochs]
    passes = [e["difficulty_pass"]["seconds"] for e in epochs if "difficulty_pass" in e]
    if not train:
        return {}
    total = sum(train) + sum(passes)
    return {
        "epochs": len(train),
        "train_seconds_per_epoch": sum(train) / len(train),
        "difficulty_pass_seconds": sum(passes) / len(passes) if passes else 0.0,
        "selection_interval": interval,
        "seconds_per_epoch_amortised": total / len(train),
        "difficulty_pass_fraction": (sum(passes) / total) if total else math.nan,
    }
