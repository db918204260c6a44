"""Training options that change how the step runs: XLA compilation and bfloat16 mixed precision."""

import json
import math

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--jit_compile", "--mixed_precision"])
def test_step_option_trains(option, tmp_path, tiny_yt8m, tiny_train_args, launcher):
    run_dir = tmp_path / "run"
    result = launcher.run(
        "train.py",
        *tiny_train_args,
        option,
        f"--train_data_pattern={tiny_yt8m.train_pattern}",
        f"--eval_data_pattern={tiny_yt8m.eval_pattern}",
        f"--run_dir={run_dir}",
        "--max_steps=4",
        "--log_every_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 4
    assert math.isfinite(metrics["train"]["loss"]) and metrics["train"]["loss"] > 0
    assert 0.0 <= metrics["eval"]["gap"] <= 1.0
    assert option in (run_dir / "flags.txt").read_text().splitlines()
