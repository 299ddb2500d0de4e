"""The benchmark command writes one row per configuration with throughput and memory."""

import pandas as pd

from wsss_lib.bench import main


def test_bench_appends_rows(tmp_path):
    out = tmp_path / "cpu.csv"
    args = ["--crop", "64", "--batch", "2", "--warmup", "1", "--steps", "1", "--tta-image", "48", "--num-classes", "3",
            "--device", "cpu", "--out", str(out)]
    assert main(args) == 0 and main(args) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 2 and (frame["train_images_per_s"] > 0).all() and (frame["tta_images_per_s"] > 0).all()
    assert (frame["train_peak_memory_mb"] > 0).all() and set(frame["method"]) == {"cam"}


def test_random_walk_bench_runs_each_walk_in_its_own_process(tmp_path):
    from wsss_lib.bench_rw import main as rw_main

    out = tmp_path / "rw.csv"
    assert rw_main(["--image", "48", "--impl", "sparse", "dense", "--exp-times", "3", "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(frame["impl"]) == ["sparse", "dense"] and (frame["seconds"] > 0).all() and (frame["grid"] == 12).all()
    assert frame["note"].isna().all()
