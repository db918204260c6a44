"""The custom training loop of docs/design.md: `strategy.run` steps, CheckpointManager, tf.summary.

One loop serves OneDevice, Mirrored and MultiWorkerMirrored strategies (docs/design.md says why not
`model.fit`). A run directory holds `checkpoints/`, `train/` and `eval/` TensorBoard events, and
`metrics.json`; the launcher adds `flags.txt`.

A run without a checkpoint of its own starts from random weights (seeded by --seed), or, with
--init_from_run, from the model weights of another run's latest checkpoint (`Trainer.restore`);
`init_from.json` records where they came from, and every metrics.json of the run repeats it.

Frame selection: a k-frame student that trains without a teacher in the step (a plain student, or
one distilled from a teacher cache, SAKD included) gets its k frames selected in tf.data on the
host, so the device receives [B, k, ...] instead of all frames; the step does not select again.
Random selection draws from the same per-step, per-replica seed there as it did in the step
(`training_selection_seed`; see `Trainer._select_on_host`). Online distillation (the teacher needs
all frames) and evaluation select inside the step.

Evaluation (`run_eval`; `yt8m_kd.training.evaluation`): with several replicas (mirrored,
multi_worker), every replica predicts its share of each global batch of --eval_batch_size and
the metrics equal one device's, every video counted once (every worker computes them, the chief
writes them); with one replica it is the one-device loop.

Faults while training:
- SIGINT or SIGTERM (Ctrl-C, a scheduler's or a preemption's stop) asks the loop to stop at the
  next step boundary: it saves a checkpoint of that step and raises `TrainingStopped`, which the
  launchers report on one line and exit with 128 + the signal number (130, 143). A second signal
  while the checkpoint is written is ignored, so the save is never cut short; a second one at
  any other time stops at once (still saving the last finished step). The handlers are
  installed for `fit` only and the previous ones restored after it.
- A non-finite loss term or gradient norm stops the run with `NonFiniteLossError` naming the step
  and the loss terms, without saving that step; a checkpoint is never written of non-finite
  weights either. The last finite checkpoint stays the latest, so a rerun (with a lower learning
  rate, say) resumes from it.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable

import keras
import tensorflow as tf
from absl import logging

from yt8m_kd import flag_checks
from yt8m_kd.configs import DataConfig, FlagError, ModelConfig, TrainConfig
from yt8m_kd.data import data_service, videos, yt8m
from yt8m_kd.distill import losses
from yt8m_kd.files import read_json, write_json
from yt8m_kd.modeling import build_video_model, model_size
from yt8m_kd.modeling.predict import (
    make_predict_fn,
    model_inputs,
    select_student_frames,
    training_selection_seed,
)
from yt8m_kd.training import evaluation
from yt8m_kd.training import strategy as strategy_lib
from yt8m_kd.training.evaluation import evaluate  # also imported from here, as loop.evaluate
from yt8m_kd.training.fused_adam import FusedAdam

# Where a run initialised by --init_from_run records the source (run directory and checkpoint).
INIT_FROM_FILE = "init_from.json"


class TrainingStopped(Exception):  # noqa: N818 (a stop, not an error)
    """Training was stopped by a signal; the checkpoint of the current step is saved.

    Attributes:
      signal_number: the signal (SIGINT or SIGTERM).
      step: the step training stopped at (set by `Trainer.fit`).
      checkpoint_step: the step of the latest checkpoint, None when there is none.
    """

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number
        self.step: int | None = None
        self.checkpoint_step: int | None = None

    @property
    def exit_status(self) -> int:
        """The shell's status of a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signal_number

    def __str__(self) -> str:
        name = signal.Signals(self.signal_number).name
        if self.checkpoint_step is None:
            saved = "nothing was trained, no checkpoint saved"
        elif self.checkpoint_step == self.step:
            saved = "checkpoint saved"
        else:
            saved = f"the last checkpoint is of step {self.checkpoint_step}"
        return f"stopped by {name} at step {self.step}; {saved}; rerun the same command to resume"


class NonFiniteLossError(ArithmeticError):
    """A loss term, the gradient norm or the weights became NaN or infinite (a diverged run)."""


class SignalStop:
    """SIGINT and SIGTERM, while in use as a context manager, become a request to stop.

    The loop calls `check()` at safe points (between steps, between evaluation batches) and stops
    there with `TrainingStopped`. Python runs a handler between bytecodes only, so a step in
    progress always finishes first and the step counter and weights agree. Outside the main
    thread (where Python cannot install handlers) nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self.saving = False  # set while a checkpoint is written: further signals wait
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalStop:
        self.received = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, signal_number: int, frame) -> None:
        del frame
        name = signal.Signals(signal_number).name
        if self.received is None:
            self.received = signal_number
            logging.warning("%s: saving a checkpoint and stopping after this step", name)
        elif self.saving:
            logging.warning("%s: a checkpoint is being written; stopping after it", name)
        else:  # a second signal: the user does not want to wait for the step boundary
            raise TrainingStopped(self.received)

    def check(self) -> None:
        """Raises TrainingStopped if a signal asked to stop."""
        if self.received is not None:
            raise TrainingStopped(self.received)


# What to do about a diverged run, at the end of its error line.
_ADVICE = "(lower --base_learning_rate or set --clip_gradient_norm, then rerun)"


def checkpoint_step(path: str) -> int:
    """The step of a checkpoint path that CheckpointManager wrote (".../ckpt-<step>")."""
    return int(path.rsplit("-", 1)[1])


def _step_of(path: str) -> int | None:
    """`checkpoint_step` of a checkpoint of another run, None for a name without a step."""
    suffix = path.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None


def _format_values(values: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in values.items())


def learning_rate_schedule(config: TrainConfig) -> keras.optimizers.schedules.LearningRateSchedule:
    """Staircase exponential decay counted in examples, as the reference trains NeXtVLAD:
    lr = base * decay ** floor(step * batch_size / decay_examples) (docs/nextvlad.md)."""
    return keras.optimizers.schedules.ExponentialDecay(
        config.base_learning_rate,
        decay_steps=config.learning_rate_decay_examples / config.batch_size,
        decay_rate=config.learning_rate_decay,
        staircase=True,
    )


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


class Trainer:
    """Trains one video model (a teacher on all frames, or a plain k-frame student) on labels.

    Usage:
      trainer = Trainer(model_config, train_config, data_config, run_dir, strategy)
      final_metrics = trainer.fit()

    Attributes:
      host_frame_selection: a student's k frames are selected in tf.data (True, the default) or
        inside the step (False: all frames go to the device, as before issue 12); set it before
        `fit`. Both train the same weights; tests and benchmarks compare them.
    """

    host_frame_selection: bool = True

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        data_config: DataConfig,
        run_dir: str,
        strategy: tf.distribute.Strategy,
    ):
        self._created = time.perf_counter()
        self.model_config = model_config
        self.config = train_config
        self.data_config = data_config
        self.run_dir = run_dir
        self.strategy = strategy
        self.is_chief = _is_chief(strategy)
        self.bad_records = videos.bad_record_counter(data_config)
        tf.io.gfile.makedirs(run_dir)

        keras.utils.set_random_seed(train_config.seed)  # the initial weights follow --seed
        self._build_host_state()
        with strategy.scope():
            self.model = build_video_model(model_config)
            self._build_training_parts()
            # Keras's Adam with a large variable's update fused into one kernel (fused_adam.py):
            # the same state and checkpoints, 0.3 to 0.4 of Keras's update time at the reference
            # widths.
            self.optimizer = FusedAdam(learning_rate=learning_rate_schedule(train_config))
            self.optimizer.build(self.trainable_variables)
        # optimizer.iterations is the global step: it is checkpointed with the optimizer and drives
        # the learning-rate schedule, so there is one step counter only.
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, **self._checkpointed_parts()
        )
        checkpoint_dir = self.chief_checkpoint_dir = os.path.join(run_dir, "checkpoints")
        if not self.is_chief:  # other workers write throwaway copies (MultiWorkerMirrored needs it)
            checkpoint_dir = os.path.join(
                run_dir, "tmp", f"worker_{strategy.cluster_resolver.task_id}"
            )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir, max_to_keep=train_config.keep_checkpoints
        )
        self.train_writer = tf.summary.create_file_writer(os.path.join(run_dir, "train"))
        self.eval_writer = tf.summary.create_file_writer(os.path.join(run_dir, "eval"))
        # Forward and backward pass, XLA-compiled when asked (the all-reduce stays outside).
        jit_compile = train_config.jit_compile
        if jit_compile is None:  # on with one GPU (docs/design.md, "Training loop")
            jit_compile = bool(tf.config.list_logical_devices("GPU")) and (
                strategy.num_replicas_in_sync == 1
            )
        self._gradients_fn = (
            tf.function(self._gradients, jit_compile=True) if jit_compile else self._gradients
        )
        self._train_step = self._make_train_step()
        self._saved_step = -1
        self.signals = SignalStop()
        self.eval_history: list[dict] = []
        self.init_from: dict | None = None  # set by `restore`: where the first weights came from
        self._predict = None  # traced once, on the first evaluation

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    # ------------------------------------------------------------- what subclasses extend
    def _build_host_state(self) -> None:
        """Builds host-side training state (outside the strategy scope, so not mirrored)."""

    def _build_training_parts(self) -> None:
        """Builds what trains beside the model (in the strategy scope); nothing for plain runs."""

    def _checkpointed_parts(self) -> dict:
        """Trackables saved with the model and optimizer, by name."""
        return {}

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """What the optimizer updates: the model's weights (and, in subclasses, training-only
        parts such as a projection head)."""
        return self.model.trainable_variables

    def _join(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Adds per-video inputs to the training batches (a teacher cache); identity here."""
        return dataset

    def _id_filter(self) -> Callable | None:
        """video id -> whether to train on the record (SAKD's selected subset); all here."""
        return None

    def _file_join(self) -> yt8m.FileJoin | None:
        """Per-file data the reader joins onto each file's records (a streamed teacher cache);
        none here."""
        return None

    def _cache_file(self, input_context: tf.distribute.InputContext) -> str | None:
        """Where a training pipeline caches its first pass (SAKD's subset); nowhere here."""
        return None

    def _step_needs_all_frames(self) -> bool:
        """Whether the training step reads all frames besides the student's (an online teacher)."""
        return False

    @property
    def selects_frames_on_host(self) -> bool:
        """Whether training batches carry the student's k frames only, selected in tf.data."""
        return (
            self.host_frame_selection
            and self.model_config.k_frames > 0
            and not self._step_needs_all_frames()
        )

    # ----------------------------------------------------------------------------------- data
    @property
    def single_label(self) -> bool:
        return self.data_config.single_label

    def _train_dataset(self, start_step: int) -> tf.distribute.DistributedDataset:
        """The training batches of every replica; with --data_service, each input pipeline's
        reading, parsing and batching run in a tf.data service (`data.data_service`), and the
        teacher-cache join and host frame selection after it, here."""
        data, cfg = self.data_config, self.config
        file_join = self._file_join()
        service = data.data_service
        # A trainer made from Python gets the refusals of the flag checks too (SAKD: a filter).
        flag_checks.check_data_service(data, sakd=self._id_filter() is not None)
        # Under the service, the counter's variables are out of the workers' reach: it counts
        # the records without labels here instead (strict mode: nothing else to count).
        counted_here = bool(service) and data.dataset == "yt8m"
        if service:
            data_service.check_dispatcher(service)

        def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
            dataset = videos.read_videos(
                data,
                self.model_config,
                data.train_data_pattern,
                batch_size=input_context.get_per_replica_batch_size(cfg.batch_size),
                training=True,
                split_file=data.train_split_file,
                shuffle=True,
                repeat=True,
                # A resumed run reshuffles with a new seed rather than replaying the first batches.
                seed=cfg.seed + start_step,
                bad_record_counter=None if service else self.bad_records,
                drop_remainder=True,
                input_context=input_context,
                id_filter=self._id_filter(),
                cache_file=self._cache_file(input_context),
                **({"file_join": file_join} if file_join is not None else {}),
                **({"source_files": True} if counted_here else {}),
            )
            if service:
                dataset = data_service.distribute(dataset, service)
                if counted_here:
                    dataset = data_service.count_unlabelled(dataset, self.bad_records)
            dataset = self._join(dataset)
            if self.selects_frames_on_host:
                dataset = self._select_on_host(dataset, input_context, start_step)
            return dataset

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _select_on_host(
        self, dataset: tf.data.Dataset, input_context: tf.distribute.InputContext, start_step: int
    ) -> tf.data.Dataset:
        """Selects the student's k frames of each batch in tf.data, with the step's seed.

        The strategy hands a pipeline's batches to its replicas in turn (MirroredStrategy's
        multi-device iterator: batch j to the pipeline's replica j mod r, r replicas per
        pipeline, one batch per replica per step), so batch j of a pipeline started at
        `start_step` is trained at step start_step + j // r by replica
        input_pipeline_id * r + j mod r: the seed the step would draw from. A resumed run starts
        its pipeline at the step it resumes from, so each step keeps its seed. (Under XLA the step
        drew other random frames from the same seed; the host draws those of the step without it.)
        """
        replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        first_replica = input_context.input_pipeline_id * replicas
        run_seed, model_config = self.config.seed, self.model_config

        def select(position: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            seed = training_selection_seed(
                run_seed, first_replica + position % replicas, start_step + position // replicas
            )
            return select_student_frames(batch, model_config, seed)

        # deterministic: a batch must reach its step in order, whatever the dataset's options.
        selected = dataset.enumerate().map(
            select, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return selected.prefetch(tf.data.AUTOTUNE)

    def eval_dataset(self, batch_size: int | None = None) -> tf.data.Dataset:
        """The evaluation records in batches of `batch_size` (default --eval_batch_size), in file
        order, the last batch partial."""
        data = self.data_config
        return videos.read_videos(
            data,
            self.model_config,
            data.eval_data_pattern,
            batch_size=batch_size or self.config.eval_batch_size,
            training=False,
            split_file=data.eval_split_file,
            bad_record_counter=self.bad_records,
        )

    def _eval_batches(self) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """What `run_eval` reads: the evaluation batches of every replica when evaluation runs
        on all of them (`evaluation.distributes`), else `eval_dataset`."""
        if not evaluation.distributes(self.strategy):
            return self.eval_dataset()
        return evaluation.distributed_eval_dataset(
            self.strategy, self.eval_dataset, self.config.eval_batch_size
        )

    # ----------------------------------------------------------------------------------- steps
    def _losses(self, batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """This replica's share of the training losses; "loss" is what the gradient follows."""
        outputs = self.model(model_inputs(batch, self.model_config, seed), training=True)
        # Sigmoid cross-entropy of multi-hot labels, softmax cross-entropy of class indices.
        per_sample = losses.label_loss(batch["labels"], outputs["logits"])
        label_loss = tf.nn.compute_average_loss(
            per_sample, global_batch_size=self.config.batch_size
        )
        regularization = self._regularization_loss()
        return {
            "loss": label_loss + regularization,
            "label_loss": label_loss,
            "regularization_loss": regularization,
        }

    def _regularization_loss(self) -> tf.Tensor:
        """This replica's share of the l2 penalty (the classifier's kernel regularizer)."""
        if not self.model.losses:
            return tf.constant(0.0)
        return tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))

    def _gradients(self, batch: dict[str, tf.Tensor], seed: tf.Tensor):
        with tf.GradientTape() as tape:
            values = self._losses(batch, seed)
        return values, tape.gradient(values["loss"], self.trainable_variables)

    def _replica_step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        cfg = self.config
        context = tf.distribute.get_replica_context()
        # Used by a student whose batch holds all frames; a batch selected on the host drew its
        # frames from this same seed already (`_select_on_host`).
        seed = training_selection_seed(
            cfg.seed, context.replica_id_in_sync_group, self.optimizer.iterations
        )
        variables = self.trainable_variables
        # Strings (video ids) cannot enter an XLA cluster, and the step does not need them.
        tensors = {name: value for name, value in batch.items() if value.dtype != tf.string}
        values, grads = self._gradients_fn(tensors, seed)
        # Clip the global gradient (the sum over replicas), not each replica's share.
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grad_norm = tf.linalg.global_norm(grads)
        if cfg.clip_gradient_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, cfg.clip_gradient_norm, use_norm=grad_norm)
        # Keras's TensorFlow optimizer sums gradients over replicas once more inside
        # apply_gradients (keras/src/backend/tensorflow/optimizer.py, _all_reduce_sum_gradients),
        # so each replica hands it 1/num_replicas of the already reduced gradient.
        if context.num_replicas_in_sync > 1:
            grads = [g / context.num_replicas_in_sync for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        # every replica holds the same global norm: count it once in the SUM of the step
        values["grad_norm"] = grad_norm / context.num_replicas_in_sync
        return values

    def _make_train_step(self) -> Callable:
        strategy = self.strategy

        def one_step(iterator):
            per_replica = strategy.run(self._replica_step, args=(next(iterator),))
            values = {
                name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in per_replica.items()
            }
            # One boolean for the NaN guard: the host reads it every call (a scalar the step has
            # computed anyway; the loss values themselves are fetched only to log them).
            values["finite"] = tf.reduce_all(
                tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in values.values()])
            )
            return values

        @tf.function
        def train_steps(iterator, num_steps):
            """`num_steps` (>= 1) steps; the values of the last one run, and "steps", how many
            ran: a non-finite step is the last, so that no update follows it."""
            values = one_step(iterator)
            done = tf.constant(1, tf.int64)
            for _ in tf.range(num_steps - 1):
                if not values["finite"]:
                    break
                values = one_step(iterator)
                done += 1
            return {**values, "steps": done}

        return train_steps

    def _steps_in_call(self, step: int, max_steps: int) -> int:
        """Steps of the next call from `step`: at most steps_per_loop, and none past the next step
        that logs, checkpoints, evaluates or ends training."""
        cfg = self.config
        until = min(cfg.steps_per_loop, max_steps - step)
        for every in (cfg.log_every_steps, cfg.checkpoint_every_steps, cfg.eval_every_steps):
            if every:
                until = min(until, every - step % every)
        return max(1, until)

    # ----------------------------------------------------------------------------------- loop
    def restore(self) -> int:
        """Restores the latest checkpoint if any; returns the step it resumes from.

        A run without a checkpoint of its own takes its model's weights from --init_from_run, if
        given (`_init_from_run`); a run with one never re-initialises, whatever the flag says.
        Every worker restores the chief's latest checkpoint (not its own throwaway copies, which a
        killed worker may have left behind at another step), and they check that they agree."""
        latest = tf.train.latest_checkpoint(self.chief_checkpoint_dir)
        init_file = os.path.join(self.run_dir, INIT_FROM_FILE)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            logging.warning("Restored %s: resuming at step %d", latest, self.step)
            self.init_from = read_json(init_file)  # how the run started, if from another run
        elif self.config.init_from_run:
            self._init_from_run(self.config.init_from_run, init_file)
        elif self.is_chief and tf.io.gfile.exists(init_file):
            # Left by an initialised start killed before its first checkpoint: not this start.
            tf.io.gfile.remove(init_file)
        self._saved_step = self.step
        strategy_lib.check_same_step(self.strategy, self.step)
        return self.step

    def _init_from_run(self, source: str, init_file: str) -> None:
        """Loads the model weights (only: the optimizer, its step and training-only parts such
        as a projection head or SAKD state start fresh) of `source`'s latest checkpoint, and
        records where they came from in `init_file`, for every later metrics.json of the run.

        Raises:
          FlagError: `source` has no checkpoint, or one that does not hold every model weight
            at its shape (`runs.check_init_source` refuses such a source earlier, by its flags).
        """
        checkpoint = tf.train.latest_checkpoint(os.path.join(source, "checkpoints"))
        if not checkpoint:
            raise FlagError(f"--init_from_run={source} has no checkpoint")
        try:
            # expect_partial: the source's optimizer, teacher parts, ... are not wanted here;
            # assert_existing_objects_matched: but every model variable must have been loaded.
            status = tf.train.Checkpoint(model=self.model).restore(checkpoint)
            status.expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise FlagError(
                f"--init_from_run={source}: {checkpoint} does not fit this model ({first_line})"
            ) from e
        self.init_from = {
            "run_dir": source,
            "checkpoint": os.path.abspath(checkpoint) if "://" not in checkpoint else checkpoint,
            "source_step": _step_of(checkpoint),
        }
        if self.is_chief:
            write_json(init_file, self.init_from)
        logging.warning(
            "Initialised the model from %s (--init_from_run; model weights only): step 0",
            checkpoint,
        )

    def save(self, force: bool = False) -> None:
        """Saves a checkpoint of the current step, unless one exists already (or `force`: state
        beside the step changed, such as SAKD's epoch bookkeeping).

        Raises:
          NonFiniteLossError: a weight is NaN or infinite (nothing is saved).
        """
        if force or self.step != self._saved_step:
            self._check_finite_weights()
            self.signals.saving = True  # a signal now waits for the save to finish
            try:
                self.manager.save(checkpoint_number=self.step)
            finally:
                self.signals.saving = False
            self._saved_step = self.step

    def _check_finite_weights(self) -> None:
        """A checkpoint is never written of non-finite weights (a NaN learning rate, or an update
        that overflowed, makes them so while the step's loss and gradients were finite)."""
        for variable in self.trainable_variables + self.model.non_trainable_variables:
            if tf.as_dtype(variable.dtype).is_floating and not bool(
                tf.reduce_all(tf.math.is_finite(variable))
            ):
                raise NonFiniteLossError(
                    f"non-finite weights ({variable.path}) after step {self.step}; "
                    f"{self._kept_checkpoint()} {_ADVICE}"
                )

    def _kept_checkpoint(self) -> str:
        """What a diverged run leaves: its latest checkpoint, which is finite."""
        latest = self.manager.latest_checkpoint
        if not latest:
            return "no checkpoint was saved"
        return f"the last checkpoint (step {checkpoint_step(latest)}, {latest}) is kept"

    def fit(self) -> dict:
        """Trains to --max_steps from the latest checkpoint, then evaluates; returns metrics.json.

        Raises:
          TrainingStopped: SIGINT or SIGTERM (the checkpoint of the step is saved).
          NonFiniteLossError: the run diverged (the last finite checkpoint stays the latest).
        """
        with self.signals:
            try:
                return self._fit()
            except TrainingStopped as stop:
                self.save()
                stop.step = self.step
                latest = self.manager.latest_checkpoint
                stop.checkpoint_step = checkpoint_step(latest) if latest else None
                raise

    def _fit(self) -> dict:
        cfg = self.config
        start_step = self.restore()
        results = {"resumed_from_step": start_step}
        if start_step < cfg.max_steps:
            results["train"] = self._train_until(cfg.max_steps, start_step)
        return self.finish(results)

    def _train_until(
        self, max_steps: int, start_step: int, iterator=None, final_step: int | None = None
    ) -> dict:
        """Trains to `max_steps`; `iterator` (over `_train_dataset`) is made here unless given.

        Periodic evaluations skip `final_step` (default max_steps), which `finish` evaluates."""
        cfg = self.config
        if iterator is None:
            iterator = iter(self._train_dataset(start_step))
        progbar = keras.utils.Progbar(max_steps, stateful_metrics=["loss", "examples/s"])
        if cfg.progress_bar:
            progbar.update(start_step)
        window_start, window_steps = time.perf_counter(), 0
        started, last = time.perf_counter(), {}
        step = start_step
        try:
            while step < max_steps:
                num_steps = self._steps_in_call(step, max_steps)
                outputs = self._train_step(iterator, tf.constant(num_steps, tf.int64))
                done = int(outputs.pop("steps"))
                step += done
                window_steps += done
                if not bool(outputs["finite"]):
                    self._raise_non_finite(step, outputs)
                if step % cfg.log_every_steps == 0 or step == max_steps:
                    last = {k: float(v) for k, v in outputs.items() if k != "finite"}
                    now = time.perf_counter()
                    last["examples_per_sec"] = window_steps * cfg.batch_size / (now - window_start)
                    window_start, window_steps = now, 0
                    self._write_train_summaries(step, last)
                    if cfg.progress_bar:
                        progbar.update(
                            step, [("loss", last["loss"]), ("examples/s", last["examples_per_sec"])]
                        )
                if step % cfg.checkpoint_every_steps == 0:
                    self.save()
                if (
                    cfg.eval_every_steps
                    and step % cfg.eval_every_steps == 0
                    and step != (max_steps if final_step is None else final_step)
                ):
                    self._write_eval_summaries(step, self.run_eval())
                self.signals.check()
        except NonFiniteLossError:
            raise  # the weights of this step are not worth keeping
        except BaseException as e:
            # Whatever else stopped the loop (a bad record, a signal), keep what was trained; but
            # not after a lost worker: its step may be half applied (synchronised batch-norm
            # statistics updated, weights not), and the last checkpoint is what all workers share.
            if not strategy_lib.is_worker_failure(e, self.strategy):
                self.save()
            raise
        self.save()
        last["wall_time_s"] = time.perf_counter() - started
        last["steps"] = step - start_step
        return last

    def _raise_non_finite(self, step: int, outputs: dict[str, tf.Tensor]) -> None:
        values = {name: float(v) for name, v in outputs.items() if name != "finite"}
        losses_finite = all(math.isfinite(v) for n, v in values.items() if n != "grad_norm")
        what = "gradient" if losses_finite else "loss"
        raise NonFiniteLossError(
            f"non-finite {what} at step {step}: {_format_values(values)}; "
            f"{self._kept_checkpoint()} {_ADVICE}"
        )

    def run_eval(self) -> dict:
        """Evaluates the model now; every evaluation is kept in `eval_history` (metrics.json),
        with its wall seconds."""
        started = time.perf_counter()
        if self._predict is None:
            self._predict = make_predict_fn(self.model, self.model_config, self.single_label)
            if evaluation.distributes(self.strategy):  # every replica predicts its share
                self._predict = evaluation.make_replica_predict_fn(
                    self.strategy, self._predict, self.model_config.num_classes
                )
            self._class_names = videos.class_names(self.data_config)
        metrics = evaluate(
            self.model,
            self.model_config,
            self._eval_batches(),
            predict=self._predict,
            single_label=self.single_label,
            class_names=self._class_names,
            between_batches=self.signals.check,
            strategy=self.strategy,
        )
        # Per-class accuracies only in the final evaluation (metrics.json "eval").
        scalars = {name: value for name, value in metrics.items() if not isinstance(value, dict)}
        self.eval_history.append(
            {"step": self.step, **scalars, "seconds": time.perf_counter() - started}
        )
        return metrics

    def _write_train_summaries(self, step: int, values: dict) -> None:
        with self.train_writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)
            tf.summary.scalar("learning_rate", self.optimizer.learning_rate)
        self.train_writer.flush()

    def _write_eval_summaries(self, step: int, values: dict) -> None:
        with self.eval_writer.as_default(step=step):
            for name, value in values.items():
                if name != "num_videos" and isinstance(value, float):
                    tf.summary.scalar(name, value)
        self.eval_writer.flush()

    def finish(self, results: dict) -> dict:
        """Final evaluation, and metrics.json in the run directory."""
        results["step"] = self.step
        if self.init_from is not None:
            results["init_from"] = self.init_from
        results["model"] = model_size(self.model, self.model_config, self.data_config.max_frames)
        if self.data_config.eval_data_pattern:
            results["eval"] = self.run_eval()
            results["eval_history"] = self.eval_history
            self._write_eval_summaries(self.step, results["eval"])
        results["bad_records"] = self.bad_records.counts()
        unlabelled = self.bad_records.unlabelled_warning()
        if unlabelled:  # read, not skipped: they trained or were scored as all-negative
            logging.warning("%s", unlabelled)
        # Wall seconds since the trainer was made (model building, training, evaluations), and
        # of the evaluations alone.
        results["eval_seconds"] = sum(e["seconds"] for e in self.eval_history)
        results["wall_time_s"] = time.perf_counter() - self._created
        if self.is_chief:
            write_json(os.path.join(self.run_dir, "metrics.json"), results)
        else:  # a worker's throwaway checkpoint copies
            tf.io.gfile.rmtree(self.manager.directory)
        return results
