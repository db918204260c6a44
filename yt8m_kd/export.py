"""A trained run -> a SavedModel that serves raw records, with no yt8m_kd code needed to load it.

  path = export_saved_model("runs/student_k6")            # -> runs/student_k6/export
  served = tf.saved_model.load(path).signatures["serving_default"]
  served(example_bytes=tf.constant([record_1, record_2]))  # serialized SequenceExamples

Signatures (B videos, C classes, K top classes, T = max_frames):

  serving_default  example_bytes [B] string (serialized records, as the starter code's SavedModel)
                   -> video_id [B] string, class_indexes [B, K] int32, scores [B, K] float32
                      (the top K classes, scores descending), probabilities [B, C] float32
  serve_frames     frames (what the input pipeline yields), num_frames [B] int32
                   -> class_indexes, scores, probabilities

Per data family (the run's --dataset):

  yt8m    records: YouTube-8M frame-feature SequenceExamples (docs/yt8m-format-and-metrics.md)
          frames [B, T', D] uint8, D = sum(feature_sizes); K = min(20, C), as the starter code's
          SavedModel; probabilities: a sigmoid per class (multi-label)
  ucf101  records: UCF101 frame records (`yt8m_kd.data.ucf101_prepare`: context `id`, feature list
          `frames` of encoded JPEGs); frames [B, T', S, S, 3] uint8 RGB, S = image_size (the
          clips of `ucf101.frame_dataset(training=False)`); K = min(5, C), the top-5 of UCF101
          accuracy and of the inference CSV (all C are in `probabilities`); probabilities: a
          softmax over the classes (single-label)

serve_frames cuts or zero-pads the T' frames it is given to T, as the input pipeline does; a video
whose num_frames is 0 or negative (or that is given no frames) fails the call with an
InvalidArgumentError, as a zero-frame record does. An empty request (B = 0) answers empty outputs,
in both signatures.

Everything between the bytes and the probabilities runs in the graph, with the semantics of the
training code's evaluation: parsing by the family's frame_dataset parser, per record (YouTube-8M:
`yt8m_records.parse_record`: `id`, else `video_id`; features concatenated per frame in
feature_names order, cut after max_frames, zero-padded to max_frames; UCF101:
`ucf101.parse_eval_clip`, which decodes only the T segment-centre JPEGs, resizes and takes the
centre crop), dequantization (the model's first op), a student's k-frame selection, and the sigmoid or softmax
(`yt8m_kd.modeling.predict.make_predict_fn` is what is traced). Only the restored model is
exported: no teacher, projection head or optimizer. A record the model cannot read fails the call
with an InvalidArgumentError naming its id (YouTube-8M: the input pipeline's record checks and
messages, no frames, a feature list missing, frame counts that differ between feature lists, a
frame of the wrong size, also naming its position in the request, and bytes that are not a
SequenceExample at all, naming that position; UCF101: no frames, a frame that is not a complete
JPEG, and bytes that are not a SequenceExample, naming their position). Labels are not read, so test records without labels are fine. No bad record ever gets a
score: the whole call fails (a client retries without it; launchers/infer.py does so record by
record, naming the file and the record's index in it).

A random-k student (`frame_selection=random`) draws a video's frames from a seed of the video's
own (`yt8m_kd.modeling.predict.evaluation_seeds`): in serving_default a fingerprint of its id, so a
video gets the scores evaluation gives it, whatever its position in the request or the request's
size; serve_frames has no ids and fingerprints each video's valid frames instead (the same
scores for the same frames wherever they are; other frames than serving_default draws for that
video, so the two signatures agree exactly for every other student and for the teacher).

Beside the SavedModel, `yt8m_kd_export.json` in the export directory holds what a client needs to
feed it and read its outputs (data family, num_classes, max_frames, k_frames, frame_selection,
top_k, single_label; YouTube-8M: feature names and sizes; UCF101: image_size and the class names
of the run's classInd.txt, null without one; the run and checkpoint it came from);
`load_export_metadata` reads it.

Atomic write: the SavedModel is written into the sibling `<export_dir>.partial` (a leftover from
a crashed export is deleted first) and renamed to export_dir only once it is complete, so an
interrupted export never leaves a directory at export_dir. An existing export_dir is refused
unless `overwrite=True`; then it is renamed to `<export_dir>.old`, the new export renamed in, and
the old one deleted, so export_dir holds either the old or the new model at every moment (or,
after a crash between the two renames, nothing, with the old model at `.old`: the next export
first moves it back to export_dir, and deletes a `.old` beside a complete export_dir, so that no
stray copy is left). This relies on the file system renaming directories atomically (local disks
do; on gs:// a rename is a copy).

Data families. `parse_records` turns serialized records into the batch dict of docs/design.md for
the family of the export (`parse_yt8m_records`, `parse_ucf101_records`), and `_frames_spec` gives
the shape of `frames` in serve_frames; a new family adds one function to each.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from yt8m_kd.data import ucf101, ucf101_splits, yt8m_records
from yt8m_kd.modeling import build_video_model
from yt8m_kd.modeling.predict import make_predict_fn
from yt8m_kd.training.restore import RestoredRun, restore_run

# The starter code's SavedModel returns the top 20 classes (docs/yt8m-format-and-metrics.md);
# so does the Kaggle CSV.
TOP_K = 20
# UCF101 results are top-1 and top-5 accuracy; its CSV lists the top 5.
UCF101_TOP_K = 5
METADATA_FILE = "yt8m_kd_export.json"
METADATA_FORMAT = "yt8m_kd.export/1"
SERVING_SIGNATURE = "serving_default"
FRAMES_SIGNATURE = "serve_frames"
# Types the model's weights and compute can be exported in (--export_dtype).
EXPORT_DTYPES = ("float32", "float16", "bfloat16")


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What the serving graph needs beside the model: how records look and what is returned.

    Attributes:
      data_family: "yt8m" (frame feature records) or "ucf101" (JPEG frame records); selects the
        record parser and the shape of serve_frames' `frames`.
      num_classes: C, width of `probabilities`.
      max_frames: T, frames per video; YouTube-8M: longer videos are cut, shorter ones
        zero-padded; UCF101: frames sampled per clip (segment centres).
      k_frames: 0 for an all-frames model, k > 0 for a student (selection happens in the graph).
      frame_selection: how a student's k frames are chosen.
      top_k: K, classes in `class_indexes` and `scores`: min(20, C) (yt8m), min(5, C) (ucf101).
      single_label: probabilities are a softmax over the classes (ucf101), else a sigmoid per
        class.
      feature_names, feature_sizes: yt8m only: the feature lists read, concatenated per frame in
        this order.
      image_size: ucf101 only: S, the side of the square centre crop.
      class_names: ucf101 only: the C class names in index order (classInd.txt), or None.
      export_dtype: the type of the exported weights and of the model's compute (EXPORT_DTYPES);
        inputs and outputs are the same in every type (probabilities and scores float32).
    """

    data_family: str
    num_classes: int
    max_frames: int
    k_frames: int
    frame_selection: str
    top_k: int
    single_label: bool = False
    feature_names: tuple[str, ...] = ()
    feature_sizes: tuple[int, ...] = ()
    image_size: int = 0
    class_names: tuple[str, ...] | None = None
    export_dtype: str = "float32"

    @classmethod
    def from_run(
        cls, run: RestoredRun, class_index_file: str | None = None, export_dtype: str = "float32"
    ) -> ExportSpec:
        """The spec of a restored run. class_index_file (UCF101): where the class names are read
        instead of the run's --class_index_file; a run file that is gone leaves them out with a
        warning.

        Raises:
          ValueError: a data family that cannot be exported, or class names that are not C.
        """
        family = data_family(run)
        if family not in _PARSERS:
            raise ValueError(f"exporting models of {family!r} data is not supported")
        config = run.model_config
        common = {
            "data_family": family,
            "num_classes": config.num_classes,
            "max_frames": run.max_frames,
            "k_frames": config.k_frames,
            "frame_selection": config.frame_selection,
            "single_label": run.single_label,
            "export_dtype": export_dtype,
        }
        if family == "yt8m":
            return cls(
                **common,
                top_k=min(TOP_K, config.num_classes),
                feature_names=run.data_config.feature_names,
                feature_sizes=tuple(int(s) for s in config.feature_sizes),
            )
        names = _class_names(class_index_file or run.data_config.class_index_file)
        if names is not None and len(names) != config.num_classes:
            raise ValueError(
                f"{class_index_file or run.data_config.class_index_file} lists {len(names)} "
                f"classes; the model has {config.num_classes}"
            )
        return cls(
            **common,
            top_k=min(UCF101_TOP_K, config.num_classes),
            image_size=config.image_size,
            class_names=names,
        )


# Fields of ExportSpec that describe one data family's input only.
_FAMILY_FIELDS = {
    "yt8m": ("feature_names", "feature_sizes"),
    "ucf101": ("image_size", "class_names"),
}


def _class_names(path: str | None) -> tuple[str, ...] | None:
    """The class names of a classInd.txt, or None without one (warning when it is gone)."""
    if not path:
        return None
    if not tf.io.gfile.exists(path):
        logging.warning("class index file %s does not exist: the export names no classes", path)
        return None
    return tuple(ucf101_splits.read_class_index(path))


def data_family(run: RestoredRun) -> str:
    """The run's data family: its --dataset flag where runs have one, else "yt8m"."""
    return run.data_config.dataset


# ------------------------------------------------------------------------------- compact export
def cast_run(run: RestoredRun, export_dtype: str) -> RestoredRun:
    """The run with its model rebuilt in `export_dtype`: weights and compute in that type (the
    Keras dtype policy of that name, not a mixed one), each weight the restored float32 value
    rounded to it (integer state, such as a dropout seed, is copied as it is).

    The model's own casts still apply: dequantized frames become the compute type, and the
    logits, the repr, the gates of the mixture of experts and the NeXtVLAD normalisation are
    float32 (yt8m_kd/modeling), so the outputs keep their float32 type and range.

    Raises:
      ValueError: export_dtype not one of EXPORT_DTYPES.
    """
    if export_dtype not in EXPORT_DTYPES:
        raise ValueError(f"export dtype {export_dtype!r} is not one of {', '.join(EXPORT_DTYPES)}")
    if export_dtype == "float32":
        return run  # as restored
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(export_dtype)
    try:
        model = build_video_model(run.model_config.replace(backbone_weights=""))
    finally:
        keras.config.set_dtype_policy(previous)
    sources, targets = run.model.weights, model.weights
    if [tuple(w.shape) for w in sources] != [tuple(w.shape) for w in targets]:
        raise ValueError(f"the model rebuilt in {export_dtype} has other weights than the run's")
    for source, target in zip(sources, targets, strict=True):
        target.assign(tf.cast(source, target.dtype))
    return dataclasses.replace(run, model=model)


# ------------------------------------------------------------------------------- record parsing
def parse_yt8m_records(
    serialized: tf.Tensor,
    *,
    max_frames: int,
    feature_names: tuple[str, ...],
    feature_sizes: tuple[int, ...],
) -> dict[str, tf.Tensor]:
    """[B] serialized YouTube-8M SequenceExamples -> video_id [B], frames [B, max_frames, D] uint8,
    num_frames [B] int32: `yt8m_records.parse_record` per record, the parser of
    `yt8m.frame_dataset` (labels not read), its frames zero-padded to max_frames as the input
    pipeline batches them.

    Raises (when run): InvalidArgumentError naming the first bad record's position and id.
    """
    width = sum(int(s) for s in feature_sizes)
    readable = _check_protos(
        serialized, lambda record: yt8m_records.record_fields(record, feature_names, False)
    )

    def parse(position_and_record):
        position, serialized_record = position_and_record
        record, code, error = yt8m_records.parse_record(
            serialized_record,
            max_frames=max_frames,
            feature_names=feature_names,
            feature_sizes=feature_sizes,
            where=tf.strings.join(
                ["at position ", tf.strings.as_string(position), " of the request"]
            ),
        )
        frames = record["frames"]  # [n, D], n <= max_frames
        frames = tf.pad(frames, [[0, max_frames - tf.shape(frames)[0]], [0, 0]])
        return {**record, "frames": frames, "code": code, "error": error}

    with tf.control_dependencies([readable]):  # before the parse below can fail on bytes
        serialized = tf.identity(serialized)
    parsed = tf.map_fn(
        parse,
        (tf.range(tf.size(serialized, out_type=tf.int64)), serialized),
        fn_output_signature={
            "video_id": tf.TensorSpec([], tf.string),
            "frames": tf.TensorSpec([max_frames, width], tf.uint8),
            "num_frames": tf.TensorSpec([], tf.int32),
            "code": tf.TensorSpec([], tf.int32),
            "error": tf.TensorSpec([], tf.string),
        },
    )
    errors = tf.boolean_mask(parsed["error"], parsed["code"] != 0)
    check = tf.debugging.Assert(tf.size(errors) == 0, [tf.strings.reduce_join(errors[:1])])
    with tf.control_dependencies([check]):
        return {name: tf.identity(parsed[name]) for name in ("video_id", "frames", "num_frames")}


def _check_protos(serialized: tf.Tensor, parse_fields) -> tf.Operation:
    """An op that fails with InvalidArgumentError naming the position of the first record of
    `serialized` [B] whose proto `parse_fields` cannot parse (bytes that are no SequenceExample,
    or a feature of the wrong type), instead of the parse op's message, which names neither.

    The records are parsed in a tf.data pipeline whose `ignore_errors` drops those that fail; the
    first position missing from what comes out is the bad one. This parses every record's proto
    twice; the cost is small beside the model's.
    """
    size = tf.size(serialized, out_type=tf.int64)

    def parsed_position(position, record):
        # The id goes along so that the parse is part of the element and is not pruned away.
        return position, parse_fields(record)["video_id"]

    positions = (
        tf.data.Dataset.from_tensor_slices((tf.range(size), serialized))
        .map(parsed_position)
        .ignore_errors()
    )

    def first_missing(state, element):
        position, _ = element
        count, missing = state
        missing = tf.where((missing < 0) & (position != count), count, missing)
        return count + 1, missing

    count, missing = positions.reduce(
        (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)), first_missing
    )
    missing = tf.where((missing < 0) & (count < size), count, missing)
    message = tf.strings.join(
        [
            "bad record at position ",
            tf.strings.as_string(missing),
            " of the request: its bytes are not a tf.train.SequenceExample of this export's "
            "features (a feature of another type, or no record at all)",
        ]
    )
    return tf.debugging.Assert(missing < 0, [message])


def parse_ucf101_records(
    serialized: tf.Tensor, *, max_frames: int, image_size: int
) -> dict[str, tf.Tensor]:
    """[B] serialized UCF101 frame records -> video_id [B], frames [B, max_frames, S, S, 3] uint8,
    num_frames [B] int32: `ucf101.parse_eval_clip` per record, the clips of
    `ucf101.frame_dataset(training=False)` (segment-centre frames, centre crop; labels not read).

    Raises (when run): InvalidArgumentError naming the first bad record's video id (no frames, a
    frame that is not a complete JPEG), or its position in the request (bytes that are not a
    SequenceExample of the schema).
    """
    readable = _check_protos(serialized, ucf101.record_fields)
    with tf.control_dependencies([readable]):  # before the parse below can fail on bytes
        serialized = tf.identity(serialized)
    clips = tf.map_fn(
        lambda record: ucf101.parse_eval_clip(record, max_frames, image_size, check_labels=False),
        serialized,
        fn_output_signature={
            "video_id": tf.TensorSpec([], tf.string),
            "frames": tf.TensorSpec([max_frames, image_size, image_size, 3], tf.uint8),
            "num_frames": tf.TensorSpec([], tf.int32),
            "labels": tf.TensorSpec([], tf.int32),
        },
    )
    return {name: clips[name] for name in ("video_id", "frames", "num_frames")}


# Serialized records -> the batch dict (video_id, frames, num_frames), per data family.
_PARSERS = {
    "yt8m": lambda serialized, spec: parse_yt8m_records(
        serialized,
        max_frames=spec.max_frames,
        feature_names=spec.feature_names,
        feature_sizes=spec.feature_sizes,
    ),
    "ucf101": lambda serialized, spec: parse_ucf101_records(
        serialized, max_frames=spec.max_frames, image_size=spec.image_size
    ),
}


def parse_records(serialized: tf.Tensor, spec: ExportSpec) -> dict[str, tf.Tensor]:
    """[B] serialized records of `spec.data_family` -> video_id, frames, num_frames."""
    if spec.data_family not in _PARSERS:
        raise ValueError(f"no record parser for data family {spec.data_family!r}")
    return _PARSERS[spec.data_family](serialized, spec)


def _frames_spec(spec: ExportSpec) -> tf.TensorSpec:
    """The `frames` input of serve_frames: what the family's input pipeline yields."""
    if spec.data_family == "yt8m":
        return tf.TensorSpec([None, None, sum(spec.feature_sizes)], tf.uint8, name="frames")
    if spec.data_family == "ucf101":
        size = spec.image_size
        return tf.TensorSpec([None, None, size, size, 3], tf.uint8, name="frames")
    raise ValueError(f"no frames input for data family {spec.data_family!r}")


def fit_frames(
    frames: tf.Tensor, num_frames: tf.Tensor, max_frames: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """[B, T, ...] frames cut or zero-padded to [B, max_frames, ...]; num_frames clipped to match.

    The padded length matters beyond the mask: random-k selection draws one key per position of
    the padded length (and serve_frames' seed fingerprints the padded frames), so the graph sees
    the length the input pipeline pads to.
    """
    frames = frames[:, :max_frames]
    length = tf.shape(frames)[1]
    num_frames = tf.clip_by_value(tf.cast(num_frames, tf.int32), 0, length)
    paddings = [[0, 0], [0, max_frames - length]] + [[0, 0]] * (frames.shape.rank - 2)
    frames = tf.pad(frames, paddings)
    frames = tf.ensure_shape(frames, [None, max_frames, *frames.shape[2:]])
    return frames, num_frames


# ------------------------------------------------------------------------------- the module
def serving_module(run: RestoredRun, spec: ExportSpec) -> tf.Module:
    """A tf.Module holding the restored model (its only variables) and the two serving functions
    `serve_records` and `serve_frames` (see the module docstring)."""
    # A closure, not an attribute: an attribute tf.function would be saved as one more endpoint.
    predict = make_predict_fn(run.model, run.model_config, spec.single_label)

    def outputs(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        # An empty request answers empty outputs without running the model (an image backbone
        # fails on a batch of no frames).
        probabilities = tf.cond(
            tf.shape(batch["num_frames"])[0] > 0,
            lambda: predict(batch),
            lambda: tf.zeros([0, spec.num_classes], tf.float32),
        )  # [B, C]
        # Ties: top_k puts the lower class index first (a stable descending sort).
        top = tf.math.top_k(probabilities, k=spec.top_k, sorted=True)
        return {
            "class_indexes": tf.cast(top.indices, tf.int32),
            "scores": top.values,
            "probabilities": probabilities,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="example_bytes")])
    def serve_records(example_bytes):
        batch = parse_records(example_bytes, spec)  # its video_id seeds a random-k student
        return {"video_id": batch["video_id"], **outputs(batch)}

    @tf.function(
        input_signature=[_frames_spec(spec), tf.TensorSpec([None], tf.int32, name="num_frames")]
    )
    def serve_frames(frames, num_frames):
        tf.debugging.assert_equal(
            tf.shape(frames)[0], tf.shape(num_frames)[0], "frames and num_frames differ in B"
        )
        given, given_length = num_frames, tf.shape(frames)[1]
        frames, num_frames = fit_frames(frames, num_frames, spec.max_frames)
        # A video of no frames has no prediction (the record path refuses one too); without this
        # the model would score padding.
        check = tf.debugging.Assert(
            tf.reduce_all(num_frames > 0),
            [
                "serve_frames: every video needs num_frames >= 1 and at least one frame (a video "
                "with no frames has no prediction); num_frames given:",
                given,
                "frames given per video:",
                given_length,
            ],
        )
        with tf.control_dependencies([check]):
            num_frames = tf.identity(num_frames)
        return outputs({"frames": frames, "num_frames": num_frames})

    module = tf.Module(name="yt8m_kd_serving")
    module.model = run.model
    module.serve_records = serve_records
    module.serve_frames = serve_frames
    return module


# ------------------------------------------------------------------------------- writing
def _save(module: tf.Module, path: str) -> None:
    """Writes the SavedModel (a function of its own so that tests can interrupt it)."""
    tf.saved_model.save(
        module,
        path,
        signatures={
            SERVING_SIGNATURE: module.serve_records,
            FRAMES_SIGNATURE: module.serve_frames,
        },
    )


def _metadata(run: RestoredRun, spec: ExportSpec, run_dir: str | None) -> dict:
    fields = dataclasses.asdict(spec)
    for family, names in _FAMILY_FIELDS.items():
        if family != spec.data_family:
            for name in names:
                del fields[name]
    return {
        "format": METADATA_FORMAT,
        **fields,
        "signatures": {
            SERVING_SIGNATURE: {
                "inputs": ["example_bytes"],
                "outputs": ["video_id", "class_indexes", "scores", "probabilities"],
            },
            FRAMES_SIGNATURE: {
                "inputs": ["frames", "num_frames"],
                "outputs": ["class_indexes", "scores", "probabilities"],
            },
        },
        "run_dir": run_dir,
        "checkpoint": run.checkpoint,
        "model_variables": len(run.model.weights),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def _remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def _recover_interrupted_overwrite(export_dir: str, old: str) -> None:
    """After a crash between an overwrite's two renames, export_dir is missing and the previous
    export is at `old`: it goes back. A `old` beside export_dir is a crash after both renames,
    before the old copy was deleted: it goes."""
    if not tf.io.gfile.exists(old):
        return
    if tf.io.gfile.exists(export_dir):
        _remove(old)
    else:
        tf.io.gfile.rename(old, export_dir)


def export_saved_model(
    run: str | RestoredRun,
    export_dir: str | None = None,
    checkpoint: str | None = None,
    overwrite: bool = False,
    class_index_file: str | None = None,
    export_dtype: str = "float32",
) -> str:
    """Exports a run's model as a SavedModel with the signatures of the module docstring.

    Args:
      run: a run directory (flags.txt + checkpoints/) or a `RestoredRun`.
      export_dir: where the SavedModel goes; default <run_dir>/export.
      checkpoint: with a run directory, the checkpoint to export (default: the latest).
      overwrite: replace an existing export_dir (atomically, see the module docstring).
      class_index_file: UCF101: the classInd.txt whose names the metadata records, instead of
        the run's --class_index_file.
      export_dtype: the type of the exported weights and compute (`cast_run`): "float16" or
        "bfloat16" export about half the bytes of "float32".

    Returns:
      export_dir.

    Raises:
      FileExistsError: export_dir exists and overwrite is False.
      FileNotFoundError: not a run directory, or no checkpoint.
      ValueError: export_dir missing for a RestoredRun, or a checkpoint given with one; a data
        family that cannot be exported; class names that do not match the model's classes; an
        export_dtype not in EXPORT_DTYPES.
    """
    run_dir = None
    if isinstance(run, str):
        run_dir = run
        run = restore_run(run_dir, checkpoint)
    elif checkpoint is not None:
        raise ValueError("a RestoredRun holds its checkpoint already; pass checkpoint=None")
    if export_dir is None:
        if run_dir is None:
            raise ValueError("export_dir is required when exporting a RestoredRun")
        export_dir = os.path.join(run_dir, "export")
    export_dir = export_dir.rstrip("/")
    partial, old = export_dir + ".partial", export_dir + ".old"
    _recover_interrupted_overwrite(export_dir, old)
    if tf.io.gfile.exists(export_dir) and not overwrite:
        raise FileExistsError(
            f"{export_dir} exists already; remove it or export with overwrite (--overwrite)"
        )
    spec = ExportSpec.from_run(run, class_index_file, export_dtype)  # before anything is written
    run = cast_run(run, export_dtype)
    _remove(partial)  # a leftover of an interrupted export
    parent = os.path.dirname(export_dir)
    if parent:
        tf.io.gfile.makedirs(parent)

    try:
        _save(serving_module(run, spec), partial)
        with tf.io.gfile.GFile(os.path.join(partial, METADATA_FILE), "w") as f:
            json.dump(_metadata(run, spec, run_dir), f, indent=2, sort_keys=True)
    except BaseException:
        _remove(partial)  # best effort; a kill leaves it for the next export to delete
        raise
    if tf.io.gfile.exists(export_dir):  # overwrite: the old export steps aside first
        _remove(old)
        tf.io.gfile.rename(export_dir, old)
        tf.io.gfile.rename(partial, export_dir)
        _remove(old)
    else:
        tf.io.gfile.rename(partial, export_dir)
    return export_dir


def load_export_metadata(export_dir: str) -> dict:
    """The yt8m_kd_export.json of an export (see the module docstring)."""
    path = os.path.join(export_dir, METADATA_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{export_dir} is not a yt8m_kd export: it has no {METADATA_FILE} "
            "(export one with launchers/export.py)"
        )
    with tf.io.gfile.GFile(path) as f:
        metadata = json.load(f)
    if metadata.get("format") != METADATA_FORMAT:
        raise ValueError(f"{path}: format {metadata.get('format')!r}, expected {METADATA_FORMAT}")
    return metadata
