"""The CAM file format every later stage reads (one ``.npz`` per image, written atomically).

Fields (the official code's ``{keys, cam, hr_cam}`` dictionary, stored without pickles):

- ``keys``: ``int64`` array of the 1-based class ids present in the image (background 0 is *not*
  stored); ``len(keys) == K``.
- ``cam``: ``float32`` ``(K, ceil(H/4), ceil(W/4))``, the stride-4 CAM of each present class,
  each map divided by its spatial maximum (values in [0, 1]).
- ``hr_cam``: ``float32`` ``(K, H, W)``, the full-resolution CAM, normalised the same way.

Images without any foreground class have ``K == 0`` (empty arrays with the right spatial shape).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsss_lib.io import atomic_save_npz, reading
from wsss_lib.timing import timed

__all__ = ["CamRecord", "save_cam", "load_cam", "cam_path"]


@dataclass(frozen=True)
class CamRecord:
    keys: np.ndarray  # (K,) int64, 1-based class ids
    cam: np.ndarray  # (K, h4, w4) float32
    hr_cam: np.ndarray  # (K, H, W) float32

    def with_background(self, threshold: float, high_res: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Prepend a constant background channel ``threshold``; return ``(scores, class_ids)``.

        ``class_ids[0] == 0`` (background); ``argmax`` over ``scores`` indexes ``class_ids``.
        """
        maps = self.hr_cam if high_res else self.cam
        bg = np.full((1, *maps.shape[1:]), threshold, dtype=maps.dtype)
        return np.concatenate([bg, maps], axis=0), np.concatenate([[0], self.keys]).astype(np.int64)


def cam_path(cam_dir: str | os.PathLike, image_id: str) -> Path:
    return Path(cam_dir) / f"{image_id}.npz"


@timed("write")
def save_cam(path: str | os.PathLike, keys: np.ndarray, cam: np.ndarray, hr_cam: np.ndarray) -> None:
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if cam.shape[0] != keys.size or hr_cam.shape[0] != keys.size:
        raise ValueError(f"{path}: {keys.size} keys but cam {cam.shape} and hr_cam {hr_cam.shape}")
    if keys.size and keys.min() < 1:
        raise ValueError(f"{path}: keys must be 1-based foreground class ids, got {keys.tolist()}")
    atomic_save_npz(path, keys=keys, cam=cam.astype(np.float32), hr_cam=hr_cam.astype(np.float32))


@timed("read")
def load_cam(path: str | os.PathLike) -> CamRecord:
    path = Path(path)
    if not path.is_file():
        done = path.parent.parent / "DONE.json"
        hint = (f"its stage folder {path.parent.parent} is marked finished: delete that folder and rerun the notebook "
                "that computes these CAMs" if done.is_file() else "run the CAM inference stage first")
        raise FileNotFoundError(f"CAM file {path} does not exist; {hint}")
    with reading(path, "a CAM file (.npz with keys, cam, hr_cam)",
                 f"Recompute it: delete its stage folder {path.parent.parent} and rerun the CAM inference"):
        with np.load(path, allow_pickle=False) as data:
            missing = {"keys", "cam", "hr_cam"} - set(data.files)
            if missing:
                raise ValueError(f"not a CAM file, missing fields {sorted(missing)}")
            return CamRecord(keys=data["keys"], cam=data["cam"], hr_cam=data["hr_cam"])
