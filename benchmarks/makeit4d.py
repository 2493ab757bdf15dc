"""makeit4d speed and point-renderer quality; prints one JSON object.

Speed (outside model calls): a procedural ``boxes`` scene seen at 768x768 (the 1.5x canvas of a 512x512 input)
is cut into 3 depth layers (Ward clustering; every layer completed behind its foreground with the
canvas's own colours, as an inpainter would), the farthest layer drifts (sky preset), and frames are
rendered at 512x512 along an autocruise-like forward path:
- ``animated_points``: one frame of the animated cloud (forward + backward cloud, symmetric blend),
- ``static_points``: the same cloud without motion (one render),
- ``mesh``: the mesh renderer on the same view (grid mesh of the canvas RGBD);
``speed_512`` merges connected layers as the method does (2 layers remain), ``speed_512_3_layers_unmerged``
keeps all 3 (the same points, in three layers).

Quality: a 512x512 view of ``boxes`` and ``room`` moved along an orbit; PSNR against the ground-truth
render on co-visible pixels for ideal bilinear resampling (backward warp with the true depth), the
bilinear point splats (default), the old square splats and the mesh.

Usage: .venv/bin/python benchmarks/makeit4d.py [--runs 5] [--threads N] [--part all|speed|quality|none]
       [--run RUN_FOLDER]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from wanderview.cameras.camera import Camera
from wanderview.cameras.trajectories import make_trajectory
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.geometry.fill import fill_depth_from_background
from wanderview.geometry.ldi import assign_layers, layer_edges, merge_connected_layers
from wanderview.geometry.unproject import unproject_depth
from wanderview.geometry.warp import backward_warp
from wanderview.metrics.image import psnr
from wanderview.render.points import capture_radii, render_points
from wanderview.scenes.layered_points import EulerianAnimation, LayeredPointCloud
from wanderview.scenes.mesh import MeshScene


def timed(fn, runs: int) -> dict:
    """Median and best wall seconds, and median CPU seconds of this process (all its threads): on a
    shared machine the CPU time says what a frame costs, the wall time what it waited for cores."""
    fn()
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_s": round(statistics.median(times), 3),
        "best_s": round(min(times), 3),
        "median_cpu_s": round(statistics.median(cpu), 3),
    }


def speed(runs: int, merge: bool = True) -> dict:
    scene = make_scene("boxes")
    canvas = default_camera("boxes", 768, 768)
    view = render_view(scene, canvas)
    depth = view.depth
    edges = layer_edges(depth, num_layers=3)
    labels = assign_layers(depth, edges)
    if merge:  # the method's default; boxes' floor joins a layer, 2 remain
        labels, edges = merge_connected_layers(labels, depth, edges)
    cloud = LayeredPointCloud(canvas)
    for i in range(len(edges) - 1):
        behind = torch.where(labels >= i, depth, torch.full_like(depth, float("inf")))
        filled = fill_depth_from_background(behind, labels < i)
        alpha = labels >= i if i == len(edges) - 2 else labels == i
        cloud.add_layer(view.rgb, alpha, torch.where(labels == i, depth, filled), i)
    flow = torch.zeros(2, 768, 768)
    flow[0] = 1.0
    animation = EulerianAnimation(cloud, flow, 100, moving_layers={len(edges) - 2})
    K = canvas.K.clone()
    K[0, 2] -= 128
    K[1, 2] -= 128
    camera = Camera(K, canvas.cam_to_world, 512, 512)
    # frame 50 of a 100-frame autocruise at the default speed: 0.25 near depths into the scene
    near = float(torch.quantile(depth[torch.isfinite(depth)][::97], 0.1))
    target = make_trajectory("forward:distance=0.25", 2, camera, scene_scale=near)[1]
    mesh = MeshScene.from_rgbd(view.rgb, depth, canvas, torch.isfinite(depth))
    result = {
        "layers": len(edges) - 1,
        "points": len(cloud),
        "moving_points": animation.num_moving,
        "animated_points": timed(lambda: animation.render(target, 37), runs),
        "static_points": timed(lambda: cloud.render(target), runs),
        "mesh": timed(lambda: mesh.render(target), runs),
    }
    result["animated_vs_mesh"] = round(result["animated_points"]["median_s"] / result["mesh"]["median_s"], 2)
    return result


def run_folder(path: str, runs: int) -> dict:
    """Re-render every 5th frame of a makeit4d run folder from its layers/, flow.npy and cameras.json
    (the scene a real run animates, without its model calls)."""
    import numpy as np
    from PIL import Image

    from wanderview.io.cameras import read_transforms_json

    info = json.loads(open(f"{path}/makeit4d.json").read())
    cw, ch = info["canvas_size"]
    canvas = Camera(torch.tensor(info["canvas_K"], dtype=torch.float32), torch.eye(4), cw, ch)
    layers = []
    for i in range(info["layers"]):
        rgba = torch.from_numpy(np.array(Image.open(f"{path}/layers/layer_{i}.png").convert("RGBA"))) / 255.0
        depth = torch.from_numpy(np.load(f"{path}/layers/layer_{i}_depth.npy")).float().reshape(1, ch, cw)
        layers.append(
            (rgba[..., :3].permute(2, 0, 1).float().contiguous(), (rgba[..., 3] > 0.5)[None], depth)
        )
    cloud = LayeredPointCloud.from_layers(canvas, layers)
    flow = torch.from_numpy(np.load(f"{path}/flow.npy")).float()
    # the sky preset moves the farthest layer (its flow covers the canvas); other sources are zero outside
    # what moves
    moving = {info["layers"] - 1} if info.get("motion") == "sky" else None
    animation = EulerianAnimation(cloud, flow, info["loop_frames"], moving_layers=moving)
    cameras, _ = read_transforms_json(f"{path}/cameras.json")
    frames = list(range(0, len(cameras), 5))
    order = iter(frames * (runs + 1))

    def one_frame():
        t = next(order)
        animation.render(cameras[t], t % animation.loop)

    return {
        "points": len(cloud),
        "moving_points": animation.num_moving,
        "size": [cameras.width, cameras.height],
        "frames": len(frames),
        "animated_points_per_frame": timed(one_frame, runs * len(frames) - 1),
    }


def quality(size: int = 512) -> dict:
    out = {}
    for name in ("boxes", "room"):
        scene = make_scene(name)
        src = default_camera(name, size, size)
        view = render_view(scene, src)
        dst = make_trajectory("orbit", 9, src, scene_scale=2.0)[6]
        truth = render_view(scene, dst)
        ideal, valid = backward_warp(view.rgb, truth.depth, src, dst)
        sampled, _ = backward_warp(view.depth, truth.depth, src, dst)
        world = unproject_depth(truth.depth.clamp_max(1e6), dst.K, dst.cam_to_world).reshape(-1, 3)
        z = (world @ src.world_to_cam[:3, :3].T + src.world_to_cam[:3, 3])[:, 2].reshape(truth.depth.shape)
        co_visible = valid & torch.isfinite(truth.depth) & (z <= sampled * 1.01)
        ok = torch.isfinite(view.depth.reshape(-1))
        points = unproject_depth(view.depth, src.K, src.cam_to_world).reshape(-1, 3)[ok]
        colors, radii = view.rgb.reshape(3, -1).T[ok], capture_radii(view.depth, src.K)[ok]
        renders = {
            "bilinear_points": render_points(points, colors, dst, radii=radii),
            "square_points": render_points(points, colors, dst, radii=radii, kernel="square"),
            "mesh": MeshScene.from_rgbd(view.rgb, view.depth, src, torch.isfinite(view.depth)).render(dst),
        }
        mask = co_visible
        for r in renders.values():
            mask = mask & (r.alpha > 0.5)
        row = {"ideal_bilinear_db": round(psnr(ideal, truth.rgb, mask), 2)}
        for key, r in renders.items():
            row[f"{key}_db"] = round(psnr(r.rgb, truth.rgb, mask), 2)
        row["co_visible_fraction"] = round(float(mask.float().mean()), 3)
        out[name] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--part", choices=["all", "speed", "quality", "none"], default="all")
    parser.add_argument("--run", help="also time the animated frames of this makeit4d run folder")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"threads": torch.get_num_threads()}
    if args.part in ("all", "speed"):
        result["speed_512"] = speed(args.runs)
        result["speed_512_3_layers_unmerged"] = speed(args.runs, merge=False)
    if args.run:
        result["run_folder"] = run_folder(args.run, args.runs)
    if args.part in ("all", "quality"):
        result["quality_512_orbit"] = quality()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
