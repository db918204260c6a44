"""Exports a trained run's model as a SavedModel that serves raw records.

  python launchers/export.py --run_dir=runs/student_k6 [--checkpoint=PATH] \
      [--export_dir=runs/student_k6/export] [--overwrite] [--class_index_file=classInd.txt] \
      [--export_dtype=float32|float16|bfloat16]

The model is rebuilt from the run's flags.txt and its latest (or the given) checkpoint; only the
model is exported (no teacher, projection head or optimizer). Signatures: `serving_default`
(serialized records -> video_id, top-K class_indexes and scores, probabilities; K = 20 for
YouTube-8M, 5 for UCF101) and `serve_frames` (uint8 frames and num_frames -> the same without
video_id); see yt8m_kd/export.py. A UCF101 export records the class names of the run's
--class_index_file (or of --class_index_file here) in its metadata. The export is written beside
export_dir and renamed into place when complete; an existing export_dir is refused unless
--overwrite. --export_dtype=float16 or bfloat16 stores the weights and runs the model in that
type, at about half the bytes; inputs and outputs are unchanged (see yt8m_kd/export.py
`cast_run`), and the metadata records the type. Prints the export's yt8m_kd_export.json.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import flags

from yt8m_kd import cli
from yt8m_kd import flags as yflags
from yt8m_kd.export import EXPORT_DTYPES, export_saved_model, load_export_metadata

flags.DEFINE_string("run_dir", None, "Run directory written by launchers/train.py.")
flags.DEFINE_string("checkpoint", None, "Checkpoint path (default: the run's latest).")
flags.DEFINE_string("export_dir", None, "Where the SavedModel goes (default: <run_dir>/export).")
flags.DEFINE_boolean("overwrite", False, "Replace an existing --export_dir.")
flags.DEFINE_string(
    "class_index_file",
    None,
    "UCF101: classInd.txt whose class names the export records (default: the run's).",
)
flags.DEFINE_enum(
    "export_dtype",
    "float32",
    list(EXPORT_DTYPES),
    "Type of the exported weights and of the model's compute (inputs and outputs unchanged): "
    "float16 or bfloat16 exports about half the bytes of float32.",
)
FLAGS = flags.FLAGS


def _validate_flags() -> str:
    """Checks the flags before any work; returns the export directory."""
    yflags.require_run_dir("run_dir", FLAGS.run_dir)
    yflags.require_file("class_index_file", FLAGS.class_index_file)
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.run_dir, "export")
    if tf.io.gfile.exists(export_dir) and not FLAGS.overwrite:
        raise yflags.FlagError(
            f"--export_dir={export_dir} exists already; pass --overwrite to replace it"
        )
    return export_dir


def main(argv: list[str]) -> None:
    del argv
    export_dir = _validate_flags()

    try:
        export_dir = export_saved_model(
            FLAGS.run_dir,
            export_dir,
            checkpoint=FLAGS.checkpoint,
            overwrite=FLAGS.overwrite,
            class_index_file=FLAGS.class_index_file,
            export_dtype=FLAGS.export_dtype,
        )
    except FileExistsError as e:  # created since the check above
        raise yflags.FlagError(str(e)) from e
    print(
        json.dumps({"export_dir": export_dir, **load_export_metadata(export_dir)}, sort_keys=True)
    )


if __name__ == "__main__":
    cli.run(main)
