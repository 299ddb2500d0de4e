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
