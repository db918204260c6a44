"""Loads an export of yt8m_kd/export.py the way a serving client would: TensorFlow and numpy only.

  python tests/scripts/load_saved_model.py EXPORT_DIR OUTPUT_NPZ --records FILE [FILE ...] \
      --batch_size N [--frames_npz FRAMES_NPZ]

Feeds the serialized records of the files, in order and N at a time, to `serving_default`, and
(with --frames_npz, arrays `frames` and `num_frames`) the frames N at a time to `serve_frames`;
writes every output, concatenated, to OUTPUT_NPZ (the serve_frames ones prefixed `frames_`). It
fails if anything imported yt8m_kd: the SavedModel must load without the project's code. Prints a
JSON line describing both signatures.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import tensorflow as tf


def _signature(function) -> dict:
    _, inputs = function.structured_input_signature
    return {
        "inputs": {name: [spec.dtype.name, spec.shape.as_list()] for name, spec in inputs.items()},
        "outputs": {
            name: [spec.dtype.name, spec.shape.as_list()]
            for name, spec in function.structured_outputs.items()
        },
    }


def _concatenate(batches: list[dict], prefix: str = "") -> dict:
    arrays = {
        prefix + name: np.concatenate([batch[name].numpy() for batch in batches])
        for name in batches[0]
    }
    # Strings come as object arrays, which np.load refuses without pickle: fixed-width bytes.
    return {
        name: array.astype(bytes) if array.dtype == object else array
        for name, array in arrays.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export_dir")
    parser.add_argument("output_npz")
    parser.add_argument("--records", nargs="+", required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--frames_npz")
    args = parser.parse_args()

    loaded = tf.saved_model.load(args.export_dir)
    serve = loaded.signatures["serving_default"]
    records = tf.data.TFRecordDataset(args.records).batch(args.batch_size)
    outputs = _concatenate([serve(example_bytes=batch) for batch in records])

    serve_frames = loaded.signatures["serve_frames"]
    if args.frames_npz:
        inputs = np.load(args.frames_npz)
        frames, num_frames = inputs["frames"], inputs["num_frames"]
        batches = [
            serve_frames(
                frames=tf.constant(frames[i : i + args.batch_size]),
                num_frames=tf.constant(num_frames[i : i + args.batch_size]),
            )
            for i in range(0, len(frames), args.batch_size)
        ]
        outputs.update(_concatenate(batches, prefix="frames_"))
    np.savez(args.output_npz, **outputs)

    imported = sorted(name for name in sys.modules if name.split(".")[0] == "yt8m_kd")
    assert "yt8m_kd" not in sys.modules and not imported, imported
    report = {name: _signature(loaded.signatures[name]) for name in loaded.signatures}
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
