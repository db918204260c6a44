"""Packs one UCF101 split of extracted frames into SequenceExample shards.

  python data_scripts/ucf101_to_tfrecord.py --frames_dir=data/UCF101/frames \
      --split_file=data/UCF101/ucfTrainTestlist/trainlist01.txt \
      --class_index_file=data/UCF101/ucfTrainTestlist/classInd.txt \
      --output_dir=data/UCF101/records --num_shards=16

writes <output_dir>/trainlist01-00000-of-00016.tfrecord ... (--split_name changes the prefix).
Membership and labels come from the split file; each record holds the video's id, label,
class name and its JPEG frames unchanged (schema: yt8m_kd/data/ucf101_prepare.py). A listed video
without frames is an error naming it, or with --skip_missing a warning, counted in the summary.
"""

from __future__ import annotations

import os
import sys

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags

from yt8m_kd import cli
from yt8m_kd.data import ucf101_prepare, ucf101_splits

_FRAMES_DIR = flags.DEFINE_string(
    "frames_dir", None, "The frames root written by extract_ucf101_frames.py.", required=True
)
_SPLIT_FILE = flags.DEFINE_string(
    "split_file", None, "A trainlist0N.txt or testlist0N.txt file.", required=True
)
_CLASS_INDEX_FILE = flags.DEFINE_string("class_index_file", None, "classInd.txt.", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the shards go.", required=True)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 8, "Files to write.", lower_bound=1)
_SPLIT_NAME = flags.DEFINE_string(
    "split_name", None, "File name prefix (default: the split file's name, e.g. trainlist01)."
)
_SKIP_MISSING = flags.DEFINE_bool(
    "skip_missing", False, "Skip (and count) listed videos without frames instead of failing."
)
_PROGRESS_BAR = flags.DEFINE_bool("progress_bar", True, "Show a progress bar.")


def main(argv: list[str]) -> None:
    del argv
    try:
        summary = ucf101_prepare.write_split_records(
            _FRAMES_DIR.value,
            _SPLIT_FILE.value,
            _CLASS_INDEX_FILE.value,
            _OUTPUT_DIR.value,
            num_shards=_NUM_SHARDS.value,
            split_name=_SPLIT_NAME.value,
            skip_missing=_SKIP_MISSING.value,
            progress=_PROGRESS_BAR.value,
        )
    except ucf101_splits.SplitFileError as e:
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {e}")
    text = (
        f"{summary['split']}: {summary['videos']} videos ({summary['frames']} frames) in "
        f"{len(summary['shards'])} shards under {_OUTPUT_DIR.value}"
    )
    if summary["missing"]:
        text += (
            f"; {summary['missing']} skipped without frames: {', '.join(summary['missing_videos'])}"
        )
    print(text, flush=True)


if __name__ == "__main__":
    cli.run(main)
