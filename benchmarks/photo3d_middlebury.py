"""photo3d on the Middlebury motorcycle pair at its native 741x500: how well does the right photo
come out when the left photo and its true depth are rendered into the right camera?

The path is a camera file with the two calibrated cameras (the right one has another principal
point). Frame 1 of the run is compared with the right photo on the co-visible pixels: those the
left photo's true depth, forward-warped into the right camera (z-buffered), reaches. With
``--inpainter none`` every hole of the mesh inside that region costs PSNR; ``telea`` fills them.

    .venv/bin/python benchmarks/photo3d_middlebury.py [--inpainters none telea] [--threads 2]

Prints JSON: per inpainter, the frame size, PSNR (dB) and the co-visible and hole pixel counts.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from wanderview.cameras.camera import Camera
from wanderview.data.samples import middlebury_pair
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import read_image, read_mask, write_image
from wanderview.methods import photo3d
from wanderview.render.warp import splat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inpainters", nargs="+", default=["none", "telea"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sample = middlebury_pair()
    _, H, W = sample.left.shape
    known = torch.isfinite(sample.left_depth)
    _, reached = splat(sample.left, sample.left_depth, sample.left_camera, sample.right_camera, known)
    covisible = torch.isfinite(reached)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_image(tmp / "left.png", sample.left)
        np.save(tmp / "left_depth.npy", sample.left_depth[0].numpy())
        cameras = Camera.stack([sample.left_camera, sample.right_camera])
        write_transforms_json(tmp / "pair.json", cameras)
        right = sample.right.mul(255).round().div(255)  # 8-bit, like the frames
        for name in args.inpainters:
            config = photo3d.Config(
                image=tmp / "left.png",
                depth=tmp / "left_depth.npy",
                mask_invalid_depth=True,
                inpainter=name,
                trajectory=str(tmp / "pair.json"),
                max_side=10_000,
                device="cpu",
            )
            run = photo3d.run(config, tmp / f"run_{name}", quiet=True)
            frame = read_image(run.out_dir / "frames" / "00001.png")
            holes = read_mask(run.out_dir / "masks" / "00001.png", size=(H, W))
            mse = float(((frame - right) ** 2)[:, covisible[0]].mean())
            results[name] = {
                "frame_size": [frame.shape[2], frame.shape[1]],
                "psnr_covisible_db": round(10 * math.log10(1.0 / mse), 3),
                "covisible_px": int(covisible.sum()),
                "hole_px_in_covisible": int((holes & covisible).sum()),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
