"""Writing the benchmark in the VOC 2012 + SBD layout: files encoded in worker processes, VOC XML annotations,
``generator_config.json``, and ``ensure_synthetic`` (generate once, check the stored configuration after)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from PIL import Image

from wsss_lib.data.synthetic.config import (
    GENERATOR_VERSION,
    REGION_DIR,
    SyntheticConfig,
    class_groups,
    config_to_json,
    split_ids,
)
from wsss_lib.data.synthetic.render import _render
from wsss_lib.formats.masks import to_palette_image
from wsss_lib.io.progress import tqdm

# ----------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------


def _annotation_xml(image_id: str, size: int, objects: list[dict[str, Any]]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "wsss_lib synthetic WSSS benchmark"
    size_el = ET.SubElement(root, "size")
    ET.SubElement(size_el, "width").text = str(size)
    ET.SubElement(size_el, "height").text = str(size)
    ET.SubElement(size_el, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        el = ET.SubElement(root, "object")
        ET.SubElement(el, "name").text = obj["name"]
        ET.SubElement(el, "pose").text = "Unspecified"
        ET.SubElement(el, "truncated").text = str(int(obj["truncated"]))
        ET.SubElement(el, "occluded").text = str(int(obj["occluded"]))
        ET.SubElement(el, "difficult").text = "0"
        box = ET.SubElement(el, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["bbox"]):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _encode_chunk(cfg: SyntheticConfig, items: list[tuple[int, str, bool]]) -> list[tuple[str, bytes]]:
    """Render images ``items`` = [(index, id, also_in_SegmentationClass)] and encode their files.

    Returns ``[(path relative to VOC2012/, bytes)]``; the caller writes them, so that worker
    processes only compute (concurrent small-file writes from several processes are slow on some disks).
    """
    files: list[tuple[str, bytes]] = []
    for index, image_id, seg_class in items:
        image, mask, objects, regions = _render(cfg, index, regions=cfg.emit_regions)
        buf = io.BytesIO()
        Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=cfg.jpeg_quality)
        files.append((f"JPEGImages/{image_id}.jpg", buf.getvalue()))
        buf = io.BytesIO()
        to_palette_image(mask).save(buf, format="PNG")
        files.append((f"SegmentationClassAug/{image_id}.png", buf.getvalue()))
        if seg_class:
            files.append((f"SegmentationClass/{image_id}.png", buf.getvalue()))
        files.append((f"Annotations/{image_id}.xml", _annotation_xml(image_id, cfg.image_size, objects)))
        if regions is not None:
            buf = io.BytesIO()
            Image.fromarray(regions, mode="L").save(buf, format="PNG")
            files.append((f"{REGION_DIR}/{image_id}.png", buf.getvalue()))
    return files


def _write_files(root: Path, files: list[tuple[str, bytes]]) -> None:
    for rel, data in files:
        (root / rel).write_bytes(data)


def generate(
    cfg: SyntheticConfig,
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the dataset to ``out_dir/VOC2012`` atomically and return that path.

    Everything is written into a temporary sibling directory that is renamed onto ``out_dir/VOC2012``
    at the end, so an interrupted run leaves no partial dataset. ``workers`` processes
    (default ``os.cpu_count()``; 1 = in this process) render the images; the bytes do not depend on it.
    Raises ``FileExistsError`` if ``out_dir/VOC2012`` exists and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    target = out_dir / "VOC2012"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True or use ensure_synthetic()")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".VOC2012.tmp-", dir=out_dir))
    try:
        subs = ["JPEGImages", "SegmentationClassAug", "SegmentationClass", "Annotations", "ImageSets/Segmentation"]
        for sub in subs + ([REGION_DIR] if cfg.emit_regions else []):
            (tmp / sub).mkdir(parents=True)
        splits = split_ids(cfg)
        seg_class = set(splits["train"]) | set(splits["val"])
        all_ids = splits["train_aug"] + splits["val"]
        items = [(i, image_id, image_id in seg_class) for i, image_id in enumerate(all_ids)]
        workers = max(1, min(workers, len(items)))
        chunk = max(1, min(32, math.ceil(len(items) / (workers * 8)))) if items else 1
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        with tqdm(total=len(items), disable=not progress, desc="synthetic VOC", unit="img") as bar:
            if workers == 1:
                for part in chunks:
                    _write_files(tmp, _encode_chunk(cfg, part))
                    bar.update(len(part))
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    futures = {pool.submit(_encode_chunk, cfg, part): len(part) for part in chunks}
                    try:
                        for fut in as_completed(futures):
                            _write_files(tmp, fut.result())
                            bar.update(futures[fut])
                    except BaseException:
                        for fut in futures:
                            fut.cancel()
                        raise
        for split, ids in splits.items():
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        names = ["background"] + [c.name for c in cfg.classes]
        (tmp / "class_names.txt").write_text("".join(f"{n}\n" for n in names))
        (tmp / "class_groups.json").write_text(json.dumps(class_groups(cfg), indent=2) + "\n")
        (tmp / "generator_config.json").write_text(json.dumps(config_to_json(cfg), indent=2, sort_keys=True) + "\n")

        if target.exists():  # overwrite: move the old tree aside, swap, then delete it
            if not overwrite:
                raise FileExistsError(f"{target} appeared while generating; not overwriting it")
            trash = Path(tempfile.mkdtemp(prefix=".VOC2012.old-", dir=out_dir))
            os.replace(target, trash / "VOC2012")
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_synthetic(cfg: SyntheticConfig, out_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """``out_dir/VOC2012``, generated by ``generate(cfg, out_dir, **kwargs)`` unless it is there already.

    If ``generator_config.json`` exists it must match ``cfg`` and this generator version exactly;
    otherwise a ``ValueError`` names the differing fields (delete the folder or pick another ``out_dir``).
    """
    target = Path(out_dir) / "VOC2012"
    record_path = target / "generator_config.json"
    if not record_path.is_file():
        return generate(cfg, out_dir, **kwargs)
    try:
        stored = json.loads(record_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{record_path}: not valid JSON ({err}); delete {target} to regenerate") from err
    expected = config_to_json(cfg)
    if stored != expected:
        s_cfg, e_cfg = stored.get("config", {}), expected["config"]
        diff = sorted(k for k in set(s_cfg) | set(e_cfg) if s_cfg.get(k) != e_cfg.get(k))
        if stored.get("generator_version") != expected["generator_version"]:
            diff.append(f"generator_version ({stored.get('generator_version')!r} vs {GENERATOR_VERSION!r})")
        raise ValueError(
            f"{target} was generated with a different configuration (differs in: {', '.join(diff)}); "
            f"delete it or choose another out_dir"
        )
    return target
