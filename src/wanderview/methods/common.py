"""Pieces every method shares: loading the input view, the camera path, and writing the run folder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.errors import ConfigError


@dataclass(frozen=True)
class RunResult:
    """What a method returns: where things were written and how long each stage took (seconds)."""

    out_dir: Path
    num_frames: int
    video: Path
    scene: Path | None
    timings: dict[str, float] = field(default_factory=dict)


def working_size(
    height: int, width: int, want_w: int | None, want_h: int | None, max_side: int
) -> tuple[int, int]:
    """(H, W) to work at: the requested size, else the input size capped at ``max_side`` (aspect kept).

    Both sides are rounded to even numbers because H.264 needs them.
    """
    if want_w and want_h:
        w, h = want_w, want_h
    elif want_w:
        w, h = want_w, round(height * want_w / width)
    elif want_h:
        w, h = round(width * want_h / height), want_h
    else:
        s = min(1.0, max_side / max(height, width))
        w, h = round(width * s), round(height * s)
    return max(2, h - h % 2), max(2, w - w % 2)


def resize_image(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(3, h, w) -> (3, height, width), area-averaged when shrinking."""
    if rgb.shape[1:] == (height, width):
        return rgb
    mode = "area" if height < rgb.shape[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(rgb[None], size=(height, width), mode=mode, **kwargs)[0].clamp(0, 1)


def crop_to_aspect(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (C, h, w) to the aspect ratio of height x width."""
    h, w = image.shape[1:]
    if h * width > w * height:
        crop = round(w * height / width)
        return image[:, (h - crop) // 2 : (h - crop) // 2 + crop]
    if h * width < w * height:
        crop = round(h * width / height)
        return image[:, :, (w - crop) // 2 : (w - crop) // 2 + crop]
    return image


def resize_cover(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop (3, h, w) to the aspect of height x width, then resize to it (no padding)."""
    return resize_image(crop_to_aspect(rgb, height, width), height, width)


def describe_backend(backend, from_file: bool = False) -> dict:
    """The manifest entry of a model backend: its spec, description and whether it is a weak default."""
    if from_file:
        return {"spec": "file", "description": "depth read from the user's file"}
    return {
        "spec": getattr(backend, "spec", type(backend).__name__),
        "description": getattr(backend, "description", ""),
        "weak_default": bool(getattr(backend, "is_weak_default", False)),
    }


def resize_depth(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, h, w) -> (1, height, width) by nearest neighbour, so no depth is invented at edges."""
    if depth.shape[1:] == (height, width):
        return depth
    return F.interpolate(depth[None], size=(height, width), mode="nearest")[0]


def input_camera(
    trajectory: str, width: int, height: int, fov_deg: float, focal: float | None = None
) -> Camera:
    """The camera of the input image (identity pose).

    A camera file given as trajectory also decides the intrinsics (scaled to the image size);
    else ``focal`` (pixels) when given, else the horizontal field of view ``fov_deg``.
    """
    path = Path(trajectory)
    if path.suffix and path.exists():
        from wanderview.io.cameras import read_cameras

        first = read_cameras(path, width=width, height=height)[0].scaled(width, height)
        return first.with_pose(torch.eye(4))
    if focal is not None:
        if not math.isfinite(focal) or focal <= 0:
            raise ConfigError(f"the focal length must be a positive number of pixels, got {focal}")
        return Camera.from_focal(focal, width, height)
    if not 0 < fov_deg < 180:
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {fov_deg}")
    return Camera.from_fov(fov_deg, width, height)


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

    device: str = "cpu"
    dtype: str | None = None
    """Weights dtype of hf: backends (None: float16 on CUDA, float32 elsewhere)."""
    allow_pickle: bool = False
    """Accept pickle checkpoints (.bin/.ckpt); safetensors only by default."""
    cpu_offload: bool = False
    attention_slicing: bool = False

    def loading_options(self) -> dict:
        """The keywords every ``make_*`` backend factory takes."""
        return {"device": self.device, "dtype": self.dtype, "allow_pickle": self.allow_pickle,
                "cpu_offload": self.cpu_offload, "attention_slicing": self.attention_slicing}  # fmt: skip


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
