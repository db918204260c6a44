"""What a benchmark ran on, for its JSON: the machine, the Python, and how busy the machine was.

Standard library only, so that a benchmark of numpy code does not import TensorFlow for it.
"""

from __future__ import annotations

import os
import platform

# The CPU features that decide what bfloat16 buys: AVX512_BF16 converts and multiplies in vector
# units (about 2x float32 matmul), AMX's tiles about 4x.
_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def cpu_info(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The CPU's model name and which of the bfloat16-relevant features it reports (Linux; empty
    elsewhere)."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first CPU's block only
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    model = fields.get("model name", "")
    return {"cpu_model": model, "cpu_bf16_features": [f for f in _BF16_FEATURES if f in flags]}


def machine_info(**versions) -> dict:
    """The platform, CPU (model, bfloat16 features), CPU count and load average, plus `versions`
    (e.g. numpy=np.__version__).

    Other jobs may share the machine: the load average says how busy it was when the run started.
    """
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        **cpu_info(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_5m_15m": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **versions,
    }
