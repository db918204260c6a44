"""The reader's native fast path: TensorFlow ops compiled on first use.

TensorFlow's SequenceExample parser builds one string per frame and feature (600 for a 300-frame
YouTube-8M record) before the reader decodes them; at the reference shapes that is most of a
record's parse. `yt8m_frames.cc` decodes the frames of a record written in the canonical layout
(what every protobuf writer produces) straight into the [frames, width] uint8 tensor, and says
ok = false for anything else, which the reader then parses with TensorFlow's parser as before
(docs/reader-fast-path.md). `yt8m_records_dataset.cc` goes further: a dataset that reads a whole
file with TensorFlow's TFRecord reader and emits its records in the canonical layout without a
problem, with no tf.data function per record, up to the first record it does not take; the reader
continues from there with its general pipeline (`records_dataset`, `resume_point`). So the ops
change the speed, never the records or the errors. Both share the layout's parser, `yt8m_wire.h`.

Building. `load()` compiles the ops with the C++ compiler (`$CXX`, else g++) against the
installed TensorFlow's headers (`tf.sysconfig`) into a per-user cache, once per source and
TensorFlow version (about 25 s on 2 cores; concurrent processes wait on a file lock, then load the
same library). `python -m yt8m_kd.data.native` builds it ahead of time. Where it cannot be built
(no compiler, a TensorFlow without headers), load() warns once and returns None, and the reader
keeps TensorFlow's parser: the same records, slower; with YT8M_KD_NATIVE=0 it returns None quietly.
The dataset is wrapped with TensorFlow's `DatasetSource` (`tensorflow.python.data.ops`), the one
private TensorFlow API here, as custom dataset ops are.

Environment: YT8M_KD_NATIVE=0 turns the fast path off; YT8M_KD_CACHE_DIR moves the build cache
(default ~/.cache/yt8m_kd).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
from absl import logging
from tensorflow.python.data.ops import dataset_ops

# The library's sources: compiled together; the header is shared by both.
SOURCES = tuple(
    Path(__file__).with_name(name)
    for name in ("yt8m_wire.h", "yt8m_frames.cc", "yt8m_records_dataset.cc")
)
_LIBRARY = "yt8m_frames.so"
_state: dict[str, object] = {}


class BuildError(RuntimeError):
    """The op could not be compiled or loaded; the message holds the compiler's last lines."""


def enabled() -> bool:
    """False when YT8M_KD_NATIVE=0 (or false/no/off)."""
    return os.environ.get("YT8M_KD_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


def _flags() -> list[str]:
    return list(tf.sysconfig.get_compile_flags()) + list(tf.sysconfig.get_link_flags())


def library_path() -> Path:
    """Where this source, built against this TensorFlow, lives in the build cache."""
    key = hashlib.sha256(
        b"".join(source.read_bytes() for source in SOURCES)
        + tf.__version__.encode()
        + " ".join([_compiler(), *_flags()]).encode()
    ).hexdigest()[:16]
    root = Path(os.environ.get("YT8M_KD_CACHE_DIR") or Path.home() / ".cache" / "yt8m_kd")
    return root / "native" / key / _LIBRARY


def build() -> Path:
    """Compiles the op unless the cache has it; returns the library's path. Raises BuildError."""
    target = library_path()
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        if target.exists():
            return target
        if shutil.which(_compiler()) is None:
            raise BuildError(f"no C++ compiler {_compiler()!r} on PATH (set CXX)")
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            built = Path(scratch) / _LIBRARY
            sources = [str(source) for source in SOURCES if source.suffix == ".cc"]
            command = [_compiler(), "-O2", "-w", "-shared", "-fPIC", *sources, "-o", str(built)]
            result = subprocess.run(command + _flags(), capture_output=True, text=True)
            if result.returncode != 0:
                tail = "\n".join(result.stderr.strip().splitlines()[-5:])
                raise BuildError(f"{' '.join(command[:1] + command[-3:])} failed:\n{tail}")
            os.replace(built, target)  # atomic: a reader never sees half a library
    return target


def load():
    """The loaded op module, or None (fast path off, or the op cannot be built: warned once)."""
    if "module" in _state:
        return _state["module"]
    module = None
    if enabled():
        try:
            module = tf.load_op_library(str(build()))
        except (BuildError, OSError, tf.errors.OpError) as error:
            logging.warning(
                "yt8m_kd: the native frame decoder is not available (%s); records are parsed "
                "with TensorFlow's parser alone (same records, slower).",
                error,
            )
    _state["module"] = module
    return module


def _module():
    module = load()
    if module is None:
        raise BuildError("the native frame decoder is not available (see load())")
    return module


def canonical_frames(
    serialized: tf.Tensor,
    labels: tf.Tensor,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    max_frames: int,
    num_classes: int | None,
) -> dict[str, tf.Tensor]:
    """One serialized record's frames, if it is in the canonical layout, and its labels checked:
    ok [] bool (False: not canonical, or a frame check fails), frames [min(T, max_frames), width]
    uint8 (0 frames when not ok), num_frames [] int32 = T, labels_ok [] bool (every label in
    [0, num_classes)) and multi_hot [num_classes] float32 (num_classes None: labels not read,
    [0]). labels: the record's context labels, int64 [L]. Requires load() to give the module."""
    ok, frames, count, labels_ok, multi_hot = _module().yt8m_canonical_frames(
        serialized,
        labels,
        feature_names=list(feature_names),
        feature_sizes=[int(size) for size in feature_sizes],
        max_frames=int(max_frames),
        num_classes=0 if num_classes is None else int(num_classes),
    )
    return {
        "ok": ok,
        "frames": frames,
        "num_frames": count,
        "labels_ok": labels_ok,
        "multi_hot": multi_hot,
    }


def record_spec(width: int, num_classes: int) -> dict[str, tf.TensorSpec]:
    """The element of `records_dataset`: that of the reader's general pipeline for a good record
    (labels read)."""
    return {
        "_emit": tf.TensorSpec([], tf.bool),
        "frames": tf.TensorSpec([None, width], tf.uint8),
        "labels": tf.TensorSpec([num_classes], tf.float32),
        "num_frames": tf.TensorSpec([], tf.int32),
        "video_id": tf.TensorSpec([], tf.string),
    }


class _RecordsDataset(dataset_ops.DatasetSource):
    """The Yt8mRecordsDataset op as a tf.data.Dataset."""

    def __init__(self, path, size, token, feature_names, feature_sizes, max_frames, num_classes):
        self._spec = record_spec(sum(int(s) for s in feature_sizes), int(num_classes))
        flat = tf.nest.flatten(self._spec)  # sorted keys: the op's output order
        variant = _module().yt8m_records_dataset(
            path=path,
            size=size,
            token=token,
            feature_names=list(feature_names),
            feature_sizes=[int(s) for s in feature_sizes],
            max_frames=int(max_frames),
            num_classes=int(num_classes),
            output_types=[spec.dtype for spec in flat],
            output_shapes=[spec.shape for spec in flat],
        )
        super().__init__(variant)

    @property
    def element_spec(self):
        return self._spec


def records_dataset(
    path: tf.Tensor,
    size: tf.Tensor,
    feature_names: Sequence[str],
    feature_sizes: Sequence[int],
    max_frames: int,
    num_classes: int,
) -> tuple[tf.data.Dataset, tf.Tensor]:
    """The good records of one file in the canonical layout, read, checked and decoded natively,
    up to the first record it does not take (yt8m_records_dataset.cc), and the read's token:
    `resume_point(token)`, once the dataset has ended, says where the rest of the file starts.
    Elements: `record_spec`. Requires load() to give the module."""
    token = _module().yt8m_read_token()
    dataset = _RecordsDataset(
        path, size, token, feature_names, feature_sizes, max_frames, num_classes
    )
    return dataset, token


def resume_point(token: tf.Tensor) -> dict[str, tf.Tensor]:
    """Where the read of `records_dataset` that gave `token` stopped: index [] int64 (the first
    record it did not take; -1: it read the whole file), offset [] int64 (that record's byte
    offset), previous_id [] string (the id of the record before it, "" for the first). Once per
    read, after its dataset has ended."""
    index, offset, previous_id = _module().yt8m_resume_point(token)
    return {"index": index, "offset": offset, "previous_id": previous_id}


def main() -> None:
    """`python -m yt8m_kd.data.native`: build the op now (and say where), or say why not."""
    if not enabled():
        print("yt8m_kd.data.native: YT8M_KD_NATIVE is off; nothing built")
        return
    try:
        path = build()
        tf.load_op_library(str(path))
    except (BuildError, OSError, tf.errors.OpError) as error:
        print(f"yt8m_kd.data.native: not built: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"yt8m_kd.data.native: {path}")


if __name__ == "__main__":
    main()
