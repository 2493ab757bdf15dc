"""Read a finished run folder (docs/design.md, "The run folder") for viewing and export.

Everything goes through the ``io/`` readers: ``cameras.json`` via ``read_transforms_json``, frames via
``read_image``, depth via ``read_depth``, scenes via ``load_mesh``/``load_points``. A folder without
``cameras.json`` or without frames is not a run folder and is refused with one sentence.

The scene file is chosen in this order: Gaussians (``gaussians.ply``, the 3DGS PLY), ``mesh.ply``,
``mesh.glb``, ``points.ply``. Dynamic scenes (the time-slider hook, for fourreal's deformable
splats): a folder ``scene_t/`` with one scene file per time step, ``00000.ply``, ``00001.ply``, ...
(each a mesh, point or 3DGS PLY; the kind is read from its header), or a fourreal run's
``deformation.safetensors`` beside ``gaussians.ply`` (the Gaussians move with time: share/dynamic.py).
A fourreal run's ``cameras.json`` holds its input videos' cameras; the cameras of its frames are in
``video_cameras.json``, which is then read instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.io.cameras import read_transforms_json
from wanderview.io.depth import read_depth
from wanderview.io.images import read_image

SCENE_FILES = ("gaussians.ply", "mesh.ply", "mesh.glb", "points.ply")
TIME_DIR = "scene_t"
DEFORMATION_FILE = "deformation.safetensors"  # scenes/deformable.py's name (not imported here)
FRAME_CAMERAS = ("video_cameras.json", "cameras.json")


@dataclass
class SceneData:
    """One scene as arrays, in the run's world frame (OpenCV axes).

    Attributes:
        kind: ``"mesh"``, ``"points"`` or ``"gaussians"``.
        positions: (N, 3) float32 vertices, points or Gaussian centres.
        colors: (N, 3) float32 in [0, 1] (for Gaussians: the DC colour).
        faces: (F, 3) int64 for meshes, else None.
        gaussians: for ``"gaussians"``: a dict with ``opacities`` (N,) in [0, 1], ``scales`` (N, 3)
            world units, ``quats`` (N, 4) wxyz normalised, ``covariances`` (N, 3, 3); else None.
    """

    kind: str
    positions: np.ndarray
    colors: np.ndarray
    faces: np.ndarray | None = None
    gaussians: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(len(self.positions))


@dataclass
class RunFolder:
    """A finished run folder.

    Attributes:
        root: the folder.
        cameras: batch (N,) of every frame's camera (OpenCV axes).
        frame_paths: N colour frames (``frames/00000.png`` ...).
        depth_paths: N z-depth files, None where a frame has none.
        scene_path: the static scene file (see the module docstring), or None.
        time_paths: scene files of a dynamic scene, one per time step (empty when static).
        config, manifest: the parsed ``config.json`` / ``manifest.json`` ({} when missing).
        deformation_path: a fourreal run's ``deformation.safetensors`` beside ``gaussians.ply``
            (the scene moves with time), else None.
    """

    root: Path
    cameras: Camera
    frame_paths: list[Path]
    depth_paths: list[Path | None]
    scene_path: Path | None
    time_paths: list[Path] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    deformation_path: Path | None = None

    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def method(self) -> str:
        """The method that wrote the run (``config.json`` "method"), or "unknown"."""
        return str(self.config.get("method", "unknown"))

    def read_frame(self, index: int) -> torch.Tensor:
        """Frame ``index`` as (3, H, W) float32 in [0, 1]."""
        return read_image(self.frame_paths[index], max_pixels=None)

    def read_depth(self, index: int) -> torch.Tensor | None:
        """Frame ``index``'s z-depth (1, H, W), ``inf`` where unknown; None when the run has none."""
        path = self.depth_paths[index]
        if path is None:
            return None
        size = (self.cameras.height, self.cameras.width)
        return read_depth(path, size=size, mask_invalid=True, max_pixels=None)[0]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"The run file {path} is not valid JSON ({err}).") from err
    return data if isinstance(data, dict) else {}


def open_run(path: str | os.PathLike) -> RunFolder:
    """Open a finished run folder.

    Raises:
        InputError: ``path`` is not a folder, has no ``cameras.json``, or its frames are missing.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; pass a run folder written by a wanderview command.")
    if not (root / "cameras.json").is_file():
        raise InputError(f"{root} is not a wanderview run folder (it has no cameras.json).")
    cameras_file = next(root / n for n in FRAME_CAMERAS if (root / n).is_file())
    cameras, file_paths = read_transforms_json(cameras_file)
    frames: list[Path] = []
    for i, name in enumerate(file_paths):
        frame = root / (name if name is not None else f"frames/{i:05d}.png")
        if not frame.is_file():
            raise InputError(f"The run folder {root} is incomplete: frame {i} ({frame.name}) is missing.")
        frames.append(frame)
    depths = [root / "depth" / f"{p.stem}.npy" for p in frames]
    depth_paths = [d if d.is_file() else None for d in depths]
    scene = next((root / n for n in SCENE_FILES if (root / n).is_file()), None)
    time_dir = root / TIME_DIR
    time_paths = sorted(time_dir.glob("*.ply")) if time_dir.is_dir() else []
    deformation = root / DEFORMATION_FILE
    moving = scene is not None and scene.name == "gaussians.ply" and deformation.is_file()
    return RunFolder(
        root=root,
        cameras=cameras,
        frame_paths=frames,
        depth_paths=depth_paths,
        scene_path=scene,
        time_paths=time_paths,
        config=_read_json(root / "config.json"),
        manifest=_read_json(root / "manifest.json"),
        deformation_path=deformation if moving else None,
    )


def ply_kind(path: str | os.PathLike) -> str:
    """``"gaussians"`` (a 3DGS PLY), ``"mesh"`` (has faces) or ``"points"``, from the PLY header."""
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    end = head.find(b"end_header")
    header = head[: end if end >= 0 else len(head)].decode("ascii", errors="replace")
    if "property float f_dc_0" in header and "property float opacity" in header:
        return "gaussians"
    for line in header.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[:2] == ["element", "face"]:
            return "mesh" if int(parts[2]) > 0 else "points"
    return "points"


def load_scene(path: str | os.PathLike) -> SceneData:
    """Load a scene file (``.ply`` mesh/points/3DGS, or ``.glb``) as arrays in OpenCV world axes.

    Raises:
        InputError: unreadable or malformed file.
    """
    from wanderview.io.mesh import load_mesh, load_points

    path = Path(path)
    kind = "mesh" if path.suffix.lower() == ".glb" else ply_kind(path)
    if kind == "gaussians":
        from wanderview.share.splats import load_gaussian_scene

        return load_gaussian_scene(path)
    if kind == "mesh":
        vertices, faces, colors = load_mesh(path)
        return SceneData("mesh", vertices.numpy(), colors.numpy(), faces=faces.numpy())
    points, colors = load_points(path)
    return SceneData("points", points.numpy(), colors.numpy())


def scene_extent(run: RunFolder, scene: SceneData | None) -> float:
    """A length that sizes helpers (frustums, point size): the median depth of frame 0, else the
    scene's bounding-box diagonal / 4, else 1."""
    depth = run.read_depth(0)
    if depth is not None and bool(torch.isfinite(depth).any()):
        return float(depth[torch.isfinite(depth)].median())
    if scene is not None and len(scene):
        lo, hi = np.percentile(scene.positions, [2, 98], axis=0)
        return max(float(np.linalg.norm(hi - lo)) / 4.0, 1e-6)
    return 1.0
