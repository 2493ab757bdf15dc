"""Read and write depth maps: .npy, 16-bit PNG, PFM and single-channel TIFF; previews.

Units and kinds (``read_depth``):
  * the file's raw value times ``scale`` is the quantity stored: ``kind="depth"`` gives z-depth;
  * ``kind="disparity"`` turns raw values into depth as ``depth = scale / raw`` — so for stereo
    disparity in pixels pass ``scale = focal_px * baseline``; with the default 1.0, disparity = 1/depth.

Invalid pixels are NaN, +-inf, zero or negative values (in either kind). By default they raise an
InputError saying how many there are and where; ``mask_invalid=True`` keeps them as depth ``inf``
with ``valid`` False, the project's marker of "nothing known here".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import InputError
from wanderview.io.images import (
    DEFAULT_MAX_PIXELS,
    atomic_output,
    check_readable_file,
    error_reason,
    open_image_header,
)

DEPTH_SUFFIXES = (".npy", ".png", ".pfm", ".tif", ".tiff")


# ----------------------------------------------------------------------------- PFM


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file as float32 (H, W) (``Pf``, grey) or (H, W, 3) (``PF``, colour), top row first.

    The header's scale sign gives the byte order (negative = little-endian); rows are stored bottom-up.
    """
    path = check_readable_file(path, "PFM")
    data = path.read_bytes()
    match = re.match(rb"(P[Ff])\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", data[:256])
    if match is None:
        raise InputError(f"The file {path} is not a PFM file (bad header).")
    channels = 3 if match.group(1) == b"PF" else 1
    width, height = int(match.group(2)), int(match.group(3))
    try:
        scale = float(match.group(4))
    except ValueError as err:
        raise InputError(f"The PFM file {path} has an unreadable scale in its header.") from err
    if width == 0 or height == 0 or scale == 0 or not np.isfinite(scale):
        raise InputError(f"The PFM file {path} has an invalid header ({width}x{height}, scale {scale}).")
    count = width * height * channels
    body = data[match.end() :]
    if len(body) < 4 * count:
        raise InputError(f"The PFM file {path} is truncated: {width}x{height}x{channels} floats expected.")
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    array = np.frombuffer(body, dtype=dtype, count=count).astype(np.float32)
    array = array.reshape(height, width, channels)[::-1]
    return np.ascontiguousarray(array[..., 0] if channels == 1 else array)


def write_pfm(path: str | os.PathLike, array: torch.Tensor | np.ndarray) -> None:
    """Write a float PFM atomically (little-endian, rows bottom-up as the format requires).

    Args:
        array: (H, W) or (1, H, W) grey, or (3, H, W) colour; tensors or arrays.
    """
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if values.ndim == 3 and values.shape[0] in (1, 3):
        values = values.transpose(1, 2, 0)
    elif values.ndim == 2:
        values = values[..., None]
    else:
        raise ValueError(f"write_pfm expects (H, W), (1, H, W) or (3, H, W), got {tuple(values.shape)}")
    height, width, channels = values.shape
    header = f"{'PF' if channels == 3 else 'Pf'}\n{width} {height}\n-1.0\n".encode("ascii")
    body = np.ascontiguousarray(values[::-1].astype("<f4")).tobytes()
    with atomic_output(path) as tmp:
        tmp.write_bytes(header + body)


# ----------------------------------------------------------------------------- reading


def _load_raw(path: Path, max_pixels: int | None) -> np.ndarray:
    """The file's values as float64, shape (H, W) or whatever (wrong) shape the file holds."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        _check_npy_header(path, max_pixels)
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as err:
            raise InputError(
                f"The depth file {path} is not a readable .npy array ({error_reason(err)})."
            ) from err
        if array.dtype.kind not in "fiub":
            raise InputError(f"The depth file {path} holds {array.dtype} values, not numbers.")
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        return array.astype(np.float64)
    if suffix == ".pfm":
        return read_pfm(path).astype(np.float64)
    if suffix in (".png", ".tif", ".tiff"):
        image = open_image_header(path, max_pixels, "depth")
        try:
            with image:
                if image.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F", "L"):
                    raise InputError(
                        f"The depth image {path} has {len(image.getbands())} channels ({image.mode}); "
                        "a depth map must be a single-channel (e.g. 16-bit grey) image."
                    )
                return np.asarray(image).astype(np.float64)
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"The depth file {path} is damaged or truncated ({error_reason(err)}).") from err
    raise InputError(
        f"The depth file {path} has an unsupported format; use one of {', '.join(DEPTH_SUFFIXES)}."
    )


def _check_npy_header(path: Path, max_pixels: int | None) -> None:
    """Refuse .npy files whose header promises more data than the file holds, or too many pixels.

    Checked before ``np.load`` so a damaged header cannot make numpy allocate a huge array.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            body = path.stat().st_size - f.tell()
    except Exception as err:
        raise InputError(
            f"The depth file {path} is not a readable .npy array ({error_reason(err)})."
        ) from err
    count = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if count * dtype.itemsize > body:
        raise InputError(f"The depth file {path} is truncated: its header promises shape {shape} of {dtype}.")
    if max_pixels is not None and count > max_pixels:
        raise InputError(
            f"The depth file {path} has {count} values, more than the limit of {max_pixels}; "
            "resize it or raise the limit with --max-pixels."
        )


def _where(bad: np.ndarray, limit: int = 3) -> str:
    """Describe where the True pixels of ``bad`` (H, W) are: bounding box and the first few (x, y)."""
    ys, xs = np.nonzero(bad)
    first = ", ".join(f"({x}, {y})" for x, y in zip(xs[:limit], ys[:limit]))
    return f"x {xs.min()}-{xs.max()}, y {ys.min()}-{ys.max()}; first at (x, y) {first}"


def read_depth(
    path: str | os.PathLike,
    kind: str = "depth",
    scale: float = 1.0,
    size: tuple[int, int] | None = None,
    mask_invalid: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a depth or disparity map and return z-depth.

    Args:
        path: ``.npy`` ((H, W) or (1, H, W)), 16-bit (or 8-bit) grey ``.png``, ``.pfm`` (grey) or
            single-channel ``.tif``.
        kind: ``"depth"`` (depth = raw x scale) or ``"disparity"`` (depth = scale / raw).
        scale: see ``kind``; must be positive.
        size: expected (H, W), e.g. the image's; another size raises InputError.
        mask_invalid: keep NaN/inf/zero/negative values as invalid pixels instead of raising.
        max_pixels: refuse larger images before decoding (PNG/TIFF).

    Returns:
        depth: (1, H, W) float32 z-depth, ``inf`` where invalid.
        valid: (1, H, W) bool.

    Raises:
        InputError: missing/unreadable file, channels, wrong size, or invalid values (see mask_invalid).
    """
    if kind not in ("depth", "disparity"):
        raise InputError(f'The depth kind must be "depth" or "disparity", not "{kind}".')
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"The depth scale must be a positive number, not {scale}.")
    path = check_readable_file(path, "depth")
    raw = _load_raw(path, max_pixels)
    if raw.ndim != 2:
        raise InputError(
            f"The depth file {path} holds an array of shape {tuple(raw.shape)}; expected (H, W) or (1, H, W) "
            "with a single channel."
        )
    if raw.shape[0] == 0 or raw.shape[1] == 0:
        raise InputError(f"The depth file {path} is empty (shape {tuple(raw.shape)}).")
    if size is not None and tuple(raw.shape) != tuple(size):
        raise InputError(
            f"The depth map {path} is {raw.shape[1]}x{raw.shape[0]} (WxH) but the image is "
            f"{size[1]}x{size[0]}; resize it to match."
        )
    with np.errstate(invalid="ignore"):
        nan, inf = np.isnan(raw), np.isinf(raw)
        zero, negative = raw == 0, (raw < 0) & ~inf
    bad = nan | inf | zero | negative
    if bad.any() and not mask_invalid:
        counts = [
            f"{int(m.sum())} {name}"
            for m, name in ((nan, "NaN"), (inf, "infinite"), (zero, "zero"), (negative, "negative"))
            if m.any()
        ]
        raise InputError(
            f"The {kind} map {path} has {int(bad.sum())} invalid pixels ({', '.join(counts)}) "
            f"at {_where(bad)}; fix them or pass --mask-invalid-depth to treat them as unknown."
        )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        depth = raw * scale if kind == "depth" else scale / raw
    valid = ~bad & np.isfinite(depth) & (depth > 0)
    depth = np.where(valid, depth, np.inf).astype(np.float32)
    valid &= np.isfinite(depth)  # values beyond float32 range became inf
    return torch.from_numpy(depth)[None], torch.from_numpy(valid)[None]


# ----------------------------------------------------------------------------- writing


def _depth_2d(depth: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    values = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise ValueError(f"{name} expects depth (1, H, W) or (H, W), got {tuple(values.shape)}")
    return values.astype(np.float32)


def write_depth(path: str | os.PathLike, depth: torch.Tensor | np.ndarray) -> None:
    """Write depth (1, H, W) or (H, W) as a float32 (H, W) ``.npy`` atomically; ``inf`` is kept."""
    values = _depth_2d(depth, "write_depth")
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, values)


def depth_to_png16(path: str | os.PathLike, depth: torch.Tensor | np.ndarray, scale: float = 0.001) -> None:
    """Write depth as a 16-bit grey PNG holding round(depth / scale), atomically.

    ``read_depth(path, scale=scale)`` reads it back. Invalid depth (inf, NaN, <= 0) is stored as 0,
    which ``read_depth(..., mask_invalid=True)`` reports as invalid.

    Args:
        depth: (1, H, W) or (H, W).
        scale: depth units per PNG step (default 0.001: millimetres for depth in metres).

    Raises:
        ValueError: a finite depth needs more than 65535 steps (choose a larger ``scale``).
    """
    from PIL import Image

    values = _depth_2d(depth, "depth_to_png16").astype(np.float64)
    valid = np.isfinite(values) & (values > 0)
    steps = np.where(valid, np.round(np.where(valid, values, 0) / scale), 0)
    if steps.max(initial=0) > 65535:
        raise ValueError(
            f"depth {values[valid].max():.4g} / scale {scale} exceeds the 16-bit range; use a larger scale"
        )
    image = Image.fromarray(steps.astype(np.uint16))
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        image.save(f, format="PNG")


def colorize_depth(depth: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Colour a depth map for previews: turbo colormap on disparity, near = red, far = blue.

    Disparity is normalised between its 2nd and 98th percentile over valid pixels, so one
    outlier does not wash the preview out. Invalid pixels (``inf``, NaN, <= 0, or ``valid`` False)
    are black.

    Args:
        depth: (1, H, W) z-depth.
        valid: optional (1, H, W) bool.

    Returns:
        (3, H, W) float32 in [0, 1] on the device of ``depth``.
    """
    if depth.ndim != 3 or depth.shape[0] != 1:
        raise ValueError(f"colorize_depth expects depth (1, H, W), got {tuple(depth.shape)}")
    ok = torch.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= valid.to(torch.bool)
    disp = torch.where(ok, 1.0 / depth.float().clamp_min(1e-12), torch.zeros_like(depth, dtype=torch.float32))
    if ok.any():
        chosen = disp[ok]
        if chosen.numel() > 1_000_000:  # quantile has an input size limit; a subsample is enough
            chosen = chosen[torch.linspace(0, chosen.numel() - 1, 1_000_000, device=chosen.device).long()]
        low, high = torch.quantile(chosen, torch.tensor([0.02, 0.98], device=depth.device))
        disp = ((disp - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    index = (disp[0] * 255).round().long()
    colors = _turbo_lut(depth.device)[index].permute(2, 0, 1)
    return torch.where(ok, colors, torch.zeros_like(colors))


def _turbo_lut(device: torch.device) -> torch.Tensor:
    """(256, 3) float32 turbo colormap (from matplotlib, imported only for previews)."""
    from matplotlib import colormaps

    table = colormaps["turbo"](np.linspace(0.0, 1.0, 256))[:, :3]
    # turbo runs blue (low) -> red (high); high disparity = near = red.
    return torch.tensor(table, dtype=torch.float32, device=device)
