"""Data-parallel training (torchrun + DDP, gloo on CPU): the per-rank share of a step, the unpadded rank batches,
and real 2-process trainings against one process: the same weights, exact resume, rank-0-only writes, a NaN or a
failure on one rank stopping both, and a training stage launched with ``devices=2``."""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import wsss_lib.train.trainer as trainer
from wsss_lib.train import OptimConfig, TrainConfig, fit
from wsss_lib.train.distributed import RankSplit, StepBatches, World, launch, rank_split, world

sys.path.insert(0, str(Path(__file__).parents[1] / "stages"))
import test_training_stage  # noqa: E402  (a tiny CAM stage)
import toys  # noqa: E402  (the toy method and data of the single-process trainer tests)
from toys import ToyMethod, ToySet  # noqa: E402

# the rank processes cannot import the test modules: their functions and classes travel by value (the payloads
# name classes and functions, never a test module itself, which would travel with pytest's captured streams)
pytestmark = pytest.mark.ddp

cloudpickle.register_pickle_by_value(toys)
cloudpickle.register_pickle_by_value(test_training_stage)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CFG = TrainConfig(epochs=3, batch_size=4, num_workers=0, seed=3, device="cpu", eval_every=0)
N = 16
"""Toy images: at 4 x 2, two optimizer steps per epoch (steps 0-5 in 3 epochs)."""


# -- the per-rank share of a step ------------------------------------------------------------------------------------

def test_rank_split_keeps_the_step_and_the_gradient_scale():
    assert rank_split(16, 2, "sum", 1) == RankSplit(16, 2, 1, 1.0)
    assert rank_split(16, 2, "mean", 1) == RankSplit(16, 2, 2, 1.0)
    # 16 x 2 on 2 GPUs: each rank one micro-batch of 16; the official summed accumulation needs x2 after DDP's mean
    assert rank_split(16, 2, "sum", 2) == RankSplit(16, 1, 1, 2.0)
    assert rank_split(16, 2, "mean", 2) == RankSplit(16, 1, 1, 1.0)
    # 16 x 2 on 8 GPUs: every micro-batch split over 4 ranks, 4 images each
    assert rank_split(16, 2, "sum", 8) == RankSplit(4, 1, 1, 2.0)
    assert rank_split(16, 4, "mean", 2) == RankSplit(16, 2, 2, 1.0)
    with pytest.raises(ValueError, match=r"3 devices cannot share .*accumulate_steps=2 .*batch_size=16"):
        rank_split(16, 2, "sum", 3)
    with pytest.raises(ValueError, match="devices must divide"):
        rank_split(6, 1, "mean", 4)


def _loader_batches(n, batch_size, generator_seed, sampler=None):
    g = torch.Generator().manual_seed(generator_seed)
    if sampler is None:
        loader = DataLoader(list(range(n)), batch_size=batch_size, shuffle=True, drop_last=True, generator=g)
    else:
        loader = DataLoader(list(range(n)), batch_sampler=sampler(g), generator=g)
    return [b.tolist() for b in loader]


def test_one_rank_yields_the_batches_of_a_shuffled_loader():
    """Single-device results stay what they were: the same micro-batches as DataLoader(shuffle=True)."""
    for n, b, a in [(23, 4, 1), (23, 4, 2), (40, 3, 3)]:
        split = rank_split(b, a, "mean", 1)
        ours = _loader_batches(n, b, 5, lambda g: StepBatches(n, b, a, split, World(), g))
        theirs = _loader_batches(n, b, 5)
        steps = (n // b) // a
        assert ours == theirs[:steps * a]


@pytest.mark.parametrize("batch_size,accumulate,devices", [(4, 2, 2), (4, 1, 2), (4, 2, 4), (6, 1, 3)])
def test_ranks_share_each_step_exactly(batch_size, accumulate, devices):
    n = 37
    split = rank_split(batch_size, accumulate, "mean", devices)
    single = _loader_batches(n, batch_size, 1, lambda g: StepBatches(n, batch_size, accumulate,
                                                                     rank_split(batch_size, accumulate, "mean", 1),
                                                                     World(), g))
    per_rank = [_loader_batches(n, batch_size, 1, lambda g, r=r: StepBatches(n, batch_size, accumulate, split,
                                                                           World(r, devices), g))
                for r in range(devices)]
    steps = (n // batch_size) // accumulate
    assert all(len(batches) == steps * split.accumulate for batches in per_rank)
    assert all(len(b) == split.micro_batch for batches in per_rank for b in batches)
    seen = []
    for step in range(steps):
        theirs = sorted(i for b in single[step * accumulate:(step + 1) * accumulate] for i in b)
        ours = [i for r in range(devices) for b in per_rank[r][step * split.accumulate:(step + 1) * split.accumulate]
                for i in b]
        assert sorted(ours) == theirs  # the step's images, each once, no padding
        seen += ours
    assert len(seen) == len(set(seen))


# -- real trainings in 2 gloo processes ------------------------------------------------------------------------------

def _train_rank(out_dir: Path, cfg: TrainConfig, optim: OptimConfig, toy: dict, log_writes: bool = False) -> None:
    """One rank: train a toy method; rank 0 saves its weights; with ``log_writes`` each rank lists the files it
    wrote (``atomic_path`` is how the trainer writes)."""
    where = world()
    if log_writes:
        written = []
        original = trainer.atomic_path

        def logged(path, *args, **kwargs):
            written.append(Path(path).name)
            return original(path, *args, **kwargs)

        trainer.atomic_path = logged
    method = ToyMethod(**toy)
    fit(method, ToySet(N), None, cfg, optim, out_dir, progress=False)
    if where.main:
        torch.save(method.state_dict(), out_dir / "weights.pt")
    if log_writes:
        (out_dir / f"writes-rank{where.rank}.txt").write_text("\n".join(written))


def _single(tmp_path, name, cfg, optim):
    method = ToyMethod()
    fit(method, ToySet(N), None, cfg, optim, tmp_path / name, progress=False)
    return method.state_dict()


def _two(tmp_path, name, cfg, optim, **toy):
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    launch(functools.partial(_train_rank, out, replace(cfg, devices=2), optim, toy, log_writes=True), 2, backend="gloo",
           progress=False)
    return torch.load(out / "weights.pt", weights_only=True)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=1e-5), key


def test_two_processes_reach_the_single_process_weights_and_only_rank0_writes(tmp_path):
    # 4 x 2 (sum, the official accumulation): each rank runs one of the step's two micro-batches
    optim = OptimConfig(lr=0.05, accumulate_steps=2, accumulate_mode="sum")
    _assert_same(_two(tmp_path, "two", CFG, optim), _single(tmp_path, "one", CFG, optim))
    assert sorted((tmp_path / "two" / "writes-rank0.txt").read_text().split()) == (
        ["checkpoint.pt"] * 3 + ["history.csv"] * 3)
    assert (tmp_path / "two" / "writes-rank1.txt").read_text() == ""
    two, one = (pd.read_csv(tmp_path / d / "history.csv") for d in ("two", "one"))
    assert list(two.columns) == list(one.columns) and len(two) == 3
    assert np.allclose(two["main/cls"], one["main/cls"], atol=1e-6)  # the mean over every rank's micro-batches
    # 4 x 1 (mean): each forward pass split, 2 images per rank
    optim = OptimConfig(lr=0.05)
    _assert_same(_two(tmp_path, "split", CFG, optim), _single(tmp_path, "one-split", CFG, optim))


def test_two_processes_resume_after_a_failure_on_one_rank(tmp_path):
    optim = OptimConfig(lr=0.05, accumulate_steps=2, accumulate_mode="sum")
    straight = _single(tmp_path, "straight", CFG, optim)  # = 2 uninterrupted processes (the test above)
    # rank 1 fails in epoch 2: torchrun stops both ranks, the error comes back, epoch 1's checkpoint stays
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        _two(tmp_path, "b", CFG, optim, fail_at=3, fail_rank=1)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    _assert_same(_two(tmp_path, "b", CFG, optim), straight)


def test_a_nan_on_one_rank_stops_both_naming_the_term_step_and_rank(tmp_path):
    optim = OptimConfig(lr=0.05, accumulate_steps=2, accumulate_mode="sum")
    with pytest.raises(FloatingPointError,
                       match=r"loss term main/cls is nan at step 3 \(epoch 2\) on rank 1 of 2; .*checkpoint\.pt"):
        _two(tmp_path, "n", CFG, optim, nan_at=3, nan_rank=1)
    assert torch.load(tmp_path / "n" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_training_stage_with_two_devices_is_the_same_stage(tmp_path, tiny_synthetic, capsys):
    """The notebook path: ``devices=2`` launches torchrun, its output is relayed, the stage key is that of one
    device, and the caller gets the finished stage back."""
    from wsss_lib.stages.training import train_stage

    ctx, cfg = test_training_stage.stage_parts(tmp_path, tiny_synthetic)
    two = train_stage(ctx, replace(cfg, train=replace(cfg.train, devices=2)), progress=True)
    shown = capsys.readouterr().out
    assert f"unit_stage {two.stage.path.name}: torchrun, 2 processes (gloo)" in shown
    assert f"{two.stage.path.name} epoch 1/1: main/cls=" in shown  # rank 0's epoch line, relayed
    assert two.stage.done and list(two.history["epoch"]) == [1]
    assert two.stage.path == ctx.store.stage("unit_stage", cfg.hashed(), name="tiny").path
    again = train_stage(ctx, cfg, progress=False)  # one device now: the same stage, reused
    assert all(torch.equal(a, b) for a, b in zip(again.method.state_dict().values(), two.method.state_dict().values()))


class NoiseSet(torch.utils.data.Dataset):
    """Random 32-px images with 3 classes (a multi-phase method's wiring, not its quality)."""

    def __init__(self, n=8):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.labels = (torch.rand(n, 3, generator=g) > 0.5).float()
        self.labels[:, 0] = 1.0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"id": str(i), "image": self.images[i], "mask": torch.zeros(32, 32, dtype=torch.long),
                "label": self.labels[i]}


def _multi_phase_rank(out_dir: Path) -> None:
    """P-NOC (two phases, the OC updated every 2nd step: a phase skipped under DDP, parameters unused per phase,
    requires_grad toggled in the forward pass) and ACR (each phase steps after its own backward pass)."""
    from wsss_lib.methods.registry import build_method, method_config
    from wsss_lib.models.backbone import BackboneConfig
    from wsss_lib.models.cam import create_cam_classifier

    backbone = BackboneConfig(name="tf_efficientnet_lite0", weights="none")
    cfg = TrainConfig(epochs=1, batch_size=2, num_workers=0, device="cpu", eval_every=0, devices=world().size)
    optim = OptimConfig(lr=0.01, accumulate_steps=2, accumulate_mode="sum")
    torch.manual_seed(0)
    pnoc = build_method("pnoc", method_config("pnoc", {"adversarial": {"update_interval": 2}}), backbone, 3,
                        ordinary_state=create_cam_classifier(backbone, 3).state_dict())
    acr = build_method("acr", method_config("acr", {"dim": 32, "low_dims": [16, 16], "decoder_width": 8,
                                                    "min_kept_pixels": 1}), backbone, 3)
    for name, method in (("pnoc", pnoc), ("acr", acr)):
        before = {k: v.clone() for k, v in method.state_dict().items()}
        result = fit(method, NoiseSet(), None, cfg, optim, out_dir / name, progress=False)
        if world().main:
            changed = sorted({k.split(".")[0] for k, v in method.state_dict().items()
                              if v.is_floating_point() and not torch.equal(v, before[k])})
            finite = all(torch.isfinite(v).all() for v in method.state_dict().values() if v.is_floating_point())
            (out_dir / f"{name}.txt").write_text(f"{changed} {finite} {len(result.history)}")


def test_multi_phase_methods_train_under_ddp(tmp_path):
    launch(functools.partial(_multi_phase_rank, tmp_path), 2, backend="gloo", progress=False)
    assert (tmp_path / "pnoc.txt").read_text() == "['generator', 'ordinary'] True 1"
    assert (tmp_path / "acr.txt").read_text() == "['classifier', 'reconstructor'] True 1"


def _lite0_rank(out_dir: Path, devices: int) -> None:
    """Lite0 with trainable batch norm, 4 x 2 (sum) for 2 steps, one intra-op thread per process (the float
    summation order depends on the thread count: 1 and 2 threads differ by themselves)."""
    from wsss_lib.bench.ddp import RandomImages
    from wsss_lib.methods.registry import build_method, method_config
    from wsss_lib.models.backbone import BackboneConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        method = build_method("cam", method_config("cam"), BackboneConfig(weights="offline-lite0"), 5)
        cfg = TrainConfig(epochs=1, batch_size=4, num_workers=0, device="cpu", eval_every=0, devices=devices)
        fit(method, RandomImages(32, 64, 5), None, cfg, OptimConfig(lr=0.1, accumulate_steps=2), out_dir,
            progress=False, max_steps=2)
        if world().main:
            torch.save(method.state_dict(), out_dir / "weights.pt")
    finally:
        torch.set_num_threads(threads)


def test_batch_norm_network_on_two_processes_equals_one_bitwise(tmp_path):
    """Each rank runs whole micro-batches of the step, so trainable BN sees the images it sees on one process:
    the weights are equal bit for bit. BN running statistics are rank 0's (DDP broadcasts its buffers), so they
    differ; they are not used in training, only by evaluation."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    _lite0_rank(tmp_path / "one", 1)
    launch(functools.partial(_lite0_rank, tmp_path / "two", 2), 2, backend="gloo", progress=False)
    one, two = (torch.load(tmp_path / d / "weights.pt", weights_only=True) for d in ("one", "two"))
    params = [k for k in one if one[k].is_floating_point() and "running" not in k]
    assert len(params) > 100 and all(torch.equal(one[k], two[k]) for k in params)
    assert any(not torch.equal(one[k], two[k]) for k in one if "running" in k)


def test_a_step_that_cannot_be_shared_trains_on_fewer_devices():
    from wsss_lib.train.distributed import usable_devices

    assert usable_devices(1, 10, "sum", 8) == 5  # C²AM-H's detector, 1 x 10, on 8 GPUs
    assert usable_devices(1, 10, "sum", 4) == 2
    assert usable_devices(16, 2, "sum", 8) == 8 and usable_devices(16, 2, "sum", 3) == 2
    assert usable_devices(3, 1, "mean", 2) == 1 and usable_devices(4, 1, "mean", 1) == 1
