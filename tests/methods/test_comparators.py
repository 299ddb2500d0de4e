"""AMN, RIB and ACR: losses on hand-made cases, label conditioning, the disjoint-class sampler, ACR's alternating
updates, and short trainings whose losses move the right way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsss_lib.inference.amn import amn_tta_cams, normalise_outside_background
from wsss_lib.inference.rib import rib_image_cams
from wsss_lib.inference.tta import TTAConfig
from wsss_lib.methods.acr import ACR, ACRConfig, masked_l1, max_norm, srf_grid
from wsss_lib.methods.amn import AMNLossConfig, AMNMethod, balanced_cross_entropy, smoothed_one_hot
from wsss_lib.methods.base import Method
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.methods.rib import RIBConfig, disjoint_batches, exploded, gndp_pool, rib_loss
from wsss_lib.models.amn import create_amn_network
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.cam import CAMOutput, create_cam_classifier
from wsss_lib.models.reconstructor import ReconstructorConfig, create_reconstructor
from wsss_lib.train.optim import OptimConfig
from wsss_lib.train.trainer import TrainConfig, fit

BACKBONE = BackboneConfig(name="tf_efficientnet_lite0", weights="none")
AMN_BACKBONE = BackboneConfig(name="tf_efficientnet_lite0", weights="none", frozen_bn=True, out_indices=(-1,))


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    from wsss_lib.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("syn")
    generate(SyntheticConfig(image_size=128, n_train=16, n_train_aug_extra=0, n_val=2), root, workers=1, progress=False)
    return root


# --------------------------------------------------------------------------------------------------------- AMN

def test_amn_smoothed_one_hot_puts_one_minus_eps_on_the_class():
    labels = torch.tensor([[[0, 2, 255]]])
    targets = smoothed_one_hot(labels, 3, 0.4)
    assert targets.shape == (1, 3, 1, 3)
    assert targets[0, :, 0, 0].tolist() == pytest.approx([0.6, 0.2, 0.2])
    assert targets[0, :, 0, 1].tolist() == pytest.approx([0.2, 0.2, 0.6])
    assert targets.sum(dim=1).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="channels"):
        smoothed_one_hot(torch.tensor([[[5]]]), 3, 0.4)


def test_amn_balanced_cross_entropy_by_hand():
    # one background pixel (logits 0, 0), two foreground pixels of class 1 ((0, ln 3) and (0, 0)), one ignored pixel
    logits = torch.tensor([[0.0, 0.0, 0.0, 50.0], [0.0, math.log(3.0), 0.0, -50.0]]).view(1, 2, 1, 4)
    labels = torch.tensor([[[0, 1, 1, 255]]])
    targets = smoothed_one_hot(labels, 2, 0.4)  # (0.6, 0.4) and (0.4, 0.6)
    bg = math.log(2.0)
    fg = (-(0.4 * math.log(0.25) + 0.6 * math.log(0.75)) + math.log(2.0)) / 2
    assert float(balanced_cross_entropy(logits, labels, targets)) == pytest.approx((bg + fg) / 2, rel=1e-5)
    unbalanced = (bg + 2 * fg) / 3
    assert float(balanced_cross_entropy(logits, labels, targets, balanced=False)) == pytest.approx(unbalanced, rel=1e-5)
    only_bg = torch.zeros_like(labels)  # no foreground pixel: the background mean alone, not NaN
    value = balanced_cross_entropy(logits[..., :1], only_bg[..., :1], smoothed_one_hot(only_bg[..., :1], 2, 0.4))
    assert float(value) == pytest.approx(bg, rel=1e-5)


def test_amn_label_conditioning_changes_the_output():
    torch.manual_seed(0)
    net = create_amn_network(AMN_BACKBONE, 5).eval()
    x = torch.randn(1, 3, 64, 64)
    a = net(x, torch.tensor([[1.0, 0, 0, 0, 0]]))
    b = net(x, torch.tensor([[0.0, 1, 0, 1, 0]]))
    assert a.shape == (1, 6, 4, 4)
    assert not torch.allclose(a, b)
    assert torch.equal(net(x, torch.tensor([[1.0, 0, 0, 0, 0]])), a)
    with pytest.raises(ValueError, match="labels"):
        net(x, torch.ones(1, 4))


def test_amn_cams_are_normalised_only_outside_the_background():
    probs = torch.tensor([[[0.2, 0.4], [0.6, 1.0]]])
    background = torch.tensor([[True, False], [False, False]])
    out = normalise_outside_background(probs, background)
    assert out[0, 0, 0] == pytest.approx(0.2)  # raw probability kept in the background
    assert out[0, 0, 1] == pytest.approx(0.25, abs=1e-4) and out[0, 1, 1] == pytest.approx(1.0, abs=1e-4)
    torch.manual_seed(0)
    net = create_amn_network(AMN_BACKBONE, 3).eval()
    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    ir = np.zeros((40, 56), np.uint8)
    ir[10:30, 10:40] = 2
    cam, hr_cam = amn_tta_cams(net, image, np.array([0, 1, 0]), ir, (0.5,) * 3, (0.5,) * 3, TTAConfig(scales=(1.0, 0.5)))
    assert cam.shape == (1, 10, 14) and hr_cam.shape == (1, 40, 56)
    assert 0.0 <= float(hr_cam.min()) and float(hr_cam.max()) <= 1.0  # probabilities, min-max outside the background


def test_amn_short_training_lowers_the_loss(tiny_benchmark, tmp_path):
    from wsss_lib.data import VOCSegmentation
    from wsss_lib.data.transforms import AugmentConfig, build_train_transform

    torch.manual_seed(0)
    method = AMNMethod(create_amn_network(BackboneConfig(weights="offline-lite0", frozen_bn=True, out_indices=(-1,)), 13))
    augment = AugmentConfig(crop_size=128, resize_mode="none", color_jitter=None, hflip=False)
    dataset = VOCSegmentation(tiny_benchmark, "train", transform=build_train_transform(augment, *method.normalization),
                              progress=False)  # its masks stand in for the IR labels
    result = fit(method, dataset, None, TrainConfig(epochs=4, batch_size=8, num_workers=0, device="cpu", eval_every=0),
                 OptimConfig(algorithm="adam", lr=1e-4, poly_power=0.0), tmp_path, progress=False)
    loss = result.history["main/pcl"]
    assert loss.iloc[-1] < loss.iloc[0], loss.tolist()


def test_amn_param_groups_give_the_new_layers_the_official_rate():
    method = AMNMethod(create_amn_network(AMN_BACKBONE, 3), AMNLossConfig())
    groups = {g["name"]: g for g in method.param_groups("main", 5e-6, 1e-4)}
    assert groups["new"]["lr"] == pytest.approx(1e-4) and groups["pretrained"]["lr"] == pytest.approx(5e-6)
    new = {id(p) for m in method.network.new_modules() for p in m.parameters()}
    assert {id(p) for p in groups["new"]["params"]} == new


# --------------------------------------------------------------------------------------------------------- RIB

def test_gndp_pools_only_the_non_discriminative_pixels_of_present_classes():
    cams = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]], [[1.0, 1.0, 1.0, 1.0]]]])  # (1, 2, 1, 4)
    present = torch.tensor([[1.0, 0.0]])
    pooled = gndp_pool(cams, present, 0.4)
    assert pooled[0, 0] == pytest.approx(0.25)  # only the pixel at 1/4 of the max is below 0.4: 1 / 4 pixels
    assert pooled[0, 1] == pytest.approx(1.0)  # absent class: global average
    assert gndp_pool(cams, present, 0.4, pooling="gap")[0].tolist() == pytest.approx([2.5, 1.0])
    assert float(rib_loss(pooled, present)) == pytest.approx(-0.25)
    cams.requires_grad_(True)
    gndp_pool(cams, present, 0.4)[0, 0].backward()
    assert cams.grad[0, 0, 0].tolist() == pytest.approx([0.25, 0.0, 0.0, 0.0])  # the mask carries no gradient


def test_disjoint_batches_never_share_a_class_with_the_target():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
    target = np.array([1, 0, 0])
    batches = disjoint_batches(labels, target, 3, 1.0, np.random.default_rng(0), exclude=2)
    for _ in range(20):
        batch = next(batches)
        assert len(batch) == 3 and len(set(batch.tolist())) == 3  # pool of 3 (1, 4, 5; 2 excluded): no repetition
        assert set(batch.tolist()) <= {1, 4, 5}
        assert not (labels[batch] & target).any()
    mixed = disjoint_batches(labels, target, 200, 0.0, np.random.default_rng(0))
    assert {0, 3} & set(next(mixed).tolist())  # p_disjoint = 0: any image may come
    with pytest.raises(ValueError, match="disjoint"):
        next(disjoint_batches(labels, np.array([1, 1, 1]), 2, 1.0, np.random.default_rng(0)))


def test_explosion_rule():
    maps = torch.zeros(1, 10, 10)
    maps[0, :8, :] = 1.0  # 80 % above 0.3 of the max
    assert exploded(maps, 0.3, 0.7)
    maps[0, 5:8, :] = 0.2  # 50 %
    assert not exploded(maps, 0.3, 0.7)


def test_rib_fine_tuning_raises_the_target_logits_and_restores_nothing_it_should_not(tiny_benchmark):
    from wsss_lib.data import VOCSegmentation
    from wsss_lib.data.transforms import AugmentConfig, build_train_transform

    torch.manual_seed(0)
    model = create_cam_classifier(BackboneConfig(weights="offline-lite0"), 13)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    augment = AugmentConfig(crop_size=64, resize_mode="none", color_jitter=None)
    pool = VOCSegmentation(tiny_benchmark, "train", transform=build_train_transform(augment, *model.backbone.normalization),
                           progress=False)
    plain = VOCSegmentation(tiny_benchmark, "train", progress=False)
    image_id = plain.ids[0]
    cfg = RIBConfig(steps=4, lr=1e-4, batch_size=2, stop_threshold=1e9, explode_ratio=1.1, loss_excluded_scales=(),
                    pooling="gap")  # GAP: the raw-logit objective must rise monotonically at a small rate
    cam, hr_cam, info = rib_image_cams(model, state, plain.load_image(image_id), plain.label_of(image_id), pool,
                                       np.asarray(pool.labels), cfg, TTAConfig(scales=(1.0,)),
                                       *model.backbone.normalization, np.random.default_rng(0), exclude=0)
    keys = np.flatnonzero(plain.label_of(image_id))
    assert cam.shape == (len(keys), 32, 32) and hr_cam.shape == (len(keys), 128, 128)
    assert info["steps"] == 4 and info["stop"] == "steps"
    assert info["target_loss"][-1] < info["target_loss"][0], info["target_loss"]  # raw logits pushed up
    stop = RIBConfig(steps=4, lr=1e-3, batch_size=2, stop_threshold=0.0)
    _, _, info = rib_image_cams(model, state, plain.load_image(image_id), plain.label_of(image_id), pool,
                                np.asarray(pool.labels), stop, TTAConfig(scales=(1.0,)), *model.backbone.normalization,
                                np.random.default_rng(0), exclude=0)
    assert info["steps"] == 1 and info["stop"] == "stop threshold"


# --------------------------------------------------------------------------------------------------------- ACR

def test_acr_max_norm_masked_l1_and_srf_grid_by_hand():
    cams = torch.tensor([[[[-1.0, 1.0], [2.0, 3.0]]]])
    assert max_norm(cams)[0, 0].flatten().tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-4)
    recon, image = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert float(masked_l1(recon, image, mask)) == pytest.approx(0.25)
    assert float(masked_l1(recon, image, mask, valid=torch.tensor([False]))) == 0.0
    assert srf_grid(2, (32, 32), 4, 0.0, torch.device("cpu")).sum() == 0
    assert srf_grid(2, (32, 32), 4, 100.0, torch.device("cpu")).mean() == 1
    grid = srf_grid(64, (16, 16), 16, 20.0, torch.device("cpu"))
    assert 0.15 < float(grid.mean()) < 0.25


def _acr(**cfg) -> ACR:
    torch.manual_seed(0)
    recon = ReconstructorConfig(dim=8, low_dims=(4, 4), decoder_width=8)
    return ACR(create_cam_classifier(BACKBONE, 3), create_reconstructor(BACKBONE, 3, recon), ACRConfig(**cfg))


def test_acr_each_phase_moves_only_its_own_network():
    from wsss_lib.methods.base import StepInfo

    method = _acr()
    batch = {"image": torch.randn(2, 3, 64, 64), "label": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    info = StepInfo(step=0, total_steps=10, epoch=0)
    for phase, moved, frozen in (("reconstructor", method.reconstructor, method.classifier),
                                 ("classifier", method.classifier, method.reconstructor)):
        method.zero_grad(set_to_none=True)
        cache: dict = {}
        terms = method.losses(phase, batch, info, cache)
        sum(terms.values()).backward()
        assert all(p.grad is None for p in frozen.parameters()), phase
        if phase == "reconstructor":
            assert method.reconstructor.decoder.out[-1].weight.grad is not None
        assert sum(float(p.grad.abs().sum()) for p in moved.parameters() if p.grad is not None) > 0, phase
        assert all(p.requires_grad for p in method.parameters())  # the freeze is undone
    assert set(method.losses("classifier", batch, info, {})) == {"cls", "adv_t", "adv_nt"}
    groups = method.param_groups("classifier", 0.01, 5e-4)
    assert {g["lr_mult"] for g in groups} <= {1.0, 2.0}  # official: no 10x head
    assert {g["lr_mult"] for g in _acr(new_layers_boost=True).param_groups("classifier", 0.01, 5e-4)} >= {10.0}


def test_acr_adversarial_terms_push_the_reconstruction_error_up():
    """The classifier's adversarial terms are negative L1 errors: their gradient raises the decoder's error."""
    method = _acr()
    batch = {"image": torch.randn(2, 3, 64, 64), "label": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    from wsss_lib.methods.base import StepInfo

    terms = method.losses("classifier", batch, StepInfo(0, 10, 0), {})
    assert float(terms["adv_t"]) <= 0 and float(terms["adv_nt"]) <= 0


class _TwoPhase(Method):
    """Phase b reads phase a's parameter: with ``step_after_each_phase`` it must already see a's update."""

    phases = ("a", "b")

    def __init__(self, sequential: bool):
        super().__init__()
        self.step_after_each_phase = sequential
        self.a = torch.nn.Parameter(torch.zeros(()))
        self.b = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[float] = []

    def param_groups(self, phase, lr, weight_decay):
        return [{"params": [self.a if phase == "a" else self.b], "lr_mult": 1.0}]

    def losses(self, phase, batch, info, cache):
        if phase == "a":
            return {"a": -self.a}
        self.seen.append(float(self.a))
        return {"b": (self.b - self.a.detach()) ** 2}

    def cam_model(self):
        return torch.nn.Identity()

    @property
    def normalization(self):
        return (0.0,) * 3, (1.0,) * 3


def test_step_after_each_phase_lets_the_next_phase_see_the_update(tmp_path):
    data = [{"image": torch.ones(3, 4, 4), "label": torch.ones(2)} for _ in range(4)]
    cfg = TrainConfig(epochs=1, batch_size=2, num_workers=0, device="cpu", eval_every=0)
    for sequential, first_seen in ((True, 1.0), (False, 0.0)):
        method = _TwoPhase(sequential)
        fit(method, data, None, cfg, OptimConfig(lr=1.0, poly_power=0.0, weight_decay=0.0), tmp_path / str(sequential),
            progress=False)
        assert method.seen[0] == pytest.approx(first_seen), (sequential, method.seen)


def test_acr_short_training_lowers_its_losses(tiny_benchmark, tmp_path):
    from wsss_lib.data import VOCSegmentation
    from wsss_lib.data.transforms import AugmentConfig, build_train_transform

    params = {"dim": 16, "low_dims": [8, 8], "decoder_width": 8}
    method = build_method("acr", method_config("acr", params), BackboneConfig(weights="offline-lite0"), 13)
    augment = AugmentConfig(crop_size=96, resize_mode="none", color_jitter=None, hflip=False)
    dataset = VOCSegmentation(tiny_benchmark, "train", transform=build_train_transform(augment, *method.normalization),
                              progress=False)
    torch.manual_seed(0)
    result = fit(method, dataset, None, TrainConfig(epochs=4, batch_size=8, num_workers=0, device="cpu", eval_every=0),
                 OptimConfig(lr=0.01), tmp_path, progress=False)
    history = result.history
    for column in ("classifier/cls", "reconstructor/recon_full"):
        assert history[column].iloc[-1] < history[column].iloc[0], (column, history[column].tolist())
    assert isinstance(method.cam_model()(torch.randn(1, 3, 64, 64)), CAMOutput)


# --------------------------------------------------------------------------------------------------------- reports

def test_threshold_robustness_reads_the_curve():
    import pandas as pd

    from wsss_lib.reporting.comparators_report import threshold_robustness

    t = np.round(np.arange(0.05, 0.55, 0.05), 2)
    flat = pd.DataFrame({"threshold": t, "miou": 0.50 - 0.01 * np.abs(t - 0.25) / 0.05})
    peaked = pd.DataFrame({"threshold": t, "miou": 0.55 - 0.04 * np.abs(t - 0.25) / 0.05})
    table = threshold_robustness({"flat": flat, "peaked": peaked}, margin=0.10, tolerance=5.0).set_index("method")
    assert table.loc["flat", "best threshold"] == pytest.approx(0.25)
    assert table.loc["flat", "largest drop (points)"] == pytest.approx(2.0)
    assert table.loc["peaked", "largest drop (points)"] == pytest.approx(8.0)
    assert table.loc["flat", "range within 5 points"] == pytest.approx(0.45)  # the whole swept range
    assert table.loc["peaked", "range within 5 points"] == pytest.approx(0.10)  # 0.20 .. 0.30


def test_comparator_literature_has_sources_and_plausible_values():
    from wsss_lib.reporting.comparators_report import literature_priors_table
    from wsss_lib.reporting.literature import load_literature

    lit = load_literature("comparators_voc_train_priors")
    assert set(lit["method"]) == {"OC-CSE", "RIB", "ACR", "AMN"}
    assert lit["source"].str.len().min() > 20
    values = lit[["seed_miou", "crf_miou", "mask_miou"]]
    assert ((values.dropna() > 30) & (values.dropna() < 90)).all().all()
    assert lit.set_index("method").loc["ACR", "seed_miou"] == 60.3 and lit.set_index("method").loc["RIB", "mask_miou"] == 70.6
    assert lit.set_index("method").loc["AMN", ["seed_miou", "crf_miou", "mask_miou"]].isna().all()  # not typed from memory
    table = literature_priors_table(["CAM", "P-NOC+LS", "ACR"])
    assert table["method"].tolist() == ["CAM", "P-NOC+LS", "ACR"]
    assert table.set_index("method").loc["P-NOC+LS", "priors mIoU (%)"] == 63.7


def test_comparator_configs_merge_over_the_priors_recipe_and_check_names(tiny_synthetic):
    from conftest import tiny_configs

    cfg = tiny_configs(tiny_synthetic, acr={"optim": {"lr": 0.01}, "augment": {"resize_long_side": [384, 512]}},
                       rib={"steps": 3}, amn={}, amn_labels={"fg_threshold": 0.35})
    assert cfg.acr.optim.lr == 0.01 and cfg.acr.augment.resize_long_side == (384, 512)
    assert cfg.acr.augment.crop_size == cfg.classifier.augment.crop_size == 64  # the rest: the priors recipe
    assert cfg.rib.steps == 3 and cfg.amn.optim.algorithm == "adam" and cfg.amn.backbone.frozen_bn
    assert (cfg.amn_labels.mode, cfg.amn_labels.fg_threshold, cfg.amn_labels.bg_threshold) == ("conventional", 0.35, 0.05)
    with pytest.raises(KeyError, match=r"acr.optim: unknown OptimConfig field\(s\) 'learning_rate'; known fields"):
        tiny_configs(tiny_synthetic, acr={"optim": {"learning_rate": 0.01}})
    with pytest.raises(KeyError, match="stepz"):
        tiny_configs(tiny_synthetic, rib={"stepz": 3})


# --------------------------------------------------------------------------------------------------------- stages

def test_comparator_runs_record_reload_resume_and_join_the_priors_runs(tmp_path, tiny_synthetic):
    """AMN, RIB and ACR through their stages on the tiny benchmark: each records a priors run scored on the same
    split as the CAM run it starts from; a second call recomputes nothing; a missing source run is named."""
    import json

    from conftest import TINY_LITE0, tiny_configs

    from wsss_lib.stages.comparators import run_comparators
    from wsss_lib.stages.context import RunContext
    from wsss_lib.stages.priors import load_priors_runs, run_priors

    ctx = RunContext.create("unit", str(tmp_path / "work"), str(tmp_path / "reports"))
    cfg = tiny_configs(tiny_synthetic, acr={"method_params": {"dim": 8, "low_dims": [4, 4], "decoder_width": 4}},
                       amn={"backbone": TINY_LITE0, "train": {"epochs": 1, "batch_size": 4}, "optim": {"lr": 1e-4},
                            "augment": {"crop_size": 64}, "train_split": "train"},
                       amn_labels={}, rib={"steps": 2, "batch_size": 2, "crop_size": 64, "resize_long_side": [48, 64]})

    def comparators(methods):
        return run_comparators(ctx, cfg.classifier, methods, [0], acr=cfg.acr, amn=cfg.amn, amn_labels=cfg.amn_labels,
                               rib=cfg.rib, tta=cfg.tta, workers=1, notebook="11", progress=False)

    with pytest.raises(FileNotFoundError, match="no priors run 'CAM'"):
        comparators(["AMN"])
    with pytest.raises(KeyError, match="unknown comparator"):
        comparators(["SEAM"])
    cam = run_priors(ctx, cfg.classifier, "cam", tta=cfg.tta, notebook="01", progress=False)
    runs = comparators(["AMN", "RIB", "ACR"])
    assert sorted(r.label for r in runs) == ["ACR", "AMN", "RIB"]
    assert all(r.sweep.num_images == cam.sweep.num_images == 8 for r in runs)
    by_label = {r.label: r for r in runs}
    assert by_label["RIB"].classifier == cam.classifier  # RIB fine-tunes the CAM run's classifier per image
    assert json.loads(by_label["RIB"].cams.file("DONE.json").read_text())["computed"] == 8
    assert {r.label for r in load_priors_runs(ctx)} == {"CAM", "AMN", "RIB", "ACR"}
    again = comparators(["AMN", "RIB", "ACR"])
    assert [r.cams.key for r in again] == [r.cams.key for r in runs]
    assert all(json.loads(r.cams.file("DONE.json").read_text())["finished"] ==
               json.loads(s.cams.file("DONE.json").read_text())["finished"] for r, s in zip(again, runs))  # reused
