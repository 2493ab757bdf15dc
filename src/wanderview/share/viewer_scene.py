"""What the viewer shows, as plain data: the viser calls for a scene and a camera path, and the
conversions between wanderview cameras and viser's viewport camera. No server is needed here, so
every function is tested without a browser (``share/viewer.py`` applies the calls to a server).

viser uses OpenCV camera axes like wanderview (x right, y down, z forward): a camera's ``wxyz`` is
the rotation of its cam_to_world pose, ``position`` its centre, ``fov`` the *vertical* field of
view in radians. The run's world is its first camera's frame, so "up" is world -y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from wanderview.cameras.camera import Camera
from wanderview.share.run import RunFolder, SceneData

UP_DIRECTION = "-y"
THUMB_WIDTH = 160
MAX_VIEW_POINTS = 2_000_000


@dataclass(frozen=True)
class SceneCall:
    """One call ``server.scene.<method>(name, **kwargs)``.

    Attributes:
        method: a viser ``SceneApi`` method name (``add_point_cloud``, ``add_mesh_trimesh``, ...).
        name: the scene-tree node name (``/scene``, ``/cameras/00003``, ...).
        kwargs: keyword arguments (arrays as NumPy).
    """

    method: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def rotation_to_wxyz(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a 3x3 rotation matrix (Shepperd's method, w >= 0).

    Args:
        rotation: (3, 3) orthonormal, det +1.
    Returns:
        (4,) float64.
    """
    R = np.asarray(rotation, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"rotation must be (3, 3), got {R.shape}")
    trace = np.trace(R)
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + R[i, i] - R[j, j] - R[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def wxyz_to_rotation(wxyz: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a quaternion (w, x, y, z) (normalised first). Returns (3, 3) float64."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def camera_view(camera: Camera) -> dict[str, Any]:
    """viser viewport state of one wanderview camera: ``wxyz`` (4,), ``position`` (3,), ``fov``
    (vertical, radians) and ``aspect`` (width / height)."""
    pose = camera.cam_to_world.reshape(4, 4).detach().cpu().double().numpy()
    fy = float(camera.fy.reshape(-1)[0])
    return {
        "wxyz": rotation_to_wxyz(pose[:3, :3]),
        "position": pose[:3, 3].copy(),
        "fov": 2.0 * math.atan(camera.height / (2.0 * fy)),
        "aspect": camera.width / camera.height,
    }


def view_camera(wxyz: np.ndarray, position: np.ndarray, fov: float, width: int, height: int) -> Camera:
    """The wanderview camera (width x height, square pixels, centred principal point) that sees what a
    viser viewport with rotation ``wxyz`` (4,), centre ``position`` (3,) and vertical ``fov`` sees."""
    pose = np.eye(4)
    pose[:3, :3] = wxyz_to_rotation(wxyz)
    pose[:3, 3] = np.asarray(position, dtype=np.float64)
    focal = height / (2.0 * math.tan(fov / 2.0))
    return Camera.from_focal(focal, width, height, torch.from_numpy(pose).float())


def _rgb_uint8(colors: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(colors) * 255.0), 0, 255).astype(np.uint8)


def point_size(run: RunFolder, extent: float) -> float:
    """World size of one point: about 1.5 pixels of the first camera at the scene's median depth."""
    fx = float(run.cameras.fx.reshape(-1)[0])
    return 1.5 * extent / fx


def scene_calls(scene: SceneData, name: str, size: float, *, visible: bool = True,
                max_points: int = MAX_VIEW_POINTS) -> list[SceneCall]:
    """The viser calls that show ``scene`` under node ``name``.

    Meshes go through ``add_mesh_trimesh`` (the only viser call with per-vertex colours); points
    through ``add_point_cloud`` (at most ``max_points``, seeded subsample); Gaussians through
    ``add_gaussian_splats`` (experimental in viser 1.1) *and*, hidden, ``add_point_cloud`` of their
    centres under ``name + "_points"`` as the fallback the viewer can switch to.

    Args:
        scene: the scene arrays; name: node name; size: point size in world units.
    """
    from wanderview.share.export import subsample

    if scene.kind == "mesh":
        import trimesh

        rgba = np.concatenate([_rgb_uint8(scene.colors), np.full((len(scene), 1), 255, np.uint8)], 1)
        mesh = trimesh.Trimesh(scene.positions, scene.faces, vertex_colors=rgba, process=False)
        # no shadows: the scene's colours are already lit, and shadow maps are slow on big meshes
        kwargs = {"mesh": mesh, "visible": visible, "cast_shadow": False, "receive_shadow": False}
        return [SceneCall("add_mesh_trimesh", name, kwargs)]
    keep = subsample(len(scene), max_points)
    points = SceneCall("add_point_cloud", name, {
        "points": scene.positions[keep].astype(np.float32), "colors": _rgb_uint8(scene.colors[keep]),
        "point_size": size, "point_shape": "square", "precision": "float32", "visible": visible,
    })  # fmt: skip
    if scene.kind == "points":
        return [points]
    g = scene.gaussians or {}
    splats = SceneCall("add_gaussian_splats", name, {
        "centers": scene.positions.astype(np.float32), "covariances": g["covariances"].astype(np.float32),
        "rgbs": scene.colors.astype(np.float32),
        "opacities": g["opacities"].reshape(-1, 1).astype(np.float32),
        "visible": visible,
    })  # fmt: skip
    fallback = SceneCall("add_point_cloud", name + "_points", {**points.kwargs, "visible": False})
    return [splats, fallback]


def thumbnail(rgb: torch.Tensor, width: int = THUMB_WIDTH) -> np.ndarray:
    """(3, H, W) float -> (h, width, 3) uint8 (area-downscaled; never upscaled)."""
    from wanderview.io.images import to_uint8

    H, W = rgb.shape[1:]
    if W > width:
        h = max(1, round(H * width / W))
        rgb = torch.nn.functional.interpolate(rgb[None], size=(h, width), mode="area")[0]
    return to_uint8(rgb)


def frustum_scale(centres: np.ndarray, extent: float) -> float:
    """Frustum depth: twice the median step between consecutive cameras, so neighbours barely
    overlap, kept within 2-10 % of the scene's extent. ``centres``: (N, 3)."""
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1) if len(centres) > 1 else np.zeros(0)
    step = float(np.median(steps)) if len(steps) else extent
    return float(np.clip(2.0 * step, 0.02 * extent, 0.1 * extent))


def camera_path_calls(run: RunFolder, extent: float, thumb_width: int = THUMB_WIDTH) -> list[SceneCall]:
    """Frustums of every frame's camera with the frame as its picture (``/cameras/NNNNN``), and the
    path through their centres (``/cameras/path``, when there are 2+ frames).

    Args:
        extent: a scene length (``share.run.scene_extent``) that bounds the frustum size.
    """
    views = [camera_view(run.cameras[i]) for i in range(len(run))]
    centres = np.stack([v["position"] for v in views])
    scale = frustum_scale(centres, extent)
    calls = []
    for i, view in enumerate(views):
        calls.append(SceneCall("add_camera_frustum", f"/cameras/{i:05d}", {
            "fov": view["fov"], "aspect": view["aspect"], "scale": scale,
            "image": thumbnail(run.read_frame(i), thumb_width), "wxyz": view["wxyz"],
            "position": view["position"], "color": (255, 140, 0) if i == 0 else (40, 40, 40),
            "cast_shadow": False, "receive_shadow": False,
        }))  # fmt: skip
    if len(centres) >= 2:
        segments = np.stack([centres[:-1], centres[1:]], axis=1).astype(np.float32)  # (N-1, 2, 3)
        calls.append(SceneCall("add_line_segments", "/cameras/path", {
            "points": segments, "colors": (255, 140, 0), "thickness": 2.0, "thickness_units": "screen",
        }))  # fmt: skip
    return calls


def apply_calls(scene_api: Any, calls: list[SceneCall]) -> dict[str, Any]:
    """Run each call on ``scene_api`` (a viser ``SceneApi``); returns the handles by node name."""
    return {call.name: getattr(scene_api, call.method)(call.name, **call.kwargs) for call in calls}
