"""Print a model preset's size and cost.

  python launchers/model_summary.py --flagfile=models/nextvlad_reference.flags

prints, one per line, `trainable_params=N`, `non_trainable_params=N`, `gflops_per_video=X.XXX` and
`frames=N`, the frames being the preset's k_frames, or max_frames for an all-frames model.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("yt8m_kd") is None:  # a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from absl import app, flags

from yt8m_kd import flags as yt8m_flags
from yt8m_kd.modeling import build_video_model, count_flops_per_video

FLAGS = flags.FLAGS
yt8m_flags.define_all_flags(FLAGS)


def _num_params(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = yt8m_flags.model_config_from_flags(FLAGS)
    model = build_video_model(config)
    frames = config.k_frames if config.k_frames > 0 else FLAGS.max_frames
    print(f"trainable_params={_num_params(model.trainable_weights)}")
    print(f"non_trainable_params={_num_params(model.non_trainable_weights)}")
    print(f"gflops_per_video={count_flops_per_video(config, frames) / 1e9:.3f}")
    print(f"frames={frames}")


if __name__ == "__main__":
    app.run(main)
