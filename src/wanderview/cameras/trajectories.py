"""Named camera paths, keyframe interpolation, and the spec strings that choose them.

Every generator is ``fn(num_frames, **params) -> CameraPath`` with poses *relative to the input
camera*: frame 0 is the identity, OpenCV axes (x right, y down, z forward; "up" is -y), and
translations in units of ``scene_scale`` (photo3d passes the median depth of the input image, so
``forward:distance=0.3`` moves 30 % of the way into the scene; the scenescape command passes the
10th-percentile depth, the near content). A generator may also change the
focal length per frame (``focal_scale``: 1 = the input camera's focal).

Spec strings: ``"NAME"`` or ``"NAME:key=value,key=value"``, e.g. ``"orbit:angle_deg=20,depth=1.5"``.
Values are converted by the generator's signature; mistakes raise :class:`ConfigError`.
"""

from __future__ import annotations

import inspect
import math
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.errors import ConfigError, InputError


class CameraPath(NamedTuple):
    """A relative camera path.

    Attributes:
        cam_to_world: (N, 4, 4) float32 poses relative to the input camera (frame 0 = identity).
        focal_scale: (N,) float32 focal-length multipliers (frame 0 = 1).
    """

    cam_to_world: torch.Tensor
    focal_scale: torch.Tensor


# ---- small pose helpers -----------------------------------------------------------------------
def _times(num_frames: int) -> np.ndarray:
    """(N,) times from 0 to 1 (a single frame sits at 0)."""
    return np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)


def _yaw(angle: float) -> np.ndarray:
    """(3, 3) rotation about the camera's y (down) axis; positive angles turn to the right (+x)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _poses(rotations: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """(N, 4, 4) from rotations (N, 3, 3) (None = identity) and positions (N, 3)."""
    n = len(positions)
    out = np.tile(np.eye(4), (n, 1, 1))
    if rotations is not None:
        out[:, :3, :3] = rotations
    out[:, :3, 3] = positions
    return out


def _looking_at(positions: np.ndarray, target: tuple[float, float, float]) -> np.ndarray:
    """(N, 4, 4) poses at positions (N, 3) looking at ``target``, world up = -y."""
    return np.stack([look_at_pose(p, target).double().numpy() for p in positions])


def _path(poses: np.ndarray, focal_scale: np.ndarray | None = None) -> CameraPath:
    focal = np.ones(len(poses)) if focal_scale is None else focal_scale
    return CameraPath(torch.from_numpy(poses.astype(np.float32)), torch.from_numpy(focal.astype(np.float32)))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# ---- generators -------------------------------------------------------------------------------
def forward(num_frames: int, distance: float = 0.5) -> CameraPath:
    """Move straight ahead by ``distance`` (scene units) over the path."""
    z = distance * _times(num_frames)
    return _path(_poses(None, np.stack([0 * z, 0 * z, z], axis=1)))


def backward(num_frames: int, distance: float = 0.5) -> CameraPath:
    """Dolly out: move straight back by ``distance`` (scene units), revealing the surroundings."""
    return forward(num_frames, -distance)


def zoom(num_frames: int, factor: float = 2.0) -> CameraPath:
    """Stay put and scale the focal length geometrically from 1 to ``factor`` (>1 zooms in)."""
    _require(factor > 0, f"zoom factor must be positive, got {factor}")
    return _path(_poses(None, np.zeros((num_frames, 3))), factor ** _times(num_frames))


def dolly_zoom(num_frames: int, distance: float = 0.5, depth: float = 1.0) -> CameraPath:
    """Move back by ``distance`` while zooming in so a subject at ``depth`` keeps its size (vertigo)."""
    _require(depth > 0, f"dolly-zoom depth must be positive, got {depth}")
    back = distance * _times(num_frames)
    _require(bool(np.all(depth + back > 0)), "dolly-zoom would move the camera through the subject")
    positions = np.stack([0 * back, 0 * back, -back], axis=1)
    return _path(_poses(None, positions), (depth + back) / depth)


def pan(num_frames: int, angle_deg: float = 30.0) -> CameraPath:
    """Turn in place (yaw) by ``angle_deg``; positive pans right."""
    angles = np.radians(angle_deg) * _times(num_frames)
    return _path(_poses(np.stack([_yaw(a) for a in angles]), np.zeros((num_frames, 3))))


def swing(num_frames: int, amplitude: float = 0.1, depth: float = 1.0, cycles: float = 1.0) -> CameraPath:
    """Slide side to side (x = amplitude * sin) while looking at the point straight ahead at ``depth``.

    The 3D-photo "swing": parallax around the subject, which stays centred.
    """
    _require(depth > 0, f"swing depth must be positive, got {depth}")
    x = amplitude * np.sin(2 * math.pi * cycles * _times(num_frames))
    return _path(_looking_at(np.stack([x, 0 * x, 0 * x], axis=1), (0.0, 0.0, depth)))


def circle(num_frames: int, radius: float = 0.05, cycles: float = 1.0) -> CameraPath:
    """Move on a circle of ``radius`` in the image plane, looking ahead.

    The circle passes through the start (its centre is ``radius`` above the input camera).
    """
    phase = 2 * math.pi * cycles * _times(num_frames)
    positions = np.stack([radius * np.sin(phase), -radius * (1 - np.cos(phase)), 0 * phase], axis=1)
    return _path(_poses(None, positions))


def orbit(num_frames: int, angle_deg: float = 30.0, depth: float = 1.0) -> CameraPath:
    """Orbit about the vertical axis through the point at ``depth`` straight ahead, looking at it.

    Positive angles move the camera to the left, so it looks to the right.
    """
    _require(depth > 0, f"orbit depth must be positive, got {depth}")
    angles = np.radians(angle_deg) * _times(num_frames)
    positions = np.stack([-depth * np.sin(angles), 0 * angles, depth * (1 - np.cos(angles))], axis=1)
    return _path(_poses(np.stack([_yaw(a) for a in angles]), positions))


def spiral(
    num_frames: int, radius: float = 0.1, depth: float = 1.0, rotations: float = 2.0, distance: float = 0.0
) -> CameraPath:
    """Spiral out from the start to ``radius`` in ``rotations`` turns, moving ``distance`` forward,
    looking at the point at ``depth`` straight ahead (LLFF-style)."""
    _require(depth > distance, f"spiral depth ({depth}) must exceed the distance moved ({distance})")
    t = _times(num_frames)
    phase = 2 * math.pi * rotations * t
    # the radius grows linearly from 0, so the path starts at the input camera and stays smooth
    positions = np.stack([radius * t * np.cos(phase), radius * t * np.sin(phase), distance * t], axis=1)
    return _path(_looking_at(positions, (0.0, 0.0, depth)))


def scenescape(
    num_frames: int, step: float = 0.05, k: int = 5, n: int = 5, max_yaw_deg: float = 20.0, seed: int = 0
) -> CameraPath:
    """SceneScape's camera: ``k`` frames of pure backward motion, then every ``n`` frames a new random
    heading change in [-max_yaw_deg, max_yaw_deg] (seeded) is turned in evenly over those frames,
    moving ``step`` scene units per frame backward along the current heading (x-z plane only)."""
    _require(k >= 0 and n >= 1, f"scenescape needs k >= 0 and n >= 1, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    heading, turn_per_frame = 0.0, 0.0
    rotations, positions = [np.eye(3)], [np.zeros(3)]
    for i in range(1, num_frames):
        if i > k and (i - k - 1) % n == 0:
            turn_per_frame = math.radians(rng.uniform(-max_yaw_deg, max_yaw_deg)) / n
        heading += turn_per_frame
        R = _yaw(heading)
        rotations.append(R)
        positions.append(positions[-1] - step * R[:, 2])
    return _path(_poses(np.stack(rotations), np.stack(positions)))


def wonderjourney(
    num_frames: int, distance: float = 0.5, turn: float = 0.45, height: float = 0.02, cycles: float = 1.0
) -> CameraPath:
    """WonderJourney's camera: move back by ``distance`` while turning smoothly by ``turn`` radians (yaw)
    with a small sinusoidal height change of amplitude ``height`` (``cycles`` periods)."""
    t = _times(num_frames)
    eased = t * t * (3 - 2 * t)  # smoothstep: the turn starts and ends gently
    rotations = np.stack([_yaw(turn * e) for e in eased])
    back = -distance * t
    positions = rotations[:, :, 2] * back[:, None]  # backward along the turning viewing axis
    positions[:, 1] += -height * np.sin(2 * math.pi * cycles * t)
    return _path(_poses(rotations, positions))


def keyframes(num_frames: int, file: str = "") -> CameraPath:
    """Smoothly interpolate the cameras of a camera ``file`` (any format ``read_cameras`` reads),
    re-expressed relative to its first camera; translations are taken in scene units and focal
    lengths relative to the first camera."""
    _require(bool(file), "keyframes needs a camera file: keyframes:file=cams.json")
    from wanderview.io.cameras import read_cameras  # io sits beside cameras; import on use only

    # RealEstate10K files need an image size; the focal ratios do not depend on which one
    cams = read_cameras(file, width=512, height=512)
    c2w = cams.cam_to_world.double()
    relative = torch.linalg.inv(c2w[0]) @ c2w
    poses = interpolate_poses(relative, num_frames)
    fx = cams.fx.double().numpy()
    u = np.linspace(0.0, len(fx) - 1, num_frames) if num_frames > 1 else np.zeros(1)
    focal = np.interp(u, np.arange(len(fx)), fx / fx[0])
    return _path(poses.numpy(), focal)


def interpolate_poses(keyframes: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Smooth SE(3) interpolation through K keyframes.

    Rotations are slerped between neighbouring keyframes; positions follow a uniform Catmull-Rom
    spline (C1, passes through every keyframe). Frames are spread uniformly in keyframe index, so
    keyframe j lands on frame ``j * (num_frames - 1) / (K - 1)`` when that is a whole number.

    Args:
        keyframes: (K, 4, 4) rigid poses.
        num_frames: N >= 1.
    Returns:
        (N, 4, 4) poses, dtype and device of ``keyframes``.
    """
    if keyframes.ndim != 3 or keyframes.shape[1:] != (4, 4) or keyframes.shape[0] < 1:
        raise ValueError(f"keyframes must be (K, 4, 4) with K >= 1, got {tuple(keyframes.shape)}")
    if num_frames < 1:
        raise ConfigError(f"the number of frames must be at least 1, got {num_frames}")
    key = keyframes.detach().cpu().double().numpy()
    count = len(key)
    if count == 1:
        return keyframes[:1].expand(num_frames, 4, 4).clone()
    u = np.linspace(0.0, count - 1, num_frames) if num_frames > 1 else np.zeros(1)
    rotations = Slerp(np.arange(count), Rotation.from_matrix(key[:, :3, :3]))(u).as_matrix()
    points = key[:, :3, 3]
    # mirror the end points so the first and last segments have tangents too
    padded = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    seg = np.minimum(np.floor(u).astype(int), count - 2)
    s = (u - seg)[:, None]
    p0, p1, p2, p3 = padded[seg], padded[seg + 1], padded[seg + 2], padded[seg + 3]
    positions = 0.5 * (
        2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2 + (3 * p1 - p0 - 3 * p2 + p3) * s**3
    )
    out = torch.from_numpy(_poses(rotations, positions))
    return out.to(device=keyframes.device, dtype=keyframes.dtype)


TRAJECTORIES: dict[str, Callable[..., CameraPath]] = {
    "forward": forward,
    "backward": backward,
    "zoom": zoom,
    "dolly-zoom": dolly_zoom,
    "pan": pan,
    "swing": swing,
    "circle": circle,
    "orbit": orbit,
    "spiral": spiral,
    "scenescape": scenescape,
    "wonderjourney": wonderjourney,
    "keyframes": keyframes,
}


# ---- spec strings -----------------------------------------------------------------------------
def _parameters(fn: Callable) -> dict[str, tuple[type, object]]:
    """name -> (type, default) of a generator's keyword parameters (num_frames excluded)."""
    hints = typing.get_type_hints(fn)
    return {
        name: (hints[name], p.default)
        for name, p in inspect.signature(fn).parameters.items()
        if name != "num_frames"
    }


def _convert(text: str, kind: type, name: str, param: str):
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        raise ConfigError(
            f"parameter {param!r} of trajectory {name!r} must be {kind.__name__}, got {text!r}"
        ) from None


def parse_trajectory_spec(spec: str) -> tuple[str, dict]:
    """Split ``"NAME:key=value,..."`` into the generator name and typed keyword arguments.

    Names accept ``_`` for ``-`` (``dolly_zoom``). Unknown names or parameters and values of the
    wrong type raise :class:`ConfigError` listing the valid choices.
    """
    name, _, rest = spec.strip().partition(":")
    name = name.strip().lower().replace("_", "-")
    if name not in TRAJECTORIES:
        choices = ", ".join(TRAJECTORIES)
        raise ConfigError(f"unknown trajectory {name!r}; choose one of {choices} or give a camera file")
    allowed = _parameters(TRAJECTORIES[name])
    params: dict = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(f"trajectory parameter {item!r} must be written key=value")
        if key not in allowed:
            choices = ", ".join(allowed) or "none"
            raise ConfigError(f"trajectory {name!r} has no parameter {key!r}; its parameters are: {choices}")
        if key in params:
            raise ConfigError(f"trajectory parameter {key!r} is given twice")
        params[key] = _convert(value.strip(), allowed[key][0], name, key)
    return name, params


def describe_trajectories() -> str:
    """One line per trajectory with its parameters and defaults (for --help)."""
    lines = []
    for name, fn in TRAJECTORIES.items():
        params = ", ".join(f"{k}={d!r}" for k, (_, d) in _parameters(fn).items())
        summary = " ".join(inspect.getdoc(fn).split("\n\n")[0].split()).replace("``", "")
        lines.append(f"  {name}: {params}\n      {summary}")
    return "\n".join(lines)


def _single(camera: Camera) -> Camera:
    if camera.batch_shape == (1,):
        return camera[0]
    if camera.batch_shape:
        raise ValueError(f"make_trajectory needs one input camera, got a batch {tuple(camera.batch_shape)}")
    return camera


def is_camera_file(spec: str) -> bool:
    """True for a spec naming a camera file; InputError for a missing one that looks like a file."""
    name = spec.partition(":")[0].strip().lower().replace("_", "-")
    if name in TRAJECTORIES:
        return False
    if os.path.isfile(spec):
        return True
    if Path(spec).suffix.lower() in (".json", ".txt", ".npy") or os.sep in spec:
        raise InputError(f"camera file {spec} does not exist")
    return False


def make_trajectory(spec: str, num_frames: int, camera: Camera, scene_scale: float = 1.0) -> Camera:
    """The cameras (N,) of a path spec, composed with the input ``camera`` (a single camera).

    A named spec gives ``camera.cam_to_world @ relative_pose`` with translations multiplied by
    ``scene_scale`` and ``fx, fy`` multiplied by the path's focal scale (principal point kept).

    A spec that is an existing camera file is used as it is: its cameras re-expressed relative to its
    first one and composed with ``camera`` (so file camera 0 becomes the input camera), translations
    in the file's own units (``scene_scale`` is ignored: a file states actual poses), intrinsics the
    file's, scaled to the input camera's image size; ``num_frames`` is ignored and N is the file's count.
    """
    camera = _single(camera)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ConfigError(f"the number of frames must be a whole number of at least 1, got {num_frames!r}")
    if not math.isfinite(scene_scale) or scene_scale <= 0:
        raise ConfigError(f"scene_scale must be a positive number, got {scene_scale}")
    base = camera.cam_to_world
    if is_camera_file(spec):
        from wanderview.io.cameras import read_cameras  # io sits beside cameras; import on use only

        cams = read_cameras(spec, width=camera.width, height=camera.height)
        cams = cams.scaled(camera.width, camera.height)
        c2w = cams.cam_to_world.double()
        relative = (torch.linalg.inv(c2w[0]) @ c2w).to(base)
        return Camera(cams.K.to(base), base @ relative, camera.width, camera.height)
    name, params = parse_trajectory_spec(spec)
    path = TRAJECTORIES[name](num_frames, **params)
    relative = path.cam_to_world.to(base).clone()
    relative[:, :3, 3] *= scene_scale
    K = camera.K.expand(num_frames, 3, 3).clone()
    scale = path.focal_scale.to(K)
    K[:, 0, 0] *= scale
    K[:, 1, 1] *= scale
    return Camera(K, base @ relative, camera.width, camera.height)
