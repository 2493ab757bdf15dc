"""The Eulerian motion options that makeit4d and dreamjourney share, and reading them into a flow.

``MotionOptions`` is a Config mixin: its fields become the ``--motion``, ``--motion-mask``,
``--motion-vector``, ``--motion-video`` and ``--flow-method`` options of every method that inherits
it (cli/common.add_config_options reads the fields and their docstrings), so the options are written
once. ``read_motion`` turns them into a motion source on the frame grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from wanderview.errors import ConfigError, InputError
from wanderview.geometry.flow import (
    constant_flow,
    hints_flow,
    median_flow,
    parse_vector,
    read_hints,
    resize_flow,
)
from wanderview.io.images import DEFAULT_MAX_PIXELS, read_image, read_mask
from wanderview.methods.common import crop_to_aspect

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
FLOW_METHODS = ("dis", "farneback")


@dataclass(frozen=True, kw_only=True)
class MotionOptions:
    """Where an Eulerian flow comes from; the first that is given wins (see ``read_motion``)."""

    motion: str = "none"
    """'none', 'sky:DX,DY' (the farthest layer moves) or a labelme-style hints .json file."""
    motion_mask: Path | None = None
    """Mask (input size, white = moving) for a constant ``motion_vector``."""
    motion_vector: str | None = None
    """'DX,DY' in input pixels per frame, with ``motion_mask``."""
    motion_video: Path | None = None
    """A short clip (a folder of frames or a video file) of the same scene: its median optical flow."""
    flow_method: Literal["dis", "farneback"] = "dis"
    """Optical flow of ``motion_video``: 'dis' or 'farneback' (OpenCV)."""

    def check_motion(self) -> None:
        """ConfigError for option values the parser cannot catch (e.g. from a config file)."""
        if self.flow_method not in FLOW_METHODS:
            raise ConfigError(f"--flow-method must be dis or farneback, got {self.flow_method!r}")


def _read_clip(path: Path) -> list[torch.Tensor]:
    from wanderview.io.video import read_video

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [read_image(p) for p in files]
    if not path.exists():
        raise InputError(f"the motion clip {path} does not exist")
    return read_video(path)


def read_motion(
    options: MotionOptions,
    image: Path,
    height: int,
    width: int,
    *,
    seed: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[str, object]:
    """The motion source, checked: ('flow', (2, height, width) px/frame), ('sky', (dx, dy)) or ('none', None).

    The first that is given wins: a mask with a vector, hints, a clip, the sky preset. A mask is read at
    ``image``'s size and cropped and resized like the image to the frame grid height x width.

    Raises:
        InputError: a missing or unreadable source, a mask without a vector (or the reverse), a bad
            vector or an unknown ``motion``.
    """
    options.check_motion()
    if (options.motion_mask is None) != (options.motion_vector is None):
        raise InputError("--motion-mask and --motion-vector go together: give both or neither")
    if options.motion_mask is not None:
        vector = parse_vector(options.motion_vector)
        original = read_image(image, max_pixels=max_pixels).shape[1:]
        mask = read_mask(options.motion_mask, size=tuple(original))
        mask = crop_to_aspect(mask, height, width)  # cropped like the image to the working aspect
        mask = F.interpolate(mask[None].float(), size=(height, width), mode="nearest")[0] > 0.5
        return "flow", constant_flow(mask, vector)
    motion = (options.motion or "none").strip()
    if motion.lower().endswith(".json"):
        mask, arrows = read_hints(motion, height, width)
        return "flow", hints_flow(mask, arrows, seed=seed)
    if options.motion_video is not None:
        frames = _read_clip(Path(options.motion_video))
        if len(frames) < 2:
            raise InputError(
                f"the motion clip {options.motion_video} has {len(frames)} frame(s); it needs at least 2"
            )
        if len({tuple(f.shape) for f in frames}) != 1:
            raise InputError(f"the frames of the motion clip {options.motion_video} differ in size")
        return "flow", resize_flow(median_flow(frames, options.flow_method), height, width)
    if motion.lower().startswith("sky"):
        _, _, rest = motion.partition(":")
        return "sky", parse_vector(rest or "1,0", "--motion sky:DX,DY")
    if motion.lower() != "none":
        raise InputError(f"--motion must be none, sky:DX,DY or a hints .json file, got {motion!r}")
    return "none", None
