"""Per-frame overhead of SceneScape outside the model calls, at 512x512 (target <= 0.5 s on 2 cores).

Measured per frame: the anti-aliased mesh render (2x supersampling, blur, downsample), the
floating-artifact fix, the mask handling (3x3 opening + Telea on the thin difference), and the
mesh update (unproject, stitch, stretched-face filter), plus the amortised pruning and sub-pixel
decimation (``--subpixel``, 0 = off, to compare face counts), and the amortised resume
checkpoint (``--checkpoint-every K``: the state ``wanderview scenescape`` saves, written with the run
folder's atomic ``save_state`` every K frames; 1 = the old every-frame save, 0 = none). Model calls
(inpainting, depth) are replaced by exact ground truth from a procedural room, so only the
method's own work is timed. The camera follows the paper's path (backward, then random pans).

    .venv/bin/python benchmarks/scenescape.py [--size 512] [--frames 12] [--threads 2] [--subpixel 1]
        [--checkpoint-every 5]

Prints JSON with per-stage medians (seconds) and the mesh size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from wanderview.backends.classical import OpenCVInpainter
from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import make_trajectory
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.geometry.masks import open_mask
from wanderview.io.rundir import RunDir
from wanderview.methods.common import scene_scale
from wanderview.methods.scenescape import Config
from wanderview.scenes.scenescape_mesh import SceneScapeMesh, floating_artifact_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subpixel", type=float, default=1.0, help="decimation (0 = off)")
    parser.add_argument("--checkpoint-every", type=int, default=5, help="save state every K frames (0 = off)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    S = args.size
    scene = make_scene("room", seed=0)
    # the paper's camera: focal 500 px at 512 px, posed like the room's default view
    start = Camera.from_focal(500.0 * S / 512, S, S, cam_to_world=default_camera("room", S, S).cam_to_world)
    first = render_view(scene, start)
    # the path unit of `wanderview scenescape`: the near (10th-percentile) depth of the first frame
    unit = scene_scale(first.depth, Config.path_unit_quantile)
    cams = make_trajectory("scenescape:seed=0", args.frames, start, scene_scale=unit)
    mesh = SceneScapeMesh(supersample=2)
    mesh.add_frame(first.rgb, first.depth, cams[0], torch.ones_like(first.depth, dtype=torch.bool))
    telea = OpenCVInpainter("telea", radius=3)
    stages: dict[str, list[float]] = {
        k: [] for k in ("render", "floating_fix", "mask", "mesh_update", "prune", "checkpoint", "total")
    }
    staging = RunDir.create(Path(tempfile.mkdtemp()) / "run")
    prev_depth = first.depth
    for i in range(1, args.frames):
        cam = cams[i]
        truth = render_view(scene, cam)  # stands in for the inpainter and the depth model
        t0 = time.perf_counter()
        view = mesh.render(cam)
        face_id = view.face_id
        t1 = time.perf_counter()
        holes = view.holes | floating_artifact_mask(prev_depth, cams[i - 1], cam, view.depth)
        t2 = time.perf_counter()
        opened = open_mask(holes, 3)
        thin = holes & ~opened
        frame = telea.inpaint(view.rgb, thin) if bool(thin.any()) else view.rgb
        t3 = time.perf_counter()
        frame = torch.where(opened, truth.rgb, frame)
        depth = torch.where(holes, truth.depth, view.depth)
        t4 = time.perf_counter()
        mesh.add_frame(frame, depth, cam, holes, face_id)
        t5 = time.perf_counter()
        if i % 5 == 0 and i + 1 < len(cams):
            mesh.prune(cams[i + 1 :])
            if args.subpixel > 0:
                mesh.decimate(cams[i + 1 :], args.subpixel)
        t6 = time.perf_counter()
        if args.checkpoint_every and (i + 1) % args.checkpoint_every == 0:
            state = {"mesh": mesh.state_dict(), "prev_rgb": frame, "prev_depth": depth}
            staging.save_state("scenescape", state)
        t7 = time.perf_counter()
        for key, value in zip(
            stages, (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5, t7 - t6, t7 - t0 - (t4 - t3)), strict=True
        ):
            stages[key].append(value)
        prev_depth = depth
    result = {
        "size": S,
        "frames": args.frames,
        "threads": args.threads,
        "subpixel": args.subpixel,
        "checkpoint_every": args.checkpoint_every,
        "median_s": {k: round(statistics.median(v), 4) for k, v in stages.items()},
        "mean_s": {k: round(statistics.fmean(v), 4) for k, v in stages.items()},
        "per_frame_total_s": [round(v, 3) for v in stages["total"]],
        "final_faces": len(mesh),
        "final_vertices": int(mesh.vertices.shape[0]),
        "target_total_s": 0.5,
    }
    staging.abort()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
