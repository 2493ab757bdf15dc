"""The figure of a finished ``benchmarks/fourreal.py`` run: held-out views, truth above renders.

    python benchmarks/fourreal_figure.py --out /tmp/fourreal_bench docs/images/fourreal_procedural.png

Columns: the three held-out times and cameras, then two held-out canonical views (time 0); rows:
ground truth and the run's renders. Uses the same scene, sizes and world frame as the benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.io.images import write_image
from wanderview.scenes.deformable import DeformableGaussianScene


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True, help="the benchmark's run folder")
    p.add_argument("figure", type=Path)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of each tile")
    args = p.parse_args()
    d = dynamic_dataset(args.width, args.height, 8, 12)
    scene = DeformableGaussianScene.load(args.out / "gaussians.ply")
    to_world = torch.linalg.inv(d.reference_cameras.cam_to_world[0])  # the run's world: canonical = identity
    views = list(zip(d.heldout_dynamic_cameras, d.heldout_dynamic, d.heldout_dynamic_times))
    views += [(d.heldout_static_cameras[i], d.heldout_static[i], 0.0) for i in (0, 2)]
    truth, renders = [], []
    with torch.no_grad():
        for cam, img, t in views:
            truth.append(img)
            renders.append(scene.render(cam.with_pose(to_world @ cam.cam_to_world), time=t).rgb)
    sheet = torch.cat([torch.cat(truth, 2), torch.cat(renders, 2)], 1)
    sheet = F.interpolate(sheet[None], scale_factor=args.scale, mode="nearest")[0]
    write_image(args.figure, sheet.clamp(0, 1))
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
