"""wsss_lib.plan: the real run's training plan derived from a dry run's records and manifest."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wsss_lib.plan import build_plan


def _record(**kw):
    base = {"notebook": "01_cam_baseline", "stage": "classifier", "name": "cam-resnest269e-seed0-aaa", "key": "aaa",
            "method": "cam", "randaugment": False, "backbone": "resnest269e", "crop": 64, "split": "train_aug",
            "images": 12, "epochs": 1, "batch_size": 2, "accumulate_steps": 2, "max_steps": 0, "seed": 0}
    return {**base, **kw}


def _manifest():
    dry = {"epochs": 1, "batch_size": 2, "accumulate_steps": 2, "crop_size": 64, "seeds": [0], "ordinary_seed": 0,
           "detector_epochs": 1, "detector_batch_size": 1, "detector_accumulate_steps": 2, "detector_crop_size": 64}
    caps = {"epochs": [15, 1], "batch_size": [16, 2], "crop_size": [512, 64], "seeds": [[0, 1, 2], [0]],
            "detector_epochs": [9, 1], "detector_batch_size": [1, 1], "detector_accumulate_steps": [10, 2],
            "detector_crop_size": [512, 64]}
    return {"notebooks": {"01_cam_baseline": {"parameters": dry}, "07_saliency_c2amh": {"parameters": dry}},
            "dry_run_caps": {"01_cam_baseline": caps, "07_saliency_c2amh": {k: v for k, v in caps.items() if k != "seeds"}}}


def _write(tmp_path, records):
    path = tmp_path / "plan-records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_plan_restores_the_profile_recipe_seeds_and_real_split_sizes(tmp_path):
    records = [
        _record(),
        _record(name="cam-ls0.1-resnest269e-seed0-bbb", key="bbb", randaugment=True),  # the ordinary classifier
        _record(notebook="07_saliency_c2amh", stage="detector", name="detector-ccc", key="ccc", batch_size=1,
                accumulate_steps=2),
        _record(key="aaa", images=12),  # the same stage recorded twice (a rerun): once in the plan
    ]
    bench = tmp_path / "cuda.csv"
    pd.DataFrame([{"method": "cam", "backbone": "resnest269e", "crop": 512, "train_images_per_s": 50.0},
                  {"method": "cam", "backbone": "resnest269e", "crop": 512, "train_images_per_s": 80.0},
                  {"method": "cam", "backbone": "resnest269e", "crop": 448, "train_images_per_s": 999.0}]).to_csv(bench)
    plan = build_plan(_write(tmp_path, records), _manifest(), "voc", bench)
    assert len(plan) == 3 and (plan["check"] == "ok").all()
    cam, ordinary, detector = plan.to_dict("records")
    # 10,582 train_aug images, 16 x 2 per step, 15 epochs, 3 seeds
    assert (cam["images"], cam["batch"], cam["steps_per_run"], cam["runs"]) == (10582, 32, 15 * (10582 // 32), 3)
    assert cam["images_processed"] == 3 * 15 * (10582 // 32) * 32
    assert cam["gpu_hours"] == pytest.approx(cam["images_processed"] / 80.0 / 3600)  # the fastest setting at crop 512
    assert ordinary["runs"] == 1
    assert (detector["batch"], detector["steps_per_run"], detector["runs"]) == (10, 9 * (10582 // 10), 1)
    assert pd.isna(detector["gpu_hours"])  # no figure for the detector


def test_plan_flags_a_recipe_mapping_that_does_not_match_the_dry_run(tmp_path):
    plan = build_plan(_write(tmp_path, [_record(epochs=3)]), _manifest(), "voc", tmp_path / "none.csv")
    assert plan["check"].iloc[0] == "epochs: dry run 1, stage 3"


def test_a_broken_record_names_the_file_and_line(tmp_path):
    path = tmp_path / "plan-records.jsonl"
    path.write_text(json.dumps(_record()) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"plan-records\.jsonl, line 2: not a JSON plan record"):
        build_plan(path, _manifest(), "voc", tmp_path / "none.csv")
