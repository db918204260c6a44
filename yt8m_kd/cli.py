"""What every launcher shares: quiet logs, one line per stage, and one line per expected failure.

Import this module before TensorFlow: it keeps TensorFlow's C++ start-up notices (INFO) out of the
output. `run(main)` is `absl.app.run` with the absl/TensorFlow INFO lines off unless the command
line asks for them with `--verbosity=0` (warnings and errors always show), and with every
expected failure (a bad flag, a missing file, a bad record) reported as one `prog: error: ...`
line and exit status 1:
- bad flags, missing files, bad split files, bad records;
- file-system errors (a read-only or full disk, a path under a regular file, a directory where a
  file should be), Python's OSError and TensorFlow's equivalents: the path and what to do;
- a diverged run (non-finite loss, weights or scores).
Training stopped by SIGINT or SIGTERM (its checkpoint saved) is one line too, with the exit status
of the signal: 130 for SIGINT, 143 for SIGTERM; so is Ctrl-C at any other time (130).
"""

from __future__ import annotations

import os

# Before TensorFlow is imported anywhere: C++ INFO off, warnings and errors on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import errno  # noqa: E402
import functools  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from yt8m_kd.configs import FlagError  # noqa: E402
from yt8m_kd.data.ucf101_splits import SplitFileError  # noqa: E402
from yt8m_kd.data.yt8m import error_message  # noqa: E402
from yt8m_kd.metrics import NonFinitePredictionsError  # noqa: E402
from yt8m_kd.training.loop import NonFiniteLossError, TrainingStopped  # noqa: E402
from yt8m_kd.training.strategy import WorkerLostError  # noqa: E402

# TensorFlow's file-system errors (tf.io.gfile, checkpoints, summaries, SavedModels): a denied
# write, a full disk, a path under a regular file ("is not a directory"), a path that exists.
_TF_FILE_ERRORS = (
    tf.errors.PermissionDeniedError,
    tf.errors.ResourceExhaustedError,
    tf.errors.FailedPreconditionError,
    tf.errors.AlreadyExistsError,
    tf.errors.NotFoundError,
)

# What to do, by errno (Python) or by the words of TensorFlow's message (it has no errno).
_ADVICE = (
    (errno.ENOSPC, "no space left", "free some disk space or write elsewhere"),
    (errno.EROFS, "read-only file system", "write to a writable file system"),
    (errno.EACCES, "permission denied", "make it writable (or readable) or use another path"),
    (errno.EPERM, "operation not permitted", "make it writable or use another path"),
    (
        errno.ENOTDIR,
        "not a directory",
        "the path or a directory above it is a regular file: use another path",
    ),
    (errno.EISDIR, "is a directory", "give the path of a file, not a directory"),
    (errno.EEXIST, "already exists", "remove it or use another path"),
)


def stage(message: str) -> None:
    """One progress line of a launcher ("== teacher: ..."), on stderr beside the progress bars, so
    that stdout keeps the results."""
    print(message, file=sys.stderr, flush=True)


def os_error_message(error: BaseException) -> str:
    """One line for a file-system error: the path (Python names it in `filename`, TensorFlow in
    its message) and what to do."""
    if isinstance(error, OSError) and error.filename is not None:
        paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
        message = f"{paths}: {error.strerror or error}"
    else:
        message = error_message(error)
    code = getattr(error, "errno", None)
    for number, words, advice in _ADVICE:
        if code == number or words in message.lower():
            return f"{message}; {advice}"
    return message


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: bad flags, missing files, bad split files, bad records, file-system
    errors and diverged runs exit 1 with one line; a training stopped by a signal exits with
    that signal's status (130, 143) and one line."""

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
        except TrainingStopped as e:
            print(f"{program}: {e}", file=sys.stderr, flush=True)
            sys.exit(e.exit_status)
        except KeyboardInterrupt:  # Ctrl-C outside training (which saves and stops on its own)
            print(f"{program}: interrupted by SIGINT", file=sys.stderr, flush=True)
            sys.exit(128 + signal.SIGINT)
        except expected as e:
            sys.exit(f"{program}: error: {error_message(e)}")
        except (OSError, *_TF_FILE_ERRORS) as e:
            sys.exit(f"{program}: error: {os_error_message(e)}")
        except (NonFiniteLossError, NonFinitePredictionsError) as e:
            sys.exit(f"{program}: error: {e}")

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
