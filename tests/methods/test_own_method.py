"""A user's own priors method, added the documented way (``wsss_lib/methods/template.py``, README "Your own
method"): its config, its losses, one registry call; then trained, recorded and tabulated like the paper's methods."""

from __future__ import annotations

import pytest
import torch

from wsss_lib.methods.registry import available_methods, build_method, method_config, register_method
from wsss_lib.methods.template import MaxPoolCAM, MaxPoolCAMConfig, build_maxpool_cam
from wsss_lib.models.backbone import BackboneConfig
from wsss_lib.stages.context import RunContext
from wsss_lib.stages.priors import load_priors_runs, run_priors_grid, runs_table


@pytest.fixture
def registered():
    from wsss_lib.methods import registry

    register_method("maxpool_cam", "classifier", MaxPoolCAMConfig, build_maxpool_cam)
    yield
    registry._REGISTERED.pop("maxpool_cam")


def test_the_registry_takes_a_new_method_and_refuses_a_library_name(registered):
    assert "maxpool_cam" in available_methods("classifier")
    with pytest.raises(KeyError, match="unknown MaxPoolCAMConfig field.*'max_wieght'.*did you mean 'max_weight'"):
        method_config("maxpool_cam", {"max_wieght": 1.0})
    with pytest.raises(ValueError, match="one of the library's"):
        register_method("puzzle", "classifier", MaxPoolCAMConfig, build_maxpool_cam)
    with pytest.raises(ValueError, match="unknown method family 'priors'"):
        register_method("mine", "priors", MaxPoolCAMConfig, build_maxpool_cam)


def test_the_template_method_states_its_terms(registered):
    torch.manual_seed(0)
    method = build_method("maxpool_cam", method_config("maxpool_cam", {"max_weight": 2.0}),
                          BackboneConfig(name="resnet18", weights="none", output_stride=16), 3)
    assert isinstance(method, MaxPoolCAM)
    batch = {"image": torch.randn(2, 3, 64, 64), "label": torch.tensor([[1.0, 0, 0], [0, 1, 1]])}
    terms = method.losses("main", batch, None, {})
    assert set(terms) == {"cls", "gmp"}
    half = build_method("maxpool_cam", method_config("maxpool_cam", {"max_weight": 1.0}),
                        BackboneConfig(name="resnet18", weights="none", output_stride=16), 3)
    half.load_state_dict(method.state_dict())
    assert torch.allclose(terms["gmp"], 2 * half.losses("main", batch, None, {})["gmp"])  # λ weighs the GMP term


@pytest.mark.slow
def test_a_new_method_trains_through_run_priors_and_enters_the_tables(registered, tmp_path, tiny_synthetic):
    from conftest import tiny_configs

    ctx = RunContext.create("unit", str(tmp_path / "work"), str(tmp_path / "reports"))
    cfg = tiny_configs(tiny_synthetic)
    runs = run_priors_grid(ctx, cfg.classifier, "maxpool_cam", seeds=[0], tta=cfg.tta, notebook="01_own",
                           variants={"GAP+GMP (lambda 1)": {"max_weight": 1.0}}, progress=False)
    assert [r.label for r in runs] == ["maxpool_cam", "GAP+GMP (lambda 1)"]
    assert {"main/cls", "main/gmp"} <= set(runs[0].history.columns)  # each term logged
    assert runs[0].classifier.path != runs[1].classifier.path  # λ is part of the stage key
    loaded = load_priors_runs(ctx)
    assert sorted(r.label for r in loaded) == ["GAP+GMP (lambda 1)", "maxpool_cam"]
    table = runs_table(loaded)
    assert set(table["method"]) == {"maxpool_cam", "GAP+GMP (lambda 1)"}
