"""The fuzz worker: a process that reads mutant files through the readers, request by request.

    python -m yt8m_kd.fuzz.worker

reads one JSON request per line on stdin ({"family", "layout", "source", "split_file",
"class_index_file", "mode": "strict" | "skip"}) and answers one JSON line on stdout:

  {"outcome": "ok" | "error" | "traceback", "message": str, "ids": [id keys read, in order],
   "counts": the skip counter's counts or null}

The read runs inside `yt8m_kd.cli.guarded`, exactly as in a launcher: an expected failure becomes
its `prog: error: ...` line ("error"); anything else escaping is what a user would see as a
traceback ("traceback"). The campaign (`campaign.py`) runs this process and kills and restarts it
when a request hangs or the process dies, which it records as a hang or a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

if __name__ == "__main__":
    # Only as the worker process: set on import, the test process that imports this module (for
    # id_key) would pass it on to every launcher it runs later, hiding their warnings.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from yt8m_kd import cli  # noqa: E402
from yt8m_kd.data import ucf101, yt8m, yt8m_records  # noqa: E402
from yt8m_kd.fuzz import ucf101_mutants, yt8m_mutants  # noqa: E402

# Ids longer than this are compared by their hash (a 1 MB id would make every answer 2 MB).
_LONGEST_SHOWN_ID = 200


def id_key(video_id: bytes) -> str:
    """A video id as a JSON-safe string: hex, or a hash for a very long id."""
    if len(video_id) > _LONGEST_SHOWN_ID:
        return f"sha256:{hashlib.sha256(video_id).hexdigest()}:{len(video_id)}"
    return video_id.hex()


def _counter(family: str) -> yt8m.BadRecordCounter:
    """A counter of the family's problem kinds, as `videos.bad_record_counter` makes for a run."""
    if family == "ucf101":
        return yt8m.BadRecordCounter(kinds=ucf101.UCF101_PROBLEM_KINDS)
    return yt8m.BadRecordCounter(kinds=yt8m_records.PROBLEM_KINDS)


def build_dataset(request: dict, counter: yt8m.BadRecordCounter | None) -> tf.data.Dataset:
    """The reader of the request's family over its files, one record per batch."""
    skip = {}
    if request["mode"] == "skip":
        skip = {"skip_bad_records": True, "bad_record_counter": counter}
    if request["family"] == "yt8m":
        return yt8m.frame_dataset(
            request["source"], batch_size=1, **yt8m_mutants.READER_OPTIONS, **skip
        )
    return ucf101.frame_dataset(
        request["source"],
        batch_size=1,
        training=False,
        split_file=request.get("split_file"),
        class_index_file=request.get("class_index_file"),
        **ucf101_mutants.READER_OPTIONS,
        **skip,
    )


def handle(request: dict) -> dict:
    """Reads the request's files to their end (or the first error)."""
    answer = {"outcome": "ok", "message": "", "ids": [], "counts": None}
    counter = _counter(request["family"]) if request["mode"] == "skip" else None

    def main(_argv):
        for batch in build_dataset(request, counter):
            answer["ids"].extend(id_key(v) for v in batch["video_id"].numpy())

    try:
        cli.guarded(main)(["fuzz"])
    except SystemExit as e:  # guarded's one-line exit for an expected failure
        answer["outcome"], answer["message"] = "error", str(e.code)
    except Exception as e:  # noqa: BLE001  (anything else is the finding)
        answer["outcome"] = "traceback"
        answer["message"] = f"{type(e).__name__}: {str(e)[:2000]}"
    if counter is not None:
        answer["counts"] = counter.counts()
    return answer


def serve() -> None:
    """Answers requests from stdin until it closes; TensorFlow's own prints go to stderr."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        answers.write(json.dumps(handle(json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
