"""What a run records beside its executed notebooks (``reports/<profile>/manifest.json``): the code's commit and the
machine (:mod:`wsss_lib.provenance`), the package versions, and per notebook its parameters, fingerprint, status,
host and wall time."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "package_versions", "fingerprint"]

PACKAGES = ("torch", "torchvision", "timm", "torchmetrics", "numpy", "scipy", "pandas", "pillow", "papermill",
            "nbval", "pydensecrf2", "scikit-image", "pycocotools", "matplotlib", "seaborn")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fingerprint(notebook: Path, params: dict[str, Any]) -> str:
    payload = notebook.read_bytes() + json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]
