"""stages.training.train_stage: the one train-or-load shape of every training stage."""

from __future__ import annotations

from dataclasses import replace

import torch

from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.quick import QuickEvalConfig
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.training import train_stage
from wsss_lib.train import OptimConfig, TrainConfig


def stage_parts(tmp_path, data_root, calls=None):
    """A run context and a tiny CAM stage's ``build``, ``train_set`` and train config (``calls`` logs the calls)."""
    ctx = RunContext.create("unit", str(tmp_path / "work"), str(tmp_path / "reports"))
    dataset = DatasetConfig(name="synthetic", data_root=str(data_root))
    backbone = BackboneConfig(weights="offline-lite0")
    train = TrainConfig(epochs=1, batch_size=4, num_workers=0, device="cpu", eval=QuickEvalConfig(size=64))
    num_classes = open_dataset(dataset, "train", work_dir=ctx.work_dir, progress=False).num_classes - 1
    calls = calls if calls is not None else {"build": [], "train_set": []}

    def build(weights):
        calls["build"].append(weights)
        chosen = replace(backbone, weights=weights) if weights else backbone
        return build_method("cam", method_config("cam", {}), chosen, num_classes)

    def train_set(method):
        calls["train_set"].append(method)
        transform = build_train_transform(AugmentConfig(crop_size=64, resize_long_side=(48, 64)), *method.normalization)
        return open_dataset(dataset, "train", work_dir=ctx.work_dir, progress=False, transform=transform)

    return ctx, build, train_set, train


def test_train_stage_trains_once_and_returns_the_weights_it_saved(tmp_path, tiny_synthetic):
    calls: dict[str, list] = {"build": [], "train_set": [], "after": []}
    ctx, build, train_set, train = stage_parts(tmp_path, tiny_synthetic, calls)

    def after(method, sd):
        calls["after"].append(sd.done)
        (sd.path / "extra.txt").write_text("kept beside the weights")
        return {"note": "from after"}

    first = train_stage(ctx, "unit_stage", {"k": 1}, "tiny", build, train_set, train, OptimConfig(lr=0.01),
                        after=after, progress=False)
    assert calls["build"] == [None, "none"] and len(calls["train_set"]) == 1 and calls["after"] == [False]
    done = first.stage.read_json("DONE.json")
    assert done["note"] == "from after" and done["epochs"] == 1 and "steps" not in done
    assert (first.stage.path / "extra.txt").is_file() and not first.stage.file("checkpoint.pt").exists()
    saved = first.stage.load_state()
    state = first.method.state_dict()
    assert all(t.device.type == "cpu" for t in state.values())
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    assert list(first.history["epoch"]) == [1]

    calls.update(build=[], train_set=[], after=[])
    again = train_stage(ctx, "unit_stage", {"k": 1}, "tiny", build, train_set, train, OptimConfig(lr=0.01),
                        after=after, progress=False)
    assert calls == {"build": ["none"], "train_set": [], "after": []}  # reused: nothing trained, nothing rewritten
    assert again.stage.path == first.stage.path
    assert all(torch.equal(a, b) for a, b in zip(again.method.state_dict().values(), state.values()))
