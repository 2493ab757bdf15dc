"""Small run folders for the share tests (export, view, app), made by `wanderview photo3d` itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wanderview.cli import main


def two_plane_inputs(folder: Path, w: int = 48, h: int = 32) -> tuple[Path, Path]:
    """A textured image whose centre square is a near plane (depth 2) before a far wall (depth 4)."""
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = [220, 40, 40]
    depth = np.full((h, w), 4.0, np.float32)
    depth[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 2.0
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / "img.png")
    np.save(folder / "depth.npy", depth)
    return folder / "img.png", folder / "depth.npy"


def make_run(folder: Path, scene: str = "mesh", frames: int = 3) -> Path:
    """A photo3d run folder at 48x32 with the exact two-plane depth and no inpainting, so the later
    frames keep holes (depth inf) that the exports must handle. Returns the run folder."""
    img, depth = two_plane_inputs(folder / "inputs")
    out = folder / f"run_{scene}"
    args = ["photo3d", img, "--depth", depth, "--frames", frames, "--trajectory", "swing",
            "--inpainter", "none", "--scene", scene, "-o", out, "--quiet"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    return out
