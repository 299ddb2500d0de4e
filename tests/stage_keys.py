"""Every stage key the profiles' configurations decide, computed without running anything (the golden list of
``tests/stages/test_stage_keys.py``; ``python tests/stage_keys.py`` prints it as JSON to regenerate
``tests/golden/stage_keys.json``, which is only ever done on purpose, when a change is meant to retrain).

For each profile and notebook, as the notebooks build them: every priors classifier (method x label smoothing x seed x
variant of notebooks 01-05, ACR of notebook 11) with its ordinary classifier bound, its TTA CAM stages of the
evaluation and held-out splits; C²AM and C²AM-H (hints from a priors run's CAMs) per seed; the affinity labels and
affinity network of each conventional-label row of notebook 08 per seed; AMN's IR labels and network; DeepLab on the
ground truth per seed. Stages whose keys depend on a result (the saliency maps after C²AM's border heuristic, the
pseudo-masks after an oracle threshold) are left out: what decides them is listed here upstream.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from wsss_lib.config import config_hash, load_profile, merge
from wsss_lib.paths import repo_root
from wsss_lib.runner.notebooks import discover_notebooks, notebook_defaults, notebook_parameters, profile_notebooks
from wsss_lib.stages.parameters import PARAMETER_TYPES, notebook_configs
from wsss_lib.stages.priors import as_list, method_label, ordinary_config, recipe_note, variant_label

PROFILES = ("smoke", "study", "study-stress", "paper-voc", "paper-coco")
PRIORS = {"01_cam_baseline": "cam", "02_puzzle_cam": "puzzle", "03_oc_cse": "occse", "04_p_oc": "poc",
          "05_p_noc": "pnoc"}


def _key(stage: str, payload: Any, name: str) -> str:
    return f"{name}-{config_hash(stage, payload)}"


def _configs(profile: dict, notebook: Path):
    params = {**notebook_defaults(notebook), **notebook_parameters(profile, notebook, None)}
    stage = {k: v for k, v in params.items() if k in PARAMETER_TYPES and k != "runtime"}
    cfg = notebook_configs(notebook.stem, dataset=params["dataset"], data_root=params.get("data_root", ""),
                           runtime=params.get("runtime") or {}, overrides=params.get("overrides") or {}, **stage)
    return params, cfg


def _classifier(classifier, method: str, params: dict, seed: int, ordinary) -> Any:
    from wsss_lib.stages.priors import method_classifier

    cfg = method_classifier(classifier, method, params, seed=seed)
    if cfg.needs_ordinary:
        cfg = replace(cfg, ordinary_key=config_hash("classifier", ordinary_config(classifier, ordinary).hashed()))
    return cfg


def stage_keys(name: str) -> dict[str, str]:
    """``{description: "<run name>-<key>"}`` of every configuration-decided stage of profile ``name``."""
    profile = load_profile(name)
    notebooks = profile_notebooks(profile, name, discover_notebooks(repo_root() / "notebooks"))
    out: dict[str, str] = {}
    cams: dict[tuple[str, int], tuple[str, Any, Any]] = {}  # priors label, seed -> (classifier key, cfg, tta)

    def cam_key(key: str, cfg, tta, split: str) -> str:
        return _key("cams", {"classifier": key, "split": split, "tta": tta}, f"{cfg.run_name}-{split}")

    for nb in notebooks:
        params, cfg = _configs(profile, nb)
        if nb.stem in PRIORS:
            method = PRIORS[nb.stem]
            if nb.stem == "01_cam_baseline":
                oc = ordinary_config(cfg.classifier, cfg.ordinary)
                out[f"{nb.stem} ordinary classifier"] = _key("classifier", oc.hashed(), oc.run_name)
            variants = [("", {})] + list((params.get("variants") or {}).items())
            for variant, extra in variants:
                for ls in as_list(params.get("label_smoothing", 0.0)):
                    for seed in as_list(params.get("seeds", 0)):
                        run_params = {**merge(cfg.classifier.method_params, dict(extra)), "label_smoothing": float(ls)}
                        c = _classifier(cfg.classifier, method, run_params, seed, cfg.ordinary)
                        note = recipe_note(c.method_config)
                        label = (variant_label(variant, ls) + (f" ({note})" if note else "") if variant
                                 else method_label(method, ls, note))
                        key = config_hash("classifier", c.hashed())
                        out[f"{nb.stem} {label} seed {seed}"] = f"{c.run_name}-{key}"
                        splits = [c.eval_split] + ([params["heldout_split"]] if params.get("heldout_split") else [])
                        for split in splits:
                            out[f"{nb.stem} {label} seed {seed} cams {split}"] = cam_key(key, c, cfg.tta, split)
                        cams[(label, seed)] = (key, c, cfg.tta)
        if nb.stem == "07_saliency_c2amh":
            for seed in as_list(params.get("seeds", 0)):
                for hints in params["hint_sources"]:
                    c2am = replace(cfg.c2am, train=replace(cfg.c2am.train, seed=seed))
                    if hints:
                        if (hints, seed) not in cams:
                            continue
                        key, c, tta = cams[(hints, seed)]
                        hint = cam_key(key, c, tta, c2am.train_split)
                        out[f"{nb.stem} hint cams {hints} seed {seed}"] = hint
                        c2am = replace(c2am, hints_cams=hint.rsplit("-", 1)[1], hints_label=hints)
                    out[f"{nb.stem} c2am {hints or '-'} seed {seed}"] = _key("c2am", c2am.hashed(), c2am.run_name)
        if nb.stem == "08_affinity_random_walk":
            from wsss_lib.stages.refinement import refinement_label

            for seed in as_list(params.get("seeds", 0)):
                for priors, saliency in params["rows"]:
                    if saliency or (priors, seed) not in cams:
                        continue
                    key, c, tta = cams[(priors, seed)]
                    train_split = cfg.affinity.train_split
                    train_cams = cam_key(key, c, tta, train_split).rsplit("-", 1)[1]
                    rule = replace(cfg.labels, mode="conventional")
                    labels = _key("affinity_labels", {"cams": train_cams, "saliency": "", "split": train_split,
                                                      "labels": rule}, f"conventional-{c.run_name}-{train_split}")
                    out[f"{nb.stem} labels {priors} seed {seed}"] = labels
                    label = refinement_label(priors, saliency)
                    aff = replace(cfg.affinity, train=replace(cfg.affinity.train, seed=seed),
                                  labels_key=labels.rsplit("-", 1)[1], labels_label=label)
                    out[f"{nb.stem} affinity {label} seed {seed}"] = _key("affinity", aff.hashed(), aff.run_name)
        if nb.stem == "09_segmentation":
            for seed in as_list(params.get("seeds", 0)):
                seg = replace(cfg.segmentation, train=replace(cfg.segmentation.train, seed=seed), masks_key="",
                              masks_label="ground truth")
                out[f"{nb.stem} ground truth seed {seed}"] = _key("segmentation", seg.hashed(), seg.run_name)
        if nb.stem == "11_methods_class_groups":
            from wsss_lib.stages.comparators import amn_stage_config

            for seed in as_list(params.get("seeds", 0)):
                if "ACR" in params.get("run_methods", []):
                    c = _classifier(cfg.acr, "acr", {**cfg.acr.method_params, "label_smoothing": 0.0}, seed, None)
                    out[f"{nb.stem} ACR seed {seed}"] = _key("classifier", c.hashed(), c.run_name)
                source = params.get("amn_source", "CAM")
                if "AMN" in params.get("run_methods", []) and (source, seed) in cams:
                    key, c, tta = cams[(source, seed)]
                    train_split = cfg.amn.train_split
                    labels = _key("affinity_labels", {"cams": cam_key(key, c, cfg.tta, train_split).rsplit("-", 1)[1],
                                                      "saliency": "", "split": train_split,
                                                      "labels": cfg.amn_labels}, f"conventional-{c.run_name}-{train_split}")
                    out[f"{nb.stem} AMN labels seed {seed}"] = labels

                    class _Stage:  # amn_stage_config reads the label stage's key only
                        key = labels.rsplit("-", 1)[1]
                    amn = amn_stage_config(cfg.amn, _Stage(), source, seed)
                    out[f"{nb.stem} AMN seed {seed}"] = _key("amn", amn.hashed(), amn.run_name)
    return out


def main() -> int:
    json.dump({name: stage_keys(name) for name in PROFILES}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
