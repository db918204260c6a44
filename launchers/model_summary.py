"""Print a model preset's size and cost.

  python launchers/model_summary.py --flagfile=models/nextvlad_reference.flags

prints, one per line, `trainable_params=N`, `non_trainable_params=N`, `gflops_per_video=X.XXX` and
`frames=N`, the frames being the preset's k_frames, or max_frames for an all-frames model.
"""

from __future__ import annotations

import os

# Keep TensorFlow's start-up notices out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags

from yt8m_kd import cli
from yt8m_kd import flags as yt8m_flags
from yt8m_kd.modeling import build_video_model, model_size

FLAGS = flags.FLAGS
yt8m_flags.define_all_flags(FLAGS)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    run_config = yt8m_flags.run_config_from_flags(FLAGS)
    yt8m_flags.validate_run_config(run_config)
    config = run_config.model
    size = model_size(build_video_model(config), config, run_config.data.max_frames)
    print(f"trainable_params={size['trainable_params']}")
    print(f"non_trainable_params={size['non_trainable_params']}")
    # 4 significant digits: the tiny presets cost well under 0.001 GFLOP.
    print(f"gflops_per_video={size['gflops_per_video']:.4g}")
    print(f"frames={size['frames']}")


if __name__ == "__main__":
    cli.run(main)
