"""Where things live: the repository, the per-profile work directory, reports and datasets.

Nothing in the library hard-codes a machine path. Defaults are relative to the repository root and can
be moved with environment variables:

- ``WSSS_WORK``: root of the work directories (default ``<repo>/work``); each profile gets
  ``<WSSS_WORK>/<profile>/``, git-ignored, holding every stage's outputs.
- ``WSSS_REPORTS``: root of the reports (default ``<repo>/reports``); each profile writes
  ``<WSSS_REPORTS>/<profile>/{notebooks,tables,figures}``.
- ``WSSS_DATA``: dataset root used when a notebook's ``data_root`` parameter is empty.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "work_dir", "reports_dir", "data_root_from_env", "DRY_SUFFIX", "SMALL_SUFFIX",
           "dry_run_profile_name", "is_dry_run_profile"]

DRY_SUFFIX = "-dry"
"""A dry run of profile ``p`` writes under the profile name ``p-dry`` (:mod:`wsss_lib.runner.dry_run`)."""
SMALL_SUFFIX = "-small"
"""... and ``p-small-dry`` with ``--small-backbones``."""


def repo_root() -> Path:
    """The repository checkout that holds this package (``wsss_lib`` is installed editable)."""
    return Path(__file__).resolve().parents[1]


def work_dir(profile: str, override: str | os.PathLike | None = None) -> Path:
    """The work directory of ``profile``: ``override`` if given, else ``$WSSS_WORK/<profile>``."""
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("WSSS_WORK")
    return (Path(base).expanduser() if base else repo_root() / "work").resolve() / profile


def reports_dir(profile: str, override: str | os.PathLike | None = None) -> Path:
    """The reports directory of ``profile``: ``override`` if given, else ``$WSSS_REPORTS/<profile>``."""
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("WSSS_REPORTS")
    return (Path(base).expanduser() if base else repo_root() / "reports").resolve() / profile


def data_root_from_env(data_root: str | os.PathLike | None) -> Path | None:
    """``data_root`` if given, else ``$WSSS_DATA`` if set, else ``None``."""
    if data_root:
        return Path(data_root).expanduser().resolve()
    env = os.environ.get("WSSS_DATA")
    return Path(env).expanduser().resolve() if env else None


def dry_run_profile_name(profile: str, small_backbones: bool = False) -> str:
    """The profile name a dry run of ``profile`` writes under (its own work and reports folders)."""
    if profile.endswith(DRY_SUFFIX):
        return profile
    return profile + (SMALL_SUFFIX if small_backbones else "") + DRY_SUFFIX


def is_dry_run_profile(profile: str) -> bool:
    return profile.endswith(DRY_SUFFIX)
