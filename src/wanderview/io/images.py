"""Read and write images and masks; the atomic-write helper every io module uses.

Images come back as float32 tensors (3, H, W) in [0, 1]; masks as bool tensors (1, H, W).

Size limit: ``read_image`` refuses images with more than ``max_pixels`` pixels (default 4096 x 4096)
*before* decoding them, from the size in the file header, so a 20000 x 20000 image costs nothing and
gives one clear sentence instead of Pillow's decompression-bomb traceback. Callers that want bigger
images pass a larger ``max_pixels`` (the CLI's ``--max-pixels``) or ``None`` for no limit.

Alpha: ``read_image`` composites RGBA on black (colour x alpha); ``read_image_rgba`` returns the
colour and the alpha separately.

16-bit colour PNG/TIFF files are decoded with OpenCV because Pillow reduces them to 8 bits; EXIF
orientation is applied by Pillow for every other file (16-bit colour files rarely carry EXIF).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from wanderview.errors import InputError

DEFAULT_MAX_PIXELS = 4096 * 4096

# Pillow's own bomb guard reads a module global; we lift it only while *we* check the size.
_PIL_GUARD_LOCK = threading.Lock()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    The rename is atomic on one file system, so readers see either the old file or the new one,
    never half of it. ``suffix`` (default: the suffix of ``path``) keeps tools that look at the
    extension (ffmpeg) happy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else suffix), dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes owner-only files; outputs get the permissions a plain open() would give
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_readable_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a non-empty regular file, else raise InputError naming ``what``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"The {what} file {path} does not exist.")
    if path.is_dir():
        raise InputError(f"The {what} path {path} is a folder, not a file.")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise InputError(f"The {what} file {path} cannot be read ({err.strerror}).") from err
    if size == 0:
        raise InputError(f"The {what} file {path} is empty (0 bytes).")
    return path


def open_image_header(path: Path, max_pixels: int | None, what: str) -> Image.Image:
    """Open an image lazily (header only) and refuse it if it has more than ``max_pixels`` pixels.

    Pillow's own decompression-bomb guard is lifted for this call only, so the refusal is ours:
    one sentence naming the size, the limit and ``--max-pixels``. ``what`` names the file in messages.
    """
    with _PIL_GUARD_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(path)
        except Exception as err:  # Pillow raises many types for bad bytes
            raise InputError(
                f"The {what} file {path} is not a readable image ({error_reason(err)})."
            ) from err
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(f"The {what} file {path} has an invalid size {width}x{height}.")
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise InputError(
            f"The {what} {path} is {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}; resize it (e.g. to 2048 px wide) or raise the limit with --max-pixels."
        )
    return image


def error_reason(err: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), for one-sentence errors."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _is_16bit_colour(path: Path, image: Image.Image) -> bool:
    """True for 16-bit-per-channel colour PNG/TIFF, which Pillow would silently reduce to 8 bits."""
    if image.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(26)
        # IHDR: bit depth at byte 24, colour type at byte 25 (2 = RGB, 6 = RGBA).
        return len(header) == 26 and header[24] == 16 and header[25] in (2, 6)
    if image.format == "TIFF":
        bits = image.tag_v2.get(258) if hasattr(image, "tag_v2") else None
        return isinstance(bits, tuple) and len(bits) >= 3 and bits[0] == 16
    return False


def _decode_16bit_colour(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError(f"The image file {path} is a 16-bit colour image that OpenCV cannot decode.")
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    array = array.astype(np.float32) / scale
    rgb = array[..., 2::-1]  # OpenCV stores BGR(A)
    alpha = array[..., 3] if array.shape[2] == 4 else None
    return np.ascontiguousarray(rgb), alpha


def _pil_to_float(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode to (H, W, 3) float32 RGB in [0, 1] and an optional (H, W) alpha."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(image).astype(np.float32)
        # 16-bit PNG/TIFF grey opens as I;16 or I; anything above 16 bits is clipped.
        grey = np.clip(grey / 65535.0, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2), None
    if mode == "F":
        grey = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3], rgba[..., 3]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb, None


def _decode(
    path: str | os.PathLike, max_pixels: int | None, what: str
) -> tuple[np.ndarray, np.ndarray | None]:
    path = check_readable_file(path, what)
    image = open_image_header(path, max_pixels, what)
    try:
        with image:
            if _is_16bit_colour(path, image):
                return _decode_16bit_colour(path)
            return _pil_to_float(image)
    except InputError:
        raise
    except Exception as err:  # truncated or corrupt pixel data surfaces only while decoding
        raise InputError(f"The {what} file {path} is damaged or truncated ({error_reason(err)}).") from err


def read_image_rgba(
    path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read any common image file (PNG, JPEG, WebP, TIFF, BMP, GIF; 8 or 16 bit; grey or colour).

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (checked from the header, before
            decoding); ``None`` for no limit.

    Returns:
        rgb: (3, H, W) float32 in [0, 1], not premultiplied, EXIF orientation applied.
        alpha: (1, H, W) float32 in [0, 1]; all ones for images without an alpha channel.

    Raises:
        InputError: the file is missing, empty, a folder, not an image, truncated, or too large.
    """
    rgb, alpha = _decode(path, max_pixels, "image")
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))
    if alpha is None:
        alpha_t = torch.ones((1, *rgb_t.shape[1:]), dtype=torch.float32)
    else:
        alpha_t = torch.from_numpy(np.ascontiguousarray(alpha))[None]
    return rgb_t.float(), alpha_t.float()


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read an image as (3, H, W) float32 in [0, 1]; transparent images are composited on black.

    See ``read_image_rgba`` for formats, ``max_pixels`` and errors.
    """
    rgb, alpha = read_image_rgba(path, max_pixels)
    return rgb * alpha


def read_mask(
    path: str | os.PathLike, size: tuple[int, int] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> torch.Tensor:
    """Read a mask image as (1, H, W) bool.

    Rule: if the file has a (not fully opaque) alpha channel, True where alpha > 0. Otherwise the
    grey value decides: True where it is above half of full range, so JPEG noise around black and
    white does not flip pixels; label images holding only 0 and 1 (max value 1/255) count every
    nonzero pixel as True.

    Args:
        path: the mask file.
        size: expected (H, W); a mask of another size raises InputError.
        max_pixels: as in ``read_image``.
    """
    rgb, alpha = _decode(path, max_pixels, "mask")
    if alpha is not None and alpha.min() < 1.0:
        mask = alpha > 0
    else:
        grey = rgb.max(axis=2)
        top = float(grey.max())
        mask = grey > 0 if 0 < top <= 1.0 / 255.0 + 1e-6 else grey > 0.5
    if size is not None and tuple(mask.shape) != tuple(size):
        raise InputError(
            f"The mask {path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but {size[1]}x{size[0]} was expected."
        )
    return torch.from_numpy(np.ascontiguousarray(mask))[None]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] (any device) -> (H, W, C) uint8, values clipped and rounded."""
    array = image.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).contiguous().numpy()


def write_image(path: str | os.PathLike, rgb: torch.Tensor) -> None:
    """Write an 8-bit image atomically; PNG unless the suffix names another format (.jpg, .webp).

    Args:
        rgb: (3, H, W) colour or (1, H, W) grey, float in [0, 1] (clipped).
    """
    if rgb.ndim != 3 or rgb.shape[0] not in (1, 3):
        raise ValueError(f"write_image expects (3, H, W) or (1, H, W), got {tuple(rgb.shape)}")
    array = to_uint8(rgb)
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def write_mask(path: str | os.PathLike, mask: torch.Tensor) -> None:
    """Write a (1, H, W) bool mask as 8-bit grey PNG, 255 where True, atomically."""
    if mask.ndim != 3 or mask.shape[0] != 1:
        raise ValueError(f"write_mask expects (1, H, W), got {tuple(mask.shape)}")
    write_image(path, mask.to(torch.float32))
