"""absl flags <-> the configuration dataclasses of `yt8m_kd.configs`; the only place flags are read.

Launchers call `define_all_flags(flags.FLAGS)`, parse the command line, and turn the values into a
`RunConfig` with `run_config_from_flags`; library code only ever sees that RunConfig. The same
definitions parse the `models/*.flags` presets and a run's flags.txt into a private FlagValues
(`read_flagfile`, `read_run_config`), and `write_run_config` writes a RunConfig back as the
flags.txt that those read: one mapping, both ways.

Range checks are absl's (`lower_bound`, `upper_bound`, enums) and the validators of
`yt8m_kd.flag_checks` (every float flag finite, ranges absl's bounds cannot say), so a bad value
stops the parse with a line that names the flag; checks across flags (model widths that fit
together, a teacher that sees all frames) and against the file system are `validate_run_config`.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import tensorflow as tf
from absl import flags

from yt8m_kd import cache_layout, flag_checks
from yt8m_kd.configs import (
    BACKBONES,
    CACHE_JOINS,
    CLASSIFIERS,
    DATASETS,
    MAPPINGS,
    POOLINGS,
    SCHEDULES,
    SELECTION_METHODS,
    STRATEGIES,
    DataConfig,
    DistillationWeights,
    DistillConfig,
    FlagError,
    ModelConfig,
    RunConfig,
    SAKDConfig,
    TrainConfig,
)

__all__ = [
    "FlagError",
    "define_all_flags",
    "flag_name",
    "flag_values",
    "flags_text",
    "read_flagfile",
    "read_run_config",
    "recorded_values",
    "run_config_from_flags",
    "validate_run_config",
    "write_run_config",
]

_DEFAULT_MODEL = ModelConfig()
FLAGS_FILE = "flags.txt"


def _defined(fv: flags.FlagValues, name: str) -> bool:
    return name in fv


def _define_finite_float(name: str, default, help_text: str, flag_values, **bounds) -> None:
    """absl's DEFINE_float, refusing nan and +-inf (which absl's bounds let through)."""
    flags.DEFINE_float(name, default, help_text, flag_values=flag_values, **bounds)
    flag_checks.register_finite_check(flag_values, name)


def _definers(fv: flags.FlagValues):
    """absl's DEFINE_integer, _float (finite only), _string, _boolean, _enum and _list, bound to
    `fv`."""
    return tuple(
        functools.partial(define, flag_values=fv)
        for define in (
            flags.DEFINE_integer,
            _define_finite_float,
            flags.DEFINE_string,
            flags.DEFINE_boolean,
            flags.DEFINE_enum,
            flags.DEFINE_list,
        )
    )


def define_model_flags(fv: flags.FlagValues) -> None:
    """Flags of ModelConfig; names are its field names."""
    if _defined(fv, "cluster_size"):
        return
    integer, floating, string, boolean, enum, listing = _definers(fv)
    d = _DEFAULT_MODEL
    listing(
        "feature_sizes",
        [str(s) for s in d.feature_sizes],
        "Per-frame size of each feature, in the order of --feature_names.",
    )
    integer("num_classes", d.num_classes, "Number of classes.", lower_bound=1)
    integer("cluster_size", d.cluster_size, "NeXtVLAD clusters K.", lower_bound=1)
    integer("groups", d.groups, "NeXtVLAD groups G.", lower_bound=1)
    integer("expansion", d.expansion, "NeXtVLAD expansion lambda.", lower_bound=1)
    integer("hidden_size", d.hidden_size, "Hidden FC width H.", lower_bound=1)
    integer("gating_reduction", d.gating_reduction, "SE context gating reduction r.", lower_bound=1)
    floating(
        "drop_rate", d.drop_rate, "Dropout before the hidden FC.", lower_bound=0, upper_bound=1
    )
    enum(
        "classifier",
        d.classifier,
        list(CLASSIFIERS),
        "Video-level classifier: logistic or moe (multi-label, YouTube-8M), softmax (single-label, "
        "UCF101).",
    )
    integer(
        "moe_num_mixtures",
        d.moe_num_mixtures,
        "Experts per class for --classifier=moe.",
        lower_bound=1,
    )
    floating("l2_penalty", d.l2_penalty, "l2 penalty on the classifier weights.", lower_bound=0)
    integer(
        "k_frames",
        d.k_frames,
        "Frames the model sees per video: 0 = all frames (teacher), k > 0 = a k-frame student.",
        lower_bound=0,
    )
    enum(
        "frame_selection",
        d.frame_selection,
        list(SELECTION_METHODS),
        "How a student's k frames are chosen.",
    )
    # Image models (UCF101): a keras.applications backbone on every frame.
    enum(
        "backbone",
        d.backbone,
        ["", *BACKBONES],
        "Image backbone run on every frame; empty = frame features (YouTube-8M).",
    )
    integer("image_size", d.image_size, "Frame height = width of an image model.", lower_bound=0)
    string(
        "backbone_weights",
        d.backbone_weights,
        "Backbone weights: empty or none (random init), imagenet (Keras download), or a local "
        ".weights.h5 / .keras / legacy .h5 file.",
    )
    enum("pooling", d.pooling, list(POOLINGS), "Pooling of an image model's frames.")
    boolean(
        "trainable_backbone",
        d.trainable_backbone,
        "Train the backbone (False freezes its weights and batch-norm statistics).",
    )
    boolean(
        "temporal_encoding",
        d.temporal_encoding,
        "Image models: also pool a time-weighted copy of the frame features, so that frame order "
        "matters (NeXtVLAD and the mean alone are order-blind).",
    )


def define_data_flags(fv: flags.FlagValues) -> None:
    if _defined(fv, "feature_names"):
        return
    integer, floating, string, boolean, enum, listing = _definers(fv)
    listing("feature_names", ["rgb", "audio"], "Frame feature names in the records.")
    integer("max_frames", 300, "Frames kept per video; longer videos are cut.", lower_bound=1)
    string("train_data_pattern", None, "Glob of training TFRecord shards.")
    string("eval_data_pattern", None, "Glob of evaluation TFRecord shards.")
    boolean(
        "skip_bad_records",
        False,
        "Skip and count malformed records and corrupt files instead of stopping.",
    )
    integer("shuffle_buffer", 1024, "Records in the training shuffle buffer.", lower_bound=1)
    enum(
        "dataset",
        "yt8m",
        list(DATASETS),
        "Data family: yt8m (frame-feature records, multi-label) or ucf101 (clips of JPEG frames, "
        "single-label; --max_frames is the frames sampled per clip).",
    )
    string("class_index_file", None, "UCF101: classInd.txt (class names).")
    string(
        "train_split_file",
        None,
        "UCF101: trainlist0N.txt, when --train_data_pattern is a frames directory.",
    )
    boolean(
        "random_flip",
        True,
        "UCF101 training: flip each clip horizontally with probability 1/2. Turn it off where "
        "left and right are different classes (the synthetic set's SlideRight / SlideLeft).",
    )
    string(
        "eval_split_file",
        None,
        "UCF101: testlist0N.txt, when --eval_data_pattern is a frames directory.",
    )
    string(
        "data_service",
        None,
        "grpc://HOST:PORT of a tf.data service dispatcher (launchers/data_service.py): its "
        "workers read, parse and batch the training records, each record once per epoch. Strict "
        "mode only (not with --skip_bad_records or --sakd); evaluation reads on this host.",
    )


def define_training_flags(fv: flags.FlagValues) -> None:
    if _defined(fv, "run_dir"):
        return
    integer, floating, string, boolean, enum, listing = _definers(fv)
    string("run_dir", None, "Run directory: checkpoints, logs, metrics.")
    integer("batch_size", 80, "Global batch size (all replicas).", lower_bound=1)
    integer("eval_batch_size", 256, "Global evaluation batch size.", lower_bound=1)
    floating("base_learning_rate", 2e-4, "Adam learning rate.", lower_bound=0)
    floating(
        "learning_rate_decay",
        0.8,
        "Staircase decay factor of the learning rate.",
        lower_bound=0,
        upper_bound=1,
    )
    integer(
        "learning_rate_decay_examples",
        2_000_000,
        "Examples between two learning-rate decays.",
        lower_bound=1,
    )
    floating("clip_gradient_norm", 1.0, "Global-norm gradient clipping (0 = off).", lower_bound=0)
    integer("max_steps", 1000, "Training steps.", lower_bound=1)
    integer("checkpoint_every_steps", 500, "Steps between checkpoints.", lower_bound=1)
    integer("keep_checkpoints", 3, "Checkpoints kept in run_dir/checkpoints.", lower_bound=1)
    integer(
        "eval_every_steps", 0, "Steps between evaluations (0 = only at the end).", lower_bound=0
    )
    integer("log_every_steps", 50, "Steps between TensorBoard scalar writes.", lower_bound=1)
    enum("strategy", "one_device", list(STRATEGIES), "tf.distribute strategy.")
    integer(
        "num_logical_cpus",
        0,
        "Split the CPU into this many logical devices (for MirroredStrategy on CPU; 0 = no split).",
        lower_bound=0,
    )
    integer("seed", 0, "Random seed.", lower_bound=0)
    boolean(
        "jit_compile",
        None,
        "XLA-compile the forward and backward pass (default: on with one GPU; under several "
        "replicas the synchronised batch norm's all-reduce would sit inside the XLA cluster).",
    )
    boolean(
        "mixed_precision",
        None,
        "Compute in bfloat16 with float32 weights (Keras policy mixed_bfloat16; default: on with a "
        "GPU). bfloat16 has float32's range, so no loss scaling is needed.",
    )
    boolean("progress_bar", True, "Show a progress bar.")
    integer(
        "steps_per_loop",
        1,
        "Training steps per tf.function call (a loop inside the call): fewer calls for small "
        "models; logging, checkpoints and evaluations still happen at their steps.",
        lower_bound=1,
    )
    string(
        "init_from_run",
        None,
        "A run directory: start this run's model from that run's latest checkpoint, model "
        "weights only (no optimizer, step, teacher, projection head or SAKD state), e.g. a "
        "k-frame student from the all-frames teacher. The models must match except for "
        "--k_frames, --frame_selection, --backbone_weights and --drop_rate. Used only when this "
        "run has no checkpoint of its own: a rerun resumes its own checkpoints.",
    )
    flag_checks.register_value_checks(fv)


def define_distill_flags(fv: flags.FlagValues) -> None:
    """Distillation: a teacher (run or cache) and the weights of the student loss."""
    if _defined(fv, "teacher_run_dir"):
        return
    integer, floating, string, boolean, enum, listing = _definers(fv)
    string(
        "teacher_run_dir",
        None,
        "A finished teacher run: distil from it, running it on all frames in every step.",
    )
    string("teacher_checkpoint", None, "A teacher checkpoint other than the run's latest.")
    string(
        "teacher_cache",
        None,
        "A teacher cache (launchers/cache_teacher.py): distil from it without running the teacher.",
    )
    enum(
        "teacher_cache_join",
        "auto",
        list(CACHE_JOINS),
        "How the cache reaches the batches: stream (each input file's part read with the file; "
        "memory independent of the number of videos), memory (the whole cache in host memory) "
        "or auto (stream where the cache and the run allow it). Same batches either way.",
    )
    floating("w_pred", 0.01, "Weight of L_pred (probabilities).", lower_bound=0)
    floating("w_rep", 0.001, "Weight of L_rep (representations).", lower_bound=0)
    floating("w_kl", 0.0, "Weight of the temperature KL loss.", lower_bound=0)
    floating("temperature", 4.0, "Temperature T of the KL loss.")


def define_sakd_flags(fv: flags.FlagValues) -> None:
    """SAKD (docs/sakd.md): every constant of the spec is a flag; defaults are the paper's."""
    if _defined(fv, "sakd"):
        return
    integer, floating, string, boolean, enum, listing = _definers(fv)
    d = SAKDConfig()
    boolean("sakd", False, "Train with SAKD (needs --teacher_cache and --num_epochs).")
    integer(
        "num_epochs",
        10,
        "SAKD: epochs N of the interruption schedule; an epoch is one pass over the selected "
        "samples (replaces --max_steps).",
        lower_bound=1,
    )
    floating("sakd_ratio", d.ratio, "SAKD: fraction of samples selected.")
    integer(
        "sakd_selection_interval",
        d.selection_interval,
        "SAKD: epochs between difficulty passes and selections.",
        lower_bound=1,
    )
    enum("sakd_schedule", d.schedule, list(SCHEDULES), "SAKD: interruption-rate schedule beta(n).")
    floating("sakd_eta", d.eta, "SAKD: beta below eta drops frames, from eta on shuffles them.")
    floating("sakd_memory", d.memory, "SAKD: lambda, the strength's memory of its past value.")
    floating("sakd_gamma", d.gamma, "SAKD: quality/diversity trade-off of the selection kernel.")
    integer(
        "sakd_feature_dim",
        d.feature_dim,
        "SAKD, beyond the paper: project the teacher repr to this many dimensions (a fixed random "
        "Gaussian matrix) for the selection's diversity, so it holds N x this many floats; 0 uses "
        "the repr as it is.",
        lower_bound=0,
    )
    boolean(
        "sakd_class_balance",
        d.class_balance,
        "SAKD, beyond the paper: class-balanced selection: no class's share of the selected "
        "samples above its share of the training set (the paper's selection leans on head "
        "classes).",
    )
    enum(
        "sakd_mapping",
        d.mapping,
        list(MAPPINGS),
        "SAKD: difficulty -> strength, the paper's (1 - d_hat) or the released code's "
        "(beta * d_hat, for comparison).",
    )


def define_all_flags(fv: flags.FlagValues) -> None:
    """Every flag a preset may set; launchers call this so any preset parses."""
    define_model_flags(fv)
    define_data_flags(fv)
    define_training_flags(fv)
    define_distill_flags(fv)
    define_sakd_flags(fv)


# ------------------------------------------------------------------------ flags -> RunConfig
# Fields whose flag has another name: (config section, field) -> flag.
_RENAMED = {
    ("distill", "teacher_cache_dir"): "teacher_cache",
    **{("sakd", f.name): f"sakd_{f.name}" for f in dataclasses.fields(SAKDConfig)},
}
_NO_FLAG = {("sakd", "power")}  # constants of the paper without a flag
_TUPLE_FIELDS = {"feature_sizes": int, "feature_names": str}


def flag_name(section: str, field: str) -> str:
    """The flag of a RunConfig field: its name, but for the fields `_RENAMED` lists."""
    return _RENAMED.get((section, field), field)


def _section_values(fv: flags.FlagValues, section: str, cls) -> dict:
    values = {}
    for f in dataclasses.fields(cls):
        if (section, f.name) in _NO_FLAG or f.name == "weights":
            continue
        value = fv[flag_name(section, f.name)].value
        if f.name in _TUPLE_FIELDS:
            try:
                value = tuple(_TUPLE_FIELDS[f.name](v) for v in value)
            except ValueError:
                raise FlagError(f"--{f.name}={','.join(value)} must be integers") from None
        values[f.name] = value
    return values


def run_config_from_flags(fv: flags.FlagValues) -> RunConfig:
    """The RunConfig of parsed flag values.

    Raises:
      FlagError: values that no dataclass accepts (SAKD without a teacher cache, ...).
    """
    distill = None
    if fv.teacher_run_dir or fv.teacher_cache:
        try:
            weights = DistillationWeights(
                w_pred=fv.w_pred, w_rep=fv.w_rep, w_kl=fv.w_kl, temperature=fv.temperature
            )
        except ValueError as e:
            raise FlagError(f"distillation flags: {e}") from e
        distill = DistillConfig(**_section_values(fv, "distill", DistillConfig), weights=weights)
    sakd = None
    if fv.sakd:
        if not fv.teacher_cache:
            raise FlagError("--sakd needs --teacher_cache (launchers/cache_teacher.py makes one)")
        try:
            sakd = SAKDConfig(**_section_values(fv, "sakd", SAKDConfig))
        except ValueError as e:
            raise FlagError(f"SAKD flags: {e}") from e
    return RunConfig(
        model=ModelConfig(**_section_values(fv, "model", ModelConfig)),
        data=DataConfig(**_section_values(fv, "data", DataConfig)),
        train=TrainConfig(**_section_values(fv, "train", TrainConfig)),
        distill=distill,
        sakd=sakd,
        num_epochs=fv.num_epochs,
    )


# ------------------------------------------------------------------------ RunConfig -> flags
def flag_values(config: RunConfig, run_dir: str | None = None) -> flags.FlagValues:
    """A private FlagValues holding `config` (the inverse of `run_config_from_flags`)."""
    fv = flags.FlagValues()
    define_all_flags(fv)
    fv.mark_as_parsed()
    sections = {"model": config.model, "data": config.data, "train": config.train}
    if config.distill is not None:
        sections["distill"] = config.distill
        for name, value in dataclasses.asdict(config.distill.weights).items():
            fv[name].value = value
    if config.sakd is not None:
        sections["sakd"] = config.sakd
    for section, value in sections.items():
        for f in dataclasses.fields(value):
            if (section, f.name) in _NO_FLAG or f.name == "weights":
                continue
            item = getattr(value, f.name)
            if f.name in _TUPLE_FIELDS:
                item = [str(v) for v in item]
            fv[flag_name(section, f.name)].value = item
    fv["sakd"].value = config.sakd is not None
    fv["num_epochs"].value = config.num_epochs
    fv["run_dir"].value = run_dir
    return fv


def recorded_values(config: RunConfig) -> dict[str, object]:
    """flag name -> value of every flag that flags.txt records for `config` (--run_dir aside):
    what two invocations on one run directory are compared by."""
    fv = flag_values(config)
    return {f.name: f.value for f in fv.get_flags_for_module(__name__) if f.name != "run_dir"}


def flags_text(fv: flags.FlagValues) -> str:
    """This module's flags of `fv` as a flagfile (what a run writes to flags.txt)."""
    lines = [f.serialize() for f in fv.get_flags_for_module(__name__)]
    return "\n".join(sorted(line for line in lines if line)) + "\n"


def write_run_config(config: RunConfig, run_dir: str) -> None:
    """Writes run_dir/flags.txt, what `read_run_config` (and any launcher's --flagfile) reads."""
    tf.io.gfile.makedirs(run_dir)
    path = os.path.join(run_dir, FLAGS_FILE)
    with tf.io.gfile.GFile(path + ".partial", "w") as f:
        f.write(flags_text(flag_values(config, run_dir)))
    tf.io.gfile.rename(path + ".partial", path, overwrite=True)


# ---------------------------------------------------------------------------- flagfiles
def read_flagfile(path: str, **overrides) -> RunConfig:
    """The RunConfig of a preset (`models/*.flags`) or a run's flags.txt, with flags overridden by
    name: `read_flagfile("models/tiny_teacher.flags", max_steps=50, hidden_size=32)`.

    The file is parsed into a private FlagValues (the global FLAGS are left alone); overrides go
    through the flags' own checks (bounds, enums).

    Raises:
      FileNotFoundError: no such file.
      FlagError: an unknown flag name or a bad value, naming the flag and the file.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"flagfile not found: {path}")
    fv = flags.FlagValues()
    define_all_flags(fv)
    try:
        fv(["flagfile_parser", f"--flagfile={path}"])
        for name, value in overrides.items():
            if name not in fv:
                raise FlagError(f"unknown flag {name!r} overriding {path}")
            if name in _TUPLE_FIELDS and value is not None:
                value = [str(v) for v in value]
            setattr(fv, name, value)
    except flags.Error as e:
        raise FlagError(f"{path}: {e}") from e
    return run_config_from_flags(fv)


def read_run_config(run_dir: str) -> RunConfig:
    """The RunConfig a run was trained with (its flags.txt)."""
    path = os.path.join(run_dir, FLAGS_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no {FLAGS_FILE}")
    return read_flagfile(path)


# ----------------------------------------------------------------------------- validation
def require_files(name: str, pattern: str | None) -> list[str]:
    """The comma-separated globs of flag --name, each matching a file; FlagError otherwise."""
    if not pattern:
        raise FlagError(f"--{name} is required")
    patterns = pattern.split(",")
    for one in patterns:
        if not tf.io.gfile.glob(one):
            raise FlagError(f"--{name}={one} matches no file")
    return patterns


def require_run_dir(name: str, run_dir: str | None) -> None:
    """Flag --name holds a run directory (one with a flags.txt); FlagError otherwise."""
    if not run_dir:
        raise FlagError(f"--{name} is required")
    if not tf.io.gfile.exists(os.path.join(run_dir, FLAGS_FILE)):
        raise FlagError(f"--{name}={run_dir} is not a run directory (no {FLAGS_FILE})")


def require_file(name: str, path: str | None) -> None:
    """An optional file flag that, when given, exists; FlagError otherwise."""
    if path and not tf.io.gfile.exists(path):
        raise FlagError(f"--{name}={path} does not exist")


def validate_run_config(config: RunConfig, *, training: bool = False) -> None:
    """Checks across flags and against the file system, before any work; `training` adds those
    of a training run (data to train on, a teacher that exists).

    Raises:
      FlagError: naming the flags at fault.
    """
    model, data = config.model, config.data
    flag_checks.check_model_shapes(model)
    if not data.feature_names or len(data.feature_names) != len(model.feature_sizes):
        raise FlagError(
            f"--feature_names has {len(data.feature_names)} names but --feature_sizes has "
            f"{len(model.feature_sizes)} sizes"
        )
    if model.k_frames > data.max_frames:
        raise FlagError(
            f"--k_frames={model.k_frames} must be between 0 (all frames) and "
            f"--max_frames={data.max_frames}"
        )
    if data.dataset == "ucf101":
        if not model.backbone or model.image_size <= 0:
            raise FlagError(
                "--dataset=ucf101 reads images: it needs an image model (--backbone and a "
                "positive --image_size)"
            )
        require_file("class_index_file", data.class_index_file)
    elif model.backbone:
        raise FlagError(
            f"--backbone={model.backbone} is an image model; --dataset={data.dataset} has frame "
            "features"
        )
    if not training:
        return
    flag_checks.check_data_service(data, sakd=config.sakd is not None)
    require_files("train_data_pattern", data.train_data_pattern)
    if data.eval_data_pattern:
        require_files("eval_data_pattern", data.eval_data_pattern)
    distill = config.distill
    if distill and distill.teacher_run_dir:
        require_run_dir("teacher_run_dir", distill.teacher_run_dir)
        teacher = read_run_config(distill.teacher_run_dir).model
        flag_checks.check_teacher_model(teacher, "teacher_run_dir", distill.teacher_run_dir)
    if distill and distill.teacher_cache_dir:
        incomplete = cache_layout.incomplete_message(distill.teacher_cache_dir)
        if incomplete:  # being built in parts: say how far it is
            raise FlagError(f"--teacher_cache: {incomplete}")
        if not tf.io.gfile.exists(
            os.path.join(distill.teacher_cache_dir, cache_layout.METADATA_FILE)
        ):
            raise FlagError(
                f"--teacher_cache={distill.teacher_cache_dir} holds no teacher cache (no "
                "teacher_cache.json; make one with launchers/cache_teacher.py)"
            )
