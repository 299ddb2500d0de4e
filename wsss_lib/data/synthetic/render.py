"""Rendering: backgrounds, textures, shapes and parts, painted instance by instance into the image, its class mask and
its region map (the *render* stream of its generator)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from wsss_lib.data.synthetic.config import (
    BODY_TEXTURE_KINDS,
    CONTEXT_TEXTURES,
    GENERIC_BACKGROUND_KINDS,
    PART_PATTERNS,
    REGION_CODES,
    SHAPES,
    SyntheticConfig,
)
from wsss_lib.data.synthetic.scene import _streams, plan_scene
from wsss_lib.formats.masks import IGNORE_INDEX

# ----------------------------------------------------------------------------------------------------
# Textures (vectorised numpy; the "render" random stream)
# ----------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma_y: float, sigma_x: float | None = None) -> np.ndarray:
    """Gaussian-filtered white noise, standardised to zero mean and unit std, float32 (h x w).

    Small kernels (sigma <= 3 px) use ``scipy.ndimage.gaussian_filter`` (wrap mode); larger ones
    multiply the spectrum by the Gaussian's transfer function ``exp(-2 pi^2 sigma^2 f^2)`` on an
    FFT-friendly padded grid, which costs the same for any sigma.
    """
    sigma_x = sigma_y if sigma_x is None else sigma_x
    if max(sigma_y, sigma_x) <= 3.0:
        noise = rng.standard_normal((h, w), dtype=np.float32)
        if sigma_y > 0 or sigma_x > 0:
            noise = ndimage.gaussian_filter(noise, sigma=(sigma_y, sigma_x), mode="wrap")
    else:
        ph, pw = sp_fft.next_fast_len(h, real=True), sp_fft.next_fast_len(w, real=True)
        noise = rng.standard_normal((ph, pw), dtype=np.float32)
        fy = np.fft.fftfreq(ph).astype(np.float32)[:, None]
        fx = np.fft.rfftfreq(pw).astype(np.float32)[None, :]
        gain = np.exp(-2.0 * np.pi**2 * (sigma_y**2 * fy**2 + sigma_x**2 * fx**2))
        noise = sp_fft.irfft2(sp_fft.rfft2(noise) * gain, s=(ph, pw))[:h, :w]
    noise = noise - noise.mean()
    noise /= noise.std() + 1e-8
    return noise.astype(np.float32, copy=False)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32)


def _body_texture_style(texture_id: int) -> tuple[str, np.ndarray]:
    """Texture id -> (kind, base RGB in [0, 1]); muted colours spread by the golden angle."""
    hue = (0.08 + 0.381966 * texture_id) % 1.0
    base = _hsv_to_rgb(hue, 0.35, 0.50 + 0.12 * (texture_id % 2))
    return BODY_TEXTURE_KINDS[texture_id % len(BODY_TEXTURE_KINDS)], base


def _generic_styles(cfg: SyntheticConfig) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """The pool of generic background styles: (kind, base RGB, delta RGB, scale in pixels), from cfg.seed."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EED_BAC6]))
    styles = []
    for i in range(cfg.n_generic_backgrounds):
        kind = GENERIC_BACKGROUND_KINDS[i % len(GENERIC_BACKGROUND_KINDS)]
        base = _hsv_to_rgb(float(rng.random()), float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.35, 0.70)))
        direction = rng.normal(size=3).astype(np.float32) + 0.8  # mostly a brightness change, a little hue
        delta = cfg.background_contrast * direction / (np.linalg.norm(direction) / math.sqrt(3) + 1e-8)
        scale = float(rng.uniform(0.03, 0.12)) * cfg.image_size
        styles.append((kind, base, delta.astype(np.float32), scale))
    return styles


def _background(cfg: SyntheticConfig, name: str, rng: np.random.Generator) -> np.ndarray:
    """An H x W x 3 float32 background in [0, 1] (before clipping) for a style or context name."""
    s = cfg.image_size
    unit = s / 256.0
    yy = np.arange(s, dtype=np.float32)[:, None]
    xx = np.arange(s, dtype=np.float32)[None, :]
    grain = _smooth_noise(rng, s, s, 0.6 * unit)[..., None]
    if name.startswith("generic:"):
        kind, base, delta, scale = _generic_styles(cfg)[int(name.split(":", 1)[1])]
        if kind == "noise":
            t = _smooth_noise(rng, s, s, scale)
        elif kind == "waves":
            phi = float(rng.uniform(0, np.pi))
            warp = _smooth_noise(rng, s, s, 4 * scale)
            t = np.sin(2 * np.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / (3 * scale) + warp)
        elif kind == "gradient":
            phi = float(rng.uniform(0, 2 * np.pi))
            ramp = (xx * math.cos(phi) + yy * math.sin(phi)) / s
            t = 2.0 * (ramp - ramp.mean()) + 0.3 * _smooth_noise(rng, s, s, scale)
        else:  # blotches
            t = np.tanh(2.5 * _smooth_noise(rng, s, s, 0.7 * scale))
        return base + np.clip(t, -2.0, 2.0)[..., None] * delta + 0.03 * grain
    if name == "sky":
        top, bottom = np.array([0.40, 0.62, 0.92], np.float32), np.array([0.75, 0.86, 0.97], np.float32)
        img = top + (yy / s)[..., None] * (bottom - top)
        clouds = np.clip(_smooth_noise(rng, s, s, 14 * unit, 24 * unit) - 0.4, 0.0, 1.0)[..., None]
        return img + 0.6 * clouds * (1.0 - img) + 0.01 * grain
    if name == "water":
        base = np.array([0.10, 0.30, 0.50], np.float32)
        warp = _smooth_noise(rng, s, s, 20 * unit)
        t = np.sin(2 * np.pi * yy / (7 * unit) + 1.5 * warp + 0.02 * xx)
        glint = np.clip(t - 0.8, 0, None) * 3.0
        return (
            base + 0.08 * t[..., None] * np.array([0.5, 0.8, 1.0], np.float32) + 0.25 * glint[..., None] + 0.02 * grain
        )
    if name == "rails":
        gravel = np.array([0.45, 0.40, 0.35], np.float32) + 0.07 * _smooth_noise(rng, s, s, 1.0 * unit)[..., None]
        band = 0.33 * s
        offset = float(rng.uniform(0, band))
        ty = np.mod(yy + offset, band) / band  # position within a track band
        tie_period, x0 = 14 * unit, float(rng.uniform(0, 14 * unit))
        ties = (np.mod(xx + x0, tie_period) < 0.45 * tie_period) & (ty > 0.12) & (ty < 0.88)
        rails = (np.abs(ty - 0.27) < 0.04) | (np.abs(ty - 0.73) < 0.04)
        img = np.where(ties[..., None], np.array([0.30, 0.20, 0.12], np.float32), gravel)
        img = np.where(np.broadcast_to(rails, (s, s))[..., None], np.array([0.78, 0.78, 0.80], np.float32), img)
        return img + 0.02 * grain
    if name == "grass":
        base = np.array([0.25, 0.50, 0.18], np.float32)
        blades = _smooth_noise(rng, s, s, 5 * unit, 0.8 * unit)
        return base + 0.10 * blades[..., None] * np.array([0.6, 1.0, 0.4], np.float32) + 0.03 * grain
    raise ValueError(f"unknown background {name!r}; expected 'generic:<i>' or one of {CONTEXT_TEXTURES}")


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Inside test in the normalised body frame (u, v in units of the half-axes; v points down)."""
    if shape == "ellipse":
        return u * u + v * v <= 1.0
    if shape == "rectangle":
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == "rounded":
        return u**4 + v**4 <= 1.0
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "trapezoid":  # wide top, narrow bottom (a hull)
        return (np.abs(v) <= 1.0) & (np.abs(u) <= 1.0 - 0.175 * (v + 1.0))
    if shape == "cross":  # fuselage plus wings
        return ((np.abs(v) <= 0.35) & (np.abs(u) <= 1.0)) | ((np.abs(u - 0.1) <= 0.22) & (np.abs(v) <= 1.0))
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    if shape == "blob":  # random radial harmonics per instance
        amp = rng.uniform(0.0, 0.07, size=3)
        phase = rng.uniform(0.0, 2 * np.pi, size=3)
        radius = 0.85 + sum(amp[i] * np.cos((i + 2) * theta + phase[i]) for i in range(3))
        return rho <= radius
    if shape == "triangle":  # regular polygon radial function, a vertex pointing up
        n, theta0 = 3, -np.pi / 2
        sector = np.mod(theta - theta0, 2 * np.pi / n) - np.pi / n
        return rho <= math.cos(np.pi / n) / np.cos(sector)
    if shape == "star":  # five smooth points, one pointing up
        return rho <= 1.0 - 0.4 * (0.5 - 0.5 * np.cos(5 * (theta + np.pi / 2)))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _part_pattern(pattern: str, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Binary part pattern in part units (the part is the unit disc qx^2 + qy^2 <= 1)."""
    k = 2.0
    if pattern == "checker":
        return (np.floor(qx * k) + np.floor(qy * k)) % 2 == 0
    if pattern == "stripes":
        return np.sin(np.pi * 2.5 * qx) > 0
    if pattern == "dots":
        return (np.mod(qx * k, 1.0) - 0.5) ** 2 + (np.mod(qy * k, 1.0) - 0.5) ** 2 < 0.1
    if pattern == "rings":
        return np.sin(np.pi * 3.0 * np.hypot(qx, qy)) > 0
    if pattern == "diagonal":
        return np.sin(np.pi * 2.5 * (qx + qy) / math.sqrt(2)) > 0
    if pattern == "plus":
        return (np.abs(qx) < 0.3) | (np.abs(qy) < 0.3)
    if pattern == "pinwheel":
        return np.sin(4 * np.arctan2(qy, qx)) > 0
    if pattern == "grid":
        return (np.mod(qx * k, 1.0) < 0.35) | (np.mod(qy * k, 1.0) < 0.35)
    if pattern == "zigzag":
        return np.sin(np.pi * 2.5 * (qy + 0.35 * np.abs(np.mod(2 * qx, 2.0) - 1.0))) > 0
    raise ValueError(f"unknown part pattern {pattern!r}; expected one of {PART_PATTERNS}")


def _body_field(kind: str, lu: np.ndarray, lv: np.ndarray, minor: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean texture field (about unit amplitude) on the instance window, in the body frame."""
    h, w = lu.shape
    if kind == "mottled":
        return np.clip(_smooth_noise(rng, h, w, max(0.25 * minor, 1.0)), -2, 2) * 0.7
    if kind == "stripes":
        period = max(0.6 * minor, 3.0)
        return np.sin(2 * np.pi * lv / period + float(rng.uniform(0, 2 * np.pi))).astype(np.float32)
    if kind == "grain":
        return np.clip(_smooth_noise(rng, h, w, 0.8), -2, 2) * 0.7
    if kind == "shaded":
        return (np.clip(lu / max(2 * minor, 1.0), -1.5, 1.5) + 0.3 * _smooth_noise(rng, h, w, 1.5)).astype(np.float32)
    raise ValueError(f"unknown body texture kind {kind!r}; expected one of {BODY_TEXTURE_KINDS}")


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _paint_instance(cfg, inst, texture_id, image, inst_map, label, rng, region_map=None) -> int:
    """Paint one instance (body texture + part pattern) into ``image`` / ``inst_map`` in place, and its part /
    near-body / far-body codes into ``region_map`` when given (it draws nothing from ``rng`` for that).

    Returns the number of image pixels the instance covers (before later instances occlude it).
    """
    spec = cfg.classes[inst.class_index]
    s = cfg.image_size
    half = inst.extent / 2.0
    ax, ay = (half, half / inst.aspect) if inst.aspect >= 1 else (half * inst.aspect, half)
    ax, ay = max(ax, 1.0), max(ay, 1.0)
    minor = min(ax, ay)
    rp = max(1.5, cfg.part_size_fraction * minor)
    c, sn = math.cos(inst.angle), math.sin(inst.angle)
    pu, pv = spec.part_position
    pcx, pcy = pu * max(ax - rp, 0.0), pv * max(ay - rp, 0.0)  # part centre, body frame
    # every body shape lies inside [-1.1 ax, 1.1 ax] x [-1.1 ay, 1.1 ay] in the body frame; so does the
    # part unless part_size_fraction > 1; the window is that box's rotated bounding box
    hx, hy = max(1.1 * ax, abs(pcx) + rp), max(1.1 * ay, abs(pcy) + rp)
    reach_x = abs(c) * hx + abs(sn) * hy + 2.0
    reach_y = abs(sn) * hx + abs(c) * hy + 2.0
    x0, x1 = max(0, int(math.floor(inst.cx - reach_x))), min(s, int(math.ceil(inst.cx + reach_x)) + 1)
    y0, y1 = max(0, int(math.floor(inst.cy - reach_y))), min(s, int(math.ceil(inst.cy + reach_y)) + 1)
    if x0 >= x1 or y0 >= y1:
        return 0
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - inst.cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - inst.cy)[:, None]
    lu = c * dx + sn * dy  # body frame, pixels
    lv = -sn * dx + c * dy
    body = _shape_mask(spec.shape, lu / ax, lv / ay, rng)
    qx = (lu - pcx) / rp
    qy = (lv - pcy) / rp
    part = qx * qx + qy * qy <= 1.0
    obj = body | part
    if not obj.any():
        return 0

    kind, base = _body_texture_style(texture_id)
    if cfg.body_class_tint > 0:
        hue = _hsv_to_rgb(inst.class_index / len(cfg.classes), 1.0, 1.0)
        base = base + (cfg.body_class_tint * (hue - 0.5)).astype(np.float32)
    base = base + rng.uniform(-cfg.body_color_jitter, cfg.body_color_jitter, size=3).astype(np.float32)
    tint = np.array([1.0, 1.0, 1.0], np.float32) + 0.3 * (base - base.mean())
    body_rgb = base + cfg.body_contrast * _body_field(kind, lu, lv, minor, rng)[..., None] * tint
    body_rgb *= (1.0 - 0.06 * np.clip(lv / ay, -1, 1))[..., None]  # soft top lighting

    col_a, col_b = (np.array(col, np.float32) / 255.0 for col in spec.part_colors)
    mean = 0.5 * (col_a + col_b)
    on = _part_pattern(spec.part_pattern, qx, qy)[..., None]
    part_rgb = mean + cfg.part_contrast * (np.where(on, col_a, col_b) - mean)

    rgb = np.where(part[..., None], part_rgb, body_rgb)
    win = image[y0:y1, x0:x1]
    win[obj] = rgb[obj]
    inst_map[y0:y1, x0:x1][obj] = label
    if region_map is not None:
        to_part = np.hypot(lu - pcx, lv - pcy) - rp  # distance to the part's edge, pixels
        far = to_part > cfg.far_body_distance * inst.extent
        codes = np.where(part, REGION_CODES["part"], np.where(far, REGION_CODES["far_body"], REGION_CODES["near_body"]))
        region_map[y0:y1, x0:x1][obj] = codes[obj]
    return int(np.count_nonzero(obj))


def _void_band(inst_map: np.ndarray, width: int) -> np.ndarray:
    """Pixels whose (2w+1)^2 neighbourhood holds another instance id (0 = background), vectorised."""
    if width <= 0:
        return np.zeros(inst_map.shape, dtype=bool)
    size = 2 * width + 1
    return ndimage.maximum_filter(inst_map, size=size, mode="nearest") != ndimage.minimum_filter(
        inst_map, size=size, mode="nearest"
    )


def render_sample(cfg: SyntheticConfig, index: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Image ``index``: ``(image uint8 HxWx3 before JPEG, mask uint8 HxW, objects)``; see :func:`_render`."""
    image, mask, objects, _ = _render(cfg, index, regions=False)
    return image, mask, objects


def render_regions(cfg: SyntheticConfig, index: int) -> np.ndarray:
    """The region annotation (``REGION_CODES``, 255 void, uint8 HxW) of image ``index``, whatever
    ``cfg.emit_regions`` says (the files are written only with it)."""
    return _render(cfg, index, regions=True)[3]


def _render(
    cfg: SyntheticConfig, index: int, regions: bool
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], np.ndarray | None]:
    """Image ``index``: ``(image uint8 HxWx3 before JPEG, mask uint8 HxW, objects, regions or None)``.

    ``mask``: 0 background, ``k`` = ``cfg.classes[k-1]``, 255 void (object outlines and the
    remnants of instances that count as fully occluded). ``objects``: one dict per *visible* instance
    in painting order with ``name``, ``label``, ``bbox`` (VOC 1-based inclusive xmin, ymin, xmax, ymax
    of its visible pixels), ``area`` (visible non-void pixels), ``truncated``, ``occluded``.
    """
    plan = plan_scene(cfg, index)
    _, rng = _streams(cfg, index)
    s = cfg.image_size
    image = np.empty((s, s, 3), dtype=np.float32)
    image[...] = _background(cfg, plan.background, rng)
    inst_map = np.zeros((s, s), dtype=np.int32)
    region_map = None
    if regions:
        background = REGION_CODES["context_background" if plan.background in CONTEXT_TEXTURES else "plain_background"]
        region_map = np.full((s, s), background, dtype=np.uint8)
    drawn = [0]
    for j, inst in enumerate(plan.instances, start=1):
        tex = cfg.classes[inst.class_index].body_texture if cfg.body_texture_sharing else inst.class_index
        drawn.append(_paint_instance(cfg, inst, tex, image, inst_map, j, rng, region_map))
    if cfg.edge_blur_sigma > 0:
        image = ndimage.gaussian_filter(image, sigma=(cfg.edge_blur_sigma, cfg.edge_blur_sigma, 0), mode="nearest")
    if cfg.pixel_noise_std > 0:
        image += cfg.pixel_noise_std * rng.standard_normal(image.shape, dtype=np.float32)
    image *= 255.0
    np.rint(image, out=image)
    np.clip(image, 0, 255, out=image)
    image_u8 = image.astype(np.uint8)

    labels = np.array([0] + [inst.class_index + 1 for inst in plan.instances], dtype=np.uint8)
    mask = labels[inst_map]
    void = _void_band(inst_map, cfg.void_width)
    mask[void] = IGNORE_INDEX

    n = len(plan.instances)
    visible = np.bincount(inst_map.ravel(), minlength=n + 1)
    kept = visible - np.bincount(inst_map[void], minlength=n + 1)
    min_pixels = max(1, math.ceil(cfg.min_visible_fraction * s * s))
    boxes = ndimage.find_objects(inst_map, max_label=n)
    objects: list[dict[str, Any]] = []
    for j, inst in enumerate(plan.instances, start=1):
        box = boxes[j - 1]
        if box is None:  # fully covered by later instances
            continue
        if kept[j] < min_pixels:  # effectively fully occluded: not listed, its remnant becomes void
            region = mask[box]
            region[inst_map[box] == j] = IGNORE_INDEX
            continue
        ymin, ymax, xmin, xmax = box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1
        objects.append(
            {
                "name": cfg.classes[inst.class_index].name,
                "label": inst.class_index + 1,
                "bbox": (xmin + 1, ymin + 1, xmax + 1, ymax + 1),
                "area": int(kept[j]),
                "truncated": bool(xmin == 0 or ymin == 0 or xmax == s - 1 or ymax == s - 1),
                "occluded": bool(visible[j] < drawn[j]),
            }
        )
    if region_map is not None:
        region_map[mask == IGNORE_INDEX] = IGNORE_INDEX
    return image_u8, mask, objects, region_map
