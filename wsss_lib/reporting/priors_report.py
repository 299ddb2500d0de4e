"""Notebook 06's tables and figures: the priors methods side by side (Tables 2 and 3, Figures 1, 2 and 6).

Every function takes :class:`wsss_lib.stages.priors.PriorsRun` objects (what notebooks 01-05 recorded) and
averages over the seeds of a method; literature values are separate frames, never merged into ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from wsss_lib.data.stats import group_statistics, property_correlations
from wsss_lib.evaluation import seeds
from wsss_lib.evaluation.pathology import group_error_breakdown
from wsss_lib.formats.cam_io import cam_path, load_cam
from wsss_lib.methods.erasing import class_maps, soft_erasure_mask
from wsss_lib.models.cam import CAMClassifier
from wsss_lib.reporting.figures import colorize_mask
from wsss_lib.reporting.literature import load_literature
from wsss_lib.reporting.writer import Report
from wsss_lib.stages.priors import HELDOUT_MIOU, PriorsRun, paper_label

__all__ = ["group_runs", "epoch_table", "literature_epoch_table", "class_iou_frame", "class_group_tables",
           "mean_sweep_tables", "priors_grid_figure", "erasure_view_figure", "table3_section"]


def group_runs(runs: Sequence[PriorsRun]) -> dict[str, list[PriorsRun]]:
    """Runs by method label, in the order they first appear."""
    out: dict[str, list[PriorsRun]] = {}
    for run in runs:
        out.setdefault(run.label, []).append(run)
    return out


def method_table(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """One row per method: the number of seeds, the mean and SD over seeds of the TTA mIoU (%), and the means of
    the oracle threshold, FPR, FNR and the pathology columns (``PriorsRun.pathology``: missed, spill, confused;
    part and far-body recall and context FP where the data annotates regions)."""
    rows = []
    for label, group in group_runs(runs).items():
        summaries = pd.DataFrame([r.summary() for r in group]).drop(columns=["method", "seed", "images"])
        miou = summaries.pop("TTA mIoU (%)")
        row = {"method": label, "seeds": len(group), "TTA mIoU (%)": miou.mean(),
               "SD": miou.std(ddof=1) if len(group) > 1 else float("nan")}
        if HELDOUT_MIOU in summaries:  # the threshold chosen on the held-out split, beside the oracle's
            heldout = summaries.pop(HELDOUT_MIOU)
            row.update({HELDOUT_MIOU: heldout.mean(),
                        "held-out SD": heldout.std(ddof=1) if len(group) > 1 else float("nan")})
        rows.append({**row, **summaries.mean().to_dict()})
    return pd.DataFrame(rows)


def compute_text(runs: Sequence[PriorsRun]) -> str:
    """One sentence: the training wall time of ``runs`` (their classifier stages' ``DONE.json``, each stage counted
    once), the recorded total, and per method the fastest and the median run. A recorded wall time also counts
    whatever else the machine ran meanwhile, which only adds time: so each method's fastest run times its run
    count, summed, is the best estimate of one uninterrupted pass, and the medians give a high one."""
    stages: dict[Path, PriorsRun] = {}
    for run in runs:
        stages.setdefault(run.classifier.path, run)
    if not stages:
        return "Training time: no runs."
    seconds: dict[str, list[float]] = {}
    for run in stages.values():
        seconds.setdefault(run.label, []).append(run.train_seconds)
    timed = {label: np.array([v for v in values if np.isfinite(v)]) for label, values in seconds.items()}
    untimed = sum(len(values) - len(timed[label]) for label, values in seconds.items())
    if not any(len(v) for v in timed.values()):
        return f"Training time: none of the {len(stages)} classifier stages recorded one."
    parts = ", ".join(f"{label} {v.min() / 60:.1f}-{np.median(v) / 60:.1f}" if len(v) else f"{label} untimed"
                      for label, v in timed.items())
    low = sum(v.min() * len(seconds[label]) for label, v in timed.items() if len(v))
    high = sum(np.median(v) * len(seconds[label]) for label, v in timed.items() if len(v))
    recorded = sum(v.sum() for v in timed.values())
    return (f"Training time (wall, from each classifier stage's DONE.json): {recorded / 3600:.2f} h recorded for "
            f"{len(stages)} classifiers" + (f" ({untimed} untimed)" if untimed else "")
            + ", including whatever else the machine ran meanwhile; minutes per run, fastest-median over seeds: "
            f"{parts}; one uninterrupted pass, each method's fastest (median) run times its runs"
            + (" (methods with no timed run left out)" if any(not len(v) for v in timed.values()) else "")
            + f": {low / 3600:.2f} h ({high / 3600:.2f} h). Not included: the shared ordinary classifier, TTA "
            "inference and sweeps.")


def pathology_group_table(runs: Sequence[PriorsRun], groups: Mapping[str, Mapping[str, Sequence[str]]]
                          ) -> pd.DataFrame:
    """Missed, spill and confused (% of the group's ground-truth foreground, at each run's oracle threshold, mean
    over seeds) per method and class group (``{family: {group: [class names]}}``); see
    :func:`wsss_lib.evaluation.pathology.group_error_breakdown`."""
    frames = []
    for label, group in group_runs(runs).items():
        per_seed = [group_error_breakdown(r.sweep.confusion[r.sweep.best_index].counts, r.sweep.class_names, groups)
                    for r in group]
        mean = pd.concat(per_seed).groupby(["family", "group"], sort=False).mean().reset_index()
        mean.insert(0, "method", label)
        frames.append(mean)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def epoch_table(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """Table 2 layout: quick (no-TTA) mIoU (%) after each epoch and the TTA mIoU, mean over seeds.

    ``seeds`` counts the runs averaged; ``TTA std`` is their standard deviation (0 with one seed).
    """
    rows = []
    for label, group in group_runs(runs).items():
        epochs = pd.concat([r.history.set_index("epoch")["quick_miou"] for r in group], axis=1).mean(axis=1)
        tta = np.array([100 * r.sweep.best.miou for r in group])
        row = {"method": label, "seeds": len(group)}
        row.update({f"E{int(e)}": 100 * v for e, v in epochs.items()})
        row.update({"TTA": tta.mean(), "TTA std": tta.std(ddof=1) if len(tta) > 1 else 0.0})
        rows.append(row)
    return pd.DataFrame(rows)


def literature_epoch_table(backbone: str = "ResNeSt-269") -> pd.DataFrame:
    """The paper's Table 2 for one backbone (literature, VOC 2012 train, mean of 3 runs), in our layout."""
    lit = load_literature("pnoc_table2_epochs")
    lit = lit[lit["backbone"] == backbone]
    wide = lit.pivot_table(index="strategy", columns="epoch", values="miou", sort=False)
    columns = sorted((c for c in wide.columns if c != "TTA"), key=int)
    wide = wide[columns + ["TTA"]].rename(columns={c: f"E{c}" for c in columns})
    wide.insert(0, "source", lit.groupby("strategy", sort=False)["source"].first())
    return wide.reset_index().rename(columns={"strategy": "method"})


def class_iou_frame(runs: Sequence[PriorsRun]) -> pd.DataFrame:
    """Per-class IoU (%) of every method at its own oracle threshold, mean over seeds: ``class, <label>...``."""
    columns = {}
    names = None
    for label, group in group_runs(runs).items():
        ious = np.stack([r.sweep.best.iou for r in group])
        columns[label] = 100 * ious.mean(axis=0)
        names = group[0].sweep.class_names
    frame = pd.DataFrame(columns)
    frame.insert(0, "class", list(names or []))
    return frame


def class_group_tables(per_class: pd.DataFrame, groups, iou: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 3: ``(per-class properties + IoU, class-group table)`` and the correlation rows rho (x100).

    Returns ``(groups_table, correlations)``; the group table's ``Overall`` row gives each method's mIoU
    (background included) and the ``Background`` row its background IoU.
    """
    return group_statistics(per_class, groups, values=iou), property_correlations(per_class, iou)


def mean_sweep_tables(runs: Sequence[PriorsRun]) -> dict[str, pd.DataFrame]:
    """Threshold curves (``threshold, miou, fp, fn``) per method, mean over its seeds (Figure 6)."""
    out = {}
    for label, group in group_runs(runs).items():
        tables = [r.sweep.table.set_index("threshold")[["miou", "fp", "fn"]] for r in group]
        out[label] = (sum(tables) / len(tables)).reset_index()
    return out


def _heat(record, shape: tuple[int, int]) -> np.ndarray:
    return record.hr_cam.max(axis=0) if record.keys.size else np.zeros(shape, np.float32)


def priors_grid_figure(dataset, runs: dict[str, PriorsRun], ids: Sequence[str]) -> plt.Figure:
    """Figures 1/2: image, ground truth, then each method's TTA CAM (max over the image's classes)."""
    columns = ["image", "ground truth", *runs]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.2 * len(columns), 2.2 * len(ids)), squeeze=False)
    for row, image_id in enumerate(ids):
        image, mask = dataset.load_pair(image_id)
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.axis("off")
            if name == "image":
                ax.imshow(image)
            elif name == "ground truth":
                ax.imshow(colorize_mask(mask), interpolation="nearest")
            else:
                ax.imshow(image)
                ax.imshow(_heat(load_cam(cam_path(runs[name].cams.file("npz"), image_id)), mask.shape),
                          cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if row == 0:
                ax.set_title(name, fontsize=8)
        axes[row, 0].text(2, 12, image_id, color="white", fontsize=6, backgroundcolor="black")
    fig.tight_layout()
    return fig


@torch.no_grad()
def erasure_view_figure(dataset, generator: CAMClassifier, ordinary: CAMClassifier,
                        normalization: tuple[Sequence[float], Sequence[float]], ids: Sequence[str],
                        size: int = 256, title: str = "") -> plt.Figure:
    """Figure 2: what the ordinary classifier sees. Per image: the generator's CAM of one present class r
    (the image's first label), the soft erasure mask M_r (normalised per image), the erased image
    x * (1 - M_r), and the ordinary classifier's CAMs on it for the remaining classes, with its probability
    of r before and after erasing (what OC-CSE trains the generator to lower)."""
    generator.eval()
    ordinary.eval()
    device = next(generator.parameters()).device
    mean = torch.tensor(normalization[0], device=device).view(1, 3, 1, 1)
    std = torch.tensor(normalization[1], device=device).view(1, 3, 1, 1)
    columns = ["image", "generator CAM of r", "soft mask M_r", "erased image", "OC CAM (other classes)"]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(2.3 * len(columns), 2.3 * len(ids)), squeeze=False)
    names = dataset.class_names
    for row, image_id in enumerate(ids):
        image = dataset.load_image(image_id)
        x = torch.from_numpy(np.array(image, copy=True)).to(device).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        present = torch.from_numpy(dataset.label_of(image_id)).to(device)
        r = int(torch.nonzero(present)[0])
        cams = generator((x - mean) / std).cams
        mask = soft_erasure_mask(class_maps(cams, torch.tensor([r], device=device)), x.shape[-2:], per_image=True)
        erased = x * (1 - mask)
        before = torch.sigmoid(ordinary((x - mean) / std).logits)[0, r]
        out = ordinary((erased - mean) / std)
        after = torch.sigmoid(out.logits)[0, r]
        others = [c for c in torch.nonzero(present).flatten().tolist() if c != r]
        oc_heat = (F.interpolate(F.relu(out.cams[:, others]), size=x.shape[-2:], mode="bilinear").amax(dim=1)[0]
                   if others else torch.zeros(x.shape[-2:], device=device))
        oc_heat = oc_heat / (oc_heat.max() + 1e-5)
        gen_heat = F.interpolate(F.relu(cams[:, [r]]), size=x.shape[-2:], mode="bilinear")[0, 0]
        gen_heat = gen_heat / (gen_heat.max() + 1e-5)
        rgb = x[0].permute(1, 2, 0).cpu().numpy()
        panels = [(rgb, None), (rgb, gen_heat), (mask[0, 0].cpu().numpy(), "gray"),
                  (erased[0].permute(1, 2, 0).cpu().numpy(), None), (erased[0].permute(1, 2, 0).cpu().numpy(), oc_heat)]
        for col, (base, extra) in enumerate(panels):
            ax = axes[row, col]
            ax.axis("off")
            if isinstance(extra, str):
                ax.imshow(base, cmap=extra, vmin=0, vmax=1)
            else:
                ax.imshow(np.clip(base, 0, 1))
                if extra is not None:
                    ax.imshow(extra.cpu().numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
        axes[row, 0].text(2, 14, f"{image_id}: r = {names[r + 1]}", color="white", fontsize=6, backgroundcolor="black")
        axes[row, 3].text(2, 14, f"OC p(r): {before:.2f} -> {after:.2f}", color="white", fontsize=6,
                          backgroundcolor="black")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def table3_section(report: Report, classes, runs: Sequence[PriorsRun], prefix: str, title: str,
                   data_text: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 3's layout for ``runs`` (notebooks 06 and 11): per class its properties (``classes``: notebook 00's
    :func:`~wsss_lib.reporting.dataset_report.class_group_report`) and each method's IoU, the class-group table and
    the correlations rho (x100), written as ``<prefix>_table3_{per_class,groups,correlations}``; returns the three."""
    iou = class_iou_frame(runs)
    per_class = classes.per_class.merge(iou, on="class", how="left")
    group_table, correlations = class_group_tables(classes.per_class, classes.groups, iou)
    report.table(per_class, f"{prefix}_table3_per_class",
                 f"{title} (ours), per class: properties and IoU (%) of each method on {data_text}.")
    report.table(group_table, f"{prefix}_table3_groups",
                 f"{title} (ours), class groups ({classes.groups_source}): mIoU (%) of each method on {data_text}.")
    report.table(correlations, f"{prefix}_table3_correlations",
                 f"{title} (ours): Pearson rho (x100) between class properties and each method's IoU on {data_text}.",
                 index=True)
    return per_class, group_table, correlations


def _by_seed(runs: Sequence[PriorsRun], value: str = "oracle") -> dict[str, dict[int, float]]:
    """label -> seed -> TTA mIoU (%) at the oracle threshold (``value="oracle"``) or the held-out one."""
    column = "TTA mIoU (%)" if value == "oracle" else HELDOUT_MIOU
    out: dict[str, dict[int, float]] = {}
    for run in runs:
        out.setdefault(run.label, {})[run.seed] = float(run.summary().get(column, float("nan")))
    return out


def ranking_table(runs: Sequence[PriorsRun], backbone: str = "ResNeSt-269", reference: str = "CAM") -> pd.DataFrame:
    """Our ranking beside the paper's (Table 2 TTA mIoU, literature): per method our mean and SD over seeds, the gap
    to ``reference`` under the study's primary rule (SD of the gap = sqrt(SD_a² + SD_b²);
    :mod:`wsss_lib.evaluation.seeds`), the paper's value and gap, and ``verdict``: ``agrees`` (same sign, our gap at
    least 2 SD), ``tie`` (our gap under 2 SD), ``single seed`` (no SD: undetermined), ``disagrees`` (opposite sign, at
    least 2 SD). Beside it, as sensitivities: the gap paired by seed, and (where the runs have a held-out sweep) the
    gap at the threshold chosen on the held-out split. Methods the paper's Table 2 lacks get no paper columns."""
    ours = method_table(runs).set_index("method")
    lit = literature_epoch_table(backbone).set_index("method")["TTA"]
    if reference not in ours.index:
        raise KeyError(f"no run of the reference method {reference!r}; methods: {list(ours.index)}")
    oracle, heldout = _by_seed(runs), _by_seed(runs, "heldout")
    has_heldout = all(HELDOUT_MIOU in r.summary() for r in runs)
    rows = []
    for method, row in ours.iterrows():
        paper_gap = lit.get(paper_label(method), np.nan) - lit.get(paper_label(reference), np.nan)
        c = seeds.compare(oracle[method], oracle[reference], paper_gap)
        out = {"method": method, "seeds": int(row["seeds"]), "ours (%)": row["TTA mIoU (%)"], "SD": row["SD"],
               f"ours - {reference}": c.gap, "SD of gap": c.gap_sd, "paper (%)": lit.get(paper_label(method), np.nan),
               f"paper - {reference}": paper_gap, "verdict": "reference" if method == reference else c.verdict,
               "paired gap": c.paired_gap, "paired SD": c.paired_sd,
               "paired verdict": "reference" if method == reference else c.paired_verdict}
        if has_heldout:
            h = seeds.compare(heldout[method], heldout[reference], paper_gap)
            out.update({f"held-out: ours - {reference}": h.gap, "held-out: SD of gap": h.gap_sd,
                        "held-out verdict": "reference" if method == reference else h.verdict})
        rows.append(out)
    return pd.DataFrame(rows)


PAPER_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("P", "CAM", "Puzzle-CAM's tile reconstruction improves on the vanilla CAM"),
    ("P-OC", "P", "adding the ordinary classifier's erasure (CSE) improves on Puzzle-CAM"),
    ("P-NOC", "P-OC", "training the ordinary classifier adversarially improves on freezing it"),
    ("P-OC+LS", "P-OC", "label smoothing improves P-OC"),
    ("P-NOC+LS", "P-NOC", "label smoothing improves P-NOC"),
)
"""The paper's step-by-step claims that its Table 2 supports, as (method, baseline, claim): each step adds one
ingredient (P-OC is P-NOC with a frozen ordinary classifier)."""


def claims_table(runs: Sequence[PriorsRun], backbone: str = "ResNeSt-269",
                 claims: Sequence[tuple[str, str, str]] = PAPER_CLAIMS) -> pd.DataFrame:
    """Each of the paper's step-by-step ``claims`` with both methods run (:func:`wsss_lib.evaluation.seeds.claims_frame`:
    both means and SDs over seeds, our gap and verdict under the primary rule, the paired sensitivity) beside the
    paper's values (Table 2 TTA, literature; the paper gives means of 3 runs without SD, so its own gaps carry no
    error bar). A label with a recipe note answers the paper's name (``"P-NOC (OC lr 0.1x)"`` for ``"P-NOC"``)."""
    lit = literature_epoch_table(backbone).set_index("method")["TTA"]
    named = _ours_by_paper_label(list(group_runs(runs)))
    rows = [(claim, named[m], named[b], lit.get(m, np.nan), lit.get(b, np.nan))
            for m, b, claim in claims if m in named and b in named]
    return seeds.claims_frame(rows, _by_seed(runs))


def claims_sentences(table: pd.DataFrame) -> list[str]:
    """The :func:`claims_table` in plain words, one sentence per claim (:func:`wsss_lib.evaluation.seeds.claim_sentences`):
    the same direction as the paper's, not reproduced (a tie), reversed, or undetermined, whatever the outcome."""
    return seeds.claim_sentences(table)


def _ours_by_paper_label(labels: Sequence[str]) -> dict[str, str]:
    """The paper's label -> ours (ours may carry a recipe note: ``"P-NOC (OC lr 0.1x)"`` answers ``"P-NOC"``); two of
    ours with the same paper label are an error (which one the paper's claim is about would be a guess)."""
    out: dict[str, str] = {}
    for label in labels:
        key = paper_label(label)
        if key in out:
            raise ValueError(f"two runs answer the paper's {key!r}: {out[key]!r} and {label!r}; pass one of them")
        out[key] = label
    return out


def _gap_text(gap: float, gap_sd: float) -> str:
    return f"{gap:+.1f} ± {gap_sd:.1f} points" if np.isfinite(gap_sd) else f"{gap:+.1f} points (one seed, no SD)"


def ranking_sentences(table: pd.DataFrame, reference: str = "CAM") -> list[str]:
    """The :func:`ranking_table` in plain words, one sentence per method (whatever the outcome)."""
    out = []
    for row in table.to_dict("records"):
        if row["verdict"] == "reference":
            continue
        ours = _gap_text(row[f"ours - {reference}"], row["SD of gap"])
        has_paper = not np.isnan(row[f"paper - {reference}"])
        paper = f"the paper's {row[f'paper - {reference}']:+.1f}" if has_paper else "no paper value"
        tie = "is a tie (under 2 SD)" + (f", so the paper's difference to {reference} is not reproduced here"
                                         if has_paper else "")
        words = {"agrees": "agrees with the paper's direction", "disagrees": "goes against the paper's direction",
                 "tie": tie, "single seed": "is undetermined (a single seed has no SD)",
                 "higher (no paper value)": f"is higher than {reference} by at least 2 SD (no paper value to compare)",
                 "lower (no paper value)": f"is lower than {reference} by at least 2 SD (no paper value to compare)"}
        out.append(f"{row['method']} vs {reference}: ours {ours} against {paper}: {words[row['verdict']]}.")
    return out
