"""The configuration layer: frozen dataclasses that every part of the library takes instead of flags.

This module is the bottom of the import graph (docs/design.md, "Layering"): it imports nothing of
yt8m_kd, so data, modeling, distillation, training and export code can all take these classes.
`yt8m_kd.flags` turns absl flag values into them and back (a run's flags.txt); field names are the
flag names, except where a field says otherwise.

  ModelConfig    what to build (NeXtVLAD widths, classifier, k frames, image backbone)
  DataConfig     where the records are and how to read them
  TrainConfig    optimisation, bookkeeping and devices of a run
  DistillConfig  the teacher (a run or a cache) and the weights of the student loss
  SAKDConfig     the constants of SAKD
  RunConfig      all of the above for one run: what `training.runs.make_trainer` takes

The names of the valid choices (frame selections, backbones, strategies, ...) live here too, so the
flags can offer them without importing the code that implements them; each implementing module
checks that its registry matches.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

# ------------------------------------------------------------------------------------ choices
DATASETS = ("yt8m", "ucf101")
SELECTION_METHODS = ("uniform", "random", "first", "middle", "last", "first_middle_last")
CLASSIFIERS = ("logistic", "moe", "softmax")
BACKBONES = (
    "small_cnn",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mobilenet_v2",
    "efficientnet_b0",
    "resnet50",
)
POOLINGS = ("nextvlad", "mean")
STRATEGIES = ("one_device", "mirrored", "multi_worker")
SCHEDULES = ("polynomial", "linear", "cosine")
MAPPINGS = ("paper", "released")

# Exponent of the polynomial interruption schedule (docs/sakd.md, "Constants reported").
POLYNOMIAL_POWER = 0.9


class FlagError(ValueError):
    """A bad flag or configuration value, found before any work starts; launchers print it as one
    line."""


# -------------------------------------------------------------------------------------- model
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a video model (docs/nextvlad.md).

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
      frame_selection: how a student's k frames are chosen, one of `SELECTION_METHODS` (see
        `yt8m_kd.data.sampling`).
      backbone: "" for frame features (YouTube-8M, the fields above); else one of `BACKBONES`, a
        keras.applications image backbone (or the small CNN) run on every frame (UCF101).
        feature_sizes is then unused; the NeXtVLAD fields size the one image-feature branch.
      image_size: input height = width of the frames of an image model (must be set with backbone).
      backbone_weights: "" or "none" (random init), "imagenet" (the Keras download) or a local
        weights file (.weights.h5, .keras, or a Keras application's legacy .h5) for the backbone.
      pooling: how an image model pools its per-frame features, one of `POOLINGS`.
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


# --------------------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the records are and how to read them.

    `dataset` is the data family (yt8m_kd.data.videos), one of `DATASETS`: "yt8m" frame features
    or "ucf101" clips, whose frames directories are read with the official split files;
    `max_frames` is the frames per video (UCF101: the T frames sampled per clip).

    `data_service` is None (read on this host) or the dispatcher address grpc://HOST:PORT of a
    tf.data service cluster that reads, parses and batches the training records instead
    (`yt8m_kd.data.data_service`). It says how the records are read, not which: a run may go on
    with or without it (`training.runs`).
    """

    dataset: str = "yt8m"
    train_data_pattern: str | None = None
    eval_data_pattern: str | None = None
    feature_names: tuple[str, ...] = ("rgb", "audio")
    max_frames: int = 300
    shuffle_buffer: int = 1024
    skip_bad_records: bool = False
    class_index_file: str | None = None
    train_split_file: str | None = None
    eval_split_file: str | None = None
    random_flip: bool = True  # UCF101 training augmentation
    data_service: str | None = None

    @property
    def single_label(self) -> bool:
        """UCF101 has one class per video (softmax); YouTube-8M several (independent sigmoids)."""
        return self.dataset == "ucf101"


# ----------------------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, bookkeeping and devices of a run; defaults are the reference's
    (docs/nextvlad.md, "Training").

    `jit_compile` and `mixed_precision` left at None are decided by the trainer from the devices:
    on with one GPU (docs/design.md, "Training loop").

    `init_from_run` is another run directory whose latest checkpoint gives the model its first
    weights (model weights only: not the optimizer, step, teacher, projection head or SAKD state),
    so that a student can be fine-tuned from a trained model instead of random weights. It is
    used only when the run has no checkpoint of its own: a resumed run goes on from its own.

    `steps_per_loop` training steps run inside one `tf.function` call (a loop over the
    distributed iterator), which pays for small models dominated by the per-call overhead; a call
    never runs past the next step that logs, checkpoints, evaluates or ends the run, so those
    happen at their steps as with one step per call, and the weights are the same.
    """

    batch_size: int = 80  # global, summed over replicas
    eval_batch_size: int = 256
    base_learning_rate: float = 2e-4
    learning_rate_decay: float = 0.8
    learning_rate_decay_examples: int = 2_000_000
    clip_gradient_norm: float = 1.0
    max_steps: int = 1000
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 3
    eval_every_steps: int = 0
    log_every_steps: int = 50
    seed: int = 0
    jit_compile: bool | None = None
    mixed_precision: bool | None = None
    strategy: str = "one_device"
    num_logical_cpus: int = 0
    progress_bar: bool = True
    init_from_run: str | None = None
    steps_per_loop: int = 1


# ------------------------------------------------------------------------------- distillation
CACHE_JOINS = ("auto", "stream", "memory")


@dataclasses.dataclass(frozen=True)
class DistillationWeights:
    """Weights of the distillation terms added to the label loss.

    Defaults: `L_CE + 0.01 L_pred + 0.001 L_rep`, the weighting the public re-implementation of
    Bhardwaj et al. found to work where the unweighted sum fails (docs/nextvlad.md). The KL
    term is off by default; for single-label data SAKD uses it with T = 4 (docs/sakd.md).
    """

    w_pred: float = 0.01
    w_rep: float = 0.001
    w_kl: float = 0.0
    temperature: float = 4.0

    def __post_init__(self):
        # Written so that nan fails too (every comparison with nan is false).
        for name in ("w_pred", "w_rep", "w_kl"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if not 0 < self.temperature < math.inf:
            raise ValueError(f"temperature must be finite and positive, got {self.temperature}")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Where the teacher comes from, and the loss weights.

    Attributes:
      teacher_run_dir: a finished teacher run (flags.txt + checkpoints/); the online teacher.
      teacher_checkpoint: a checkpoint of that run other than its latest (with a cache, the
        experiments record here the checkpoint the cache was made from).
      teacher_cache_dir: a teacher cache (launchers/cache_teacher.py, flag --teacher_cache); when
        given, the teacher is never run and teacher_run_dir is not needed.
      teacher_cache_join: how a cache reaches the batches: "stream" (each input file's part read
        with the file; memory independent of the number of videos), "memory" (the whole cache in
        host memory, looked up by id) or "auto" (stream where the cache and the run allow it,
        yt8m_kd.distill.cache_stream). The batches are the same either way.
      weights: w_pred, w_rep, w_kl and the KL temperature.
    """

    teacher_run_dir: str | None = None
    teacher_checkpoint: str | None = None
    teacher_cache_dir: str | None = None
    teacher_cache_join: str = "auto"
    weights: DistillationWeights = dataclasses.field(default_factory=DistillationWeights)

    def __post_init__(self):
        if self.teacher_cache_join not in CACHE_JOINS:
            raise ValueError(
                f"teacher_cache_join={self.teacher_cache_join!r}; valid: {', '.join(CACHE_JOINS)}"
            )


# --------------------------------------------------------------------------------------- SAKD
def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(
            f"unknown interruption schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}"
        )


def check_mapping(mapping: str) -> None:
    if mapping not in MAPPINGS:
        raise ValueError(
            f"unknown strength mapping {mapping!r}; valid mappings: {', '.join(MAPPINGS)}"
        )


def check_memory(memory: float) -> None:
    if not 0.0 <= memory < 1.0:
        raise ValueError(f"memory (lambda) must be in [0, 1), got {memory}")


@dataclasses.dataclass(frozen=True)
class SAKDConfig:
    """Every constant of docs/sakd.md, with the spec's defaults (flags: `--sakd_<field>`).

    Attributes:
      ratio: share r of the training set selected for the epochs between two selections (10% for
        video, "Constants reported").
      selection_interval: epochs between two difficulty passes and selections (5 is "Ours*", the
        spec's default; 1 reproduces "Ours").
      schedule: interruption-rate schedule over epochs, one of `SCHEDULES` (polynomial is the
        paper's best).
      eta: interruption threshold: drop frames while beta < eta, shuffle from beta >= eta on.
      memory: lambda in `alpha = lambda * alpha_old + (1 - lambda) * current` (0.1).
      gamma: quality/diversity trade-off of the selection kernel
        `L = gamma * S + (1 - gamma) * diag(1 - d_hat)` (0.5, equal weight).
      mapping: difficulty -> strength, "paper" (`1 - d_hat`, the spec) or "released" (the
        released code's `beta * d_hat`, for comparison only).
      power: exponent of the polynomial schedule `1 - (1 - n/N)^power` (0.9; no flag).
      feature_dim: beyond the paper: the diversity features are the teacher repr projected to
        this many dimensions by a fixed random Gaussian matrix (cosine similarities are nearly
        kept: Johnson-Lindenstrauss), so that the selection holds N x feature_dim floats rather
        than N x repr width; 0 (the paper) uses the repr as it is.
      class_balance: beyond the paper: class-balanced selection, no class's share of a
        selection above its share of the data (`selection.ClassQuotas`); off is the paper's.
    """

    ratio: float = 0.1
    selection_interval: int = 5
    schedule: str = "polynomial"
    eta: float = 0.5
    memory: float = 0.1
    gamma: float = 0.5
    mapping: str = "paper"
    power: float = POLYNOMIAL_POWER
    feature_dim: int = 0
    class_balance: bool = False

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if (
            isinstance(self.selection_interval, bool)
            or not isinstance(self.selection_interval, numbers.Integral)
            or self.selection_interval < 1
        ):
            raise ValueError(
                f"selection_interval must be an int >= 1, got {self.selection_interval!r}"
            )
        check_schedule(self.schedule)
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        check_memory(self.memory)
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        check_mapping(self.mapping)
        if not self.power > 0:
            raise ValueError(f"power must be positive, got {self.power}")
        if isinstance(self.feature_dim, bool) or not (
            isinstance(self.feature_dim, numbers.Integral) and self.feature_dim >= 0
        ):
            raise ValueError(f"feature_dim must be an int >= 0, got {self.feature_dim!r}")


# ---------------------------------------------------------------------------------------- run
@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run is made of; `yt8m_kd.flags` reads and writes it as flags.

    `distill` is None for a model trained on labels only (a teacher, a plain student); `sakd` is
    None unless the run trains with SAKD (which also needs `distill` with a teacher cache), and
    then `num_epochs` is its length in epochs over the selected samples (instead of max_steps).
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distill: DistillConfig | None = None
    sakd: SAKDConfig | None = None
    num_epochs: int = 10

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @property
    def kind(self) -> str:
        """ "sakd", "distill" or "plain": which trainer runs it."""
        if self.sakd is not None:
            return "sakd"
        return "distill" if self.distill is not None else "plain"
