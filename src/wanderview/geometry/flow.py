"""Eulerian motion fields (pixels per frame) and their integration (Make-It-4D §3.4, Holynski et al.).

An Eulerian flow F (2, H, W) says how far the content at each pixel moves per frame, constant in time.
Sources, all on the CPU:
- :func:`constant_flow`: one vector inside a mask;
- :func:`hints_flow`: 3D-Cinemagraphy's labelme-style hints (a polygon mask and arrows), densified by
  Gaussian-weighted averaging of the arrows;
- :func:`median_flow`: the per-pixel median optical flow (OpenCV DIS or Farneback) of a short clip;
and :func:`euler_positions` integrates F (a pixel that leaves the image restarts at its origin).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wanderview.errors import InputError

HINT_SPEED_DIVISOR = 50.0
"""An arrow of length l pixels means l / 50 pixels per frame (3D-Cinemagraphy's hint convention)."""


def _check_flow(flow: torch.Tensor) -> None:
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must be (2, H, W), got {tuple(flow.shape)}")


def constant_flow(mask: torch.Tensor, vector: Sequence[float]) -> torch.Tensor:
    """(2, H, W) flow: ``vector`` (dx, dy) px/frame where ``mask`` (1, H, W) bool is True, 0 elsewhere."""
    if mask.ndim != 3 or mask.shape[0] != 1:
        raise ValueError(f"mask must be (1, H, W), got {tuple(mask.shape)}")
    if len(vector) != 2:
        raise ValueError(f"vector must be two numbers (dx, dy), got {vector!r}")
    v = torch.tensor([float(vector[0]), float(vector[1])], dtype=torch.float32, device=mask.device)
    return v[:, None, None] * mask.float()


def parse_vector(text: str, what: str = "--motion-vector") -> tuple[float, float]:
    """'DX,DY' -> (dx, dy); InputError with one sentence otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} must be two numbers DX,DY (pixels per frame), got {text!r}")
    return values[0], values[1]


def _polygon_mask(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    import cv2

    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(poly - 0.5).astype(np.int32)], 1)
    return mask.astype(bool)


def read_hints(
    path: str | Path, height: int, width: int
) -> tuple[torch.Tensor, list[tuple[np.ndarray, np.ndarray]]]:
    """Read a labelme-style hints file, scaled to a height x width image.

    Polygons (``shape_type`` 'polygon') mark what moves; lines ('line', 'linestrip', or 2-point
    shapes) are arrows from their first to their last point. ``imageWidth``/``imageHeight`` give the
    size the coordinates refer to (default: the target size).

    Returns:
        mask (1, H, W) bool (all True when the file has no polygon) and a list of arrows
        (start (2,), end (2,)) in target pixels.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        shapes = data["shapes"]
        src_w = float(data.get("imageWidth") or width)
        src_h = float(data.get("imageHeight") or height)
        sx, sy = width / src_w, height / src_h
        polygons, arrows = [], []
        for shape in shapes:
            pts = np.asarray(shape["points"], dtype=np.float64).reshape(-1, 2) * [sx, sy]
            if not np.isfinite(pts).all():
                raise ValueError("non-finite point")
            kind = shape.get("shape_type", "polygon" if len(pts) > 2 else "line")
            if kind == "polygon" and len(pts) >= 3:
                polygons.append(pts)
            elif kind in ("line", "linestrip") or len(pts) == 2:
                arrows.append((pts[0], pts[-1]))
    except FileNotFoundError:
        raise InputError(f"the motion hints file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"the motion hints file {path} is not a labelme-style JSON of shapes ({err})"
        ) from None
    if not arrows:
        raise InputError(f"the motion hints file {path} has no arrow (a 'line' shape from start to end)")
    mask = _polygon_mask(polygons, height, width) if polygons else np.ones((height, width), bool)
    return torch.from_numpy(mask)[None], arrows


def hints_flow(
    mask: torch.Tensor, arrows: list[tuple[np.ndarray, np.ndarray]], seed: int = 0, blur_px: int = 15
) -> torch.Tensor:
    """Densify arrows into a flow: Σ_k w_k m_k / Σ_k w_k inside the (blurred) mask.

    Arrow k gives m_k = (end - start) / 50 px per frame and the weight
    w_k(p) = exp(-(|p - start_k| / σ_k)^2), σ_k drawn (seeded) from [H / (2K), 2H / K].

    Args:
        mask: (1, H, W) bool, what moves.
        arrows: K arrows (start (2,), end (2,)) in pixels.
        seed: seeds the σ_k.
        blur_px: Gaussian blur (kernel side, odd) of the mask, so motion fades out at its border.
    Returns:
        (2, H, W) float32 flow.
    """
    _, H, W = mask.shape
    K = len(arrows)
    rng = np.random.default_rng(seed)
    sigmas = rng.uniform(H / (2 * K), 2 * H / K, size=K)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    num = np.zeros((2, H, W))
    den = np.full((H, W), 1e-12)
    for (start, end), sigma in zip(arrows, sigmas, strict=True):
        w = np.exp(-(((xs - start[0]) ** 2 + (ys - start[1]) ** 2) / sigma**2))
        m = (np.asarray(end) - np.asarray(start)) / HINT_SPEED_DIVISOR
        num += w[None] * m[:, None, None]
        den += w
    weight = mask[0].numpy().astype(np.float32)
    if blur_px > 1:
        import cv2

        weight = cv2.GaussianBlur(weight, (blur_px | 1, blur_px | 1), 0)
    return torch.from_numpy((num / den[None]) * weight[None]).float()


def median_flow(frames: Sequence[torch.Tensor], method: str = "dis") -> torch.Tensor:
    """The per-pixel median optical flow between consecutive frames of a clip.

    Args:
        frames: T >= 2 images (3, H, W) in [0, 1].
        method: 'dis' (OpenCV DIS, medium preset) or 'farneback'.
    Returns:
        (2, H, W) float32 flow in pixels per frame at the clip's size.
    """
    import cv2

    if len(frames) < 2:
        raise InputError(f"a motion clip needs at least 2 frames, got {len(frames)}")
    if method not in ("dis", "farneback"):
        raise ValueError(f"method must be 'dis' or 'farneback', got {method!r}")
    gray = [
        cv2.cvtColor((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
        for f in frames
    ]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None
    flows = []
    for a, b in zip(gray[:-1], gray[1:], strict=True):
        if dis is not None:
            flow = dis.calc(a, b, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        flows.append(flow)
    med = np.median(np.stack(flows), axis=0)  # (H, W, 2)
    return torch.from_numpy(np.ascontiguousarray(med.transpose(2, 0, 1))).float()


def optical_flow(first: torch.Tensor, second: torch.Tensor, upscale: int = 1) -> torch.Tensor:
    """Dense optical flow from ``first`` to ``second`` (OpenCV DIS, medium preset).

    Args:
        first, second: (3, H, W) images in [0, 1].
        upscale: run DIS on frames upscaled by this factor (sub-pixel accuracy on small frames).
    Returns:
        (2, H, W) float32 flow in pixels of the input size: the content at pixel p of ``first``
        is at p + flow[:, p] in ``second``.
    """
    import cv2

    H, W = first.shape[1:]

    def gray(image: torch.Tensor) -> np.ndarray:
        g = (image.mean(0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        return g if upscale == 1 else cv2.resize(g, (W * upscale, H * upscale), interpolation=cv2.INTER_CUBIC)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = torch.from_numpy(dis.calc(gray(first), gray(second), None)).permute(2, 0, 1).float()
    return resize_flow(flow, H, W)


def chained_tracks(frames: torch.Tensor, start: int, max_error_px: float = 0.5, upscale: int = 2
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Where each pixel of frame ``start`` is in every other frame, by chaining flow frame to frame.

    Each link is checked forward-backward: a track ends (invalid from there on) when the round trip
    misses by more than ``max_error_px`` (occlusion, disocclusion, unreliable flow) or it leaves
    the image. Chaining neighbours keeps each link's motion small, which DIS needs.

    Args:
        frames: (R, 3, H, W) in [0, 1] (a video); start: the frame the tracks begin in.
    Returns:
        displacement (R, 2, H, W) in pixels from the start position (0 at ``start``) and valid
        (R, H, W) bool.
    """
    R, _, H, W = frames.shape
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    origin = torch.stack([xs, ys]).reshape(2, -1)
    disp = torch.zeros(R, 2, H * W)
    valid = torch.zeros(R, H * W, dtype=torch.bool)
    valid[start] = True
    for direction in (1, -1):
        pos, alive = origin.clone(), torch.ones(H * W, dtype=torch.bool)
        for i in range(start + direction, R if direction == 1 else -1, direction):
            ahead = optical_flow(frames[i - direction], frames[i], upscale)
            back = optical_flow(frames[i], frames[i - direction], upscale)
            new = pos + sample_flow(ahead, pos)
            alive &= (new + sample_flow(back, new) - pos).norm(dim=0) <= max_error_px
            alive &= (new[0] >= 0) & (new[0] < W) & (new[1] >= 0) & (new[1] < H)
            pos = new
            disp[i], valid[i] = pos - origin, alive
    return disp.reshape(R, 2, H, W), valid.reshape(R, H, W)


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resample (2, h, w) flow to (2, height, width), scaling the vectors with the image."""
    _check_flow(flow)
    h, w = flow.shape[1:]
    if (h, w) == (height, width):
        return flow
    out = F.interpolate(flow[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    return out * torch.tensor([width / w, height / h], dtype=flow.dtype)[:, None, None]


def sample_flow(flow: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear flow (2, N) at pixel positions (2, N) (x, y with pixel centres at +0.5); 0 outside."""
    _, H, W = flow.shape
    grid = torch.stack([positions[0] / W * 2 - 1, positions[1] / H * 2 - 1], dim=-1)[None, None]
    out = F.grid_sample(flow[None], grid.to(flow), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0, :, 0]


def divergence(flow: torch.Tensor) -> torch.Tensor:
    """(H, W) divergence dFx/dx + dFy/dy of a flow (2, H, W) (central differences, one-sided at borders)."""
    _check_flow(flow)
    return torch.gradient(flow[0], dim=1)[0] + torch.gradient(flow[1], dim=0)[0]


def euler_states(
    flow: torch.Tensor, steps: int, origins: torch.Tensor | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Like :func:`euler_positions`, also tracking how much the area around each point has grown.

    The log of the local area scale follows d(log a)/dt = div F along the path (a restart resets it).
    Splatting uses it to enlarge points that the flow spreads apart, so divergent motion does not open
    gaps between them.

    Yields:
        steps + 1 pairs (positions (2, N), log_area (N,)).
    """
    _check_flow(flow)
    _, H, W = flow.shape
    if origins is None:
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=flow.dtype) + 0.5, torch.arange(W, dtype=flow.dtype) + 0.5, indexing="ij"
        )
        origins = torch.stack([xs.reshape(-1), ys.reshape(-1)])
    field = torch.cat([flow, divergence(flow)[None]])  # one bilinear lookup gives both
    pos, log_area = origins.clone(), torch.zeros(origins.shape[1], dtype=flow.dtype)
    yield pos, log_area
    for _ in range(steps):
        sampled = sample_flow(field, pos)
        pos, log_area = pos + sampled[:2], log_area + sampled[2]
        left = (pos[0] < 0) | (pos[0] > W) | (pos[1] < 0) | (pos[1] > H)
        pos = torch.where(left[None], origins, pos)
        log_area = torch.where(left, torch.zeros_like(log_area), log_area)
        yield pos, log_area


def euler_positions(
    flow: torch.Tensor, steps: int, origins: torch.Tensor | None = None
) -> Iterator[torch.Tensor]:
    """Positions after 0, 1, ..., steps Euler steps p <- p + F(p), with restart of leavers.

    A position that leaves the image [0, W] x [0, H] restarts at its origin, so content keeps
    streaming in from where it started instead of the region emptying.

    Args:
        flow: (2, H, W) px/frame.
        steps: number of steps to integrate.
        origins: (2, N) start positions in pixels (default: every pixel centre, row-major).
    Yields:
        steps + 1 tensors (2, N), the first one being ``origins``.
    """
    for pos, _ in euler_states(flow, steps, origins):
        yield pos


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Colour-wheel picture of a flow: hue = direction, saturation = speed (white = still).

    Args:
        flow: (2, H, W).
        max_magnitude: speed shown fully saturated (default: the largest speed).
    Returns:
        (3, H, W) float32 in [0, 1].
    """
    import cv2

    _check_flow(flow)
    fx, fy = flow[0].numpy(), flow[1].numpy()
    mag = np.hypot(fx, fy)
    top = max_magnitude if max_magnitude else float(mag.max())
    hsv = np.zeros((*mag.shape, 3), np.uint8)
    hsv[..., 0] = ((np.degrees(np.arctan2(fy, fx)) % 360) / 2).astype(np.uint8)
    hsv[..., 1] = np.clip(mag / max(top, 1e-9) * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
