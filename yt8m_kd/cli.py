"""What every launcher shares: quiet logs, one line per stage, and one line per expected failure.

Import this module before TensorFlow: it keeps TensorFlow's C++ start-up notices (INFO) out of the
output. `run(main)` is `absl.app.run` with the absl/TensorFlow INFO lines off unless the command
line asks for them with `--verbosity=0` (warnings and errors always show), and with every
expected failure (a bad flag, a missing file, a bad record) reported as one `prog: error: ...`
line and exit status 1.
"""

from __future__ import annotations

import os

# Before TensorFlow is imported anywhere: C++ INFO off, warnings and errors on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import functools  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from yt8m_kd.configs import FlagError  # noqa: E402
from yt8m_kd.data.ucf101_splits import SplitFileError  # noqa: E402
from yt8m_kd.data.yt8m import error_message  # noqa: E402
from yt8m_kd.training.strategy import WorkerLostError  # noqa: E402


def stage(message: str) -> None:
    """One progress line of a launcher ("== teacher: ..."), on stderr beside the progress bars, so
    that stdout keeps the results."""
    print(message, file=sys.stderr, flush=True)


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: bad flags, missing files, bad split files and bad records exit 1 with
    one line."""

    @functools.wraps(main)
    def wrapper(argv: list[str]) -> None:
        program = os.path.basename(sys.argv[0])
        expected = (
            FlagError,
            FileNotFoundError,
            ImportError,  # a file system plugin (tensorflow-io) that cannot load
            SplitFileError,  # a bad line of a UCF101 split file, named with its file and line
            tf.errors.InvalidArgumentError,  # a bad record, named by the pipeline
            tf.errors.DataLossError,
            WorkerLostError,  # a multi-worker run lost a worker (training/strategy.py)
        )
        try:
            main(argv)
        except expected as e:
            sys.exit(f"{program}: error: {error_message(e)}")

    return wrapper


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad value reported on one line instead of two."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.exit(f"{os.path.basename(argv[0])}: error: {e}")


def _quiet_unless_asked(argv: list[str]) -> None:
    """INFO logs of absl and TensorFlow (checkpoint callbacks, SavedModel notices, ...) off by
    default; `--verbosity` on the command line decides otherwise."""
    if not any(arg.startswith(("--verbosity", "-v=", "--v=")) for arg in argv):
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("WARNING")


def run(main: Callable[[list[str]], None]) -> None:
    """`app.run` for the launchers: quiet by default, and every expected failure ends in one
    `prog: error: ...` line."""
    _quiet_unless_asked(sys.argv)
    app.run(guarded(main), flags_parser=_parse_flags)
