"""UCF101's official split files, and the names of its videos and of their extracted frames.

Official layout (and that of `ucf101_synthetic`):

  UCF-101/<ClassFolder>/v_<Class>_gXX_cYY.avi   one folder per class, gXX the group (actor/scene)
  ucfTrainTestlist/classInd.txt                 "1 ApplyEyeMakeup": 1-based index, class name
  ucfTrainTestlist/trainlist0N.txt              "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  ucfTrainTestlist/testlist0N.txt               "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

A video's class is its folder: the test lists carry no label, and in the real data a file name
may spell the class differently from its folder (HandstandPushups/v_HandStandPushups_g01_c01.avi).
Blank lines and CRLF line ends are accepted. The parsers raise `SplitFileError` naming the file
and line.

A video's id is its file stem (`video_stem`). Extracted frames (`frames_folder`, written by
`ucf101_prepare.extract_videos`): <frames>/<ClassFolder>/<video stem>/frame_00001.jpg
(`FRAME_PATTERN`), 1-based and numbered without gaps, in time order. A video's folder appears
only once all its frames are written (they go to <stem>`PARTIAL_SUFFIX` first), so a folder that
exists is complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

FRAME_PATTERN = "frame_*.jpg"
PARTIAL_SUFFIX = ".partial"  # an extraction in progress; never read as a video's frames


class SplitFileError(ValueError):
    """A bad line in classInd.txt or a train/test list; the message names the file and line."""


def _read_lines(path: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-blank lines."""
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    text = text.lstrip("\ufeff")  # a byte order mark some editors add
    return [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]


def read_class_index(path: str) -> list[str]:
    """Class names in index order from classInd.txt ("1 ApplyEyeMakeup" per line).

    Raises:
      SplitFileError: a line that is not "<index> <name>", indices that are not 1, 2, ..., N in
        order, a repeated name, or no classes (the message names the file and line).
    """
    names: list[str] = []
    for number, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFileError(
                f"{path}, line {number}: expected '<index> <ClassName>', got {line!r}"
            )
        index, name = int(parts[0]), parts[1]
        if index != len(names) + 1:
            raise SplitFileError(
                f"{path}, line {number}: class index {index}, expected {len(names) + 1} "
                "(indices must run 1, 2, ..., N in order)"
            )
        if name in names:
            raise SplitFileError(f"{path}, line {number}: class {name!r} listed twice")
        names.append(name)
    if not names:
        raise SplitFileError(f"{path}: no classes")
    return names


def read_split(path: str, class_names: Sequence[str]) -> list[tuple[str, int]]:
    """(relative video path, 0-based label) per line of a trainlist or testlist file.

    The label is the video's class folder. A trainlist line's 1-based label must name that same
    class; a testlist line has no label.

    Raises:
      SplitFileError: a line that is not "<Class>/<video>.avi" with an optional label, a folder
        that is no class of `class_names`, a label that is not an index of a class or does not
        match the folder, or a video listed twice (the message names the file and line).
    """
    index = {name: i for i, name in enumerate(class_names)}
    videos: list[tuple[str, int]] = []
    seen: set[str] = set()
    for number, line in _read_lines(path):
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) not in (1, 2) or parts[0].count("/") != 1:
            raise SplitFileError(
                f"{where}: expected '<ClassName>/<video>.avi' and an optional label, got {line!r}"
            )
        relative = parts[0]
        folder = relative.split("/")[0]
        if folder not in index:
            raise SplitFileError(f"{where}: folder {folder!r} of {relative} is not a class")
        label = index[folder]
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(class_names):
                raise SplitFileError(
                    f"{where}: label {parts[1]!r} is not a class index 1..{len(class_names)}"
                )
            given = int(parts[1]) - 1
            if given != label:
                raise SplitFileError(
                    f"{where}: label {given + 1} ({class_names[given]}) does not match the "
                    f"folder of {relative} ({folder}, {label + 1})"
                )
        if relative in seen:
            raise SplitFileError(f"{where}: {relative} listed twice")
        seen.add(relative)
        videos.append((relative, label))
    return videos


def video_stem(relative_path: str) -> str:
    """'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi' -> 'v_ApplyEyeMakeup_g08_c01' (the id)."""
    return os.path.splitext(relative_path.replace("\\", "/").split("/")[-1])[0]


def frames_folder(frames_dir: str, relative_path: str) -> str:
    """Where the frames of a listed video are: <frames_dir>/<ClassFolder>/<video stem>."""
    folder = relative_path.replace("\\", "/").split("/")[0]
    return os.path.join(frames_dir, folder, video_stem(relative_path))
