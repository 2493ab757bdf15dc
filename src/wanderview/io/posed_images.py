"""Read a posed-image dataset: a wanderview run folder or a nerfstudio-style folder.

- run folder: ``cameras.json`` (transforms.json, OpenGL axes in the file) whose frames name
  ``frames/00000.png`` ...; depth (optional) in ``depth/00000.npy`` beside each frame;
- nerfstudio folder: ``transforms.json`` with per-frame ``file_path`` and optional
  ``depth_file_path`` (paths relative to the folder).

Every image must exist and have the cameras' size; otherwise one InputError sentence says which.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.io.cameras import read_transforms_json
from wanderview.io.depth import read_depth
from wanderview.io.images import read_image

CAMERA_FILES = ("cameras.json", "transforms.json")


@dataclass
class PosedImages:
    """Images with their cameras.

    Attributes:
        images: (V, 3, H, W) in [0, 1]; cameras: batch of V; depths: (V, 1, H, W) z-depth with
        inf where unknown, or None when the dataset has no depth; paths: the V image paths;
        times: per-frame ``time`` values of the camera file, or None.
    """

    images: torch.Tensor
    cameras: Camera
    depths: torch.Tensor | None
    paths: list[Path]
    times: list[float] | None


def find_camera_file(folder: Path) -> Path | None:
    """The dataset's camera file (cameras.json first, then transforms.json), or None."""
    for name in CAMERA_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _frame_extras(camera_file: Path) -> list[dict]:
    with open(camera_file, encoding="utf-8") as f:
        return [frame if isinstance(frame, dict) else {} for frame in json.load(f)["frames"]]


def read_posed_images(folder: str | os.PathLike, max_views: int | None = None) -> PosedImages:
    """Read every posed frame of ``folder`` (see the module docstring).

    Args:
        folder: the dataset folder.
        max_views: keep at most this many frames, evenly spaced (None = all).
    Raises:
        InputError: not a folder, no camera file, a frame without ``file_path``, a missing or
            unreadable image, an image whose size differs from the cameras', a depth of another size.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The dataset {folder} is not a folder (give a run folder or a nerfstudio folder).")
    camera_file = find_camera_file(folder)
    if camera_file is None:
        raise InputError(
            f"The dataset folder {folder} has no cameras.json or transforms.json (no cameras)."
        )
    cameras, file_paths = read_transforms_json(camera_file)
    extras = _frame_extras(camera_file)
    indices = list(range(len(cameras)))
    if max_views is not None and len(indices) > max_views:
        step = len(indices) / max_views
        indices = [int(i * step) for i in range(max_views)]
    images, depths, paths, any_depth = [], [], [], False
    for i in indices:
        if file_paths[i] is None:
            raise InputError(f"Frame {i} of {camera_file.name} has no file_path, so it names no image.")
        path = folder / file_paths[i]
        if not path.suffix and not path.exists():  # nerfstudio allows paths without an extension
            path = path.with_suffix(".png")
        if not path.is_file():
            raise InputError(
                f"Frame {i} of {camera_file.name} names {file_paths[i]}, which does not exist in {folder}."
            )
        rgb = read_image(path)
        if tuple(rgb.shape[1:]) != (cameras.height, cameras.width):
            raise InputError(
                f"The image {path.name} is {rgb.shape[2]}x{rgb.shape[1]} but {camera_file.name} says "
                f"{cameras.width}x{cameras.height}; the cameras do not match the images."
            )
        depth_name = extras[i].get("depth_file_path")
        depth_path = folder / depth_name if depth_name else folder / "depth" / f"{path.stem}.npy"
        depth = None
        if depth_path.is_file():
            depth, valid = read_depth(depth_path, mask_invalid=True)
            if tuple(depth.shape[1:]) != tuple(rgb.shape[1:]):
                raise InputError(f"The depth {depth_path.name} is not the size of its image {path.name}.")
            depth = torch.where(valid, depth, torch.full_like(depth, float("inf")))
            any_depth = True
        images.append(rgb)
        depths.append(depth)
        paths.append(path)
    if any_depth:
        blank = torch.full((1, cameras.height, cameras.width), float("inf"))
        depth_stack = torch.stack([d if d is not None else blank for d in depths])
    else:
        depth_stack = None
    times = [extras[i].get("time") for i in indices]
    times_out = [float(t) for t in times] if all(isinstance(t, (int, float)) for t in times) else None
    return PosedImages(torch.stack(images), cameras[indices], depth_stack, paths, times_out)
