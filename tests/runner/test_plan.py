"""wsss_lib.runner.plan: the real run's training plan derived from a dry run's records and manifest."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wsss_lib.runner.plan import build_plan


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


def test_gpu_hours_come_from_the_setting_the_stage_trains_with(tmp_path):
    """A record that names its precision and layout takes that setting's figure, never a compiled one (training has
    no compile switch) nor a faster setting it does not use; the CSV as make gpu-check writes it (bools as text,
    blanks in the per-image rows)."""
    bench = tmp_path / "cuda.csv"
    figure = {"method": "cam", "backbone": "resnest269e", "crop": 512}
    pd.DataFrame([{**figure, "amp": "fp16", "channels_last": False, "compile": False, "train_images_per_s": 65.0},
                  {**figure, "amp": "fp16", "channels_last": True, "compile": False, "train_images_per_s": 77.0},
                  {**figure, "amp": "bf16", "channels_last": False, "compile": False, "train_images_per_s": 79.0},
                  {**figure, "amp": "fp16", "channels_last": True, "compile": True, "train_images_per_s": 103.0},
                  {"part": "tta", "seconds_per_image": 0.2}]).to_csv(bench, index=False)
    records = [_record(amp="fp16", channels_last=True),
               _record(key="nchw", name="cam-resnest269e-seed0-nchw", amp="fp16", channels_last=False),
               _record(key="old", name="cam-resnest269e-seed0-old")]  # an older record: the fastest figure
    plan = build_plan(_write(tmp_path, records), _manifest(), "voc", bench)
    assert plan["gpu_images_per_s"].tolist() == [77.0, 65.0, 103.0]
    unmeasured = build_plan(_write(tmp_path, [_record(amp="off", channels_last=True)]), _manifest(), "voc", bench)
    assert pd.isna(unmeasured["gpu_hours"].iloc[0])  # fp32 not measured: blank, not another setting's figure


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


# ------------------------------------------------------------------------------------------- per-image stages
def _image_record(**kw):
    base = {"notebook": "01_cam_baseline", "kind": "images", "stage": "cams", "name": "cam-resnest269e-seed0-train-c1",
            "key": "c1", "split": "train", "images": 4, "backbone": "resnest269e", "scales": [0.5, 2.0], "flip": True}
    return {**base, **kw}


def _image_manifest():
    manifest = _manifest()
    manifest["dry_run_caps"]["01_cam_baseline"]["tta.scales"] = [[0.5, 1.0, 1.5, 2.0], [0.5, 2.0]]
    manifest["dry_run_caps"]["09_segmentation"] = {"inference.scales": [[0.5, 1.0, 1.5, 2.0], [0.5, 2.0]]}
    return manifest


def _bench(tmp_path):
    cpu, cuda = tmp_path / "cpu.csv", tmp_path / "cuda.csv"
    common = {"image": "500x375", "backbone": "", "scales": "", "flip": "", "crf": "", "radius": "", "exp_times": ""}
    pd.DataFrame([{**common, "part": "tta", "backbone": "resnest269e", "scales": "0.5,1,1.5,2", "flip": True,
                   "seconds_per_image": 10.0, "peak_memory_mb": 6000.0},
                  {**common, "part": "tta", "backbone": "resnest269e", "scales": "0.5,2", "flip": True,  # the dry run's
                   "seconds_per_image": 4.0, "peak_memory_mb": 5000.0},
                  {**common, "part": "io", "seconds_per_image": 0.1, "peak_memory_mb": 300.0},
                  {**common, "part": "crf", "crf": "label", "seconds_per_image": 0.5, "peak_memory_mb": 400.0},
                  {**common, "part": "crf", "crf": "label", "image": "640x480", "seconds_per_image": 9.0,
                   "peak_memory_mb": 400.0},  # another image size: not VOC's
                  {**common, "part": "seg", "backbone": "resnest269e", "scales": "0.5,1,1.5,2", "flip": True,
                   "head": "v3+", "seconds_per_image": 12.0, "peak_memory_mb": 7000.0}]).to_csv(cpu, index=False)
    pd.DataFrame([{**common, "part": "tta", "backbone": "resnest269e", "scales": "0.5,1,1.5,2", "flip": True,
                   "seconds_per_image": 0.2, "peak_memory_mb": 3000.0}]).to_csv(cuda, index=False)
    return cpu, cuda


def test_per_image_stages_are_planned_at_real_split_sizes_with_costs_from_the_bench(tmp_path):
    from wsss_lib.runner.plan import build_image_plan, hours_table

    records = _write(tmp_path, [
        _record(),
        _image_record(),
        _image_record(stage="sweeps", name="cam-resnest269e-seed0-train-c1-s1", key="s1", thresholds=16, crf="",
                      backbone=None, scales=None, flip=None),
        _image_record(notebook="08_affinity_random_walk", stage="affinity_labels", name="conventional-x-a1",
                      key="a1", split="train_aug", crf="label", crfs=2, backbone=None, scales=None, flip=None),
        _image_record(notebook="09_segmentation", stage="seg_predictions", name="seg-val-p1", key="p1", split="val",
                      head="v3+", crf="deeplab_v2", crfs=1),
    ])
    cpu, cuda = _bench(tmp_path)
    images = build_image_plan(records, _image_manifest(), "voc", cpu, cuda, profile="paper-voc")
    assert (images["check"] == "ok").all() and images["stage"].tolist() == ["cams", "sweeps", "affinity_labels",
                                                                             "seg_predictions"]
    cams, sweeps, labels, seg = images.to_dict("records")
    # the real split (VOC train: 1,464 images), 3 seeds, the profile's 4 scales (not the dry run's 2)
    assert (cams["images"], cams["runs"], cams["image"]) == (1464, 3, "500x375")
    assert cams["gpu_hours"] == pytest.approx(1464 * 3 * 0.2 / 3600)
    assert cams["cpu_hours_without_gpu"] == pytest.approx(1464 * 3 * 10.0 / 3600)
    assert cams["cpu_hours"] == pytest.approx(1464 * 3 * 0.1 / 3600)  # writing the CAM files
    assert (cams["peak_mb_cpu"], cams["peak_mb_gpu"]) == (6000.0, 3000.0) and cams["cost"] == "measured"
    assert cams["shard"] == ""  # 0.24 GPU hours
    assert sweeps["gpu_hours"] == 0 and sweeps["cpu_hours"] == pytest.approx(1464 * 3 * 0.1 / 3600)
    # train_aug: 10,582 images, two label CRFs and one file each; no seeds in notebook 08
    assert (labels["images"], labels["runs"]) == (10582, 1)
    assert labels["cpu_hours"] == pytest.approx(10582 * (0.1 + 2 * 0.5) / 3600) and labels["parts"] == "io + 2 crf"
    assert labels["shard"] == ("--shard auto, SLURM array of 4: python -m wsss_lib.reproduce --profile paper-voc "
                               "--only 08_affinity_random_walk --shard auto")  # 3.2 CPU hours
    # no DeepLab figure on the GPU and no deeplab_v2 CRF figure: named, hours blank
    assert seg["images"] == 1449 and pd.isna(seg["gpu_hours"]) and pd.isna(seg["cpu_hours"])
    assert "no GPU figure: seg resnest269e v3+ 0.5,1,1.5,2 True" in seg["cost"] and "crf deeplab_v2" in seg["cost"]
    assert seg["cpu_hours_without_gpu"] == pytest.approx(1449 * 12.0 / 3600)
    assert "SLURM array of 5" in seg["shard"]  # no GPU figure: sharded by its 4.8 hours on this CPU
    hours = hours_table(build_plan(records, _manifest(), "voc", cuda), images).set_index("notebook")
    assert hours.loc["01_cam_baseline", "per-image GPU h"] == pytest.approx(1464 * 3 * 0.2 / 3600)
    assert hours.loc["total", "per-image CPU h"] == pytest.approx(
        cams["cpu_hours"] + sweeps["cpu_hours"] + labels["cpu_hours"])
    assert hours.loc["09_segmentation", "unmeasured rows"] == 1


def test_per_image_scales_that_do_not_map_back_to_the_dry_run_fail_the_check(tmp_path):
    from wsss_lib.runner.plan import build_image_plan

    records = _write(tmp_path, [_image_record(scales=[0.5, 1.0])])
    cpu, cuda = _bench(tmp_path)
    images = build_image_plan(records, _image_manifest(), "voc", cpu, cuda)
    assert images["check"].iloc[0] == "tta.scales: dry run [0.5, 2.0], stage [0.5, 1.0]"
    records = _write(tmp_path, [_image_record(split="trainval")])
    assert "split 'trainval' has no known size" in build_image_plan(records, _image_manifest(), "voc", cpu,
                                                                     cuda)["check"].iloc[0]


def test_a_small_backbone_dry_run_plans_the_profiles_backbone(tmp_path):
    """make dry-runs-small builds ResNeSt-14d where the profile names ResNeSt-269: a per-image stage is costed with
    the profile's backbone (the cap says which), found in its own notebook's caps or another's; a dry-run backbone
    that stands for two profile backbones is named in the check, not guessed."""
    from wsss_lib.runner.plan import build_image_plan

    manifest = _image_manifest()
    manifest["dry_run_caps"]["01_cam_baseline"]["classifier.backbone.name"] = ["resnest269e", "resnest14d"]
    records = _write(tmp_path, [_image_record(backbone="resnest14d"),
                                _image_record(notebook="08_affinity_random_walk", key="c2", backbone="resnest14d")])
    cpu, cuda = _bench(tmp_path)
    own, other = build_image_plan(records, manifest, "voc", cpu, cuda).to_dict("records")
    for row, runs in ((own, 3), (other, 1)):  # notebook 01's seeds are capped, 08's are not
        assert row["check"] == "ok" and row["gpu_hours"] == pytest.approx(1464 * runs * 0.2 / 3600)
        assert row["cpu_hours_without_gpu"] == pytest.approx(1464 * runs * 10.0 / 3600)
    # without the cap the small backbone is costed as itself: no figure
    plain = build_image_plan(records, _image_manifest(), "voc", cpu, cuda).to_dict("records")[0]
    assert pd.isna(plain["gpu_hours"]) and "no GPU figure: tta resnest14d" in plain["cost"]
    # a segmentation network built as ResNeSt-14d too: the CAMs' cap is the classifier's, not the segmentation's
    manifest["dry_run_caps"]["09_segmentation"]["segmentation.backbone.name"] = ["resnest101e", "resnest14d"]
    records = _write(tmp_path, [_image_record(notebook="08_affinity_random_walk", key="c3", backbone="resnest14d")])
    row = build_image_plan(records, manifest, "voc", cpu, cuda).to_dict("records")[0]
    assert row["check"] == "ok" and row["gpu_hours"] == pytest.approx(1464 * 0.2 / 3600)
    # two classifier-shaped networks of different profile backbones behind one dry-run backbone: named, not guessed
    manifest["dry_run_caps"]["11_methods_class_groups"] = {"acr.backbone.name": ["resnest101e", "resnest14d"]}
    row = build_image_plan(records, manifest, "voc", cpu, cuda).to_dict("records")[0]
    assert row["check"] == ("backbone 'resnest14d' stands for ['resnest101e', 'resnest269e'] in the dry run: costs of "
                            "'resnest14d'")
