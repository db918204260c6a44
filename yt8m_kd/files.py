"""Small JSON and text files of a run (metrics.json, manifests, SAKD selections), local or on any
tf.io.gfile file system."""

from __future__ import annotations

import json

import tensorflow as tf


def read_json(path: str) -> dict | None:
    """The JSON object in `path` (local or gs://), or None when there is no such file."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(path: str, value: dict) -> None:
    """Writes JSON atomically: a crash mid-write leaves the old file, never half a file."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_text(path: str, text: str) -> None:
    """Writes a text file atomically: a crash mid-write leaves the old file or none, never half
    a file that a reader would take for complete."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
