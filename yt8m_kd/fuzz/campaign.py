"""The fuzz campaign: mutants through the readers in strict and skip mode, each outcome classified
against the oracle, and the summary issue 11 asks for (benchmarks/results/fuzz.json).

Outcome classes of one mutant in one mode. Allowed:

  strict_error   strict mode stopped with one `prog: error:` line naming the file (and the record
                 id, where the bad record is identifiable), having read no bad record
  strict_clean   strict mode, a mutant with no bad record: every record read
  skip_exact     skip mode: every good record read (ids compared with the oracle's), no bad one,
                 and the counter counting every bad record

A record the oracle calls tolerated (protobuf refuses only its feature lists' framing, which
TensorFlow's parser reads leniently: oracle.py) may be read or refused, in either mode; the summary
counts them (`tolerated_records`).

Forbidden (FORBIDDEN): traceback, crash, hang, error_in_skip_mode, error_on_good_input,
error_without_file, error_without_record_id, error_not_one_line, error_with_node_names,
error_too_long (an error line longer than MAX_ERROR_CHARS beyond the path: a 1 MB id printed
whole), bad_record_accepted, good_record_dropped, bad_record_not_counted, count_too_high.

The readers run in a worker process (`worker.py`); a request that takes longer than the timeout
is a hang and one that kills the worker a crash; the worker is restarted for the next mutant.
Building a reader's pipeline costs seconds, so record mutants are read in groups where that is
exact (`_tasks`); a group whose outcome is not allowed is read again mutant by mutant. Within
a group that passes, skip-mode counts are checked in total, not per mutant. The reads are shared
out among several worker processes (`run_campaign(workers=...)`), one per core.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from yt8m_kd.fuzz import oracle, ucf101_mutants, yt8m_mutants
from yt8m_kd.fuzz.mutants import Mutant
from yt8m_kd.fuzz.worker import id_key

FAMILIES = {"yt8m": yt8m_mutants, "ucf101": ucf101_mutants}
MODES = ("strict", "skip")
ALLOWED = ("strict_error", "strict_clean", "skip_exact")
FORBIDDEN = (
    "traceback",
    "crash",
    "hang",
    "error_in_skip_mode",
    "error_on_good_input",
    "error_without_file",
    "error_without_record_id",
    "error_not_one_line",
    "error_with_node_names",
    "error_too_long",
    "bad_record_accepted",
    "good_record_dropped",
    "bad_record_not_counted",
    "count_too_high",
)
MAX_ERROR_CHARS = 1000  # beyond the file path
# TensorFlow's graph context in a message: node names, and tf.data's function and iterator names.
NODE_NAMES = (
    "{{node",
    "{{function_node",
    "[[",
    "[Op:",
    "Iterator::",
    "user-defined function",
    "Detected at node",
)
# Ids shown in an error are expected when they are short, printable text.
_SHOWN_ID_CHARS = 200


def kinds(family: str) -> tuple[str, ...]:
    module = FAMILIES[family]
    return tuple(getattr(module, "ALL_KINDS", module.KINDS))


def plan(family: str, count: int) -> list[tuple[str, int]]:
    """(kind, index) of `count` mutants of a family, dealt to its kinds in turn."""
    family_kinds = kinds(family)
    return [(family_kinds[i % len(family_kinds)], i) for i in range(count)]


def make_mutant(family: str, seed: int, kind: str, index: int) -> Mutant:
    return FAMILIES[family].make_mutant(seed, kind, index)


# ------------------------------------------------------------------------------------ oracle
def expected_of(mutant: Mutant, base: str) -> oracle.Expected:
    """The oracle's verdict on a mutant written under `base`."""
    if mutant.layout == "folders":
        return oracle.ucf101_folders_expected(
            [(os.path.join(base, folder), video_id) for folder, video_id in mutant.listed]
        )
    paths = sorted(os.path.join(base, p) for p in mutant.files if p.endswith(".tfrecord"))
    if mutant.family == "yt8m":
        return oracle.yt8m_expected(
            paths,
            feature_names=yt8m_mutants.FEATURE_NAMES,
            feature_sizes=yt8m_mutants.FEATURE_SIZES,
            num_classes=yt8m_mutants.NUM_CLASSES,
        )
    return oracle.ucf101_expected(paths, num_classes=ucf101_mutants.NUM_CLASSES)


def request_of(mutant: Mutant, base: str, mode: str) -> dict:
    request = {"family": mutant.family, "mode": mode, "source": os.path.join(base, mutant.source)}
    if mutant.layout == "folders":
        request["split_file"] = os.path.join(base, mutant.split_file)
        request["class_index_file"] = os.path.join(base, mutant.class_index_file)
    return request


# ------------------------------------------------------------------------------------ classes
def _shown_id(video_id: bytes | None) -> str | None:
    """The id an error line must show, or None where it cannot be expected to."""
    if not video_id or len(video_id) > _SHOWN_ID_CHARS:
        return None
    try:
        text = video_id.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _message_classes(expected: oracle.Expected, message: str) -> list[str]:
    """What is wrong with a strict-mode error line, as classes (none when it is right)."""
    classes = []
    named = [b for b in expected.bad if b.path in message]
    if not named:
        classes.append("error_without_file")
    if "\n" in message.strip():
        classes.append("error_not_one_line")
    if any(noise in message for noise in NODE_NAMES):
        classes.append("error_with_node_names")
    longest_path = max((len(b.path) for b in expected.bad), default=0)
    if len(message) > MAX_ERROR_CHARS + longest_path:
        classes.append("error_too_long")
    # The file named holds only identifiable bad records: one of their ids must be named too.
    for path in {b.path for b in named}:
        in_file = [b for b in expected.bad if b.path == path]
        shown = [_shown_id(b.video_id) for b in in_file]
        if all(b.record_level for b in in_file) and all(shown):
            if not any(video_id in message for video_id in shown):
                classes.append("error_without_record_id")
            break
    return classes


def classify(expected: oracle.Expected, mode: str, answer: dict) -> list[str]:
    """The outcome classes of one mode's answer (module docstring): one allowed class, or the
    forbidden ones found."""
    if answer["outcome"] in ("traceback", "crash", "hang"):
        return [answer["outcome"]]
    good = collections.Counter(id_key(v) for v in expected.good_ids)
    tolerated = collections.Counter(id_key(b.video_id) for b in expected.tolerated)
    read = collections.Counter(answer["ids"])
    classes = []
    if read - good - tolerated:
        classes.append("bad_record_accepted")
    if mode == "strict":
        if answer["outcome"] == "error":
            if expected.bad:
                classes += _message_classes(expected, answer["message"])
            elif expected.tolerated:  # refusing one is right too
                classes += _message_classes(
                    oracle.Expected(bad=expected.tolerated), answer["message"]
                )
            else:
                classes.append("error_on_good_input")
        elif expected.bad:
            classes.append("bad_record_accepted")
        elif good - read:
            classes.append("good_record_dropped")
        if not classes:
            return ["strict_error" if answer["outcome"] == "error" else "strict_clean"]
        return sorted(set(classes))
    if answer["outcome"] == "error":
        classes.append("error_in_skip_mode")
    if good - read:
        classes.append("good_record_dropped")
    if answer["counts"] is not None and answer["outcome"] == "ok":
        low, high = expected.file_bad_range
        total = answer["counts"]["total"]
        if total < expected.record_bad + low:
            classes.append("bad_record_not_counted")
        elif total > expected.record_bad + high + len(expected.tolerated):
            classes.append("count_too_high")
    return sorted(set(classes)) or ["skip_exact"]


# ------------------------------------------------------------------------------------ worker
class Worker:
    """The worker process (worker.py), restarted after a hang or a crash."""

    def __init__(self, timeout_s: float, log_path: str, command: Sequence[str] | None = None):
        """command: the process to run (default: this Python on `yt8m_kd.fuzz.worker`)."""
        self.timeout_s = timeout_s
        self.log_path = log_path
        self.command = list(command or [sys.executable, "-m", "yt8m_kd.fuzz.worker"])
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))
        log = open(self.log_path, "ab")  # noqa: SIM115  (the process keeps it)
        return subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )

    def ask(self, request: dict, timeout_s: float | None = None) -> dict:
        """The worker's answer, or a hang / crash answer (and a fresh worker for the next)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        process = self.process
        try:
            process.stdin.write((json.dumps(request) + "\n").encode())
            process.stdin.flush()
            # The first request also waits for TensorFlow to import.
            ready, _, _ = select.select([process.stdout], [], [], timeout_s)
            line = process.stdout.readline() if ready else b""
        except BrokenPipeError:  # the worker died before reading the request
            line = b""
        if line:
            return json.loads(line)
        try:  # an end of file: the worker is exiting; its status comes a moment later
            process.wait(timeout=0 if not ready else 10)
        except subprocess.TimeoutExpired:
            pass
        hung = process.poll() is None
        self.close()
        empty = {"ids": [], "counts": None}
        if hung:
            return {**empty, "outcome": "hang", "message": f"no answer in {timeout_s} s"}
        return {**empty, "outcome": "crash", "message": f"worker exit status {process.returncode}"}

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None


# ------------------------------------------------------------------------------------ campaign
@dataclasses.dataclass
class MutantResult:
    name: str
    family: str
    kind: str
    classes: dict[str, list[str]]  # mode -> outcome classes
    messages: dict[str, str]  # mode -> the error line, if any
    good_written: int
    good_read_skip: int
    bad_records: int
    tolerated: int = 0  # records the oracle's `Expected.tolerated`: read or refused, both right

    @property
    def forbidden(self) -> list[str]:
        return sorted({c for classes in self.classes.values() for c in c_list(classes)})


def c_list(classes: Iterable[str]) -> list[str]:
    return [c for c in classes if c in FORBIDDEN]


@dataclasses.dataclass
class _Case:
    """A mutant on disk with the oracle's verdict, and its outcomes as they come in."""

    mutant: Mutant
    base: str
    expected: oracle.Expected
    classes: dict = dataclasses.field(default_factory=dict)
    messages: dict = dataclasses.field(default_factory=dict)
    good_read: int = 0

    def record(self, mode: str, answer: dict) -> None:
        self.classes[mode] = classify(self.expected, mode, answer)
        self.messages[mode] = answer["message"]
        if mode == "skip":
            good = collections.Counter(id_key(v) for v in self.expected.good_ids)
            self.good_read = sum((good & collections.Counter(answer["ids"])).values())

    def result(self) -> MutantResult:
        m = self.mutant
        return MutantResult(
            m.name,
            m.family,
            m.kind,
            self.classes,
            self.messages,
            len(self.expected.good_ids),
            self.good_read,
            len(self.expected.bad),
            len(self.expected.tolerated),
        )


def _merged(cases: Sequence[_Case]) -> oracle.Expected:
    merged = oracle.Expected()
    for case in cases:
        merged.good_ids += case.expected.good_ids
        merged.bad += case.expected.bad
        merged.tolerated += case.expected.tolerated
    return merged


def _run_group(worker: Worker, cases: Sequence[_Case], mode: str) -> None:
    """Reads several record mutants in one pipeline (a pipeline costs seconds to build); when the
    group's outcome is not the one allowed class, each mutant is read again on its own, so that
    a finding is pinned to its mutant."""
    if len(cases) > 1:
        request = request_of(cases[0].mutant, cases[0].base, mode)
        request["source"] = [os.path.join(c.base, c.mutant.source) for c in cases]
        answer = worker.ask(request, timeout_s=worker.timeout_s * len(cases))
        classes = classify(_merged(cases), mode, answer)
        if classes[0] in ALLOWED:
            for case in cases:
                # The group's counts were checked above, against the group's bad records.
                ids = [id_key(v) for v in case.expected.good_ids]
                case.record(mode, {**answer, "ids": ids, "counts": None})
            return
    for case in cases:
        case.record(mode, worker.ask(request_of(case.mutant, case.base, mode)))


def _groups(cases: Sequence[_Case], size: int) -> list[list[_Case]]:
    return [list(cases[i : i + size]) for i in range(0, len(cases), size)]


def _tasks(cases: Sequence[_Case], group_size: int) -> list[Callable[[Worker], None]]:
    """The reads that classify every case in both modes, each a task for one worker; no two
    tasks touch the same (case, mode). Record mutants of one family are read in groups where that
    is exact: in skip mode any group, in strict mode groups of mutants with no bad record (strict
    mode stops at the first error, so a bad mutant is read on its own)."""
    tasks: list[Callable[[Worker], None]] = []
    alone: list[tuple[_Case, str]] = []
    for family in FAMILIES:
        mine = [c for c in cases if c.mutant.family == family]
        records = [c for c in mine if c.mutant.layout == "records"]
        good = [c for c in records if not c.expected.bad]
        for group in _groups(good, group_size):
            tasks.append(functools.partial(_run_group, cases=group, mode="strict"))
        for group in _groups(records, group_size):
            tasks.append(functools.partial(_run_group, cases=group, mode="skip"))
        alone += [(c, "strict") for c in records if c.expected.bad]
        alone += [(c, mode) for c in mine if c.mutant.layout != "records" for mode in MODES]

    def read_alone(worker: Worker, case: _Case, mode: str) -> None:
        case.record(mode, worker.ask(request_of(case.mutant, case.base, mode)))

    tasks += [functools.partial(read_alone, case=case, mode=mode) for case, mode in alone]
    return tasks


def run_mutants(
    mutants: Sequence[Mutant],
    workers: Sequence[Worker],
    root: str,
    group_size: int = 16,
    progress: Callable[[str], None] | None = None,
) -> list[MutantResult]:
    """Each mutant in strict and skip mode, classified (`_tasks`); the reads are shared out among
    the worker processes (one thread each), so that a campaign uses every core."""
    cases = []
    for mutant in mutants:
        base = mutant.write(root)
        cases.append(_Case(mutant, base, expected_of(mutant, base)))
    pending = queue.SimpleQueue()
    for task in _tasks(cases, group_size):
        pending.put(task)
    total, done, lock = pending.qsize(), [0], threading.Lock()
    started = time.perf_counter()

    def drain(worker: Worker) -> None:
        while True:
            try:
                task = pending.get_nowait()
            except queue.Empty:
                return
            task(worker)
            with lock:
                done[0] += 1
                if progress is not None and (done[0] % 50 == 0 or done[0] == total):
                    seconds = time.perf_counter() - started
                    progress(f"fuzz: {done[0]}/{total} reads, {seconds:.0f} s")

    with concurrent.futures.ThreadPoolExecutor(len(workers)) as pool:
        for future in [pool.submit(drain, worker) for worker in workers]:
            future.result()
    return [case.result() for case in cases]


def run_campaign(
    families: dict[str, int],
    *,
    seed: int,
    timeout_s: float = 120.0,
    root: str | None = None,
    kinds_only: Sequence[str] | None = None,
    group_size: int = 16,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[MutantResult]:
    """Runs `families[family]` mutants of each family (see `plan`) with `workers` worker
    processes; returns their results."""
    mutants = [
        make_mutant(family, seed, kind, index)
        for family, count in families.items()
        for kind, index in plan(family, count)
        if not kinds_only or kind in kinds_only
    ]
    with tempfile.TemporaryDirectory(dir=root) as work:
        pool = [
            Worker(timeout_s, os.path.join(work, f"worker{i}.log")) for i in range(max(1, workers))
        ]
        try:
            return run_mutants(mutants, pool, work, group_size, progress)
        finally:
            for worker in pool:
                worker.close()


def _example(result: MutantResult, mode: str) -> dict:
    return {
        "mutant": result.name,
        "mode": mode,
        "classes": result.classes[mode],
        "message": result.messages[mode][:300],
    }


def summarize(results: Sequence[MutantResult], seconds: float) -> dict:
    """The fuzz.json summary: mutants per kind and family, outcomes per class, forbidden totals,
    good records written vs read in skip mode, and one example per forbidden (kind, class)."""
    summary: dict = {"seconds": round(seconds, 1), "families": {}}
    for family in sorted({r.family for r in results}):
        mine = [r for r in results if r.family == family]
        outcomes = {mode: collections.Counter() for mode in MODES}
        per_kind: dict = {}
        examples, seen = [], set()
        for r in mine:
            kind = per_kind.setdefault(r.kind, {"mutants": 0, "forbidden": collections.Counter()})
            kind["mutants"] += 1
            for mode in MODES:
                outcomes[mode].update(r.classes[mode])
                for c in c_list(r.classes[mode]):
                    kind["forbidden"][c] += 1
                    if (r.kind, mode, c) not in seen:
                        seen.add((r.kind, mode, c))
                        examples.append(_example(r, mode))
        forbidden = collections.Counter()
        for mode in MODES:
            forbidden.update({c: n for c, n in outcomes[mode].items() if c in FORBIDDEN})
        written = sum(r.good_written for r in mine)
        read = sum(r.good_read_skip for r in mine)
        summary["families"][family] = {
            "mutants": len(mine),
            "mutants_per_kind": {k: v["mutants"] for k, v in sorted(per_kind.items())},
            "outcomes": {mode: dict(sorted(outcomes[mode].items())) for mode in MODES},
            "forbidden_total": sum(forbidden.values()),
            "forbidden_per_class": dict(sorted(forbidden.items())),
            "forbidden_per_kind": {
                k: dict(sorted(v["forbidden"].items()))
                for k, v in sorted(per_kind.items())
                if v["forbidden"]
            },
            "mutants_with_forbidden_outcome": sum(bool(r.forbidden) for r in mine),
            "skip_mode_good_records": {
                "written": written,
                "read": read,
                "lost_percent": round(100 * (written - read) / written, 2) if written else 0.0,
            },
            "bad_records_and_damaged_regions": sum(r.bad_records for r in mine),
            "tolerated_records": sum(r.tolerated for r in mine),
            "forbidden_examples": examples,
        }
    summary["forbidden_total"] = sum(f["forbidden_total"] for f in summary["families"].values())
    return summary
