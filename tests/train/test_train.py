"""The shared trainer: schedules, label smoothing, poly SGD, accumulation, exact resume, NaN guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from toys import CFG, OPT, ToyMethod, ToySet

from wsss_lib.train import (
    OptimConfig,
    TrainConfig,
    build_optimizer,
    fit,
    linear_schedule,
    poly_lr_factor,
    smooth_multilabel,
)
from wsss_lib.train.trainer import _nonfinite, _optimizer_tensors


def test_linear_schedule_matches_official_formula():
    # Puzzle alpha: 0 -> 4 over the first half; OC-CSE: 0.3 -> 1 over all steps
    assert [linear_schedule(s, 100, 0.0, 4.0, 0.5) for s in (0, 25, 50, 100)] == [0.0, 2.0, 4.0, 4.0]
    assert [linear_schedule(s, 100, 0.3, 1.0, 1.0) for s in (0, 25, 50, 100)] == pytest.approx([0.3, 0.475, 0.65, 1.0])
    assert linear_schedule(10, 100, 0.0, 1.0, 0.0) == 1.0


def test_poly_and_label_smoothing():
    assert poly_lr_factor(0, 10) == 1.0 and poly_lr_factor(10, 10) == 0.0
    assert poly_lr_factor(5, 10, 0.9) == pytest.approx(0.5 ** 0.9)
    y = torch.tensor([[1.0, 0.0, 1.0]])
    assert smooth_multilabel(y, 0.1)[0].tolist() == pytest.approx([0.95, 0.05, 0.95])
    assert torch.equal(smooth_multilabel(y, 0.0), y)
    with pytest.raises(ValueError):
        smooth_multilabel(y, 1.0)


def test_poly_sgd_groups_and_schedule():
    w, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    groups = [{"params": [w], "lr_mult": 1.0}, {"params": [b], "lr_mult": 20.0, "weight_decay": 0.0}]
    opt = build_optimizer(groups, OptimConfig(lr=0.1), total_steps=4)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 2.0])
    assert opt.param_groups[0]["momentum"] == 0.0  # the official default
    for _ in range(2):
        opt.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(2.0 * 0.5 ** 0.9)
    state = opt.state_dict()
    fresh = build_optimizer([{"params": [w], "lr_mult": 1.0}, {"params": [b], "lr_mult": 20.0, "weight_decay": 0.0}],
                            OptimConfig(lr=0.1), total_steps=4)
    fresh.load_state_dict(state)
    assert fresh.global_step == 2 and fresh.param_groups[1]["lr"] == pytest.approx(opt.param_groups[1]["lr"])




def test_resume_reaches_the_same_weights(tmp_path):
    straight = ToyMethod()
    fit(straight, ToySet(), None, CFG, OPT, tmp_path / "a", progress=False)
    interrupted = ToyMethod(fail_at=4)  # step 4 is in epoch 2 (3 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, ToySet(), None, CFG, OPT, tmp_path / "b", progress=False)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed = ToyMethod()
    result = fit(resumed, ToySet(), None, CFG, OPT, tmp_path / "b", resume=True, progress=False)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert result.history["epoch"].tolist() == [1, 2, 3]
    # the wall time counts every epoch, those of the interrupted session included
    assert (result.history["seconds"] > 0).all() and result.seconds == pytest.approx(result.history["seconds"].sum())
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "b").iterdir())


def test_same_seed_same_result_and_different_seed_differs(tmp_path):
    one, two, other = ToyMethod(), ToyMethod(), ToyMethod()
    fit(one, ToySet(), None, CFG, OPT, tmp_path / "1", progress=False)
    fit(two, ToySet(), None, CFG, OPT, tmp_path / "2", progress=False)
    fit(other, ToySet(), None, TrainConfig(**{**CFG.__dict__, "seed": 4}), OPT, tmp_path / "3", progress=False)
    assert torch.equal(one.net.conv.weight, two.net.conv.weight)
    assert not torch.equal(one.net.conv.weight, other.net.conv.weight)


def test_nan_guard_names_step_and_term_and_keeps_checkpoint(tmp_path):
    with pytest.raises(FloatingPointError, match=r"loss term main/cls is nan at step 4 \(epoch 2\).*checkpoint\.pt"):
        fit(ToyMethod(nan_at=4), ToySet(), None, CFG, OPT, tmp_path / "n", progress=False)
    assert torch.load(tmp_path / "n" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_nonfinite_check_names_each_bad_tensor_in_order_and_skips_integers():
    named = [("a", torch.zeros(3)), ("b", torch.tensor([1.0, float("nan")])), ("steps", torch.tensor([7])),
             ("c", torch.tensor(float("inf"))), ("d", torch.ones(2, 2))]
    assert _nonfinite(named) == ["b", "c"]
    assert _nonfinite([("n", torch.tensor(1))]) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("algorithm", ["sgd", "adam"])
def test_training_on_cuda_checks_a_state_spread_over_devices(tmp_path, algorithm):
    """On CUDA, Adam keeps each parameter's ``step`` on the CPU beside its moments on the GPU: the end-of-epoch
    check stacked both and failed (the first GPU dry run, notebook 07's detector)."""
    method = ToyMethod()
    fit(method, ToySet(), None, TrainConfig(**{**CFG.__dict__, "device": "cuda"}),
        OptimConfig(algorithm=algorithm, lr=0.01), tmp_path / algorithm, progress=False)
    assert method.net.conv.weight.device.type == "cuda"
    if algorithm == "adam":
        param = torch.zeros(2, device="cuda", requires_grad=True)
        adam = torch.optim.Adam([param])
        param.grad = torch.ones(2, device="cuda")
        adam.step()
        adam.state[param]["step"].fill_(float("nan"))  # the CPU tensor among GPU ones
        assert adam.state[param]["step"].device.type == "cpu"
        assert _nonfinite([("w", param.detach()), *_optimizer_tensors("main", adam, {})]) == [
            "optimizer main: step of a parameter"]


def test_accumulation_mean_equals_large_batch_and_sum_doubles_gradient(tmp_path):
    cfg_big = TrainConfig(epochs=1, batch_size=4, num_workers=0, seed=0, device="cpu", eval_every=0)
    cfg_small = TrainConfig(epochs=1, batch_size=2, num_workers=0, seed=0, device="cpu", eval_every=0)
    big, mean, summed, big2 = ToyMethod(), ToyMethod(), ToyMethod(), ToyMethod()
    fit(big, ToySet(4, noise=False), None, cfg_big, OptimConfig(lr=0.05), tmp_path / "big", progress=False)
    fit(mean, ToySet(4, noise=False), None, cfg_small, OptimConfig(lr=0.05, accumulate_steps=2, accumulate_mode="mean"),
        tmp_path / "mean", progress=False)
    fit(summed, ToySet(4, noise=False), None, cfg_small, OptimConfig(lr=0.05, accumulate_steps=2, accumulate_mode="sum"),
        tmp_path / "sum", progress=False)
    fit(big2, ToySet(4, noise=False), None, cfg_big, OptimConfig(lr=0.1), tmp_path / "big2", progress=False)
    assert torch.allclose(big.net.conv.weight, mean.net.conv.weight, atol=1e-6)
    assert torch.allclose(summed.net.conv.weight, big2.net.conv.weight, atol=1e-6)  # sum = twice the lr
    assert not torch.allclose(big.net.conv.weight, summed.net.conv.weight, atol=1e-6)


def test_history_has_losses_and_lr(tmp_path):
    result = fit(ToyMethod(), ToySet(), None, CFG, OPT, tmp_path / "h", progress=False)
    history = result.history
    assert list(history.columns[:3]) == ["epoch", "main/cls", "lr"] and len(history) == 3
    assert np.isclose(history["lr"].iloc[-1], 0.0)


def test_max_steps_overrides_epochs_and_spans_the_schedule(tmp_path):
    """DeepLab-v2's recipe counts iterations: 5 steps at 3 steps per epoch = 2 epochs, the second cut after 2
    steps, and the poly schedule reaches 0 exactly at step 5."""
    method = ToyMethod()
    result = fit(method, ToySet(), None, CFG, OPT, tmp_path / "m", progress=False, max_steps=5)
    assert result.history["epoch"].tolist() == [1, 2]
    state = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)
    assert state["optimizers"]["main"]["global_step"] == 5
    assert result.history["lr"].iloc[-1] == pytest.approx(0.0)
    # resuming a finished run does nothing more
    again = fit(ToyMethod(), ToySet(), None, CFG, OPT, tmp_path / "m", progress=False, max_steps=5)
    assert again.history["epoch"].tolist() == [1, 2]


class WorkerCounting(ToyMethod):
    """Counts the live DataLoader worker processes at every step."""

    def __init__(self):
        super().__init__()
        self.workers: list[int] = []

    def losses(self, phase, batch, info, cache):
        import multiprocessing

        self.workers.append(len(multiprocessing.active_children()))
        return super().losses(phase, batch, info, cache)


def test_each_epoch_stops_its_loader_workers(tmp_path, monkeypatch):
    """In a notebook the progress bar (tqdm.notebook) holds the epoch's iterator in a reference cycle: without an
    explicit shutdown every finished epoch left its workers alive until the garbage collector ran, and the join
    stalled a later step. A bar with such a cycle, and the collector off, must still leave 2 workers per epoch."""
    import gc

    import wsss_lib.train.trainer as trainer

    class CyclicBar(trainer.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.me = self  # what tqdm.notebook's display closure amounts to

    monkeypatch.setattr(trainer, "tqdm", CyclicBar)
    method = WorkerCounting()
    gc.disable()
    try:
        fit(method, ToySet(), None, TrainConfig(**{**CFG.__dict__, "num_workers": 2}), OPT, tmp_path, progress=True)
    finally:
        gc.enable()
        gc.collect()
    assert len(method.workers) == 9 and set(method.workers) == {2}, method.workers


def test_resuming_a_history_without_epoch_times_leaves_the_total_unknown(tmp_path):
    """A history written before the ``seconds`` column existed: the total is NaN (untimed), never a partial sum."""
    with pytest.raises(KeyboardInterrupt):
        fit(ToyMethod(fail_at=4), ToySet(), None, CFG, OPT, tmp_path / "old", progress=False)
    history = pd.read_csv(tmp_path / "old" / "history.csv")
    history.drop(columns=["seconds"]).to_csv(tmp_path / "old" / "history.csv", index=False)
    result = fit(ToyMethod(), ToySet(), None, CFG, OPT, tmp_path / "old", resume=True, progress=False)
    assert result.history["seconds"].notna().tolist() == [False, True, True] and np.isnan(result.seconds)
