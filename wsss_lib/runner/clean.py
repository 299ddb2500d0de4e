"""An executed notebook a reader can open anywhere: no machine paths, no widget a code host cannot draw, figures as PNG.

The runner (:mod:`wsss_lib.runner.run`) passes every notebook it executes through :func:`clean_notebook`, so the
executed notebooks of ``reports/<profile>/notebooks/`` (and the study's committed snapshot among them) read the same
on any machine and on a code-hosting site:

- **Machine paths become names.** Every string of the notebook (sources, outputs, tracebacks, papermill's metadata)
  but the injected parameters (the run's input: re-running the executed copy in JupyterLab must find the same data;
  the study's hold no path) has each root of :func:`machine_roots` replaced, longest first and only where a whole path component ends: the
  dataset root by ``$DATA``, the profile's work and reports directories by ``work/<profile>`` and
  ``reports/<profile>`` (``$WSSS_WORK/<profile>``, ``$WSSS_REPORTS/<profile>`` when they lie outside the
  repository), the source notebooks' folder by ``notebooks``, the repository by ``.``, the home directory by
  ``~``.
- **Widgets become their text.** A progress bar drawn by ipywidgets is stored as a view of a model whose state a
  batch run does not save; a code host shows "Loading widget..." or nothing. The output keeps its ``text/plain``
  fallback (or goes when it has none), and the notebook's widget-state metadata goes.
- **Figures are PNG.** Where an output holds an image as PNG beside SVG or PDF, only the PNG stays.

:data:`MAX_NOTEBOOK_BYTES` is the size a committed executed notebook must stay under (3 MB); the runner records each
notebook's size in the manifest and names one that exceeds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from wsss_lib.io import atomic_write_text
from wsss_lib.paths import repo_root, reports_dir, work_dir

__all__ = ["MAX_NOTEBOOK_BYTES", "CleanReport", "machine_roots", "clean_notebook", "scrub"]

MAX_NOTEBOOK_BYTES = 3_000_000
"""A committed executed notebook stays under this size (readable on a code-hosting site)."""

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
VECTOR_IMAGES = ("image/svg+xml", "application/pdf")
INJECTED = "injected-parameters"  # papermill's tag on the cell of the run's parameters


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean_notebook` changed in one notebook, and its size afterwards."""
    path: Path
    paths_replaced: int
    widgets_removed: int
    vector_images_removed: int
    bytes: int

    @property
    def too_large(self) -> bool:
        return self.bytes >= MAX_NOTEBOOK_BYTES


def machine_roots(profile: str, data_root: str | os.PathLike | None = None,
                  notebook_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The absolute paths of this machine that may appear in ``profile``'s executed notebooks, each with the name
    that replaces it (see the module docstring); ``notebook_dir``: where the source notebooks are, if not the
    repository's ``notebooks/``."""
    repo = repo_root()
    roots: dict[str, str] = {}
    if notebook_dir:
        roots[str(Path(notebook_dir).resolve())] = "notebooks"
    if data_root:  # as given (what papermill and the notebooks print) and resolved (what the library prints)
        roots[str(Path(data_root).expanduser())] = "$DATA"
        roots[str(Path(data_root).expanduser().resolve())] = "$DATA"
    for folder, name, variable in ((work_dir(profile), "work", "$WSSS_WORK"),
                                   (reports_dir(profile), "reports", "$WSSS_REPORTS")):
        roots[str(folder)] = f"{name}/{profile}" if folder.is_relative_to(repo) else f"{variable}/{profile}"
    roots[str(repo)] = "."
    roots[str(Path.home())] = "~"
    return {root: name for root, name in roots.items() if root not in ("/", "")}


def _pattern(roots: Mapping[str, str]) -> re.Pattern[str]:
    # longest first, so that a root inside another (the work directory inside the repository) wins; a match must
    # start and end whole path components (not /work/main inside /work/main2)
    ordered = sorted(roots, key=len, reverse=True)
    before = r"(?<![\w.-])"  # not inside a longer name (/srv/data/VOC is not the root /data/VOC)
    after = r"(?=[/\s\"'`,;:)\]}>|\x1b]|\.(?!\w)|$)"  # a path component ends (also before a sentence's full stop)
    return re.compile("|".join(f"{before}{re.escape(root)}{after}" for root in ordered))


def scrub(value: Any, roots: Mapping[str, str]) -> tuple[Any, int]:
    """``value`` (a notebook's JSON: dicts, lists, strings) with every root of ``roots`` replaced by its name, and
    the number of replacements."""
    pattern = _pattern(roots)
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return roots[match.group(0)]

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return pattern.sub(replace, node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return type(node)((key, walk(item)) for key, item in node.items())
        return node

    return walk(value), count


def _clean_outputs(cell: Any) -> tuple[int, int]:
    widgets = vectors = 0
    kept = []
    for output in cell.get("outputs", []):
        data = output.get("data")
        if data is not None:
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                widgets += 1
                if not data:
                    continue
            if "image/png" in data:
                for kind in VECTOR_IMAGES:
                    if kind in data:
                        del data[kind]
                        vectors += 1
        kept.append(output)
    if "outputs" in cell:
        cell["outputs"] = kept
    return widgets, vectors


def clean_notebook(path: str | os.PathLike, roots: Mapping[str, str]) -> CleanReport:
    """Clean the executed notebook at ``path`` in place (see the module docstring) and report what changed."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    widgets = vectors = 0
    for cell in nb.cells:
        w, v = _clean_outputs(cell)
        widgets, vectors = widgets + w, vectors + v
    nb.metadata.pop("widgets", None)
    nb.metadata, replaced = scrub(nb.metadata, roots)
    for i, cell in enumerate(nb.cells):
        if INJECTED not in cell.metadata.get("tags", []):  # the run's input stays as it ran
            nb.cells[i], count = scrub(cell, roots)
            replaced += count
    atomic_write_text(path, nbformat.writes(nbformat.from_dict(nb)) + "\n")
    return CleanReport(path=path, paths_replaced=replaced, widgets_removed=widgets, vector_images_removed=vectors,
                       bytes=path.stat().st_size)
