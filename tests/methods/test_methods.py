"""Puzzle-CAM, OC-CSE, P-OC and P-NOC: tiling, masks, schedules, which networks each step changes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from wsss_lib.methods import PNOC, POC, AdversarialConfig, PNOCConfig, POCConfig, StepInfo
from wsss_lib.methods.erasing import hard_keep_mask, remove_classes, sample_classes, soft_erasure_mask
from wsss_lib.methods.ordinary import build_ordinary_classifier
from wsss_lib.methods.puzzle import masked_reconstruction_loss, merge, tile
from wsss_lib.methods.registry import build_method, method_config
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.models.cam import create_cam_classifier
from wsss_lib.train import OptimConfig, TrainConfig, build_optimizer, fit, linear_schedule

BACKBONE = BackboneConfig(name="tf_efficientnet_lite0", weights="none")


def test_tile_then_merge_is_identity_and_tile_order():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6)
    tiles = tile(x)
    assert tiles.shape == (8, 1, 2, 3)
    assert torch.equal(tiles[0], x[0, :, :2, :3]) and torch.equal(tiles[2 + 1], x[1, :, :2, 3:])  # TL of 0, TR of 1
    assert torch.equal(tiles[6], x[0, :, 2:, 3:])  # BR of image 0
    assert torch.equal(merge(tiles, 2), x)
    with pytest.raises(ValueError, match="even image size"):
        tile(torch.zeros(1, 1, 3, 4))


def test_masked_reconstruction_loss_by_hand():
    cams = torch.zeros(1, 2, 2, 2)
    merged = torch.zeros(1, 2, 2, 2)
    merged[0, 0] = 1.0  # class 0 differs by 1 everywhere
    merged[0, 1] = 3.0  # class 1 differs by 3 everywhere but is absent
    labels = torch.tensor([[1.0, 0.0]])
    assert masked_reconstruction_loss(cams, merged, labels).item() == pytest.approx(4 * 1.0 / 8)  # mean over B*C*H*W
    with pytest.raises(ValueError, match="divisible"):
        masked_reconstruction_loss(cams, torch.zeros(1, 2, 3, 3), labels)


def test_soft_mask_global_versus_per_image_and_relu():
    maps = torch.tensor([[[[1.0, -2.0]]], [[[4.0, 2.0]]]])  # (B=2, 1, 1, 2), no upsampling with size (1, 2)
    global_mask = soft_erasure_mask(maps, (1, 2), per_image=False, eps=0.0)
    per_image = soft_erasure_mask(maps, (1, 2), per_image=True, eps=0.0)
    assert global_mask.flatten().tolist() == pytest.approx([0.25, 0.0, 1.0, 0.5])
    assert per_image.flatten().tolist() == pytest.approx([1.0, 0.0, 1.0, 0.5])


def test_hard_mask_keeps_pixels_at_or_below_delta_per_image():
    maps = torch.tensor([[[[1.0, 0.2, 0.1, -1.0]]], [[[10.0, 3.0, 2.0, 0.0]]]])
    keep = hard_keep_mask(maps, (1, 4), delta=0.2, eps=0.0)
    assert keep.flatten().tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # 0.2 <= 0.2 kept; 3/10 erased
    assert not keep.requires_grad


def test_sample_and_remove_classes():
    labels = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    picks = torch.stack([sample_classes(labels, g) for _ in range(200)])
    assert set(picks[:, 0].tolist()) == {1} and set(picks[:, 1].tolist()) == {0, 2}
    assert 60 < (picks[:, 1] == 0).sum() < 140  # uniform over the present classes
    assert remove_classes(labels, torch.tensor([1, 2])).tolist() == [[0, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="at least one class"):
        sample_classes(torch.zeros(1, 3))


@pytest.mark.parametrize("fraction,start,end,expected", [
    (0.5, 0.0, 4.0, [0.0, 2.0, 4.0, 4.0]),   # Puzzle lambda_re
    (1.0, 0.3, 1.0, [0.3, 0.475, 0.65, 1.0]),  # OC-CSE lambda_cse
    (1.0, 0.0, 1.0, [0.0, 0.25, 0.5, 1.0]),  # P-NOC lambda_noc
])
def test_schedules_at_0_25_50_100_percent(fraction, start, end, expected):
    assert [linear_schedule(s, 200, start, end, fraction) for s in (0, 50, 100, 200)] == pytest.approx(expected)


def test_method_configs_default_to_the_paper():
    cfg = method_config("pnoc")
    assert (cfg.reconstruction.weight_end, cfg.reconstruction.schedule_fraction) == (4.0, 0.5)
    assert (cfg.erasing.weight_start, cfg.erasing.weight_end, cfg.erasing.mask_per_image) == (0.3, 1.0, False)
    assert (cfg.adversarial.threshold, cfg.adversarial.weight_end, cfg.adversarial.ordinary_gets_cse_gradient) == (0.2, 1.0, True)
    with pytest.raises(KeyError, match="did you mean 'threshold'"):
        method_config("pnoc", {"adversarial": {"treshold": 0.3}})
    with pytest.raises(ValueError, match="needs ordinary_state"):
        build_method("poc", method_config("poc"), BACKBONE, 3)


def _batch(n=2, size=64, classes=3):
    torch.manual_seed(0)
    labels = torch.zeros(n, classes)
    labels[torch.arange(n), torch.arange(n) % classes] = 1.0
    return {"image": torch.randn(n, 3, size, size), "label": labels}


def _ordinary(classes=3):
    torch.manual_seed(1)
    return build_ordinary_classifier(BACKBONE, classes, create_cam_classifier(BACKBONE, classes).state_dict())


def _one_step(method, batch, steps=("generator",)):
    """Run one trainer-like step: all phases back-propagate, then each phase's optimizer steps."""
    optimizers = {p: build_optimizer(method.param_groups(p, 0.1, 0.0), OptimConfig(lr=0.1), 10) for p in method.phases}
    info = StepInfo(step=5, total_steps=10, epoch=0)
    method.set_train_mode()
    cache: dict = {}
    for phase in method.phases:
        terms = method.losses(phase, batch, info, cache)
        if terms:
            sum(terms.values()).backward()
    grads = {n: p.grad.clone() for n, p in method.ordinary.named_parameters() if p.grad is not None}
    for phase in method.phases:
        if method.should_step(phase, info):
            optimizers[phase].step()
    return grads, cache


def _changed(before, after):
    return any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))


def test_poc_step_changes_generator_not_ordinary():
    method = POC(create_cam_classifier(BACKBONE, 3), _ordinary(), POCConfig())
    gen, oc = copy.deepcopy(method.generator), copy.deepcopy(method.ordinary)
    grads, _ = _one_step(method, _batch())
    assert _changed(gen, method.generator) and not _changed(oc, method.ordinary) and grads == {}


def test_pnoc_step_changes_both_networks():
    method = PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(), PNOCConfig())
    gen, oc = copy.deepcopy(method.generator), copy.deepcopy(method.ordinary)
    _one_step(method, _batch())
    assert _changed(gen, method.generator) and _changed(oc, method.ordinary)
    # frozen batch norm: running statistics of the ordinary classifier never change
    buffers = dict(method.ordinary.named_buffers())
    assert all(torch.equal(v, buffers[k]) for k, v in oc.named_buffers())


def _own_loss_gradient(method, batch, cache):
    """Gradient of lambda_noc * l(OC(x_hard), y) alone, recomputed from the generator's cached maps."""
    oc = copy.deepcopy(method.ordinary)
    oc.zero_grad(set_to_none=True)
    keep = hard_keep_mask(cache["maps"], batch["image"].shape[-2:], method.cfg.adversarial.threshold)
    weight = linear_schedule(5, 10, 0.0, 1.0, 1.0)
    (weight * F.multilabel_soft_margin_loss(oc(batch["image"] * keep).logits, batch["label"])).backward()
    return {n: p.grad for n, p in oc.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("switch", [False, True])
def test_gradient_switch(switch):
    method = PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(),
                  PNOCConfig(adversarial=AdversarialConfig(ordinary_gets_cse_gradient=switch)))
    batch = _batch()
    reference = copy.deepcopy(method)
    grads, cache = _one_step(method, batch)
    own = _own_loss_gradient(reference, batch, cache)
    same = all(torch.allclose(grads[n], own[n], atol=1e-6) for n in own)
    assert set(grads) == set(own)
    assert same is (not switch)  # switch off: exactly its own loss; on (official): plus the cooperative CSE term


def test_update_interval_skips_ordinary_steps():
    method = PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(), PNOCConfig(adversarial=AdversarialConfig(update_interval=2)))
    assert method.should_step("ordinary", StepInfo(4, 10, 0)) and not method.should_step("ordinary", StepInfo(5, 10, 0))
    assert method.losses("ordinary", _batch(), StepInfo(5, 10, 0), {}) == {}


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    from wsss_lib.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("syn")
    generate(SyntheticConfig(image_size=128, n_train=16, n_train_aug_extra=0, n_val=2), root, workers=1, progress=False)
    return root


STATIONARY = {"reconstruction": {"schedule_fraction": 0.0}, "erasing": {"schedule_fraction": 0.0},
              "adversarial": {"schedule_fraction": 0.0}}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cam", "puzzle", "occse", "poc", "pnoc"])
def test_short_training_lowers_the_loss(name, tiny_benchmark, tmp_path):
    """Every loss weight held at its final value (a fixed objective): the generator's loss must fall."""
    from wsss_lib.data import VOCSegmentation
    from wsss_lib.data.transforms import AugmentConfig, build_train_transform

    torch.manual_seed(0)
    params = {k: v for k, v in STATIONARY.items() if k in method_config(name).__dataclass_fields__}
    extra = {} if name in ("cam", "puzzle") else {"ordinary_state": create_cam_classifier(BACKBONE, 13).state_dict()}
    method = build_method(name, method_config(name, params), BackboneConfig(weights="offline-lite0"), 13, **extra)
    augment = AugmentConfig(crop_size=128, resize_mode="none", color_jitter=None, hflip=False)
    dataset = VOCSegmentation(tiny_benchmark, "train", transform=build_train_transform(augment, *method.normalization),
                              progress=False)
    result = fit(method, dataset, None, TrainConfig(epochs=4, batch_size=8, num_workers=0, device="cpu", eval_every=0),
                 OptimConfig(lr=0.01), tmp_path, progress=False)
    phase = method.phases[0]
    total = result.history[[c for c in result.history.columns if c.startswith(f"{phase}/")]].sum(axis=1)
    assert total.iloc[-1] < total.iloc[0], total.tolist()


def test_pnoc_ordinary_lr_multiplier_scales_only_the_ordinary_groups():
    base = PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(), PNOCConfig())
    slow = PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(),
                PNOCConfig(adversarial=AdversarialConfig(lr_multiplier=0.1)))
    for phase, factor in (("generator", 1.0), ("ordinary", 0.1)):
        a, b = base.param_groups(phase, 0.1, 1e-4), slow.param_groups(phase, 0.1, 1e-4)
        assert [g["lr_mult"] * factor for g in a] == pytest.approx([g["lr_mult"] for g in b])
        assert [g["lr"] * factor for g in a] == pytest.approx([g["lr"] for g in b])
    with pytest.raises(ValueError, match="lr_multiplier"):
        PNOC(create_cam_classifier(BACKBONE, 3), _ordinary(), PNOCConfig(adversarial=AdversarialConfig(lr_multiplier=0)))


def test_every_method_is_in_the_one_registry_and_builds_from_its_default_config():
    from wsss_lib.methods.base import Method
    from wsss_lib.methods.registry import available_methods, method_family

    names = available_methods()
    assert set(available_methods("classifier")) == {"cam", "puzzle", "occse", "poc", "pnoc", "acr"}
    assert {"c2am", "saliency_detector", "affinity", "segmentation", "amn"} <= set(names)
    backbone = BackboneConfig(weights="offline-lite0")
    for name in names:
        extra = {"untrained_ordinary": True} if name in ("occse", "poc", "pnoc") else {}
        built = build_method(name, method_config(name), backbone, 3, **extra)
        assert isinstance(built, Method) and method_family(name) in {"classifier", name}, name
    with pytest.raises(KeyError, match="did you mean"):
        method_config("affinity", {"netwrok": {}})
    with pytest.raises(TypeError, match="takes a AMNMethodConfig"):
        build_method("amn", method_config("cam"), backbone, 3)
