"""stages.training.train_stage: the one train-or-load shape of every training stage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch

from wsss_lib.data import DatasetConfig, open_dataset
from wsss_lib.data.transforms import AugmentConfig, build_train_transform
from wsss_lib.evaluation.quick import QuickEvalConfig
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.training import StageConfig, train_stage
from wsss_lib.train import OptimConfig, TrainConfig


@dataclass(frozen=True)
class TinyStage(StageConfig):
    """A tiny CAM classifier as a training stage: one config class and its two functions (``calls`` logs them)."""

    stage: ClassVar[str] = "unit_stage"

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(weights="offline-lite0"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, batch_size=4, num_workers=0, device="cpu",
                                                                   eval=QuickEvalConfig(size=64)))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01))
    train_split: str = "train"
    k: int = 1

    @property
    def run_name(self) -> str:
        return "tiny"

    def build(self, ctx, weights, upstream=None):
        CALLS.setdefault("build", []).append(weights)
        num_classes = open_dataset(self.dataset, "train", work_dir=ctx.work_dir, progress=False).num_classes - 1
        chosen = replace(self.backbone, weights=weights) if weights else self.backbone
        return build_method("cam", method_config("cam", {}), chosen, num_classes)

    def train_set(self, ctx, upstream, method):
        CALLS.setdefault("train_set", []).append(method)
        transform = build_train_transform(AugmentConfig(crop_size=64, resize_long_side=(48, 64)), *method.normalization)
        return open_dataset(self.dataset, "train", work_dir=ctx.work_dir, progress=False, transform=transform)

    def after(self, ctx, upstream, method, sd):
        CALLS.setdefault("after", []).append(sd.done)
        (sd.path / "extra.txt").write_text("kept beside the weights")
        return {"note": "from after"}


CALLS: dict[str, list] = {}


def stage_parts(tmp_path, data_root):
    """A run context and the tiny stage's config on the tiny synthetic dataset at ``data_root``."""
    ctx = RunContext.create("unit", str(tmp_path / "work"), str(tmp_path / "reports"))
    return ctx, TinyStage(dataset=DatasetConfig(name="synthetic", data_root=str(data_root)))


def test_train_stage_trains_once_and_returns_the_weights_it_saved(tmp_path, tiny_synthetic):
    ctx, cfg = stage_parts(tmp_path, tiny_synthetic)
    CALLS.clear()
    first = train_stage(ctx, cfg, progress=False)
    assert CALLS["build"] == [None, "none"] and len(CALLS["train_set"]) == 1 and CALLS["after"] == [False]
    done = first.stage.read_json("DONE.json")
    assert done["note"] == "from after" and done["epochs"] == 1 and "steps" not in done
    assert done["provenance"]["machine"]["cores"] and "commit" in done["provenance"]  # where the weights came from
    assert (first.stage.path / "extra.txt").is_file() and not first.stage.file("checkpoint.pt").exists()
    saved = first.stage.load_state()
    state = first.method.state_dict()
    assert all(t.device.type == "cpu" for t in state.values())
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    assert list(first.history["epoch"]) == [1] and first.config == cfg

    CALLS.clear()
    again = train_stage(ctx, replace(cfg, train=replace(cfg.train, num_workers=2, device="auto")), progress=False)
    assert CALLS == {"build": ["none"]}  # reused (workers and device are not in the key): nothing trained or rewritten
    assert again.stage.path == first.stage.path
    assert all(torch.equal(a, b) for a, b in zip(again.method.state_dict().values(), state.values()))
    assert train_stage(ctx, replace(cfg, k=2), progress=False).stage.path != first.stage.path  # a key field: new stage
