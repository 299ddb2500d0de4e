"""The table writer: Markdown numbers at one decimal, thresholds (a 0.05 grid) at two."""

from __future__ import annotations

import pandas as pd

from wsss_lib.reporting.writer import Report
from wsss_lib.stages.context import RunContext


def test_thresholds_keep_two_decimals_in_markdown(tmp_path):
    ctx = RunContext.create("unit", str(tmp_path / "w"), str(tmp_path / "r"))
    frame = pd.DataFrame({"miou": [45.66], "threshold (held-out)": [0.45]}, index=pd.Index(["CAM"], name="method"))
    for index in (False, True):
        Report(ctx).table(frame, "t", "caption", index=index)
        row = (tmp_path / "r" / "tables" / "t.md").read_text().splitlines()[-1]
        assert "45.7" in row and "0.45" in row and "0.5 " not in row
