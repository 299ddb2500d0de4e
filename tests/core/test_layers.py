"""The layer contract of pyproject.toml covers the whole library, and `lint-imports` enforces it (make test)."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import wsss_lib

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    return [[m.strip() for m in re.split(r"[|:]", layer)] for layer in contract["layers"]]


def test_every_module_of_the_library_sits_in_exactly_one_layer():
    named = [m for layer in _layers() for m in layer]
    assert len(named) == len(set(named)), "a module is named in two layers"
    top = {f"wsss_lib.{m.name}" for m in pkgutil.iter_modules(wsss_lib.__path__)}
    assert top == set(named), (f"not in any layer: {sorted(top - set(named))}; "
                               f"named but not a module: {sorted(set(named) - top)}")


def test_lint_imports_rejects_an_upward_import(tmp_path):
    """The contract is live: a copy of the package with one upward import (formats -> stages) breaks it."""
    import shutil

    copy = tmp_path / "wsss_lib"
    shutil.copytree(ROOT / "wsss_lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "formats" / "cam_io.py").write_text((copy / "formats" / "cam_io.py").read_text()
                                               + "\nimport wsss_lib.stages.context  # noqa: E402,F401\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = str(Path(sys.executable).with_name("lint-imports"))
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    broken = subprocess.run([lint, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert broken.returncode != 0
    assert "wsss_lib.formats is not allowed to import wsss_lib.stages" in broken.stdout
    kept = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert kept.returncode == 0, kept.stdout[-2000:]
