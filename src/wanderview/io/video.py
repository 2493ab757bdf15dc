"""Write and read H.264 mp4 videos with the ffmpeg that imageio-ffmpeg bundles.

Frames stream to ffmpeg one at a time, so a long video never sits in memory. H.264 with yuv420p
(the format every player accepts) needs even width and height: odd sizes are padded by one
row/column repeating the last one (not rescaled, so pixels stay where they were); ``read_video``
returns the padded size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import InputError
from wanderview.io.images import atomic_output, check_readable_file, error_reason, to_uint8


def _frame_to_uint8(frame: torch.Tensor | np.ndarray, index: int) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] or (H, W, 3) uint8 array -> (H, W, 3) uint8 with even H, W."""
    if isinstance(frame, torch.Tensor):
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"video frame {index} must be (3, H, W), got {tuple(frame.shape)}")
        array = to_uint8(frame)
    else:
        array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"video frame {index} must be (H, W, 3) uint8, got {array.shape} {array.dtype}")
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(array)


def write_video(
    path: str | os.PathLike,
    frames: Iterable[torch.Tensor | np.ndarray],
    fps: float = 24,
    quality: float = 8,
) -> int:
    """Write frames as an H.264 yuv420p mp4, atomically (temp file, then rename).

    Args:
        path: output ``.mp4``.
        frames: iterable of (3, H, W) float tensors in [0, 1] or (H, W, 3) uint8 arrays, all one size;
            consumed one at a time.
        fps: frames per second.
        quality: 1 (smallest file) to 10 (best); 8 maps to x264 CRF 10.

    Returns:
        the number of frames written.

    Raises:
        ValueError: no frames, frames of different sizes, or a bad quality.
    """
    import imageio_ffmpeg

    if not 1 <= quality <= 10:
        raise ValueError(f"quality must be in [1, 10], got {quality}")
    iterator = iter(frames)
    try:
        first = _frame_to_uint8(next(iterator), 0)
    except StopIteration:
        raise ValueError("write_video needs at least one frame") from None
    height, width = first.shape[:2]
    count = 0
    with atomic_output(path, suffix=Path(path).suffix or ".mp4") as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            fps=float(fps),
            quality=float(quality),
            pix_fmt_out="yuv420p",
            macro_block_size=2,  # sizes are already even; never let ffmpeg rescale
            ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            frame = first
            while True:
                if frame.shape[:2] != (height, width):
                    size = (height, width)
                    raise ValueError(f"video frame {count} is {frame.shape[:2]}, the first was {size}")
                writer.send(frame)
                count += 1
                try:
                    frame = _frame_to_uint8(next(iterator), count)
                except StopIteration:
                    break
        finally:
            writer.close()
    return count


def read_video(path: str | os.PathLike) -> list[torch.Tensor]:
    """Read every frame of a video as a list of (3, H, W) float32 tensors in [0, 1].

    Raises:
        InputError: the file is missing, empty or not a decodable video.
    """
    import imageio_ffmpeg

    path = check_readable_file(path, "video")
    frames = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        for raw in reader:
            array = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
            frames.append(torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0)
    except Exception as err:
        raise InputError(f"The video file {path} cannot be decoded ({error_reason(err)}).") from err
    return frames
