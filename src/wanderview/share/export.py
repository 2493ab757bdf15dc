"""Export a run folder for other tools: a nerfstudio dataset, a GLB/PLY scene, Gaussian splats.

- ``nerfstudio``: ``images/frame_00000.png`` (the run's frames), ``transforms.json`` (OpenGL axes,
  ``fl_x fl_y cx cy w h``, relative ``file_path``), ``depth/frame_00000.npy`` with a
  ``depth_file_path`` per frame when the run has depth, and ``sparse_pc.ply`` (``ply_file_path``,
  splatfacto's initial points) from the scene. Depth is stored in *milli-units* (z-depth x 1000,
  0 where unknown): nerfstudio multiplies every depth file by ``depth_unit_scale_factor``, whose
  default is 1e-3, so a user who trains on the folder gets the run's units back without any flag.
- ``glb``: the mesh (or the points) with vertex colours, in glTF's y-up axes (``io.mesh``).
- ``ply``: the mesh or points in the run's OpenCV world axes.
- ``splat``: the 3DGS PLY (``share.splats``).

Every export is atomic: a folder is built in a hidden staging folder and renamed into place, a file
is written to a temporary name first; an existing output is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from wanderview.errors import InputError, OutputError
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import atomic_output
from wanderview.io.rundir import RunDir
from wanderview.share.run import RunFolder, SceneData, load_scene

FORMATS = ("nerfstudio", "glb", "ply", "splat")
DEPTH_UNIT_SCALE = 1e-3  # nerfstudio's default depth_unit_scale_factor
MAX_INIT_POINTS = 200_000


def check_output_file(out: Path, suffix: str, overwrite: bool) -> None:
    """Refuse an output file with the wrong suffix, a folder, or an existing file without overwrite."""
    if out.suffix.lower() != suffix:
        raise OutputError(f"The output file {out} must end in {suffix}.")
    if out.is_dir():
        raise OutputError(f"The output path {out} is a folder; give a file name ending in {suffix}.")
    if out.exists() and not overwrite:
        raise OutputError(f"The output file {out} exists; pass --overwrite to replace it.")
    if not out.parent.is_dir():
        raise OutputError(f"The folder of the output file {out} does not exist.")


def run_scene(run: RunFolder) -> SceneData:
    """The run's static scene (see ``share.run``).

    Raises:
        InputError: the run has no scene file.
    """
    if run.scene_path is None:
        raise InputError(f"The run folder {run.root} has no scene file (mesh.ply, mesh.glb or points.ply).")
    return load_scene(run.scene_path)


def subsample(count: int, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``limit`` of ``count`` items, sorted, seeded (all of them when few)."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False))


def export_nerfstudio(run: RunFolder, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a nerfstudio dataset folder (see the module docstring).

    Returns:
        the finished folder.
    """
    from wanderview.io.depth import write_depth
    from wanderview.io.mesh import save_points

    staging = RunDir.create(out, overwrite=overwrite)
    try:
        images = [f"images/frame_{i:05d}.png" for i in range(len(run))]
        for src, name in zip(run.frame_paths, images):
            shutil.copyfile(src, staging.path(name))
        depth_names: list[str | None] = []
        for i in range(len(run)):
            depth = run.read_depth(i)
            if depth is None:
                depth_names.append(None)
                continue
            name = f"depth/frame_{i:05d}.npy"
            milli = depth / DEPTH_UNIT_SCALE
            write_depth(staging.path(name), milli.where(milli.isfinite(), 0.0))
            depth_names.append(name)
        extra = {"depth_unit_scale_factor": DEPTH_UNIT_SCALE}
        if run.scene_path is not None:
            scene = run_scene(run)
            keep = subsample(len(scene), MAX_INIT_POINTS)
            if len(keep):
                save_points(staging.path("sparse_pc.ply"), scene.positions[keep], scene.colors[keep])
                extra["ply_file_path"] = "sparse_pc.ply"
        target = staging.path("transforms.json")
        write_transforms_json(target, run.cameras, images, extra=extra)
        data = json.loads(target.read_text(encoding="utf-8"))
        for frame, depth_name in zip(data["frames"], depth_names):
            if depth_name is not None:
                frame["depth_file_path"] = depth_name
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        staging.abort()
        raise
    return staging.finalize()


def export_glb(run: RunFolder, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the run's scene as GLB (y-up): a coloured mesh, or a coloured point cloud."""
    out = Path(out)
    check_output_file(out, ".glb", overwrite)
    scene = run_scene(run)
    if scene.kind == "mesh":
        from wanderview.io.mesh import save_mesh

        save_mesh(out, scene.positions, scene.faces, scene.colors)
        return out
    import trimesh

    from wanderview.io.mesh import GLTF_FROM_OPENCV

    rgba = np.concatenate([np.round(scene.colors * 255), np.full((len(scene), 1), 255)], 1).astype(np.uint8)
    cloud = trimesh.PointCloud(scene.positions @ GLTF_FROM_OPENCV.T, colors=rgba)
    data = trimesh.Scene(cloud).export(file_type="glb")
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    return out


def export_ply(run: RunFolder, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the run's scene as PLY in OpenCV world axes: a mesh (with faces) or points."""
    from wanderview.io.mesh import save_mesh, save_points

    out = Path(out)
    check_output_file(out, ".ply", overwrite)
    scene = run_scene(run)
    if scene.kind == "mesh":
        save_mesh(out, scene.positions, scene.faces, scene.colors)
    else:
        save_points(out, scene.positions, scene.colors)
    return out


def export_run(run: RunFolder, to: str, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Export ``run`` in format ``to`` (one of ``FORMATS``) to ``out``; returns what was written."""
    if to == "nerfstudio":
        return export_nerfstudio(run, out, overwrite)
    if to == "glb":
        return export_glb(run, out, overwrite)
    if to == "ply":
        return export_ply(run, out, overwrite)
    if to == "splat":
        from wanderview.share.splats import export_splat

        return export_splat(run, out, overwrite)
    raise InputError(f"Unknown export format {to!r}; choose one of {', '.join(FORMATS)}.")
