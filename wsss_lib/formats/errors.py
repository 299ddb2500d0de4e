"""Dataset errors: each names the offending path and says what was expected."""

from __future__ import annotations

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """Bad or missing dataset input (missing folder, corrupt image, stray mask value, class mismatch)."""
