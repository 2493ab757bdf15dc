"""A quick look at a camera path: top view (x-z) and side view (z-up) as one PNG."""

from __future__ import annotations

import os

import numpy as np

from wanderview.cameras.camera import Camera


def _frustum_lines(c2w: np.ndarray, K: np.ndarray, width: int, height: int, size: float) -> list[np.ndarray]:
    """World-space line segments (each (2, 3)) of a small pyramid: centre to the 4 image corners at
    depth ``size``, plus the rectangle joining the corners."""
    corners_px = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    rays = np.linalg.solve(K, np.concatenate([corners_px, np.ones((4, 1))], axis=1).T).T  # z = 1
    corners = (rays * size) @ c2w[:3, :3].T + c2w[:3, 3]
    centre = c2w[:3, 3]
    lines = [np.stack([centre, c]) for c in corners]
    lines += [np.stack([corners[i], corners[(i + 1) % 4]]) for i in range(4)]
    return lines


def plot_trajectory(cameras: Camera, path: str | os.PathLike, title: str | None = None) -> None:
    """Write a PNG with a top view (x right, z forward up the page) and a side view (z right, up = -y
    up the page) of the camera centres, small viewing frusta, and the start marked.

    Args:
        cameras: batch (N,) or a single camera (OpenCV axes).
        path: PNG file to write.
        title: figure title (default: the number of cameras).
    """
    # a bare Figure renders with Agg and leaves pyplot's global state (and backend) alone
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cams = cameras if cameras.batch_shape else cameras[None]
    c2w = cams.cam_to_world.detach().cpu().double().numpy().reshape(-1, 4, 4)
    K = cams.K.detach().cpu().double().numpy().reshape(-1, 3, 3)
    centres = c2w[:, :3, 3]
    n = len(c2w)
    extent = float(np.ptp(centres, axis=0).max()) if n > 1 else 0.0
    size = 0.12 * extent if extent > 1e-9 else 0.1  # a still camera (zoom, pan) still shows its frusta
    colours = colormaps["viridis"](np.linspace(0.0, 1.0, n))
    # every k-th frustum keeps long paths readable; the last one is always drawn
    shown = sorted(set(range(0, n, max(1, n // 12))) | {n - 1})

    fig = Figure(figsize=(11, 5))
    axes = fig.subplots(1, 2)
    views = [
        (axes[0], (0, 2), (1.0, 1.0), "top view", "x (right)", "z (forward)"),
        (axes[1], (2, 1), (1.0, -1.0), "side view", "z (forward)", "up (-y)"),
    ]
    for ax, (a, b), (sa, sb), name, xlabel, ylabel in views:
        for i in shown:
            for seg in _frustum_lines(c2w[i], K[i], cams.width, cams.height, size):
                ax.plot(sa * seg[:, a], sb * seg[:, b], color=colours[i], linewidth=0.8, alpha=0.8)
        ax.plot(sa * centres[:, a], sb * centres[:, b], color="0.4", linewidth=1.0, zorder=2)
        ax.scatter(sa * centres[:, a], sb * centres[:, b], c=colours, s=10, zorder=3)
        ax.scatter(
            sa * centres[0, a],
            sb * centres[0, b],
            marker="*",
            s=220,
            color="crimson",
            edgecolor="k",
            zorder=4,
            label="start",
        )
        if n > 1:
            ax.scatter(
                sa * centres[-1, a],
                sb * centres[-1, b],
                marker="s",
                s=60,
                color="gold",
                edgecolor="k",
                zorder=4,
                label="end",
            )
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, linewidth=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title or f"{n} camera{'s' if n != 1 else ''} (colour = time, dark to light)")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
