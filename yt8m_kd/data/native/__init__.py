"""The reader's native fast path: `Yt8mCanonicalFrames`, a TensorFlow op compiled on first use.

TensorFlow's SequenceExample parser builds one string per frame and feature (600 for a 300-frame
YouTube-8M record) before the reader decodes them; at the reference shapes that is most of a
record's parse. `yt8m_frames.cc` decodes the frames of a record written in the canonical layout
(what every protobuf writer produces) straight into the [frames, width] uint8 tensor, and says
ok = false for anything else, which the reader then parses with TensorFlow's parser as before
(docs/reader-fast-path.md). So the op changes the speed, never the records or the errors.

Building. `load()` compiles the op with the C++ compiler (`$CXX`, else g++) against the installed
TensorFlow's headers (`tf.sysconfig`) into a per-user cache, once per source and TensorFlow
version (about 6 s on 2 cores; concurrent processes wait on a file lock, then load the same
library). `python -m yt8m_kd.data.native` builds it ahead of time. Where it cannot be built (no
compiler, a TensorFlow without headers), load() warns once and returns None, and the reader keeps
TensorFlow's parser: the same records, slower; with YT8M_KD_NATIVE=0 it returns None quietly.

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

SOURCE = Path(__file__).with_name("yt8m_frames.cc")
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
        SOURCE.read_bytes() + tf.__version__.encode() + " ".join([_compiler(), *_flags()]).encode()
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
            command = [_compiler(), "-O2", "-w", "-shared", "-fPIC", str(SOURCE), "-o", str(built)]
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
    module = load()
    if module is None:
        raise BuildError("the native frame decoder is not available (see load())")
    ok, frames, count, labels_ok, multi_hot = module.yt8m_canonical_frames(
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
