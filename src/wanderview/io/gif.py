"""Looping GIFs (a seamless cinemagraph loop is the first thing its users ask for)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch

from wanderview.io.images import atomic_output, to_uint8


def write_gif(
    path: str | os.PathLike, frames: Iterable[torch.Tensor], fps: float = 24, max_side: int = 384
) -> int:
    """Write (3, H, W) frames in [0, 1] as an endlessly looping GIF, atomically.

    Frames larger than ``max_side`` are downscaled (GIFs of full-size frames are huge). Every frame
    uses the 256-colour palette of the first one (fast octree quantisation, no dithering): one palette
    does not flicker, and per-frame median-cut quantisation took ~0.7 s a frame.
    Returns the number of frames written.
    """
    from PIL import Image

    images, palette = [], None
    for frame in frames:
        image = Image.fromarray(np.ascontiguousarray(to_uint8(frame)))
        scale = max_side / max(image.size)
        if scale < 1:
            image = image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.LANCZOS,
            )
        if not images:
            palette = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        images.append(image.quantize(palette=palette, dither=Image.Dither.NONE))
    if not images:
        raise ValueError("write_gif needs at least one frame")
    with atomic_output(path, suffix=".gif") as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            loop=0,
            duration=max(20, round(1000 / fps)),
            optimize=False,
        )
    return len(images)
