"""Where a result came from: the code's commit and the machine, recorded beside every stage and run.

- :func:`code_state`: the commit of the checkout that holds this package and whether its code differs from it
  (``dirty``; generated reports under ``reports/`` do not count, the study's snapshot being written there);
- :func:`machine`: the CPU model, its cores, the GPU model (if any), the host, the platform and the versions of
  Python and torch, with torch's thread count (results on a CPU depend on it: bit-identical only for the same
  thread count and instruction set).

Training stages write both into ``DONE.json`` (``provenance``: commit, dirty, start, end, machine), the runner into
``manifest.json``, the profiler into its rows.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from wsss_lib.paths import repo_root

__all__ = ["code_state", "machine", "cpu_model"]


def code_state(root: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout at ``root`` (default: this package's)."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", ".", ":(exclude)reports"], cwd=root,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine a result was computed on (see the module docstring)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": gpu, "host": socket.gethostname(),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
