"""Glue shared by the launchers: turn expected failures into one clear line on stderr."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

from absl import app, flags

from yt8m_kd.data.yt8m import error_message
from yt8m_kd.flags import FlagError


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: bad flags, missing files, bad split files and bad records exit 1 with
    one line."""

    @functools.wraps(main)
    def wrapper(argv: list[str]) -> None:
        import tensorflow as tf

        from yt8m_kd.data.ucf101 import SplitFileError

        program = os.path.basename(sys.argv[0])
        expected = (
            FlagError,
            FileNotFoundError,
            ImportError,  # a file system plugin (tensorflow-io) that cannot load
            SplitFileError,  # a bad line of a UCF101 split file, named with its file and line
            tf.errors.InvalidArgumentError,  # a bad record, named by the pipeline
            tf.errors.DataLossError,
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


def run(main: Callable[[list[str]], None]) -> None:
    """`app.run` for the launchers: every expected failure ends in one `prog: error: ...` line."""
    app.run(guarded(main), flags_parser=_parse_flags)
