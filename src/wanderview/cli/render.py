"""`wanderview render SCENE_OR_RUN --trajectory ... -o OUT`: re-render a saved scene along any path."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from wanderview.cli.common import positive_int
from wanderview.errors import ConfigError, InputError

HELP = """\
Re-render a saved scene along a camera path and write a run folder (frames/, depth/, video.mp4,
cameras.json, config.json, manifest.json).

SCENE_OR_RUN is a scene file — a 3DGS PLY (gaussians.ply), a mesh (PLY with faces, GLB), a point
cloud (PLY without faces) — or a run folder, whose scene (gaussians.ply, mesh.ply, mesh.glb or
points.ply, in that order; --scene-file picks another) is drawn from the run's first camera. A bare
scene file is drawn from a camera at the origin looking down +z (--fov, --width, --height).

--trajectory is a NAME[:key=value,...] (see `wanderview trajectory --help`; translations in units of
the scene's median depth seen from the start camera) or a camera file, whose poses are taken
relative to its first camera (as everywhere in wanderview) and whose per-frame "time" values (in a
transforms.json) reach dynamic scenes. --time T or A..B sets the time of every frame / a ramp; a
static scene ignores time (the manifest notes it).
"""

RUN_SCENES = ("gaussians.ply", "mesh.ply", "mesh.glb", "points.ply")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="re-render a saved scene (splats, mesh, points) along a camera path",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("scene", type=Path, metavar="SCENE_OR_RUN", help="scene file or run folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="run folder to write")
    p.add_argument(
        "--trajectory", default="orbit", help="NAME[:key=value,...] or a camera file (default orbit)"
    )
    p.add_argument("--frames", type=positive_int, default=48, help="frames of a named path (default 48)")
    p.add_argument("--time", default=None, help="T (every frame) or A..B (a ramp) for dynamic scenes")
    p.add_argument("--scene-file", default=None, help="in a run folder: which scene file to render")
    p.add_argument("--fov", type=float, default=55.0, help="horizontal FOV of a bare scene file (default 55)")
    p.add_argument(
        "--width", type=positive_int, default=None, help="frame width (default: the run's, or 512)"
    )
    p.add_argument(
        "--height", type=positive_int, default=None, help="frame height (default: the run's, or 512)"
    )
    p.add_argument("--fps", type=positive_int, default=24, help="video frame rate (default 24)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_times(text: str | None, count: int) -> list[float] | None:
    """``"T"`` -> [T] * count; ``"A..B"`` -> count values from A to B; None -> None."""
    if text is None:
        return None
    try:
        if ".." in text:
            a, b = (float(x) for x in text.split("..", 1))
            return [a + (b - a) * i / max(count - 1, 1) for i in range(count)]
        return [float(text)] * count
    except ValueError:
        raise ConfigError(f"--time must be a number T or a range A..B, got {text!r}") from None


def _ply_has_faces(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(f"The scene file {path} is not a PLY file.")
    for line in head[:end].decode("latin-1").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "element" and words[1] == "face":
            return words[2] != "0"
    return False


def load_scene(path: Path):
    """A scene object (GaussianScene, MeshScene or PointScene) and its kind, from a scene file."""
    from wanderview.io.gaussian_ply import is_gaussian_ply

    if not path.is_file():
        raise InputError(f"The scene file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".ply" and is_gaussian_ply(path):
        from wanderview.scenes.deformable import DEFORMATION_FILE, DeformableGaussianScene
        from wanderview.scenes.gaussians import GaussianScene

        if path.with_name(DEFORMATION_FILE).is_file():  # a fourreal run: the scene moves with --time
            return DeformableGaussianScene.load(path), "deformable gaussians"

        return GaussianScene.load(path), "gaussians"
    if suffix in (".glb", ".gltf") or (suffix == ".ply" and _ply_has_faces(path)):
        from wanderview.scenes.mesh import MeshScene

        return MeshScene.load(path), "mesh"
    if suffix == ".ply":
        from wanderview.scenes.points import PointScene

        return PointScene.load(path), "points"
    raise InputError(f"Unknown scene file {path.name}: expected a 3DGS/mesh/point PLY or a GLB.")


def _base_camera(args, run_folder: Path | None):
    """The start camera: the run's first camera, or its canonical one (a fourreal run, whose
    cameras.json names it), scaled to --width/--height; else a camera at the origin."""
    from wanderview.cameras.camera import Camera
    from wanderview.io.posed_images import find_camera_file

    camera_file = find_camera_file(run_folder) if run_folder is not None else None
    if camera_file is not None:
        from wanderview.io.cameras import read_transforms_json

        cams, _ = read_transforms_json(camera_file)
        cam = cams[_canonical_index(camera_file, len(cams))]
        return cam.scaled(args.width or cam.width, args.height or cam.height)
    if not 0 < args.fov < 180:
        raise ConfigError(f"--fov must be between 0 and 180 degrees, got {args.fov}")
    return Camera.from_fov(args.fov, args.width or 512, args.height or 512)


def _canonical_index(camera_file: Path, count: int) -> int:
    """The camera a run's paths start from: ``wanderview.canonical_frame`` of a fourreal run's
    cameras.json (its reference camera at the canonical time, where video.mp4 starts), else 0."""
    try:
        index = json.loads(Path(camera_file).read_text(encoding="utf-8")).get("wanderview", {})
        index = index.get("canonical_frame", 0) if isinstance(index, dict) else 0
    except (ValueError, AttributeError):
        return 0
    return index if isinstance(index, int) and 0 <= index < count else 0


def _file_times(spec: str) -> list[float] | None:
    """Per-frame "time" values of a transforms.json camera file (None when absent)."""
    if not spec.lower().endswith(".json") or not Path(spec).is_file():
        return None
    try:
        frames = json.loads(Path(spec).read_text(encoding="utf-8")).get("frames", [])
        times = [f.get("time") for f in frames if isinstance(f, dict)]
    except (ValueError, AttributeError):
        return None
    return [float(t) for t in times] if times and all(isinstance(t, (int, float)) for t in times) else None


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from wanderview.cameras.trajectories import make_trajectory
    from wanderview.io.cameras import write_transforms_json
    from wanderview.io.rundir import Manifest, RunDir
    from wanderview.io.video import write_video

    t_start = time.perf_counter()
    run_folder = args.scene if args.scene.is_dir() else None
    if run_folder is not None:
        names = [args.scene_file] if args.scene_file else list(RUN_SCENES)
        found = [run_folder / n for n in names if (run_folder / n).is_file()]
        if not found:
            raise InputError(f"The run folder {run_folder} has no scene file ({', '.join(names)}).")
        scene_path = found[0]
    else:
        scene_path = args.scene
    inputs = [args.scene] + ([args.trajectory] if Path(args.trajectory).is_file() else [])
    RunDir.check(args.out, overwrite=args.overwrite, inputs=inputs)
    scene, kind = load_scene(scene_path)
    base = _base_camera(args, run_folder)
    first = scene.render(base)
    finite = first.depth[torch.isfinite(first.depth)]
    scene_scale = float(finite.median()) if finite.numel() else 1.0
    cameras = make_trajectory(args.trajectory, args.frames, base, scene_scale=scene_scale)
    times = parse_times(args.time, len(cameras)) or _file_times(args.trajectory)
    if times is not None and len(times) != len(cameras):
        raise InputError(f"The camera file has {len(times)} time values for {len(cameras)} cameras.")
    manifest = Manifest(seed=None, device="cpu")
    manifest.backends = {"scene": str(scene_path), "kind": kind, "scene_scale": scene_scale}
    if times is not None and not getattr(scene, "is_dynamic", False):
        note = f"the {kind} scene is static: --time / per-frame times are ignored"
        manifest.notes.append(note)
        print(f"wanderview: note: {note}", file=sys.stderr)
    run_dir = RunDir.create(args.out, overwrite=args.overwrite, inputs=inputs)
    try:
        frames = []
        with manifest.timer("render"):
            for i, camera in enumerate(tqdm(cameras, disable=args.quiet, desc="render", unit="frame")):
                if getattr(scene, "is_dynamic", False):
                    out = scene.render(camera, time=None if times is None else times[i])
                else:
                    out = scene.render(camera)
                run_dir.write_frame(i, out.rgb, out.depth)
                frames.append(out.rgb)
        with manifest.timer("write"):
            write_video(run_dir.path("video.mp4"), frames, fps=args.fps)
            extra = {"wanderview": {"times": times}} if times is not None else None
            names = [f"frames/{k:05d}.png" for k in range(len(cameras))]
            write_transforms_json(run_dir.path("cameras.json"), cameras, names, extra=extra, times=times)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
        run_dir.write_json("config.json", config)
        manifest.frames = len(cameras)
        manifest.timings["total"] = time.perf_counter() - t_start
        manifest.write(run_dir)
        final = run_dir.finalize()
    except BaseException:
        run_dir.abort()
        raise
    fps = len(cameras) / max(manifest.timings["render"], 1e-9)
    if not math.isfinite(fps):
        fps = 0.0
    print(
        f"wrote {len(cameras)} frames of the {kind} scene ({fps:.1f} frames/s); video: {final / 'video.mp4'}"
    )
    return 0
