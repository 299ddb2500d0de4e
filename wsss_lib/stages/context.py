"""The run context of a notebook: its profile and name, its work directory (the artifact store) and its reports
directory, and what kind of run it is (a real run, a dry run, or the smoke profile's wiring check) with the quality
checks that apply to it. The tables and figures are written by :mod:`wsss_lib.reporting.writer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wsss_lib.artifacts import ArtifactStore
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
OWN_DATA_NOTE = ("FIRST LOOK (profile own-data: your data with the notebooks' default recipe, one short epoch per "
                 "training stage): a check that your data runs through every notebook; these numbers compare "
                 "nothing until a profile of your own trains for real (README, section 'Your own data').")
WIRING_CHECK_PROFILES = ("smoke", "own-data")
"""Profiles that only check the wiring (besides every dry run): their tables and figures say so and the quality
checks of trained models (:meth:`RunContext.expect`) are reported, not applied. ``own-data`` runs the smoke recipe on
a user's data; a copy of it under another name, with a real recipe, is checked."""

@dataclass(frozen=True)
class RunContext:
    profile: str
    work_dir: Path
    reports_dir: Path
    notebook: str = ""
    """The notebook that runs (``"01_cam_baseline"``): named in run records, in a dry run's plan and in errors."""

    @classmethod
    def create(cls, profile: str, work_dir: str = "", reports_dir: str = "", notebook: str = "") -> "RunContext":
        """Resolve the folders of ``profile`` (empty strings: the defaults of ``wsss_lib.paths``) for ``notebook``."""
        if not profile or "/" in profile:
            raise ValueError(f"profile must be a plain name such as 'smoke', got {profile!r}")
        ctx = cls(profile, default_work_dir(profile, work_dir or None), default_reports_dir(profile, reports_dir or None),
                  notebook)
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
        if not self.wiring_check:
            return ""
        return OWN_DATA_NOTE if self.profile == "own-data" else SMOKE_NOTE

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
