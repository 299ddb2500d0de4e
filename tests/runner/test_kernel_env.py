"""The runner's kernels import the runner's own ``wsss_lib`` (wsss_lib.runner.run._batch_kernel)."""

from __future__ import annotations

import os
import subprocess
import sys

from wsss_lib.paths import repo_root
from wsss_lib.reporting.explorer import BATCH_ENV
from wsss_lib.runner.run import _batch_kernel


def test_kernels_import_the_runners_checkout_even_when_another_one_comes_first(tmp_path, monkeypatch):
    """A second checkout ahead on PYTHONPATH (or behind an environment installed from it) would otherwise win: a
    process started inside the context, as papermill starts a kernel, imports this checkout's package; the
    environment is restored afterwards."""
    other = tmp_path / "other" / "wsss_lib"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(other.parent))
    monkeypatch.delenv(BATCH_ENV, raising=False)
    probe = [sys.executable, "-c", f"import wsss_lib, os; print(wsss_lib.__file__); print(os.environ['{BATCH_ENV}'])"]
    with _batch_kernel():
        seen = subprocess.run(probe, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert seen == [str(repo_root() / "wsss_lib" / "__init__.py"), "1"]
    assert os.environ["PYTHONPATH"] == str(other.parent) and BATCH_ENV not in os.environ
    outside = subprocess.run(probe[:2] + ["import wsss_lib; print(wsss_lib.__file__)"], cwd=tmp_path,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert outside == str(other / "__init__.py")  # the trap the context avoids
