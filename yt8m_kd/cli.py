"""Glue shared by the launchers: turn expected failures into one clear line on stderr."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable

from yt8m_kd.flags import FlagError

# TensorFlow wraps an error raised inside a tf.function or tf.data pipeline in graph context:
# "{{function_node __inference_...}} <message> [[{{node ...}}]] [Op:...]". Keep the message.
_TF_NOISE = re.compile(r"\{\{function_node [^}]*\}\}|\[\[\{\{node [^]]*\]\]|\[Op:[^\]]*\]")


def error_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error)
    message = _TF_NOISE.sub("", message)
    message = " ".join(message.split())
    return message


def guarded(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wraps an absl main: bad flags, missing files and bad records exit 1 with one line."""

    @functools.wraps(main)
    def wrapper(argv: list[str]) -> None:
        import tensorflow as tf

        program = os.path.basename(sys.argv[0])
        try:
            main(argv)
        except (FlagError, FileNotFoundError) as e:
            sys.exit(f"{program}: error: {error_line(e)}")
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            sys.exit(f"{program}: error: {error_line(e)}")

    return wrapper
