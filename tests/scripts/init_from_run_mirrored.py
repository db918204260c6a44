"""A k=6 student under MirroredStrategy (2 logical CPUs) initialised by --init_from_run from a
teacher run; prints JSON: whether every replica's copy of every model weight equals the teacher's
checkpoint before the first step, the step then, and the step after training.

Run as its own process: logical devices must be configured before TensorFlow initialises.
  python tests/scripts/init_from_run_mirrored.py DATA_DIR TEACHER_RUN_DIR OUT_DIR
"""

import json
import os
import sys

import numpy as np

from yt8m_kd.training import strategy as strategy_lib

strategy_lib.split_cpu(2)


from yt8m_kd import flags as yflags  # noqa: E402
from yt8m_kd.training import runs  # noqa: E402
from yt8m_kd.training.restore import restore_run  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")


def replica_values(variable) -> list[np.ndarray]:
    """Each replica's copy of a (mirrored) variable: Keras's variable wraps TensorFlow's
    MirroredVariable in `.value`, which holds one variable per replica in `.values`."""
    tf_variable = getattr(variable, "value", variable)
    return [v.numpy() for v in getattr(tf_variable, "values", (tf_variable,))]


def main() -> None:
    data_dir, teacher, out_dir = sys.argv[1:4]
    config = yflags.read_flagfile(
        os.path.join(MODELS, "tiny_student_k6.flags"),
        train_data_pattern=os.path.join(data_dir, "train-*"),
        max_frames=60,
        batch_size=8,
        max_steps=2,
        checkpoint_every_steps=2,
        progress_bar=False,
        strategy="mirrored",
        init_from_run=teacher,
    )
    strategy = strategy_lib.make_strategy("mirrored")
    trainer = runs.make_trainer(config, os.path.join(out_dir, "restored"), strategy)
    step = trainer.restore()
    expected = [w.numpy() for w in restore_run(teacher).model.weights]
    copies = [replica_values(w) for w in trainer.model.weights]
    equal = len(copies) == len(expected) and all(
        np.array_equal(copy, want)
        for per_replica, want in zip(copies, expected, strict=True)
        for copy in per_replica
    )
    metrics, _ = runs.train_or_reuse(config, os.path.join(out_dir, "trained"), strategy)
    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "copies_per_weight": sorted({len(c) for c in copies}),
                "equal_to_teacher": bool(equal),
                "step_after_restore": step,
                "trained_step": metrics["step"],
                "init_from": metrics.get("init_from"),
            }
        )
    )


if __name__ == "__main__":
    main()
