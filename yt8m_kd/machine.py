"""What a benchmark ran on, for its JSON: the machine, the Python, and how busy the machine was.

Standard library only, so that a benchmark of numpy code does not import TensorFlow for it.
"""

from __future__ import annotations

import os
import platform


def machine_info(**versions) -> dict:
    """The platform, CPU count and load average, plus `versions` (e.g. numpy=np.__version__).

    Other jobs may share the machine: the load average says how busy it was when the run started.
    """
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_5m_15m": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **versions,
    }
