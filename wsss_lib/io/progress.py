"""The library's progress bars: ``tqdm.auto`` (a widget in a notebook, text in a terminal) in the process that
imported the library, and silent in processes forked from it.

A forked child (a DataLoader worker, a per-image worker of :func:`wsss_lib.io.for_each_missing`, a CRF pool)
shares the kernel's widget machinery but may not talk to the kernel: every widget it created would be refused by
the kernel session with a ``WARNING: attempted to send message from fork`` and a dump of the message, hundreds of
log lines a minute in a runner's log. Its bars are therefore disabled (the parent shows the work's progress, e.g.
from the files the children write); a process started afresh (a torchrun rank, a submitit job) imports the
library itself and shows its bars.

Use it as ``tqdm``: ``from wsss_lib.io.progress import tqdm``.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm as _auto_tqdm

_IMPORTED_BY = os.getpid()
"""The process that imported this module; a child forked from it inherits this value and so knows it is a fork."""


def in_forked_child() -> bool:
    """Whether this process was forked from the one that imported the library."""
    return os.getpid() != _IMPORTED_BY


class tqdm(_auto_tqdm):  # noqa: N801 (tqdm's own name, so call sites read as tqdm's)
    """``tqdm.auto.tqdm``, disabled in a forked child (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        if in_forked_child():
            kwargs["disable"] = True
        super().__init__(*args, **kwargs)
