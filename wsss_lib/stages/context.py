"""Where a notebook writes: the run context (profile, work directory, reports directory, artifact store).

Every table is written twice, as CSV (for diffs and later notebooks) and as Markdown with a provenance
line (profile, data, split, what produced it), and on request as LaTeX (pandas Styler, for the paper's tables);
figures as PNG with fixed metadata so reruns diff cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd

from wsss_lib.artifacts import ArtifactStore
from wsss_lib.io import atomic_path, atomic_write_text
from wsss_lib.paths import DRY_SUFFIX, SMALL_SUFFIX, is_dry_run_profile
from wsss_lib.paths import reports_dir as default_reports_dir
from wsss_lib.paths import work_dir as default_work_dir

__all__ = ["RunContext", "DRY_RUN_NOTE", "SMALL_DRY_RUN_NOTE", "SMOKE_NOTE", "WIRING_CHECK_PROFILES"]

DRY_RUN_NOTE = ("DRY RUN (wsss_lib.runner.dry_run: fixture data, capped steps and sizes, random weights where the profile "
                "asks for hub weights): a wiring check, these numbers mean nothing.")
SMALL_DRY_RUN_NOTE = DRY_RUN_NOTE.replace("hub weights)", "hub weights, each backbone the smallest of its family)")
SMOKE_NOTE = ("SMOKE (profile smoke, the notebooks' defaults: the tiny synthetic dataset, one short epoch per "
              "training stage): a wiring check that every code path runs; these numbers compare nothing. "
              "Measured comparisons: README, section 'Results'.")
WIRING_CHECK_PROFILES = ("smoke",)
"""Profiles that only check the wiring (besides every dry run): their tables and figures say so and the quality
checks of trained models (:meth:`RunContext.expect`) are reported, not applied."""

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _escape_latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


@dataclass(frozen=True)
class RunContext:
    profile: str
    work_dir: Path
    reports_dir: Path

    @classmethod
    def create(cls, profile: str, work_dir: str = "", reports_dir: str = "") -> "RunContext":
        """Resolve the folders of ``profile`` (empty strings: the defaults of ``wsss_lib.paths``)."""
        if not profile or "/" in profile:
            raise ValueError(f"profile must be a plain name such as 'smoke', got {profile!r}")
        ctx = cls(profile, default_work_dir(profile, work_dir or None), default_reports_dir(profile, reports_dir or None))
        for sub in ("tables", "figures"):
            (ctx.reports_dir / sub).mkdir(parents=True, exist_ok=True)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        return ctx

    @property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.work_dir)

    @property
    def dry_run(self) -> bool:
        """A dry run (profile ``<name>-dry``, ``wsss_lib.runner.dry_run``): every table and figure says so."""
        return is_dry_run_profile(self.profile)

    @property
    def wiring_check(self) -> bool:
        """A dry run or a wiring-check profile (:data:`WIRING_CHECK_PROFILES`, the smoke profile): numbers that
        compare nothing."""
        return self.dry_run or self.profile in WIRING_CHECK_PROFILES

    @property
    def note(self) -> str:
        """What every table caption and figure of a wiring check starts with (empty for a real run)."""
        if self.dry_run:
            return SMALL_DRY_RUN_NOTE if self.profile.endswith(SMALL_SUFFIX + DRY_SUFFIX) else DRY_RUN_NOTE
        return SMOKE_NOTE if self.wiring_check else ""

    def expect(self, condition: bool, message: str) -> bool:
        """A check of what a *trained* model must achieve (quality, not wiring), e.g. "the CAM clears the label-only
        floor": an ``AssertionError`` with ``message`` when it fails in a real run. In a wiring check (a dry run's
        random weights, the smoke profile's one short epoch on tiny data) it cannot be expected to hold: it is
        reported as not applied, whatever its outcome."""
        if self.wiring_check:
            kind = "dry run" if self.dry_run else f"{self.profile} (wiring check)"
            print(f"{kind}: quality check not applied ({'holds' if condition else 'would fail'}: {message})")
            return bool(condition)
        if not condition:
            raise AssertionError(message)
        return True

    @property
    def checks_passed(self) -> str:
        """What a notebook's check section prints when it gets to its end."""
        if self.wiring_check:
            kind = "dry run" if self.dry_run else f"profile {self.profile}"
            return f"wiring checks passed; quality checks not applied ({kind})"
        return "checks passed"

    def save_table(self, frame: pd.DataFrame, name: str, caption: str, *, index: bool = False,
                   float_format: str = ".1f", latex: bool = False, measured: bool = True) -> Path:
        """Write ``tables/<name>.csv`` and ``tables/<name>.md`` (caption + provenance + table); with ``latex`` also
        ``tables/<name>.tex`` (booktabs rules, the same decimals, missing numbers as empty cells). A wiring check's
        caption starts with :attr:`note`, unless ``measured=False`` (a table of literature values only)."""
        base = self.reports_dir / "tables" / name
        if self.note and measured:
            caption = f"{self.note} {caption}"
        with atomic_path(base.with_suffix(".csv")) as tmp:
            frame.to_csv(tmp, index=index)
        markdown = frame.to_markdown(index=index, floatfmt=float_format)
        atomic_write_text(base.with_suffix(".md"), f"{caption}\n\n_Profile `{self.profile}`; measured by this "
                          f"repository's code unless a column says literature._\n\n{markdown}\n")
        if latex:
            styler = (frame.style.format(precision=int(float_format.strip(".f") or 1), na_rep="", escape="latex")
                      .format_index(escape="latex", axis=1))
            styler = styler if index else styler.hide(axis="index")
            atomic_write_text(base.with_suffix(".tex"), styler.to_latex(
                caption=_escape_latex(f"{caption} Profile {self.profile}."), hrules=True, position="ht"))
        return base.with_suffix(".csv")

    def save_figure(self, fig: matplotlib.figure.Figure, name: str, dpi: int = 110) -> Path:
        """Write ``figures/<name>.png`` with fixed metadata (no timestamps, no software tag)."""
        path = self.reports_dir / "figures" / f"{name}.png"
        if self.dry_run:
            fig.text(0.5, 0.5, "DRY RUN", fontsize=48, color="red", alpha=0.35, ha="center", va="center",
                     rotation=30, transform=fig.transFigure)
        if self.note:
            fig.text(0.5, 1.0, self.note, fontsize=8, color="red", ha="center", va="bottom", wrap=True,
                     transform=fig.transFigure)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return path
