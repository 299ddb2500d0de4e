"""The stage keys of every profile are the golden ones: a refactor that changes a key would retrain (and silently
orphan the finished stages of a work directory), so a key changes only when a recipe is meant to change, and then
``tests/golden/stage_keys.json`` is regenerated on purpose (``python tests/stage_keys.py``)."""

import json
from pathlib import Path

import pytest
from stage_keys import PROFILES, stage_keys

GOLDEN = json.loads((Path(__file__).parents[1] / "golden" / "stage_keys.json").read_text())


@pytest.mark.parametrize("profile", PROFILES)
def test_stage_keys_are_the_golden_ones(profile):
    keys = stage_keys(profile)
    changed = {k: (GOLDEN[profile].get(k), v) for k, v in keys.items() if GOLDEN[profile].get(k) != v}
    gone = sorted(set(GOLDEN[profile]) - set(keys))
    assert not changed and not gone, f"{profile}: changed {changed}; no longer built {gone}"


def test_the_golden_list_covers_every_chain_of_the_study():
    study = GOLDEN["study"]
    assert sum(" seed " in k and k.startswith(("01", "02", "03", "04", "05")) and "cams" not in k for k in study) == 24
    assert sum(k.startswith("07_saliency_c2amh c2am") for k in study) == 9  # 3 hint sources x 3 seeds
    assert sum(k.startswith("08_affinity_random_walk affinity") for k in study) == 9  # 3 conventional rows x 3 seeds
    assert sum(k.startswith("11_methods_class_groups AMN seed") for k in study) == 3
