"""Every backbone a profile names is built at the profile's output stride with random weights and runs one forward
pass: a typo in a timm name, or a model timm cannot dilate, fails here, not after hours on a GPU.

Backbones are collected from every stage config a profile's notebooks build (each ``backbone`` of a resolved stage
dict, its name and output stride: the profile's values over the config's defaults, over the notebook's where the
profile gives no dict), from every variant of a ``<stage>_variants`` parameter (e.g. DeepLab-v2's ResNet-101 in
``segmentation_variants``) and from the overrides the profiles' comments document (``--set X.backbone.name=Y``)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from wsss_lib.config import available_profiles, load_profile, profile_path, to_dict
from wsss_lib.models.backbone import BackboneConfig, create_backbone


def _named_backbones() -> dict[tuple[str, int], list[str]]:
    """``{(timm name, output stride): [where it is named]}`` over every profile."""
    from wsss_lib.paths import repo_root
    from wsss_lib.runner.dry_run import leaves
    from wsss_lib.runner.notebooks import notebook_defaults
    from wsss_lib.stages.parameters import PARAMETER_TYPES, VARIANTS, build_parameter, build_variants

    found: dict[tuple[str, int], list[str]] = {}
    for profile in available_profiles():
        data = load_profile(profile)
        for stem, block in data["notebooks"].items():
            params = {**notebook_defaults(repo_root() / "notebooks" / f"{stem}.ipynb"), **data["common"], **block}
            configs = [(name, build_parameter(name, params, stem)) for name in set(params) & set(PARAMETER_TYPES)]
            for name in [k for k in params if k.endswith(VARIANTS) and k.removesuffix(VARIANTS) in PARAMETER_TYPES]:
                configs += [(f"{name}.{label}", cfg) for label, cfg in build_variants(name, params, stem).items()]
            for name, cfg in configs:
                values = dict(leaves(to_dict(cfg), name))
                for path, value in values.items():
                    if path.endswith("backbone.name"):
                        stride = int(values.get(path.replace(".name", ".output_stride"), 16))
                        found.setdefault((str(value), stride), []).append(f"{profile}:{stem}.{path}")
        for name in re.findall(r"--set \S+\.backbone\.name=(\S+)", profile_path(profile).read_text()):
            found.setdefault((name, 16), []).append(f"{profile}: override in a comment")
    return found


NAMED = _named_backbones()


def test_the_paper_backbones_are_among_those_collected():
    names = {name for name, _ in NAMED}
    assert {"resnest269e", "resnet50", "resnet101", "tf_efficientnet_lite0"} <= names, names


@pytest.mark.parametrize("name, stride", sorted(NAMED), ids=[f"{n}-os{s}" for n, s in sorted(NAMED)])
def test_profile_backbone_builds_and_runs_at_its_output_stride(name, stride):
    torch.manual_seed(0)
    backbone = create_backbone(BackboneConfig(name=name, weights="none", output_stride=stride,
                                              out_indices=(0, 1, 2, 3, 4))).eval()
    size = 64
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, size, size))
    last = features[-1]
    assert last.shape[-1] == math.ceil(size / stride) and last.shape[-2] == math.ceil(size / stride), \
        (NAMED[(name, stride)], [tuple(f.shape) for f in features])
    assert all(torch.isfinite(f).all() for f in features)
