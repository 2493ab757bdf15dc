"""Render speed: the torch mesh rasteriser and point splatter vs Open3D's Embree ray caster.

Prints one JSON object: milliseconds per 512x512 frame (median and best of several runs after a
warm-up) for
- render_mesh on the grid mesh of a 512x512 RGBD frame (~522k triangles): the real Middlebury frame
  and a smooth procedural surface (the setting of Open3D's often-quoted ~34 ms warm cast),
- render_points on ~1M points (a 1024x1024 RGBD frame, capture-size footprints),
- Open3D RaycastingScene on the same mesh and camera (BVH build + cast, and warm cast), if importable,
and the ratios. The RGBD frame is the Middlebury motorcycle (real image, true depth; unknown depth
filled with the far background), rendered from a camera moved 5 cm right and 10 cm forward.

Usage: .venv/bin/python benchmarks/render.py [--runs 7] [--threads N] [--mesh-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np
import torch

from wanderview.data.samples import middlebury_pair
from wanderview.geometry.unproject import unproject_depth
from wanderview.render.mesh import render_mesh
from wanderview.render.points import capture_radii, render_points


def grid_faces(height: int, width: int) -> torch.Tensor:
    idx = torch.arange(height * width).view(height, width)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    return torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])


def rgbd(size: int):
    """Middlebury left view resized to size x size: rgb (3,S,S), depth (1,S,S), camera."""
    pair = middlebury_pair()
    depth = pair.left_depth[0].numpy().copy()
    depth[~np.isfinite(depth)] = float(np.nanmax(np.where(np.isfinite(depth), depth, np.nan)))
    rgb = cv2.resize(pair.left.permute(1, 2, 0).numpy(), (size, size), interpolation=cv2.INTER_AREA)
    depth = cv2.resize(depth, (size, size), interpolation=cv2.INTER_NEAREST)
    camera = pair.left_camera.scaled(size, size)
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), torch.from_numpy(depth)[None], camera


def timed(fn, runs: int) -> dict:
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    # CPU time (all threads) is reported too: on a shared machine wall time swings with the load
    return {
        "median_ms": round(statistics.median(times), 1),
        "best_ms": round(min(times), 1),
        "median_cpu_ms": round(statistics.median(cpu), 1),
    }


def smooth_rgbd(size: int, camera):
    """A procedural smooth surface (no depth discontinuities) with the Middlebury camera."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    depth = (3.0 + 0.5 * torch.sin(6 * xx) * torch.cos(4 * yy))[None]
    rgb = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(20 * xx * yy)])
    return rgb, depth, camera


def mesh_entry(rgb, depth, camera, target, runs: int) -> dict:
    """render_mesh and (if importable) Open3D ray casting of one grid mesh."""
    vertices = unproject_depth(depth, camera.K).reshape(-1, 3)
    faces = grid_faces(depth.shape[1], depth.shape[2])
    colors = rgb.reshape(3, -1).T.contiguous()
    entry = {"triangles": int(faces.shape[0])}
    with torch.no_grad():
        entry["render_mesh"] = timed(lambda: render_mesh(vertices, faces, colors, target), runs)
        coverage = render_mesh(vertices, faces, colors, target).alpha.mean()
        entry["render_mesh"]["coverage"] = round(float(coverage), 4)
    try:
        import open3d as o3d
    except ImportError:
        entry["open3d"] = "not installed"
        return entry
    verts_np = vertices.numpy().astype(np.float32)
    faces_np = faces.numpy().astype(np.uint32)
    intrinsic = o3d.core.Tensor(target.K.double().numpy())
    extrinsic = o3d.core.Tensor(target.world_to_cam.double().numpy())

    def build_and_cast():
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(verts_np), o3d.core.Tensor(faces_np))
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            intrinsic, extrinsic, target.width, target.height
        )
        return scene, rays, scene.cast_rays(rays)

    scene, rays, _ = build_and_cast()
    entry["open3d_build_and_cast"] = timed(build_and_cast, runs)
    entry["open3d_warm_cast"] = timed(lambda: scene.cast_rays(rays), runs)
    mesh_ms = entry["render_mesh"]["median_ms"]
    for peer in ("open3d_build_and_cast", "open3d_warm_cast"):
        entry[f"ratio_render_mesh_vs_{peer}"] = round(mesh_ms / entry[peer]["median_ms"], 2)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--mesh-only", action="store_true", help="skip the point splatting timings")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rgb, depth, camera = rgbd(512)
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([0.05, 0.0, 0.10])
    target = camera.with_pose(pose)
    result = {"threads": torch.get_num_threads(), "size": [512, 512]}
    # real depth has discontinuities: the grid mesh then holds long stretched faces, hard on a BVH
    result["mesh_middlebury"] = mesh_entry(rgb, depth, camera, target, args.runs)
    result["mesh_smooth"] = mesh_entry(*smooth_rgbd(512, camera), target, args.runs)
    if args.mesh_only:
        print(json.dumps(result))
        return
    with torch.no_grad():
        rgb_1k, depth_1k, camera_1k = rgbd(1024)
        points = unproject_depth(depth_1k, camera_1k.K).reshape(-1, 3)
        point_colors = rgb_1k.reshape(3, -1).T.contiguous()
        radii = capture_radii(depth_1k, camera_1k.K)
        result["points"] = int(points.shape[0])
        hard = lambda: render_points(points, point_colors, target, radii=radii)  # noqa: E731
        soft = lambda: render_points(points, point_colors, target, radii=radii, soft=True)  # noqa: E731
        result["render_points"] = timed(hard, args.runs)
        result["render_points_soft"] = timed(soft, max(3, args.runs // 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
