"""Out-animation, stage 1 (Wang et al., §3.3): place an object on a larger canvas and outpaint the rest.

The user gives an object — an image plus a mask of the object, or an RGBA image whose alpha is the
object. Stage 1 puts it in the middle of a canvas ``canvas_scale`` times larger and asks the
inpainting backend (with the prompt) to invent everything that is not the object. Stage 2 is the
ordinary photo3d video of that canvas (methods/photo3d.py); its depth must come from a depth
backend, because no depth file the user has covers the invented canvas.

The paper trains its stage-1 M-UNet on a segmentation data set. The embedded backends here know no
such data: ``telea`` smears the object's border colours outward, ``patchmatch`` copies textures of
the object, and the from-scratch ``selfsup`` model learns only the input image's own textures.
Plausible new scenery needs a pretrained model (``--inpainter hf:<sd-inpainting>`` with a prompt).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.errors import ConfigError, InputError
from wanderview.io.images import read_image_rgba, read_mask

MAX_CANVAS_SCALE = 4.0


def load_object(
    image_path: Path, mask_path: Path | None, max_pixels: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the object to out-animate.

    Args:
        image_path: the image (any format read_image_rgba reads).
        mask_path: a mask file of the same size (True/white = object), or None to take the
            image's alpha channel (alpha > 0.5 = object).
        max_pixels: refuse larger images before decoding.
    Returns:
        rgb (3, H, W) float32 in [0, 1] and object_mask (1, H, W) bool.
    Raises:
        InputError: missing or unreadable files, a mask of another size, no alpha and no mask,
            or a mask that selects no pixel.
    """
    rgb, alpha = read_image_rgba(image_path, max_pixels=max_pixels)
    if mask_path is not None:
        object_mask = read_mask(mask_path, size=tuple(rgb.shape[1:]), max_pixels=max_pixels)
    else:
        if bool((alpha >= 1.0).all()):
            raise InputError(
                f"--outanimate needs --object-mask MASK or an image with transparency, and {image_path} "
                "is fully opaque."
            )
        object_mask = alpha > 0.5
    if not bool(object_mask.any()):
        source = mask_path if mask_path is not None else f"the alpha channel of {image_path}"
        raise InputError(f"The object mask ({source}) selects no pixel, so there is nothing to out-animate.")
    return rgb, object_mask


def check_canvas_scale(canvas_scale: float) -> None:
    """Raise ConfigError unless 1 <= canvas_scale <= MAX_CANVAS_SCALE."""
    if not 1.0 <= canvas_scale <= MAX_CANVAS_SCALE:
        raise ConfigError(f"--canvas-scale must be between 1 and {MAX_CANVAS_SCALE:g}, got {canvas_scale}")


def place_on_canvas(
    rgb: torch.Tensor, object_mask: torch.Tensor, canvas_height: int, canvas_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre the object on an empty canvas.

    Args:
        rgb: (3, h, w) object image; object_mask: (1, h, w) bool; h <= canvas_height, w <= canvas_width.
    Returns:
        canvas (3, canvas_height, canvas_width) — the object's pixels, 0 elsewhere — and
        known (1, canvas_height, canvas_width) bool, True on the object's pixels.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
    if object_mask.shape != (1, *rgb.shape[1:]) or object_mask.dtype != torch.bool:
        raise ValueError(
            f"object_mask must be bool (1, {rgb.shape[1]}, {rgb.shape[2]}), got {tuple(object_mask.shape)}"
        )
    h, w = rgb.shape[1:]
    if h > canvas_height or w > canvas_width:
        raise ValueError(f"the object ({h}x{w}) does not fit a {canvas_height}x{canvas_width} canvas")
    top, left = (canvas_height - h) // 2, (canvas_width - w) // 2
    canvas = rgb.new_zeros(3, canvas_height, canvas_width)
    known = torch.zeros(1, canvas_height, canvas_width, dtype=torch.bool, device=rgb.device)
    canvas[:, top : top + h, left : left + w] = torch.where(object_mask, rgb, torch.zeros_like(rgb))
    known[:, top : top + h, left : left + w] = object_mask
    return canvas, known


def canvas_size(height: int, width: int, canvas_scale: float) -> tuple[int, int]:
    """(H, W) of the canvas for an object of ``height`` x ``width``: scaled, rounded to even numbers."""
    h, w = round(height * canvas_scale), round(width * canvas_scale)
    return max(2, h + h % 2), max(2, w + w % 2)


def outpaint_around_object(
    rgb: torch.Tensor,
    object_mask: torch.Tensor,
    inpainter,
    prompt: str = "",
    canvas_scale: float = 1.5,
    seed: int = 0,
    negative_prompt: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1 of out-animation: the object in the middle of a larger canvas, the rest outpainted.

    Args:
        rgb: (3, H, W) image in [0, 1] holding the object.
        object_mask: (1, H, W) bool, True on the object (everything else is replaced).
        inpainter: an Inpainter backend (already prepared if it needs training).
        prompt: what the scenery around the object should be (for inpainters that read text).
        canvas_scale: canvas side / object image side (1 = same size: only the non-object part is redrawn).
        seed: sampling seed.
    Returns:
        canvas_rgb (3, H', W') with H', W' = ``canvas_size(H, W, canvas_scale)``, the object's pixels
        exactly as given, and known_mask (1, H', W') bool, True on the object's pixels.
    """
    check_canvas_scale(canvas_scale)
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
    if object_mask.shape != (1, *rgb.shape[1:]):
        raise ValueError(
            f"object_mask must be (1, {rgb.shape[1]}, {rgb.shape[2]}), got {tuple(object_mask.shape)}"
        )
    if not bool(object_mask.any()):
        raise InputError("The object mask selects no pixel, so there is no object to out-animate.")
    H, W = canvas_size(rgb.shape[1], rgb.shape[2], canvas_scale)
    canvas, known = place_on_canvas(rgb, object_mask.bool(), H, W)
    filled = inpainter.inpaint(canvas, ~known, prompt, negative_prompt, seed=seed)
    # The object is kept bit-for-bit whatever the backend returns outside its holes.
    return torch.where(known, canvas, filled.to(canvas).clamp(0, 1)), known


def fit_object(
    rgb: torch.Tensor, object_mask: torch.Tensor, canvas_height: int, canvas_width: int, canvas_scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize the object so that ``canvas_scale`` times it is the working canvas size.

    Args:
        rgb: (3, h, w); object_mask: (1, h, w) bool; canvas_height/width: the working canvas size.
    Returns:
        rgb (3, h', w') area-resampled and object_mask (1, h', w') (nearest), h' = canvas_height / scale.
    """
    h = max(2, min(canvas_height, round(canvas_height / canvas_scale)))
    w = max(2, min(canvas_width, round(canvas_width / canvas_scale)))
    if (h, w) == tuple(rgb.shape[1:]):
        return rgb, object_mask
    mode = "area" if h < rgb.shape[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    resized = F.interpolate(rgb[None], size=(h, w), mode=mode, **kwargs)[0].clamp(0, 1)
    mask = F.interpolate(object_mask[None].float(), size=(h, w), mode="nearest")[0] > 0.5
    if not bool(mask.any()):
        raise InputError("The object mask vanishes at the working size; use a larger object or --max-side.")
    return resized, mask
