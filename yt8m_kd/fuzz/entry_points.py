"""Fuzz mutants through the launchers: train.py (one step), cache_teacher.py and infer.py, each in
its own process, the outcome classified from its exit status and stderr.

Allowed: exit 0 (strict mode where the mutant has no bad record; training, which reads one batch,
may also finish before it reaches a bad record), or exit 1 with a last stderr line
`<launcher>: error: ...` naming the file (or folder) at fault, without a traceback. Forbidden:
a traceback, a crash (killed by a signal), a hang (past the timeout), an error line that does not
name a bad file, an error in skip mode, and a launcher that reads every record (cache_teacher.py,
infer.py) finishing in strict mode over a bad record. For those two, a record the readers accept
can still be bad: a repeated id, and for infer.py's CSV an id that is not UTF-8
(`launcher_problems`); their error must name one of the mutant's files.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Sequence

from yt8m_kd.fuzz import oracle, ucf101_mutants, yt8m_mutants
from yt8m_kd.fuzz.campaign import NODE_NAMES
from yt8m_kd.fuzz.mutants import Mutant

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOWED = ("ok", "one_line_error")
FORBIDDEN = (
    "traceback",
    "crash",
    "hang",
    "error_without_file",
    "error_not_one_line",
    "error_with_node_names",
    "error_in_skip_mode",
    "bad_record_accepted",
)
_READS_EVERYTHING = ("cache_teacher.py", "infer.py")

YT8M_TRAIN = (
    "--flagfile=models/tiny_teacher.flags",
    f"--feature_sizes={','.join(str(s) for s in yt8m_mutants.FEATURE_SIZES)}",
    f"--num_classes={yt8m_mutants.NUM_CLASSES}",
    f"--max_frames={yt8m_mutants.MAX_FRAMES}",
)
UCF101_TRAIN = (
    "--flagfile=models/ucf101_teacher.flags",
    f"--num_classes={ucf101_mutants.NUM_CLASSES}",
    f"--max_frames={ucf101_mutants.CLIP_FRAMES}",
    "--eval_every_steps=0",
)
COMMON_TRAIN = ("--batch_size=2", "--max_steps=1", "--checkpoint_every_steps=1", "--noprogress_bar")


def launch(
    script: str, args: Sequence[str], timeout_s: float
) -> subprocess.CompletedProcess | None:
    """launchers/<script> in a fresh process from the repository root; None on a timeout."""
    try:
        return subprocess.run(
            [sys.executable, os.path.join("launchers", script), *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None


def data_flags(mutant: Mutant, base: str, prefix: str) -> list[str]:
    """The flags that point a launcher at the mutant's data (prefix: train or eval style)."""
    source = os.path.join(base, mutant.source)
    if mutant.layout == "records":
        return [f"--{prefix}={source}"]
    return [
        f"--{prefix}={source}",
        f"--train_split_file={os.path.join(base, mutant.split_file)}",
        f"--class_index_file={os.path.join(base, mutant.class_index_file)}",
    ]


def train_command(mutant: Mutant, base: str, run_dir: str, skip: bool) -> list[str]:
    family = YT8M_TRAIN if mutant.family == "yt8m" else UCF101_TRAIN
    return [
        *family,
        *COMMON_TRAIN,
        *data_flags(mutant, base, "train_data_pattern"),
        f"--run_dir={run_dir}",
        "--skip_bad_records" if skip else "--noskip_bad_records",
    ]


def launcher_problems(script: str, expected: oracle.Expected) -> list[str]:
    """What a launcher that writes video ids must refuse among the records the readers accept: a
    repeated id (cache_teacher.py, infer.py: a cache row or CSV row per video) and an id that is
    not UTF-8 text (infer.py's CSV)."""
    if script not in _READS_EVERYTHING:
        return []
    seen = collections.Counter(expected.good_ids)
    problems = [f"duplicate id {video_id!r}" for video_id, n in seen.items() if n > 1]
    if script == "infer.py":
        for video_id in seen:
            try:
                video_id.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"non-UTF-8 id {video_id!r}")
    return problems


def classify_launch(
    script: str,
    result: subprocess.CompletedProcess | None,
    expected: oracle.Expected,
    skip: bool,
    data_paths: Sequence[str] = (),
) -> str:
    """One launcher run's outcome class (module docstring). data_paths: the mutant's files and the
    source it was given, one of which an error about a `launcher_problems` record must name."""
    if result is None:
        return "hang"
    if "Traceback (most recent call last)" in result.stderr:
        return "traceback"
    if result.returncode < 0:
        return "crash"
    own_problems = launcher_problems(script, expected)
    if result.returncode == 0:
        if (expected.bad or own_problems) and not skip and script in _READS_EVERYTHING:
            return "bad_record_accepted"
        return "ok"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if not last.startswith(f"{script}: error: "):
        return "error_not_one_line"
    if skip:
        return "error_in_skip_mode"
    named = [bad.path for bad in (*expected.bad, *expected.tolerated)]
    named += list(data_paths) if own_problems else []
    if not any(path in last for path in named):
        return "error_without_file"
    if any(noise in last for noise in NODE_NAMES):
        return "error_with_node_names"
    return "one_line_error"


def run_entry_points(
    mutant: Mutant,
    base: str,
    expected: oracle.Expected,
    work_dir: str,
    teacher_run: str | None,
    timeout_s: float = 300.0,
) -> dict[str, dict]:
    """{"<script> <mode>": {"class", "rc", "last_line"}} of one mutant through the launchers:
    train.py in both modes, and with a teacher run of the family's widths (YouTube-8M records)
    cache_teacher.py and infer.py in strict mode."""
    runs = {}
    for skip in (False, True):
        run_dir = os.path.join(work_dir, f"{mutant.name}-train-{int(skip)}")
        runs[f"train.py {'skip' if skip else 'strict'}"] = (
            "train.py",
            train_command(mutant, base, run_dir, skip),
            skip,
        )
    if teacher_run is not None and mutant.family == "yt8m":
        source = os.path.join(base, mutant.source)
        runs["cache_teacher.py strict"] = (
            "cache_teacher.py",
            [
                f"--teacher_run_dir={teacher_run}",
                f"--data_pattern={source}",
                f"--output_dir={os.path.join(work_dir, mutant.name + '-cache')}",
                "--noprogress_bar",
            ],
            False,
        )
        runs["infer.py strict"] = (
            "infer.py",
            [
                f"--run_dir={teacher_run}",
                f"--input_data_pattern={source}",
                f"--output_file={os.path.join(work_dir, mutant.name + '.csv')}",
                "--noprogress_bar",
            ],
            False,
        )
    # A run's reader does not say which file a record came from: infer.py --run_dir names the
    # pattern it was given.
    data_paths = [os.path.join(base, path) for path in [*mutant.files, mutant.source]]
    outcomes = {}
    for name, (script, args, skip) in runs.items():
        result = launch(script, args, timeout_s)
        lines = [line for line in (result.stderr if result else "").splitlines() if line.strip()]
        outcomes[name] = {
            "class": classify_launch(script, result, expected, skip, data_paths),
            "rc": None if result is None else result.returncode,
            "last_line": (lines[-1] if lines else "")[:300],
        }
    return outcomes


def train_teacher(mutant: Mutant, base: str, run_dir: str, timeout_s: float = 600.0) -> str:
    """A one-step teacher run at the family's fuzz widths, trained on a valid mutant's data."""
    result = launch("train.py", train_command(mutant, base, run_dir, skip=False), timeout_s)
    if result is None or result.returncode != 0:
        raise RuntimeError(f"training the fuzz teacher failed: {result and result.stderr[-2000:]}")
    return run_dir
