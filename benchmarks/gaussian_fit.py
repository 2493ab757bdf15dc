"""Gaussian fitting quality: held-out PSNR of a procedural scene, and the fit time.

The scene is ``data/synthetic.py``'s ``room`` (a closed room: every ray hits, exact colours and
depth), 15 views at 128x96 along a sideways swing with a little rotation and forward motion;
every 5th view (3 of 15) is held out. The fit starts from the depth of 4 training views (one
Gaussian per pixel of a stride-2 grid) and runs the 3DGS recipe of ``optim/gaussian_fit.py``.

Prints one JSON object: held-out and training PSNR, fit seconds (wall and CPU), iterations,
Gaussians at the start and the end, the machine's load average. ``--save DIR`` writes
held-out render | ground truth PNGs.

Usage: .venv/bin/python benchmarks/gaussian_fit.py [--iterations 3000] [--threads 2] [--save DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.io.images import write_image
from wanderview.metrics.image import psnr, ssim
from wanderview.optim.gaussian_fit import FitConfig, GaussianFitter
from wanderview.scenes.gaussians import GaussianScene


def views(name: str, n: int, width: int, height: int) -> list[Camera]:
    cam0 = default_camera(name, width, height)
    cams = []
    for i in range(n):
        t = i / (n - 1)
        angle = (t - 0.5) * 0.5
        c, s = math.cos(angle), math.sin(angle)
        pose = cam0.cam_to_world.clone()
        pose[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ pose[:3, :3]
        pose[:3, 3] += torch.tensor([(t - 0.5) * 1.0, 0.0, 0.3 * math.sin(t * math.pi)])
        cams.append(cam0.with_pose(pose))
    return cams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--scene", default="room")
    parser.add_argument("--views", type=int, default=15)
    parser.add_argument("--stride", type=int, default=2, help="init grid stride")
    parser.add_argument("--sh-degree", type=int, default=3)
    parser.add_argument("--max-gaussians", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scene = make_scene(args.scene)
    cams = views(args.scene, args.views, 128, 96)
    gt = [render_view(scene, c) for c in cams]
    test = [i for i in range(args.views) if i % 5 == 2]
    train = [i for i in range(args.views) if i not in test]
    init_views = train[:: max(1, len(train) // 4)][:4]
    gs = GaussianScene.from_rgbd([(gt[i].rgb, gt[i].depth, cams[i]) for i in init_views], stride=args.stride,
                                 max_sh_degree=args.sh_degree)  # fmt: skip
    n_start = len(gs)
    train_cams, train_images = Camera.stack([cams[i] for i in train]), torch.stack([gt[i].rgb for i in train])
    config = FitConfig(iterations=args.iterations, max_gaussians=args.max_gaussians)
    fitter = GaussianFitter(gs, train_cams, train_images, config=config)
    t0, c0 = time.perf_counter(), time.process_time()
    fitter.fit(progress=True)  # the bar goes to stderr
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    held = [gs.render(cams[i]) for i in test]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for i, out in zip(test, held):
            write_image(args.save / f"heldout_{i:02d}.png", torch.cat([out.rgb, gt[i].rgb], dim=2))
    result = {
        "scene": args.scene, "size": [128, 96], "views_train": len(train), "views_heldout": len(test),
        "iterations": args.iterations, "max_gaussians": args.max_gaussians,
        "gaussians_start": n_start, "gaussians_end": len(gs),
        "psnr_heldout": round(sum(psnr(o.rgb, gt[i].rgb) for o, i in zip(held, test)) / len(test), 2),
        "ssim_heldout": round(sum(ssim(o.rgb, gt[i].rgb) for o, i in zip(held, test)) / len(test), 4),
        "psnr_train": round(sum(psnr(gs.render(cams[i]).rgb, gt[i].rgb) for i in train) / len(train), 2),
        "fit_wall_s": round(wall, 1), "fit_cpu_s": round(cpu, 1), "threads": args.threads,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
