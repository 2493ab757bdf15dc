"""Pieces every method shares: loading the input view, the camera path, and writing the run folder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import is_camera_file
from wanderview.errors import ConfigError


@dataclass(frozen=True)
class RunResult:
    """What a method returns: where things were written and how long each stage took (seconds)."""

    out_dir: Path
    num_frames: int
    video: Path
    scene: Path | None
    timings: dict[str, float] = field(default_factory=dict)


MIN_SIDE = 8
"""Smallest frame side (pixels) a method works at; smaller sizes are refused."""


def working_size(
    height: int, width: int, want_w: int | None, want_h: int | None, max_side: int
) -> tuple[int, int]:
    """(H, W) to work at: the requested size, else the input size, downscaled with one scale for
    both axes when its longer side exceeds ``max_side``. No rounding to even sizes (the video
    writer pads odd sizes itself), so an input that fits is never resampled.

    Raises:
        ConfigError: ``max_side`` below MIN_SIDE, or a resulting side below MIN_SIDE (an extreme
            aspect ratio whose shorter side vanishes once the longer side fits ``max_side``).
    """
    if max_side < MIN_SIDE:
        raise ConfigError(f"--max-side must be at least {MIN_SIDE} pixels, got {max_side}")
    if want_w and want_h:
        w, h = want_w, want_h
    elif want_w:
        w, h = want_w, round(height * want_w / width)
    elif want_h:
        w, h = round(width * want_h / height), want_h
    else:
        s = min(1.0, max_side / max(height, width))
        w, h = round(width * s), round(height * s)
    if min(w, h) < MIN_SIDE:
        raise ConfigError(
            f"the frames would be {w}x{h} pixels (input {width}x{height}); both sides must be at least "
            f"{MIN_SIDE} px (an input of extreme aspect ratio is downscaled until its longer side fits "
            "--max-side)"
        )
    return h, w


def resize_image(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, h, w) -> (3, height, width): area-averaged when both axes shrink, else bilinear with
    anti-aliasing on any axis that shrinks."""
    if rgb.shape[1:] == (height, width):
        return rgb
    if height <= rgb.shape[1] and width <= rgb.shape[2]:
        out = F.interpolate(rgb[None], size=(height, width), mode="area")
    else:
        out = F.interpolate(rgb[None], size=(height, width), mode="bilinear", align_corners=False,
                            antialias=True)  # fmt: skip
    return out[0].clamp(0, 1)


def crop_box(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, crop_h, crop_w) of the centred crop of an h x w image to the aspect of
    height x width (the whole image when the aspect already matches)."""
    if h * width > w * height:
        crop = round(w * height / width)
        return (h - crop) // 2, 0, crop, w
    if h * width < w * height:
        crop = round(h * width / height)
        return 0, (w - crop) // 2, h, crop
    return 0, 0, h, w


def crop_to_aspect(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (C, h, w) to the aspect ratio of height x width (see :func:`crop_box`)."""
    top, left, ch, cw = crop_box(image.shape[1], image.shape[2], height, width)
    return image[:, top : top + ch, left : left + cw]


def resize_cover(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (3, h, w) to the aspect of height x width, then resize to it (no padding)."""
    return resize_image(crop_to_aspect(rgb, height, width), height, width)


def describe_backend(backend, spec: str | None = None, *, from_file: bool = False) -> dict:
    """The manifest entry of a model backend: the spec it was made from, its description and
    whether it is a weak default (the two attributes every backend protocol declares)."""
    if from_file or backend is None:
        return {"spec": "file", "description": "depth read from the user's file"}
    return {
        "spec": spec or type(backend).__name__,
        "description": backend.description,
        "weak_default": bool(backend.is_weak_default),
    }


def resize_depth(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, h, w) -> (1, height, width) by nearest neighbour, so no depth is invented at edges."""
    if depth.shape[1:] == (height, width):
        return depth
    return F.interpolate(depth[None], size=(height, width), mode="nearest")[0]


def input_camera(
    trajectory: str,
    width: int,
    height: int,
    fov_deg: float,
    focal: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
) -> Camera:
    """The camera (identity pose) of an input image of ``width`` x ``height`` pixels.

    A camera file given as trajectory decides the intrinsics (scaled to the image size); else
    ``focal`` (pixels) when given, else the horizontal field of view ``fov_deg``; the principal
    point is (``cx``, ``cy``) when given, else the image centre.
    """
    if is_camera_file(trajectory):
        from wanderview.io.cameras import read_cameras

        first = read_cameras(trajectory, width=width, height=height)[0].scaled(width, height)
        return first.with_pose(torch.eye(4))
    for name, value in (("--focal", focal), ("--cx", cx), ("--cy", cy)):
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number of pixels, got {value}")
    if focal is not None and focal <= 0:
        raise ConfigError(f"the focal length must be a positive number of pixels, got {focal}")
    if focal is None and not 0 < fov_deg < 180:
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {fov_deg}")
    camera = (
        Camera.from_focal(focal, width, height)
        if focal is not None
        else Camera.from_fov(fov_deg, width, height)
    )
    if cx is None and cy is None:
        return camera
    K = camera.K.clone()
    K[0, 2] = K[0, 2] if cx is None else cx
    K[1, 2] = K[1, 2] if cy is None else cy
    return Camera(K, camera.cam_to_world, width, height)


def scene_scale(depth: torch.Tensor, quantile: float = 0.5) -> float:
    """A quantile of the finite depth of (1, H, W) (default the median): the unit in which named
    trajectories move. 1.0 when no depth is finite."""
    finite = depth[torch.isfinite(depth) & (depth > 0)]
    if not finite.numel():
        return 1.0
    if quantile == 0.5:
        return float(finite.median())
    return float(torch.quantile(finite.double()[:: max(1, finite.numel() // 1_000_000)], quantile))


@dataclass(frozen=True, kw_only=True)
class ModelLoading:
    """How model backends are loaded; every method Config inherits these fields."""

    device: str = "auto"
    """Where backends run and the method's tensors and scene live: cpu, cuda, cuda:N, mps, or auto
    (cuda > mps > cpu)."""
    dtype: Literal["float16", "bfloat16", "float32"] | None = None
    """Weights dtype of hf: backends (None: float16 on CUDA, float32 elsewhere; finetuning always
    runs in float32)."""
    allow_pickle: bool = False
    """Accept pickle checkpoints (.bin/.ckpt, which can run code); safetensors only by default."""
    cpu_offload: bool = False
    """Offload idle sub-models of hf: pipelines to the CPU (small GPUs)."""
    attention_slicing: bool = False
    """Slice attention of hf: pipelines to save GPU memory."""

    def loading_options(self, device: torch.device | str | None = None) -> dict:
        """The keywords every ``make_*`` backend factory takes; ``device`` is the resolved device
        (``MethodRun.device``), defaulting to this config's ``device`` as written."""
        return {"device": str(device if device is not None else self.device), "dtype": self.dtype,
                "allow_pickle": self.allow_pickle, "cpu_offload": self.cpu_offload,
                "attention_slicing": self.attention_slicing}  # fmt: skip


def config_to_json(config) -> dict:
    """A JSON-ready dict of a (nested) config dataclass; paths become strings."""
    data = asdict(config) if is_dataclass(config) else dict(config)

    def clean(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return clean(data)
