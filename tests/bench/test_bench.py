"""The benchmark command writes one row per configuration with throughput and memory."""

import json

import pandas as pd
import pytest

from wsss_lib.bench.throughput import main


def test_bench_appends_rows(tmp_path):
    out = tmp_path / "cpu.csv"
    args = ["--crop", "64", "--batch", "2", "--warmup", "1", "--steps", "1", "--tta-image", "48", "--num-classes", "3",
            "--device", "cpu", "--out", str(out)]
    assert main(args) == 0 and main(args) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 2 and (frame["train_images_per_s"] > 0).all() and (frame["tta_images_per_s"] > 0).all()
    assert (frame["train_peak_memory_mb"] > 0).all() and set(frame["method"]) == {"cam"}


@pytest.mark.slow
def test_random_walk_bench_runs_each_walk_in_its_own_process(tmp_path):
    from wsss_lib.bench.random_walk import main as rw_main

    out = tmp_path / "rw.csv"
    assert rw_main(["--image", "48", "--impl", "sparse", "dense", "--exp-times", "3", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame["impl"]) == ["sparse", "dense"] and (frame["seconds"] > 0).all() and (frame["grid"] == 12).all()
    assert frame["note"].isna().all()


@pytest.mark.slow
def test_gpu_check_wiring_on_cpu(tmp_path, monkeypatch):
    """make gpu-check's script at toy sizes (no compile row, no dry run): rows, the same-run ratio, the walk, and the
    per-image bench it runs (make bench-per-image's parts, each in its own process, with its cost and peak memory)."""
    import subprocess
    from types import SimpleNamespace

    import wsss_lib.bench.gpu_check as gpu_check

    rows = tuple(r for r in gpu_check.TRAIN_ROWS if not r[3] and r[0] == "cam")
    monkeypatch.setattr(gpu_check, "TRAIN_ROWS", rows)
    monkeypatch.setattr(gpu_check, "STUDY_ROWS", ("cam",))
    assert gpu_check.main(["--device", "cpu", "--quick", "--no-dry-run", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gpu-check-cpu.md").read_text()
    assert "| cam fp16 NCHW |" in text and "| cam fp16 channels_last |" in text
    assert "- cam: " in text and "x images/s" in text and "Dry run: skipped" in text
    assert "sparse walk at 128 px: exit status 0" in text and "The study's scale" in text
    written = pd.read_csv(tmp_path / "cpu.csv")
    assert written["part"].isna().sum() == len(rows) + 1 and (tmp_path / "rw-cpu.csv").is_file()  # training rows
    # the per-image rows: every part, each CRF preset, each with its cost and peak memory
    per_image = written[written["part"].notna()]
    assert per_image["part"].tolist() == ["tta", "seg", "affinity", "walk", "crf", "crf", "crf", "io"]
    assert per_image["crf"].fillna("").tolist() == ["", "", "", "", "label", "label_pseudo_mask", "deeplab_v2", ""]
    assert (per_image["seconds_per_image"] > 0).all() and (per_image["peak_memory_mb"] > 0).all()
    assert set(per_image["image"]) == {"64x48"} and per_image["scales"].iloc[0] == "0.5,1"
    assert "Per-image stages: per-image rows at 64x48: appended to cpu.csv" in text
    assert gpu_check.OFFICIAL in rows and gpu_check.DEFAULT in rows

    # a spent budget skips the rows left, names them, and fails the check; the summary is still written (the steps
    # after the training rows, measured above, are stubbed here: the budget governs the training rows only)
    monkeypatch.setattr(gpu_check, "STUDY_ROWS", ())
    done = subprocess.CompletedProcess([], 0, stdout="stubbed\n", stderr="")
    monkeypatch.setattr(gpu_check, "subprocess", SimpleNamespace(run=lambda *a, **k: done,
                                                                 TimeoutExpired=subprocess.TimeoutExpired))
    assert gpu_check.main(["--device", "cpu", "--quick", "--no-dry-run", "--budget", "0", "--out",
                           str(tmp_path / "b")]) == 1
    text = (tmp_path / "b" / "gpu-check-cpu.md").read_text()
    assert "- not measured (budget spent): cam fp16 NCHW" in text and "- cam: not measured" in text

    # --no-compile leaves the compile row out on request: named as such, and the check still passes
    monkeypatch.setattr(gpu_check, "TRAIN_ROWS", (gpu_check.DEFAULT, ("cam", "fp16", True, True)))
    assert gpu_check.main(["--device", "cpu", "--quick", "--no-dry-run", "--no-compile", "--out",
                           str(tmp_path / "c")]) == 0
    text = (tmp_path / "c" / "gpu-check-cpu.md").read_text()
    assert "- not measured (--no-compile): cam fp16 channels_last compile" in text
    assert "| cam fp16 channels_last |" in text and "| cam fp16 channels_last compile |" not in text


def test_gpu_check_reports_how_far_a_dry_run_got(tmp_path):
    import json

    from wsss_lib.bench.gpu_check import _dry_run_outcome

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"notebooks": {
        "01_cam_baseline": {"status": "ok", "seconds": 12.0},
        "02_puzzle": {"status": "failed", "error": "RuntimeError: CUDA out of memory", "seconds": 3.0},
        "03_occse": {"status": "running"}}}))
    line = _dry_run_outcome(None, 99.0, 90.0, manifest)
    assert line.startswith("stopped by its timeout after 90 s")
    assert "01 ok (12 s), 02 failed (3 s), 03 running" in line and "FAILED 02_puzzle: RuntimeError: CUDA out" in line
    assert _dry_run_outcome(0, 5.0, 0, tmp_path / "none.json").endswith("no manifest at " + str(tmp_path / "none.json"))


@pytest.mark.ddp
def test_ddp_bench_appends_one_row_per_device_count(tmp_path):
    import pandas as pd

    from wsss_lib.bench.ddp import main

    out = tmp_path / "ddp.csv"
    main(["--devices", "1", "2", "--crop", "32", "--batch", "2", "--accumulate", "2", "--steps", "2", "--device",
          "cpu", "--out", str(out)])
    rows = pd.read_csv(out)
    assert rows["devices"].tolist() == [1, 2] and rows["images"].tolist() == [8, 8]
    assert rows["speedup_vs_first"].iloc[0] == 1.0 and (rows["images_per_s"] > 0).all()
    assert (rows["overhead_s"] >= 0).all()


@pytest.mark.slow
def test_profile_splits_a_run_into_sections(tmp_path):
    """python -m wsss_lib.bench.profile on the smoke profile: sections that add up to the run's wall time, per
    variant, and the Markdown table with the ratio."""
    from wsss_lib.bench.profile import main as profile_main

    assert profile_main(["--profile", "smoke", "--targets", "cam", "--variant", "a", "b:runtime.num_workers=0",
                         "--work", str(tmp_path / "w"), "--out", str(tmp_path / "out")]) == 0
    frame = pd.read_csv(tmp_path / "out" / "profile-smoke.csv")
    for variant, rows in frame.groupby("variant"):
        total = rows.loc[rows["section"] == "total", "seconds"].item()
        assert rows.loc[rows["section"] != "total", "seconds"].sum() == pytest.approx(total, rel=1e-6)
        assert {"classifier/forward", "classifier/backward", "classifier/optimizer", "cams/forward",
                "sweeps/count"} <= set(rows["section"])
    # 2 DataLoader workers (the smoke default) and none train bit-identical weights, with the same TTA mIoU
    totals = frame[frame["section"] == "total"]
    assert totals["weights"].nunique() == 1 and totals["miou"].nunique() == 1
    text = (tmp_path / "out" / "profile-smoke.md").read_text()
    assert "| `a` | 1 |" in text and "| `b` | 1 |" in text and "speed-up vs `a`" in text
    assert "Partial" not in text
    # The report is rewritten as each run ends: after the first of two, it holds that run and says it is partial
    from wsss_lib.bench.profile import Variant, report

    first = frame[frame["variant"] == "a"].to_dict("records")
    partial = report(first, "cmd", "t", {"commit": "abc", "dirty": False}, [Variant("a"), Variant("b")], {}, 1, 1, 2)
    assert "**Partial: 1 of 2 runs finished so far.**" in partial and "| `a` | 1 |" in partial
    assert "| `b` |" not in partial


def test_the_ledger_sums_what_stages_and_executions_recorded_and_names_untimed_stages(tmp_path, monkeypatch):
    from wsss_lib.bench.ledger import write_ledger

    monkeypatch.setenv("WSSS_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("WSSS_REPORTS", str(tmp_path / "reports"))
    done = {"classifier/cam-seed0-aa": {"epochs": 6, "seconds": 5400.0, "provenance": {"commit": "0123456789abc",
                                                                                       "machine": {"cpu": "EPYC"}}},
            "classifier/cam-seed1-bb": {"epochs": 6, "seconds": 1800.0},
            "cams/cam-seed0-train-cc": {"images": 200, "computed": 200, "computed_by": {"seconds": 300.0}},
            "cams/cam-seed0-val-ee": {"images": 200, "computed": 50, "computed_by": {"seconds": 60.0}},  # resumed
            "sweeps/cam-seed0-dd": {"computed_by": {"host": "vm"}}}  # finished before times were recorded
    for folder, summary in done.items():
        (tmp_path / "work" / "t" / folder).mkdir(parents=True)
        (tmp_path / "work" / "t" / folder / "DONE.json").write_text(json.dumps(summary))
    (tmp_path / "reports" / "t").mkdir(parents=True)
    (tmp_path / "reports" / "t" / "manifest.json").write_text(json.dumps({"executions": [
        {"notebook": "01_cam_baseline", "started": "2026-12-01T10:00:00", "seconds": 7000.0, "status": "ok"},
        {"notebook": "01_cam_baseline", "started": "2026-12-02T10:00:00", "seconds": 200.0, "status": "failed"},
        {"notebook": "07_saliency_c2amh", "started": "2026-12-02T11:00:00", "seconds": 3600.0, "status": "ok"}]}))
    summary = write_ledger("t")
    assert summary.startswith("Profile t: 5 finished stages, 2.10 h of recorded stage time (a lower bound: 1 finished "
                              "stage(s) recorded no time; 1 resumed stage(s) timed by their last session only)")
    assert "classifier 2.00 h (95 %), cams 0.10 h (5 %)" in summary and "Notebook executions: 3, 3.00 h" in summary and "sweeps" not in summary
    tables = tmp_path / "reports" / "t" / "tables"
    kinds = pd.read_csv(tables / "costs_by_stage.csv").set_index("stage")
    assert kinds.loc["classifier", "seconds"] == 7200 and kinds.loc["cams", "seconds"] == 360
    assert kinds.loc["sweeps", "untimed"] == 1 and pd.isna(kinds.loc["sweeps", "seconds"])  # blank, not 0
    stages = pd.read_csv(tables / "costs_stages.csv", dtype={"commit": str})
    assert list(stages["timed"]) == ["epochs", "epochs", "session", "last session", "untimed"] and stages["commit"][0] == "0123456789"
    notebooks = pd.read_csv(tables / "costs_notebooks.csv").set_index("notebook")
    assert notebooks.loc["01_cam_baseline", ["executions", "ok", "seconds"]].tolist() == [2, 1, 7200]
    (tmp_path / "work" / "t" / "sweeps" / "cam-seed0-dd" / "DONE.json").write_text("{")
    with pytest.raises(ValueError, match="cam-seed0-dd/DONE.json: not a readable DONE.json"):
        write_ledger("t")
