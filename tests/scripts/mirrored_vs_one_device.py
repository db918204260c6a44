"""Trains the same tiny model under OneDevice and under Mirrored (2 logical CPUs); prints JSON.

Run as its own process: logical devices must be configured before TensorFlow initialises.
  python tests/scripts/mirrored_vs_one_device.py DATA_DIR STEPS OUT_DIR [TEACHER_RUN_DIR]
With a teacher run, the model is a 6-frame student distilled from it.
"""

import json
import os
import sys

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)


from yt8m_kd import flags as yflags  # noqa: E402
from yt8m_kd.configs import DistillConfig  # noqa: E402
from yt8m_kd.training.distillation import DistillationTrainer  # noqa: E402
from yt8m_kd.training.loop import Trainer  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def train(strategy_name: str, data_dir: str, run_dir: str, steps: int, teacher: str | None) -> dict:
    preset = "tiny_student_k6.flags" if teacher else "tiny_teacher.flags"
    config = yflags.read_flagfile(
        os.path.join(MODELS, preset),
        train_data_pattern=os.path.join(data_dir, "train-*"),
        max_frames=60,
        batch_size=8,
        # Dropout draws different masks per replica; everything else is deterministic.
        drop_rate=0.0,
        max_steps=steps,
        checkpoint_every_steps=1000,
        progress_bar=False,
    )
    configs = (config.model, config.train, config.data, run_dir)
    strategy = strategy_lib.make_strategy(strategy_name)
    if teacher:
        trainer = DistillationTrainer(*configs, strategy, DistillConfig(teacher_run_dir=teacher))
    else:
        trainer = Trainer(*configs, strategy)
    initial = [v.numpy() for v in trainer.model.weights]
    trainer.fit()
    return {
        "initial": initial,
        "final": [v.numpy() for v in trainer.model.weights],
        "replicas": trainer.strategy.num_replicas_in_sync,
        "step": trainer.step,
    }


def main() -> None:
    data_dir, steps, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    teacher = sys.argv[4] if len(sys.argv) > 4 else None
    one = train("one_device", data_dir, os.path.join(out_dir, "one"), steps, teacher)
    mirrored = train("mirrored", data_dir, os.path.join(out_dir, "mirrored"), steps, teacher)

    def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))

    print(
        json.dumps(
            {
                "initial_diff": max_diff(one["initial"], mirrored["initial"]),
                "final_diff": max_diff(one["final"], mirrored["final"]),
                "max_update": max_diff(one["initial"], one["final"]),
                "replicas": [one["replicas"], mirrored["replicas"]],
                "steps": [one["step"], mirrored["step"]],
            }
        )
    )


if __name__ == "__main__":
    main()
