"""launchers/evaluate.py on bad records: one error line (strict), or skipped and counted."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import FEATURE_SIZES

from yt8m_kd.data.synthetic import make_example


def _frames(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.integers(0, 256, (20, size), dtype=np.uint8)
        for name, size in zip(("rgb", "audio"), FEATURE_SIZES, strict=True)
    }


@pytest.mark.slow  # two launcher processes
def test_evaluate_strict_one_line_and_skip_counted(teacher_run, tiny_yt8m, tmp_path, launcher):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(tiny_yt8m.eval_files[0], data)
    bad = str(data / "validate-bad.tfrecord")
    with tf.io.TFRecordWriter(bad) as writer:
        writer.write(make_example("fine", [1], _frames(0)))
        writer.write(make_example("x" * 5000, [99], _frames(1)))  # a label out of range
        writer.write(make_example("", [1], _frames(2)))  # no id
        writer.write(make_example("unlabelled", [], _frames(3)))
    pattern = str(data / "validate-*.tfrecord")
    args = [f"--run_dir={teacher_run}", f"--eval_data_pattern={pattern}", "--eval_batch_size=8"]

    strict = launcher.run("evaluate.py", *args, f"--output_json={tmp_path / 'strict.json'}")
    assert strict.returncode == 1
    # The one error line (a warning from a record read ahead may still follow it).
    (line,) = [line for line in strict.stderr.splitlines() if ": error:" in line]
    assert line.startswith(f"evaluate.py: error: bad YouTube-8M record in file {bad} (record ")
    assert ("x" * 40 + "... (5000 bytes): label 99 out of range [0, 32)") in line
    assert len(line) < 400 and "Traceback" not in strict.stderr and "{{" not in line

    skip = launcher.run(
        "evaluate.py", *args, "--skip_bad_records", f"--output_json={tmp_path / 'skip.json'}"
    )
    assert skip.returncode == 0, skip.stderr[-2000:]
    results = json.loads(skip.stdout.strip().splitlines()[-1])
    counts = results["bad_records"]
    assert counts["label_out_of_range"] == 1 and counts["empty_id"] == 1
    assert counts["total"] == 2 and counts["unlabelled"] == 1
    assert "warning: records without labels: 1 read (e.g. record id unlabelled in file" in (
        skip.stderr
    )
