"""Where the wall time goes: named sections, summed by a recorder that a profiler switches on.

Code marks its parts with ``with section("forward"):``. Nothing is recorded, and a section costs one
context-variable lookup, unless a :class:`Recorder` is active::

    with recording() as rec:          # wsss_lib.bench.profile does this around a whole run
        run_priors(...)
    rec.totals                        # {"train/forward": 120.3, "train/backward": 201.7, ...}

Sections nest, and each records its *exclusive* time (its wall time minus that of the sections inside it), so the
totals add up to the recorded wall time without double counting; :meth:`Recorder.frame` adds the unmarked rest.
A section's name is joined to the enclosing *scopes*: inside ``with scope("classifier"):`` the trainer's
``forward`` is recorded as ``classifier/forward``, so the same loop code is told apart by the stage that runs it,
and the scope's own time outside any section is charged to ``classifier/other``.

On CUDA the recorder synchronises the device at every section boundary (``sync=torch.cuda.synchronize``), so
asynchronous kernels are charged to the section that launched them; this slows a run a little and is only done
while profiling. Work done in forked worker processes (DataLoader workers, the CRF pools) is not seen: their
parent's time waiting for them is (``train/data``, ``crf``).
"""

from __future__ import annotations

import contextlib
import functools
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)

__all__ = ["Recorder", "recording", "section", "scope", "timed", "active"]

_ACTIVE: ContextVar["Recorder | None"] = ContextVar("wsss_timing_recorder", default=None)
_SCOPE: ContextVar[str] = ContextVar("wsss_timing_scope", default="")


@dataclass
class Recorder:
    """Exclusive seconds and entry counts per section name, and the wall time it was active."""

    sync: Callable[[], None] | None = None
    totals: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    _stack: list[list[float]] = field(default_factory=list, repr=False)
    """Per open section: [start, seconds spent in the sections inside it]."""

    def _enter(self) -> None:
        if self.sync is not None:
            self.sync()
        self._stack.append([time.perf_counter(), 0.0])

    def _exit(self, name: str) -> None:
        if self.sync is not None:
            self.sync()
        start, inner = self._stack.pop()
        elapsed = time.perf_counter() - start
        self.totals[name] = self.totals.get(name, 0.0) + elapsed - inner
        self.counts[name] = self.counts.get(name, 0) + 1
        if self._stack:
            self._stack[-1][1] += elapsed

    def frame(self):
        """A ``pandas.DataFrame`` of the sections (``section``, ``seconds``, ``share (%)``, ``calls``), largest first,
        with a last row ``(unmarked)`` for the wall time no section covers."""
        import pandas as pd

        rows = [{"section": k, "seconds": v, "calls": self.counts[k]} for k, v in self.totals.items()]
        rows.sort(key=lambda r: -r["seconds"])
        rows.append({"section": "(unmarked)", "seconds": max(self.wall - sum(self.totals.values()), 0.0), "calls": 0})
        frame = pd.DataFrame(rows)
        frame["share (%)"] = 100 * frame["seconds"] / max(self.wall, 1e-9)
        return frame[["section", "seconds", "share (%)", "calls"]]


def active() -> Recorder | None:
    """The recorder in effect, or ``None`` when nothing is being profiled."""
    return _ACTIVE.get()


@contextlib.contextmanager
def recording(sync: Callable[[], None] | None = None) -> Iterator[Recorder]:
    """Record every :func:`section` entered inside the block into a new :class:`Recorder` (``wall`` = the block's
    wall time)."""
    recorder = Recorder(sync=sync)
    token = _ACTIVE.set(recorder)
    started = time.perf_counter()
    try:
        yield recorder
    finally:
        recorder.wall += time.perf_counter() - started
        _ACTIVE.reset(token)


@contextlib.contextmanager
def scope(name: str) -> Iterator[None]:
    """Prefix the sections entered inside the block with ``name/`` (scopes nest: ``cams/forward``), and charge the
    block's time outside them to ``name/other``."""
    if _ACTIVE.get() is None:
        yield
        return
    token = _SCOPE.set(f"{_SCOPE.get()}{name}/")
    try:
        with section("other"):
            yield
    finally:
        _SCOPE.reset(token)


@contextlib.contextmanager
def section(name: str) -> Iterator[None]:
    """Charge the block's wall time (less that of the sections inside it) to ``name`` in the active recorder, if
    any; otherwise do nothing."""
    recorder = _ACTIVE.get()
    if recorder is None:
        yield
        return
    full = _SCOPE.get() + name
    recorder._enter()
    try:
        yield
    finally:
        recorder._exit(full)


def timed(name: str) -> Callable[[F], F]:
    """Decorator: every call of the function is a :func:`section` named ``name`` (e.g. ``@timed("crf")``)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if _ACTIVE.get() is None:
                return fn(*args, **kwargs)
            with section(name):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
