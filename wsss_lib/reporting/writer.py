"""Where a notebook's tables and figures go: ``reports/<profile>/{tables,figures}`` of its run context.

Every table is written twice, as CSV (for diffs and later notebooks) and as Markdown with a provenance line
(profile, data, split, what produced it), and on request as LaTeX (pandas Styler, for the paper's tables); figures as
PNG with fixed metadata so reruns diff cleanly. A wiring check's (a dry run's, the smoke profile's) captions and
figures say so (``RunContext.note``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd

from wsss_lib.io import atomic_path, atomic_write_text
from wsss_lib.stages.context import RunContext

__all__ = ["Report"]

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _escape_latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


class Report:
    """The tables and figures of one notebook run (``report = Report(ctx)``)."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        for sub in ("tables", "figures"):
            (ctx.reports_dir / sub).mkdir(parents=True, exist_ok=True)

    def table(self, frame: pd.DataFrame, name: str, caption: str, *, index: bool = False,
              float_format: str = ".1f", latex: bool = False, measured: bool = True) -> Path:
        """Write ``tables/<name>.csv`` and ``tables/<name>.md`` (caption + provenance + table); with ``latex`` also
        ``tables/<name>.tex`` (booktabs rules, the same decimals, missing numbers as empty cells). A wiring check's
        caption starts with :attr:`note`, unless ``measured=False`` (a table of literature values only)."""
        base = self.ctx.reports_dir / "tables" / name
        if self.ctx.note and measured:
            caption = f"{self.ctx.note} {caption}"
        with atomic_path(base.with_suffix(".csv")) as tmp:
            frame.to_csv(tmp, index=index)
        # thresholds live on a 0.05 grid: two decimals (0.45 would print as 0.5), every other number float_format
        formats = [".2f" if "threshold" in str(column).lower() else float_format for column in frame.columns]
        formats = [float_format] * (frame.index.nlevels if index else 0) + formats
        markdown = frame.to_markdown(index=index, floatfmt=tuple(formats))
        atomic_write_text(base.with_suffix(".md"), f"{caption}\n\n_Profile `{self.ctx.profile}`; measured by this "
                          f"repository's code unless a column says literature._\n\n{markdown}\n")
        if latex:
            styler = (frame.style.format(precision=int(float_format.strip(".f") or 1), na_rep="", escape="latex")
                      .format_index(escape="latex", axis=1))
            styler = styler if index else styler.hide(axis="index")
            atomic_write_text(base.with_suffix(".tex"), styler.to_latex(
                caption=_escape_latex(f"{caption} Profile {self.ctx.profile}."), hrules=True, position="ht"))
        return base.with_suffix(".csv")

    def figure(self, fig: matplotlib.figure.Figure, name: str, dpi: int = 110) -> Path:
        """Write ``figures/<name>.png`` with fixed metadata (no timestamps, no software tag)."""
        path = self.ctx.reports_dir / "figures" / f"{name}.png"
        if self.ctx.dry_run:
            fig.text(0.5, 0.5, "DRY RUN", fontsize=48, color="red", alpha=0.35, ha="center", va="center",
                     rotation=30, transform=fig.transFigure)
        if self.ctx.note:
            fig.text(0.5, 1.0, self.ctx.note, fontsize=8, color="red", ha="center", va="bottom", wrap=True,
                     transform=fig.transFigure)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return path
