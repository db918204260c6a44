"""Writes a synthetic UCF101-format set: AVI videos and the official split lists.

  python data_scripts/make_synthetic_ucf101.py --output_dir=data/ucf101_synthetic \
      --num_groups=6 --clips_per_group=2

Layout: <output_dir>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi and <output_dir>/ucfTrainTestlist/
(classInd.txt, trainlist01-03.txt, testlist01-03.txt), as in the official download. The classes
(a square sliding, shuttling or jumping; pairs that differ only in temporal order) and the
mapping of groups to splits are documented in yt8m_kd/data/ucf101_synthetic.py. The same flags
write the same videos.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags

from yt8m_kd import cli
from yt8m_kd.configs import FlagError
from yt8m_kd.data import ucf101_synthetic

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the set goes.", required=True)
_NUM_CLASSES = flags.DEFINE_integer(
    "num_classes",
    len(ucf101_synthetic.CLASS_NAMES),
    f"The first N of the classes {', '.join(ucf101_synthetic.CLASS_NAMES)}.",
    lower_bound=1,
    upper_bound=len(ucf101_synthetic.CLASS_NAMES),
)
_NUM_GROUPS = flags.DEFINE_integer(
    "num_groups",
    6,
    "Groups per class (UCF101: 25); each split tests on about a third.",
    lower_bound=3,
)
_CLIPS_PER_GROUP = flags.DEFINE_integer("clips_per_group", 2, "Clips per group.", lower_bound=1)
_WIDTH = flags.DEFINE_integer("width", 64, "Frame width in pixels (even).", lower_bound=2)
_HEIGHT = flags.DEFINE_integer("height", 48, "Frame height in pixels (even).", lower_bound=2)
_MIN_FRAMES = flags.DEFINE_integer("min_frames", 24, "Shortest video, in frames.", lower_bound=2)
_MAX_FRAMES = flags.DEFINE_integer("max_frames", 40, "Longest video, in frames.", lower_bound=2)
_FPS = flags.DEFINE_integer("fps", 25, "Frame rate of the files (UCF101: 25).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seeds every video, with its class, group and clip.")


def main(argv: list[str]) -> None:
    del argv
    if _MIN_FRAMES.value > _MAX_FRAMES.value:
        raise FlagError(
            f"--min_frames={_MIN_FRAMES.value} exceeds --max_frames={_MAX_FRAMES.value}"
        )
    if _WIDTH.value % 2 or _HEIGHT.value % 2:
        raise FlagError(f"--width and --height must be even, got {_WIDTH.value}x{_HEIGHT.value}")
    dataset = ucf101_synthetic.make_synthetic_ucf101(
        _OUTPUT_DIR.value,
        num_classes=_NUM_CLASSES.value,
        num_groups=_NUM_GROUPS.value,
        clips_per_group=_CLIPS_PER_GROUP.value,
        width=_WIDTH.value,
        height=_HEIGHT.value,
        min_frames=_MIN_FRAMES.value,
        max_frames=_MAX_FRAMES.value,
        fps=_FPS.value,
        seed=_SEED.value,
    )
    cli.stage(
        f"wrote {len(dataset.videos)} videos of {len(dataset.class_names)} classes to "
        f"{dataset.video_dir} and the split lists to {dataset.list_dir}"
    )


if __name__ == "__main__":
    cli.run(main)
