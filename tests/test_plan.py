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
    caps = {"classifier.train.epochs": [15, 1], "classifier.train.batch_size": [16, 2],
            "classifier.augment.crop_size": [512, 64], "seeds": [[0, 1, 2], [0]],
            "detector.train.epochs": [9, 1], "detector.optim.accumulate_steps": [10, 2],
            "detector.augment.crop_size": [512, 64]}
    return {"notebooks": {"01_cam_baseline": {"parameters": {}}, "07_saliency_c2amh": {"parameters": {}}},
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
    assert plan["check"].iloc[0] == "classifier.train.epochs: dry run 1, stage 3"


def test_a_broken_record_names_the_file_and_line(tmp_path):
    path = tmp_path / "plan-records.jsonl"
    path.write_text(json.dumps(_record()) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"plan-records\.jsonl, line 2: not a JSON plan record"):
        build_plan(path, _manifest(), "voc", tmp_path / "none.csv")


def test_only_the_stages_this_dry_run_used_are_planned(tmp_path):
    """A record left by an earlier dry run (another key: the caps or the profile changed since) is not planned;
    a stage this dry run reused from an earlier one keeps its record and is planned."""
    records = _write(tmp_path, [_record(key="old", name="cam-resnest269e-seed0-old"), _record(key="aaa")])
    used = tmp_path / "plan-used.jsonl"
    used.write_text(json.dumps({"notebook": "01_cam_baseline", "key": "aaa"}) + "\n"
                    + json.dumps({"notebook": "01_cam_baseline", "key": "aaa"}) + "\n")  # used twice: planned once
    plan = build_plan(records, _manifest(), "voc", tmp_path / "none.csv", used)
    assert plan["run"].tolist() == ["cam-resnest269e-seed0"] and len(plan) == 1
    assert len(build_plan(records, _manifest(), "voc", tmp_path / "none.csv")) == 2  # no used file: every record
    used.write_text(json.dumps({"notebook": "01_cam_baseline", "key": "zzz"}) + "\n")
    with pytest.raises(ValueError, match=r"no record of the stage\(s\) \['zzz'\]"):
        build_plan(records, _manifest(), "voc", tmp_path / "none.csv", used)
