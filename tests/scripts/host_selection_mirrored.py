"""Trains a random-k student under Mirrored (2 logical CPUs), frames selected on the host and in
the step; prints JSON with the largest weight difference. Its own process: logical devices must be
configured before TensorFlow initialises.
  python tests/scripts/host_selection_mirrored.py DATA_DIR STEPS OUT_DIR
"""

import json
import os
import sys

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)


from yt8m_kd import flags as yflags  # noqa: E402
from yt8m_kd.training.loop import Trainer  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def train(host: bool, data_dir: str, run_dir: str, steps: int) -> dict:
    config = yflags.read_flagfile(
        os.path.join(MODELS, "tiny_student_k6.flags"),
        train_data_pattern=os.path.join(data_dir, "train-*"),
        max_frames=60,
        batch_size=8,
        frame_selection="random",
        max_steps=steps,
        checkpoint_every_steps=1000,
        log_every_steps=steps,
        progress_bar=False,
    )
    trainer = Trainer(
        config.model, config.train, config.data, run_dir, strategy_lib.make_strategy("mirrored")
    )
    trainer.host_frame_selection = host
    initial = [v.numpy() for v in trainer.model.weights]
    trainer._train_until(steps, 0)
    return {
        "initial": initial,
        "final": [v.numpy() for v in trainer.model.weights],
        "replicas": trainer.strategy.num_replicas_in_sync,
        "host": trainer.selects_frames_on_host,
    }


def main() -> None:
    data_dir, steps, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    host = train(True, data_dir, os.path.join(out_dir, "host"), steps)
    in_step = train(False, data_dir, os.path.join(out_dir, "in_step"), steps)

    def max_diff(a, b) -> float:
        return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))

    print(
        json.dumps(
            {
                "final_diff": max_diff(host["final"], in_step["final"]),
                "max_update": max_diff(host["initial"], host["final"]),
                "replicas": [host["replicas"], in_step["replicas"]],
                "host": [host["host"], in_step["host"]],
            }
        )
    )


if __name__ == "__main__":
    main()
