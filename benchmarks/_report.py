"""The JSON report every benchmark script writes: what ran, on which machine, with which settings."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from yt8m_kd import machine as yt8m_machine


def write_report(args: argparse.Namespace, benchmark: str, results: dict) -> dict:
    """Writes {benchmark, machine, settings (args), measured_at, results} to args.output."""
    report = {
        "benchmark": benchmark,
        "machine": yt8m_machine.machine_info(numpy=np.__version__, tensorflow=tf.__version__),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return report
