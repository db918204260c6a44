"""Every absl flag of the launchers, defined in one place.

Library code never reads flags: launchers call `define_all_flags()` and then turn the parsed values
into plain arguments and frozen dataclasses with `model_config_from_flags` and friends. The same
definitions parse the `models/*.flags` presets, into a private FlagValues, in
`yt8m_kd.modeling.build_model_from_flagfile`.
"""

from __future__ import annotations

import os

from absl import flags

from yt8m_kd.data.sampling import SELECTION_METHODS
from yt8m_kd.modeling.config import ModelConfig
from yt8m_kd.training.strategy import STRATEGIES

_DEFAULT_MODEL = ModelConfig()


def _defined(fv: flags.FlagValues, name: str) -> bool:
    return name in fv


def define_model_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Flags of ModelConfig; names are its field names."""
    if _defined(fv, "cluster_size"):
        return
    d = _DEFAULT_MODEL
    flags.DEFINE_list(
        "feature_sizes",
        [str(s) for s in d.feature_sizes],
        "Per-frame size of each feature, in the order of --feature_names.",
        flag_values=fv,
    )
    flags.DEFINE_integer("num_classes", d.num_classes, "Number of classes.", flag_values=fv)
    flags.DEFINE_integer("cluster_size", d.cluster_size, "NeXtVLAD clusters K.", flag_values=fv)
    flags.DEFINE_integer("groups", d.groups, "NeXtVLAD groups G.", flag_values=fv)
    flags.DEFINE_integer("expansion", d.expansion, "NeXtVLAD expansion lambda.", flag_values=fv)
    flags.DEFINE_integer("hidden_size", d.hidden_size, "Hidden FC width H.", flag_values=fv)
    flags.DEFINE_integer(
        "gating_reduction", d.gating_reduction, "SE context gating reduction r.", flag_values=fv
    )
    flags.DEFINE_float("drop_rate", d.drop_rate, "Dropout before the hidden FC.", flag_values=fv)
    flags.DEFINE_enum(
        "classifier",
        d.classifier,
        ["logistic", "moe", "softmax"],
        "Video-level classifier: logistic or moe (multi-label, YouTube-8M), softmax (single-label, "
        "UCF101).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "moe_num_mixtures",
        d.moe_num_mixtures,
        "Experts per class for --classifier=moe.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "l2_penalty", d.l2_penalty, "l2 penalty on the classifier weights.", flag_values=fv
    )
    flags.DEFINE_integer(
        "k_frames",
        d.k_frames,
        "Frames the model sees per video: 0 = all frames (teacher), k > 0 = a k-frame student.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "frame_selection",
        d.frame_selection,
        list(SELECTION_METHODS),
        "How a student's k frames are chosen.",
        flag_values=fv,
    )
    # Image models (UCF101): a keras.applications backbone on every frame.
    from yt8m_kd.modeling.frame_encoders import BACKBONES, POOLINGS

    flags.DEFINE_enum(
        "backbone",
        d.backbone,
        ["", *BACKBONES],
        "Image backbone run on every frame; empty = frame features (YouTube-8M).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "image_size", d.image_size, "Frame height = width of an image model.", flag_values=fv
    )
    flags.DEFINE_string(
        "backbone_weights",
        d.backbone_weights,
        "Backbone weights: empty or none (random init), imagenet (Keras download), or a local "
        ".weights.h5 / .keras / legacy .h5 file.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "pooling", d.pooling, list(POOLINGS), "Pooling of an image model's frames.", flag_values=fv
    )
    flags.DEFINE_boolean(
        "trainable_backbone",
        d.trainable_backbone,
        "Train the backbone (False freezes its weights and batch-norm statistics).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "temporal_encoding",
        d.temporal_encoding,
        "Image models: also pool a time-weighted copy of the frame features, so that frame order "
        "matters (NeXtVLAD and the mean alone are order-blind).",
        flag_values=fv,
    )


def define_data_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if _defined(fv, "feature_names"):
        return
    flags.DEFINE_list(
        "feature_names", ["rgb", "audio"], "Frame feature names in the records.", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_frames", 300, "Frames kept per video; longer videos are cut.", flag_values=fv
    )
    flags.DEFINE_string(
        "train_data_pattern", None, "Glob of training TFRecord shards.", flag_values=fv
    )
    flags.DEFINE_string(
        "eval_data_pattern", None, "Glob of evaluation TFRecord shards.", flag_values=fv
    )
    flags.DEFINE_boolean(
        "skip_bad_records",
        False,
        "Skip and count malformed records and corrupt files instead of stopping.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "shuffle_buffer", 1024, "Records in the training shuffle buffer.", flag_values=fv
    )
    flags.DEFINE_enum(
        "dataset",
        "yt8m",
        ["yt8m", "ucf101"],
        "Data family: yt8m (frame-feature records, multi-label) or ucf101 (clips of JPEG frames, "
        "single-label; --max_frames is the frames sampled per clip).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "class_index_file", None, "UCF101: classInd.txt (class names).", flag_values=fv
    )
    flags.DEFINE_string(
        "train_split_file",
        None,
        "UCF101: trainlist0N.txt, when --train_data_pattern is a frames directory.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "random_flip",
        True,
        "UCF101 training: flip each clip horizontally with probability 1/2. Turn it off where "
        "left and right are different classes (the synthetic set's SlideRight / SlideLeft).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "eval_split_file",
        None,
        "UCF101: testlist0N.txt, when --eval_data_pattern is a frames directory.",
        flag_values=fv,
    )


def define_training_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    if _defined(fv, "run_dir"):
        return
    flags.DEFINE_string(
        "run_dir", None, "Run directory: checkpoints, logs, metrics.", flag_values=fv
    )
    flags.DEFINE_integer("batch_size", 80, "Global batch size (all replicas).", flag_values=fv)
    flags.DEFINE_integer("eval_batch_size", 256, "Global evaluation batch size.", flag_values=fv)
    flags.DEFINE_float("base_learning_rate", 2e-4, "Adam learning rate.", flag_values=fv)
    flags.DEFINE_float(
        "learning_rate_decay", 0.8, "Staircase decay factor of the learning rate.", flag_values=fv
    )
    flags.DEFINE_integer(
        "learning_rate_decay_examples",
        2_000_000,
        "Examples between two learning-rate decays.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "clip_gradient_norm", 1.0, "Global-norm gradient clipping (0 = off).", flag_values=fv
    )
    flags.DEFINE_integer("max_steps", 1000, "Training steps.", flag_values=fv)
    flags.DEFINE_integer(
        "checkpoint_every_steps", 500, "Steps between checkpoints.", flag_values=fv
    )
    flags.DEFINE_integer(
        "keep_checkpoints", 3, "Checkpoints kept in run_dir/checkpoints.", flag_values=fv
    )
    flags.DEFINE_integer(
        "eval_every_steps", 0, "Steps between evaluations (0 = only at the end).", flag_values=fv
    )
    flags.DEFINE_integer(
        "log_every_steps", 50, "Steps between TensorBoard scalar writes.", flag_values=fv
    )
    flags.DEFINE_enum(
        "strategy", "one_device", list(STRATEGIES), "tf.distribute strategy.", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_logical_cpus",
        0,
        "Split the CPU into this many logical devices (for MirroredStrategy on CPU; 0 = no split).",
        flag_values=fv,
    )
    flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)
    flags.DEFINE_boolean(
        "jit_compile",
        None,
        "XLA-compile the forward and backward pass (default: on with one GPU; under several "
        "replicas the synchronised batch norm's all-reduce would sit inside the XLA cluster).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "mixed_precision",
        None,
        "Compute in bfloat16 with float32 weights (Keras policy mixed_bfloat16; default: on with a "
        "GPU). bfloat16 has float32's range, so no loss scaling is needed.",
        flag_values=fv,
    )
    flags.DEFINE_boolean("progress_bar", True, "Show a progress bar.", flag_values=fv)


def define_distill_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Distillation: a teacher (run or cache) and the weights of the student loss."""
    if _defined(fv, "teacher_run_dir"):
        return
    flags.DEFINE_string(
        "teacher_run_dir",
        None,
        "A finished teacher run: distil from it, running it on all frames in every step.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "teacher_checkpoint",
        None,
        "A teacher checkpoint other than the run's latest.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "teacher_cache",
        None,
        "A teacher cache (launchers/cache_teacher.py): distil from it without running the teacher.",
        flag_values=fv,
    )
    flags.DEFINE_float("w_pred", 0.01, "Weight of L_pred (probabilities).", flag_values=fv)
    flags.DEFINE_float("w_rep", 0.001, "Weight of L_rep (representations).", flag_values=fv)
    flags.DEFINE_float("w_kl", 0.0, "Weight of the temperature KL loss.", flag_values=fv)
    flags.DEFINE_float("temperature", 4.0, "Temperature T of the KL loss.", flag_values=fv)


def define_sakd_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """SAKD (reference/sakd.md): every constant of the spec is a flag; defaults are the paper's."""
    if _defined(fv, "sakd"):
        return
    from yt8m_kd.distill.sakd import MAPPINGS, SCHEDULES, SAKDConfig

    d = SAKDConfig()
    flags.DEFINE_boolean(
        "sakd", False, "Train with SAKD (needs --teacher_cache and --num_epochs).", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_epochs",
        10,
        "SAKD: epochs N of the interruption schedule; an epoch is one pass over the selected "
        "samples (replaces --max_steps).",
        flag_values=fv,
    )
    flags.DEFINE_float("sakd_ratio", d.ratio, "SAKD: fraction of samples selected.", flag_values=fv)
    flags.DEFINE_integer(
        "sakd_selection_interval",
        d.selection_interval,
        "SAKD: epochs between difficulty passes and selections.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "sakd_schedule",
        d.schedule,
        list(SCHEDULES),
        "SAKD: interruption-rate schedule beta(n).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "sakd_eta",
        d.eta,
        "SAKD: beta below eta drops frames, from eta on shuffles them.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "sakd_memory",
        d.memory,
        "SAKD: lambda, the strength's memory of its past value.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "sakd_gamma",
        d.gamma,
        "SAKD: quality/diversity trade-off of the selection kernel.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "sakd_mapping",
        d.mapping,
        list(MAPPINGS),
        "SAKD: difficulty -> strength, the paper's (1 - d_hat) or the released code's "
        "(beta * d_hat, for comparison).",
        flag_values=fv,
    )


def define_all_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Every flag a preset may set; launchers call this so any preset parses."""
    define_model_flags(fv)
    define_data_flags(fv)
    define_training_flags(fv)
    define_distill_flags(fv)
    define_sakd_flags(fv)


def sakd_config_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """The SAKDConfig of the flags, or None without --sakd. Bad values raise FlagError."""
    from yt8m_kd.distill.sakd import SAKDConfig

    if not fv.sakd:
        return None
    if not fv.teacher_cache:
        raise FlagError("--sakd needs --teacher_cache (launchers/cache_teacher.py makes one)")
    if fv.num_epochs <= 0:
        raise FlagError(f"--num_epochs={fv.num_epochs} must be positive")
    try:
        return SAKDConfig(
            ratio=fv.sakd_ratio,
            selection_interval=fv.sakd_selection_interval,
            schedule=fv.sakd_schedule,
            eta=fv.sakd_eta,
            memory=fv.sakd_memory,
            gamma=fv.sakd_gamma,
            mapping=fv.sakd_mapping,
        )
    except ValueError as e:
        raise FlagError(f"SAKD flags: {e}") from e


def distill_config_from_flags(fv: flags.FlagValues = flags.FLAGS):
    """The DistillConfig of the flags, or None when they ask for no distillation."""
    from yt8m_kd.distill.losses import DistillationWeights
    from yt8m_kd.training.distillation import DistillConfig

    if not (fv.teacher_run_dir or fv.teacher_cache):
        return None
    return DistillConfig(
        teacher_run_dir=fv.teacher_run_dir,
        teacher_checkpoint=fv.teacher_checkpoint,
        teacher_cache_dir=fv.teacher_cache,
        weights=DistillationWeights(
            w_pred=fv.w_pred, w_rep=fv.w_rep, w_kl=fv.w_kl, temperature=fv.temperature
        ),
    )


def model_config_from_flags(fv: flags.FlagValues = flags.FLAGS) -> ModelConfig:
    return ModelConfig(
        feature_sizes=tuple(int(s) for s in fv.feature_sizes),
        num_classes=fv.num_classes,
        cluster_size=fv.cluster_size,
        groups=fv.groups,
        expansion=fv.expansion,
        hidden_size=fv.hidden_size,
        gating_reduction=fv.gating_reduction,
        drop_rate=fv.drop_rate,
        classifier=fv.classifier,
        moe_num_mixtures=fv.moe_num_mixtures,
        l2_penalty=fv.l2_penalty,
        k_frames=fv.k_frames,
        frame_selection=fv.frame_selection,
        backbone=fv.backbone,
        image_size=fv.image_size,
        backbone_weights=fv.backbone_weights,
        pooling=fv.pooling,
        trainable_backbone=fv.trainable_backbone,
        temporal_encoding=fv.temporal_encoding,
    )


def data_config_from_flags(fv: flags.FlagValues = flags.FLAGS):
    from yt8m_kd.training.config import DataConfig

    return DataConfig(
        train_data_pattern=fv.train_data_pattern,
        eval_data_pattern=fv.eval_data_pattern,
        feature_names=tuple(fv.feature_names),
        max_frames=fv.max_frames,
        shuffle_buffer=fv.shuffle_buffer,
        skip_bad_records=fv.skip_bad_records,
        dataset=fv.dataset,
        class_index_file=fv.class_index_file,
        train_split_file=fv.train_split_file,
        eval_split_file=fv.eval_split_file,
        random_flip=fv.random_flip,
    )


def train_config_from_flags(fv: flags.FlagValues = flags.FLAGS, *, default_jit: bool = False):
    from yt8m_kd.training.config import TrainConfig

    return TrainConfig(
        batch_size=fv.batch_size,
        eval_batch_size=fv.eval_batch_size,
        base_learning_rate=fv.base_learning_rate,
        learning_rate_decay=fv.learning_rate_decay,
        learning_rate_decay_examples=fv.learning_rate_decay_examples,
        clip_gradient_norm=fv.clip_gradient_norm,
        max_steps=fv.max_steps,
        checkpoint_every_steps=fv.checkpoint_every_steps,
        keep_checkpoints=fv.keep_checkpoints,
        eval_every_steps=fv.eval_every_steps,
        log_every_steps=fv.log_every_steps,
        seed=fv.seed,
        jit_compile=default_jit if fv.jit_compile is None else fv.jit_compile,
        progress_bar=fv.progress_bar,
    )


class FlagError(ValueError):
    """A bad flag value, found before any work starts; launchers print it as one line."""


def tf_exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def _require_files(name: str, pattern: str | None) -> None:
    import tensorflow as tf

    if not pattern:
        raise FlagError(f"--{name} is required")
    for one in pattern.split(","):
        if not tf.io.gfile.glob(one):
            raise FlagError(f"--{name}={one} matches no file")


def validate_common_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Checks that hold for every launcher that builds a model and reads records."""
    if len(fv.feature_names) != len(fv.feature_sizes):
        raise FlagError(
            f"--feature_names has {len(fv.feature_names)} names but --feature_sizes has "
            f"{len(fv.feature_sizes)} sizes"
        )
    if fv.max_frames <= 0:
        raise FlagError(f"--max_frames={fv.max_frames} must be positive")
    if fv.k_frames < 0 or fv.k_frames > fv.max_frames:
        raise FlagError(
            f"--k_frames={fv.k_frames} must be between 0 (all frames) and --max_frames={fv.max_frames}"
        )
    if fv.dataset == "ucf101":
        if not fv.backbone or fv.image_size <= 0:
            raise FlagError(
                "--dataset=ucf101 reads images: it needs an image model (--backbone and a "
                "positive --image_size)"
            )
        if fv.class_index_file and not tf_exists(fv.class_index_file):
            raise FlagError(f"--class_index_file={fv.class_index_file} does not exist")
    elif fv.backbone:
        raise FlagError(
            f"--backbone={fv.backbone} is an image model; --dataset={fv.dataset} has frame features"
        )


def validate_training_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    validate_common_flags(fv)
    if not fv.run_dir:
        raise FlagError("--run_dir is required")
    _require_files("train_data_pattern", fv.train_data_pattern)
    if fv.eval_data_pattern:
        _require_files("eval_data_pattern", fv.eval_data_pattern)
    for name in ("batch_size", "max_steps", "checkpoint_every_steps", "log_every_steps"):
        if fv[name].value <= 0:
            raise FlagError(f"--{name}={fv[name].value} must be positive")
    if fv.teacher_run_dir and not tf_exists(os.path.join(fv.teacher_run_dir, "flags.txt")):
        raise FlagError(
            f"--teacher_run_dir={fv.teacher_run_dir} is not a run directory (no flags.txt)"
        )
    if fv.teacher_cache and not tf_exists(os.path.join(fv.teacher_cache, "teacher_cache.json")):
        raise FlagError(
            f"--teacher_cache={fv.teacher_cache} holds no teacher cache (no teacher_cache.json; "
            "make one with launchers/cache_teacher.py)"
        )
    for name in ("w_pred", "w_rep", "w_kl"):
        if fv[name].value < 0:
            raise FlagError(f"--{name}={fv[name].value} must be >= 0")
    if fv.temperature <= 0:
        raise FlagError(f"--temperature={fv.temperature} must be positive")


def validate_eval_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    validate_common_flags(fv)
    _require_files("eval_data_pattern", fv.eval_data_pattern)


def flags_text(fv: flags.FlagValues = flags.FLAGS) -> str:
    """This module's flags as a flagfile (what a run writes to flags.txt and can be re-read)."""
    lines = [f.serialize() for f in fv.get_flags_for_module(__name__)]
    return "\n".join(sorted(line for line in lines if line)) + "\n"


def parse_flagfile(path: str) -> flags.FlagValues:
    """Parses a preset or a run's flags.txt into a private FlagValues (global FLAGS untouched)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"flagfile not found: {path}")
    fv = flags.FlagValues()
    define_all_flags(fv)
    fv(["flagfile_parser", f"--flagfile={path}"])
    return fv


def flagfile_values(path: str, **overrides) -> flags.FlagValues:
    """A preset's flag values with some overridden by name, checked like a launcher's."""
    fv = parse_flagfile(path)
    for name, value in overrides.items():
        if name not in fv:
            raise FlagError(f"unknown flag {name!r} overriding {path}")
        fv[name].value = value
    validate_common_flags(fv)
    return fv


def configs_from_flagfile(path: str, **overrides):
    """(ModelConfig, TrainConfig, DataConfig) of a preset, with flag values overridden by name.

    What a launcher that runs several trainings in one process (the demo, experiments) uses
    instead of the global FLAGS: `configs_from_flagfile("models/tiny_teacher.flags", max_steps=50)`.
    """
    return configs_from_values(flagfile_values(path, **overrides))


def configs_from_values(fv: flags.FlagValues):
    return model_config_from_flags(fv), train_config_from_flags(fv), data_config_from_flags(fv)


def write_flags_file(fv: flags.FlagValues, run_dir: str) -> None:
    """Writes run_dir/flags.txt: what `restore_run` and `launchers/evaluate.py` read back."""
    import tensorflow as tf

    tf.io.gfile.makedirs(run_dir)
    with tf.io.gfile.GFile(os.path.join(run_dir, "flags.txt"), "w") as f:
        f.write(flags_text(fv))
