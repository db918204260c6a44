"""A trained run -> a SavedModel that serves raw records, with no yt8m_kd code needed to load it.

  path = export_saved_model("runs/student_k6")            # -> runs/student_k6/export
  served = tf.saved_model.load(path).signatures["serving_default"]
  served(example_bytes=tf.constant([record_1, record_2]))  # serialized SequenceExamples

Signatures (B videos, C classes, K = min(20, C), D = sum(feature_sizes)):

  serving_default  example_bytes [B] string (serialized records, as the starter code's SavedModel)
                   -> video_id [B] string, class_indexes [B, K] int32, scores [B, K] float32
                      (the top K classes, scores descending), probabilities [B, C] float32
  serve_frames     frames [B, T, D] uint8 (what the input pipeline yields), num_frames [B] int32
                   -> class_indexes, scores, probabilities

Everything between the bytes and the probabilities runs in the graph, with the semantics of the
training code: parsing as `yt8m_kd.data.yt8m.frame_dataset` does it (`id`, else `video_id`;
features concatenated per frame in feature_names order, cut after max_frames, zero-padded to
max_frames), dequantization (the model's first op), a student's k-frame selection with the fixed
evaluation seed, and the sigmoid (`yt8m_kd.training.loop.make_predict_fn` is what is traced). Only
the restored model is exported: no teacher, projection head or optimizer. A record the model
cannot read (no frames, a feature list missing, frame counts that differ between feature lists, a
frame of the wrong size) fails the call with an InvalidArgumentError naming its id; labels are not
read, so test records without labels are fine. A random-k student (`frame_selection=random`) draws
its frames from the fixed seed by position in the request, as evaluation does by position in the
batch: a video's scores depend on its position in the request (not on the other videos).

Beside the SavedModel, `yt8m_kd_export.json` in the export directory holds what a client needs to
feed it (data family, num_classes, max_frames, feature names and sizes, k_frames, top_k, the run
and checkpoint it came from); `load_export_metadata` reads it.

Atomic write: the SavedModel is written into the sibling `<export_dir>.partial` (a leftover from
a crashed export is deleted first) and renamed to export_dir only once it is complete, so an
interrupted export never leaves a directory at export_dir. An existing export_dir is refused
unless `overwrite=True`; then it is renamed to `<export_dir>.old`, the new export renamed in, and
the old one deleted, so export_dir holds either the old or the new model at every moment (or,
after a crash between the two renames, nothing, with the old model at `.old`). This relies on the
file system renaming directories atomically (local disks do; on gs:// a rename is a copy).

Data families. `parse_records` turns serialized records into the batch dict of DESIGN.md for the
family of the export (YouTube-8M feature records: `parse_yt8m_records`), and `_frames_spec` gives
the shape of `frames` in serve_frames; a new family (UCF101 JPEG frames) adds one function to each.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

from yt8m_kd.training.loop import make_predict_fn
from yt8m_kd.training.runs import RestoredRun, restore_run

# The starter code's SavedModel returns the top 20 classes (reference/yt8m-format-and-metrics.md);
# so does the Kaggle CSV.
TOP_K = 20
METADATA_FILE = "yt8m_kd_export.json"
METADATA_FORMAT = "yt8m_kd.export/1"
SERVING_SIGNATURE = "serving_default"
FRAMES_SIGNATURE = "serve_frames"


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What the serving graph needs beside the model: how records look and what is returned.

    Attributes:
      data_family: "yt8m" (frame feature records); selects the record parser.
      num_classes: C, width of `probabilities`.
      max_frames: frames kept per video; longer videos are cut, shorter ones zero-padded.
      feature_names, feature_sizes: the feature lists read, concatenated per frame in this order.
      k_frames: 0 for an all-frames model, k > 0 for a student (selection happens in the graph).
      frame_selection: how a student's k frames are chosen.
      top_k: K, classes in `class_indexes` and `scores`: min(20, num_classes).
    """

    data_family: str
    num_classes: int
    max_frames: int
    feature_names: tuple[str, ...]
    feature_sizes: tuple[int, ...]
    k_frames: int
    frame_selection: str
    top_k: int

    @classmethod
    def from_run(cls, run: RestoredRun) -> ExportSpec:
        family = data_family(run)
        if family not in _PARSERS:
            raise ValueError(f"exporting models of {family!r} data is not supported yet")
        config = run.model_config
        return cls(
            data_family=family,
            num_classes=config.num_classes,
            max_frames=run.max_frames,
            feature_names=tuple(run.run_flags.feature_names),
            feature_sizes=tuple(int(s) for s in config.feature_sizes),
            k_frames=config.k_frames,
            frame_selection=config.frame_selection,
            top_k=min(TOP_K, config.num_classes),
        )


def data_family(run: RestoredRun) -> str:
    """The run's data family: its --dataset flag where runs have one, else "yt8m"."""
    return run.run_flags["dataset"].value if "dataset" in run.run_flags else "yt8m"


# ------------------------------------------------------------------------------- record parsing
def parse_yt8m_records(
    serialized: tf.Tensor,
    *,
    max_frames: int,
    feature_names: tuple[str, ...],
    feature_sizes: tuple[int, ...],
) -> dict[str, tf.Tensor]:
    """[B] serialized YouTube-8M SequenceExamples -> video_id [B], frames [B, max_frames, D] uint8,
    num_frames [B] int32, as `yt8m_kd.data.yt8m.frame_dataset` batches them (labels not read).

    Raises (when run): InvalidArgumentError naming the first bad record's position and id.
    """
    names, sizes = tuple(feature_names), tuple(int(s) for s in feature_sizes)
    context, sequences, lengths = tf.io.parse_sequence_example(
        serialized,
        context_features={
            "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "video_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
        },
        sequence_features={
            name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True) for name in names
        },
    )
    video_id = tf.where(context["id"] != "", context["id"], context["video_id"])  # [B]
    counts = tf.stack([tf.cast(lengths[name], tf.int32) for name in names], axis=1)  # [B, F]
    # The checks of the input pipeline that concern frames, first failing one per record.
    size_ok = []
    for name, size in zip(names, sizes, strict=True):
        # [B, T_name]: positions past a record's own frame count are parser padding.
        valid = tf.sequence_mask(counts[:, names.index(name)], tf.shape(sequences[name])[1])
        length_ok = tf.strings.length(sequences[name]) == size
        size_ok.append(tf.reduce_all(length_ok | ~valid, axis=1))
    problems = [
        (tf.reduce_any(counts > 0, axis=1), "no frames"),
        (tf.reduce_all(counts > 0, axis=1), "a feature list absent or empty"),
        (
            tf.reduce_all(counts == counts[:, :1], axis=1),
            "feature lists with different frame counts",
        ),
        (tf.reduce_all(tf.stack(size_ok, axis=1), axis=1), "a frame of the wrong number of bytes"),
    ]
    layout = ", ".join(f"{name}={size}" for name, size in zip(names, sizes, strict=True))
    problem = tf.fill(tf.shape(video_id), "")
    for ok, text in reversed(problems):
        problem = tf.where(ok, problem, text)
    bad = tf.argmax(tf.cast(problem != "", tf.int32))  # the first bad record, if any
    check = tf.debugging.Assert(
        tf.reduce_all(problem == ""),
        [
            tf.strings.join(
                [
                    "bad YouTube-8M record at position ",
                    tf.strings.as_string(bad),
                    " of the request, record id ",
                    tf.gather(video_id, bad),
                    ": ",
                    tf.gather(problem, bad),
                    f" (bytes per frame: {layout})",
                ]
            )
        ],
    )
    with tf.control_dependencies([check]):
        rows = []
        for name, size in zip(names, sizes, strict=True):
            kept = sequences[name][:, :max_frames]  # [B, t]: frames past max_frames are cut
            # fixed_length: the parser's empty padding strings decode to zero frames.
            rows.append(tf.io.decode_raw(kept, tf.uint8, fixed_length=size))  # [B, t, size]
        frames = tf.concat(rows, axis=-1)  # [B, t, D]
    num_frames = tf.minimum(counts[:, 0], max_frames)
    frames, num_frames = fit_frames(frames, num_frames, max_frames)
    return {"video_id": video_id, "frames": frames, "num_frames": num_frames}


# Serialized records -> the batch dict (video_id, frames, num_frames), per data family.
_PARSERS = {
    "yt8m": lambda serialized, spec: parse_yt8m_records(
        serialized,
        max_frames=spec.max_frames,
        feature_names=spec.feature_names,
        feature_sizes=spec.feature_sizes,
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
    raise ValueError(f"no frames input for data family {spec.data_family!r}")


def fit_frames(
    frames: tf.Tensor, num_frames: tf.Tensor, max_frames: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """[B, T, ...] frames cut or zero-padded to [B, max_frames, ...]; num_frames clipped to match.

    The padded length matters beyond the mask: random-k selection draws one key per position of
    the padded length, so the graph sees the length the input pipeline pads to.
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
    predict = make_predict_fn(run.model, run.model_config)

    def outputs(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        probabilities = predict(batch)  # [B, C]
        # Ties: top_k puts the lower class index first (a stable descending sort).
        top = tf.math.top_k(probabilities, k=spec.top_k, sorted=True)
        return {
            "class_indexes": tf.cast(top.indices, tf.int32),
            "scores": top.values,
            "probabilities": probabilities,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="example_bytes")])
    def serve_records(example_bytes):
        batch = parse_records(example_bytes, spec)
        return {"video_id": batch["video_id"], **outputs(batch)}

    @tf.function(
        input_signature=[_frames_spec(spec), tf.TensorSpec([None], tf.int32, name="num_frames")]
    )
    def serve_frames(frames, num_frames):
        tf.debugging.assert_equal(
            tf.shape(frames)[0], tf.shape(num_frames)[0], "frames and num_frames differ in B"
        )
        frames, num_frames = fit_frames(frames, num_frames, spec.max_frames)
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
    return {
        "format": METADATA_FORMAT,
        **dataclasses.asdict(spec),
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


def export_saved_model(
    run: str | RestoredRun,
    export_dir: str | None = None,
    checkpoint: str | None = None,
    overwrite: bool = False,
) -> str:
    """Exports a run's model as a SavedModel with the signatures of the module docstring.

    Args:
      run: a run directory (flags.txt + checkpoints/) or a `RestoredRun`.
      export_dir: where the SavedModel goes; default <run_dir>/export.
      checkpoint: with a run directory, the checkpoint to export (default: the latest).
      overwrite: replace an existing export_dir (atomically, see the module docstring).

    Returns:
      export_dir.

    Raises:
      FileExistsError: export_dir exists and overwrite is False.
      FileNotFoundError: not a run directory, or no checkpoint.
      ValueError: export_dir missing for a RestoredRun, or a checkpoint given with one.
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
    if tf.io.gfile.exists(export_dir) and not overwrite:
        raise FileExistsError(
            f"{export_dir} exists already; remove it or export with overwrite (--overwrite)"
        )
    partial, old = export_dir + ".partial", export_dir + ".old"
    _remove(partial)  # a leftover of an interrupted export
    parent = os.path.dirname(export_dir)
    if parent:
        tf.io.gfile.makedirs(parent)

    spec = ExportSpec.from_run(run)
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
