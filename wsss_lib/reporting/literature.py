"""Numbers quoted from papers, kept as data files under ``reports/literature/`` with their source.

They are shown beside this repository's measurements and are never mixed into "ours" columns.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wsss_lib.paths import repo_root

__all__ = ["literature_path", "load_literature"]


def literature_path(name: str) -> Path:
    return repo_root() / "reports" / "literature" / f"{name}.csv"


def load_literature(name: str) -> pd.DataFrame:
    """A literature table; every file has a ``source`` column naming the paper and table."""
    path = literature_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"literature table {path} is missing")
    frame = pd.read_csv(path)
    if "source" not in frame.columns or frame["source"].isna().any():
        raise ValueError(f"{path}: every literature row needs a 'source' (paper, table)")
    return frame
