"""Decodes UCF101 videos into JPEG frames: <output_dir>/<Class>/<video stem>/frame_00001.jpg ...

  python data_scripts/extract_ucf101_frames.py --video_dir=data/UCF101/UCF-101 \
      --output_dir=data/UCF101/frames --short_side=128 --num_workers=4

Resumable: run it again after an interruption and finished videos are skipped (a video's folder
appears only once all its frames are written); a half-extracted video is redone. A video that
cannot be decoded is logged and counted, and the run goes on. The last line is a summary
(videos extracted, skipped, failed with their names, frames written, seconds). Details:
yt8m_kd.data.ucf101_prepare.extract_videos.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags

from yt8m_kd import cli
from yt8m_kd.data import ucf101_prepare

_VIDEO_DIR = flags.DEFINE_string(
    "video_dir", None, "The UCF-101 folder: one sub-folder of .avi files per class.", required=True
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The frames root.", required=True)
_FPS = flags.DEFINE_float(
    "fps",
    None,
    "Resample to this frame rate by timestamps (default: keep every frame).",
    lower_bound=0.001,
)
_SHORT_SIDE = flags.DEFINE_integer(
    "short_side",
    None,
    "Resize so the short side has this many pixels (default: keep the size).",
    lower_bound=1,
)
_JPEG_QUALITY = flags.DEFINE_integer(
    "jpeg_quality", 95, "JPEG quality 0-100.", lower_bound=0, upper_bound=100
)
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 1, "Videos extracted at once.", lower_bound=1)
_PROGRESS_BAR = flags.DEFINE_bool("progress_bar", True, "Show a progress bar.")


def main(argv: list[str]) -> None:
    del argv
    summary = ucf101_prepare.extract_videos(
        _VIDEO_DIR.value,
        _OUTPUT_DIR.value,
        fps=_FPS.value,
        short_side=_SHORT_SIDE.value,
        jpeg_quality=_JPEG_QUALITY.value,
        num_workers=_NUM_WORKERS.value,
        progress=_PROGRESS_BAR.value,
    )
    print(ucf101_prepare.format_extraction_summary(summary), flush=True)


if __name__ == "__main__":
    cli.run(main)
