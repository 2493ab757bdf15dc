"""Camera files in and out: nerfstudio ``transforms.json``, RealEstate10K ``.txt``, LLFF ``poses_bounds.npy``.

Inside wanderview every pose is an OpenCV ``cam_to_world`` (x right, y down, z forward). Each format
has its own axes, converted here and nowhere else:

- nerfstudio / NeRF ``transforms.json``: OpenGL camera axes (x right, y up, z backward), so
  ``c2w_file = c2w_opencv @ diag(1, -1, -1, 1)`` (the same matrix converts back).
- RealEstate10K: OpenCV axes, but the file holds the *world-to-camera* 3x4 matrix, and the
  intrinsics are divided by the image width (fx, cx) and height (fy, cy).
- LLFF ``poses_bounds.npy``: the 3x3 rotation columns are the camera's [down, right, backward] axes
  in world coordinates, i.e. ``[y_cv, x_cv, -z_cv]``; the converse is ``[x_cv, y_cv, z_cv] =
  [col1, col0, -col2]``. The 5th column is ``[H, W, focal]`` (one focal, principal point at the centre).

Round trips are exact: the numbers written are the float32 values held (JSON and .txt print them
with ``repr`` precision, .npy stores float64), and world-to-camera inverses are taken in float64.
Every reader turns a malformed file into :class:`~wanderview.errors.InputError` naming the file.
A pose is refused unless its rotation is orthonormal and right-handed, a 4x4 ends in the row
(0, 0, 0, 1), and every translation is below ``MAX_TRANSLATION`` (1e8 units: beyond it float32
cannot resolve a scene unit, squared distances overflow and metrics such as the translation error
turn into 0 or NaN).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError
from wanderview.io.images import atomic_output

_GL_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_ORTHONORMAL_TOL = 1e-2  # loose: catches garbage, accepts poses stored with few digits
MAX_TRANSLATION = 1e8  # scene units; see the module docstring


# ---- shared helpers ---------------------------------------------------------------------------
def _as_batch(cameras: Camera) -> Camera:
    """A single camera as a batch of one; batches must be 1-D."""
    if not cameras.batch_shape:
        return cameras[None]
    if len(cameras.batch_shape) != 1:
        raise ValueError(f"expected a camera batch of shape (N,), got {tuple(cameras.batch_shape)}")
    return cameras


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder so no half-written file is left."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"cannot read camera file {path}: {err.strerror or err}") from None


def _check_pose(c2w: np.ndarray, where: str) -> None:
    """Reject non-finite or non-rigid (4, 4) poses with a sentence naming ``where``."""
    if not np.all(np.isfinite(c2w)) or not np.all(np.isfinite(c2w.astype(np.float32))):
        raise InputError(f"{where} has a non-finite or out-of-range pose")
    R = c2w[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=_ORTHONORMAL_TOL) or np.linalg.det(R) < 0:
        raise InputError(f"{where} has a rotation that is not orthonormal and right-handed")
    if not np.allclose(c2w[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise InputError(f"{where} has a 4x4 pose whose last row is not (0, 0, 0, 1)")
    if np.abs(c2w[:3, 3]).max() > MAX_TRANSLATION:
        limit = f"{MAX_TRANSLATION:g}"
        raise InputError(f"{where} has a translation beyond {limit} scene units (float32 loses precision)")


def _check_intrinsics(values: Sequence[float], where: str) -> None:
    if not all(math.isfinite(v) and abs(v) < 3e38 for v in values):
        raise InputError(f"{where} has non-finite intrinsics")
    if values[0] <= 0 or values[1] <= 0:
        raise InputError(f"{where} has a focal length that is not positive")


def _intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _camera(Ks: list[np.ndarray], c2ws: list[np.ndarray], width: int, height: int) -> Camera:
    return Camera(
        torch.from_numpy(np.stack(Ks).astype(np.float32)),
        torch.from_numpy(np.stack(c2ws).astype(np.float32)),
        width,
        height,
    )


def _number(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} has no number for {what}")
    try:
        return float(value)
    except OverflowError:  # a JSON integer too large for a float
        raise InputError(f"{where} has an out-of-range {what}") from None


def _size(value, what: str, where: str) -> int:
    number = _number(value, what, where)
    if not number.is_integer() or not 0 < number < 1e6:
        raise InputError(f"{where} has an invalid image {what} {value!r}")
    return int(number)


# ---- nerfstudio transforms.json ---------------------------------------------------------------
def write_transforms_json(
    path: str | os.PathLike,
    cameras: Camera,
    file_paths: Sequence[str] | None = None,
    extra: dict | None = None,
    times: Sequence[float] | None = None,
) -> None:
    """Write cameras (N,) as a nerfstudio ``transforms.json`` (OpenGL axes in the file).

    Intrinsics shared by every frame go at the top level (``fl_x fl_y cx cy w h``); when they differ,
    each frame carries its own ``fl_x fl_y cx cy``. Skew in ``K`` is not representable and is dropped.

    Args:
        path: file to write (replaced atomically).
        cameras: batch (N,) or a single camera.
        file_paths: N image paths stored as each frame's ``file_path``; None writes none.
        extra: more top-level keys (e.g. ``{"wanderview": {...}}``); may not override the camera keys.
        times: N per-frame ``time`` values (dynamic scenes; what ``render --trajectory FILE`` reads).
    """
    cameras = _as_batch(cameras)
    n = len(cameras)
    if file_paths is not None and len(file_paths) != n:
        raise ValueError(f"file_paths has {len(file_paths)} entries for {n} cameras")
    if times is not None and len(times) != n:
        raise ValueError(f"times has {len(times)} entries for {n} cameras")
    K = cameras.K.detach().cpu().double().numpy()
    c2w_gl = cameras.cam_to_world.detach().cpu().double().numpy() @ _GL_FROM_CV
    fields = np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], axis=1)
    shared = bool(np.all(fields == fields[:1]))
    data: dict = {"camera_model": "OPENCV", "w": cameras.width, "h": cameras.height}
    if shared:
        data.update(zip(("fl_x", "fl_y", "cx", "cy"), (float(v) for v in fields[0])))
    frames = []
    for i in range(n):
        frame: dict = {}
        if file_paths is not None:
            frame["file_path"] = str(file_paths[i])
        if not shared:
            frame.update(zip(("fl_x", "fl_y", "cx", "cy"), (float(v) for v in fields[i])))
        frame["transform_matrix"] = [[float(v) for v in row] for row in c2w_gl[i]]
        if times is not None:
            frame["time"] = float(times[i])
        frames.append(frame)
    for key, value in (extra or {}).items():
        if key in data or key == "frames":
            raise ValueError(f"extra key {key!r} would overwrite a camera key of transforms.json")
        data[key] = value
    data["frames"] = frames
    text = json.dumps(data, indent=2)
    _atomic_write(Path(path), lambda handle: handle.write(text.encode("utf-8")))


def read_transforms_json(
    path: str | os.PathLike, width: int | None = None, height: int | None = None
) -> tuple[Camera, list[str | None]]:
    """Read a nerfstudio (or original NeRF) ``transforms.json``.

    Per-frame ``fl_x fl_y cx cy w h`` override the top-level ones; ``camera_angle_x`` (NeRF
    synthetic) is accepted instead of ``fl_x``; ``width``/``height`` are used when the file has no
    ``w``/``h``. Every frame must have the same image size.

    Returns:
        cameras: batch (N,) in OpenCV axes; file_paths: N entries (None where a frame has none).
    """
    name = Path(path).name
    try:
        data = json.loads(_read_bytes(Path(path)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(f"{name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise InputError(f"{name} is not a JSON object with a 'frames' list")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{name} has no non-empty 'frames' list")
    Ks, c2ws, paths, sizes = [], [], [], set()
    for i, frame in enumerate(frames):
        where = f"frame {i} of {name}"
        if not isinstance(frame, dict):
            raise InputError(f"{where} is not a JSON object")
        merged = {**data, **frame}
        w = merged.get("w", width)
        h = merged.get("h", height)
        if w is None or h is None:
            raise InputError(f"{where} has no image size (w, h); pass width and height")
        w, h = _size(w, "width", where), _size(h, "height", where)
        sizes.add((w, h))
        if "fl_x" not in merged and "camera_angle_x" in merged:
            angle = _number(merged["camera_angle_x"], "camera_angle_x", where)
            if not 0.0 < angle < math.pi:
                raise InputError(f"{where} has camera_angle_x outside (0, pi)")
            merged["fl_x"] = 0.5 * w / math.tan(0.5 * angle)
        if "fl_x" not in merged:
            raise InputError(f"{where} has no focal length (fl_x or camera_angle_x)")
        fx = _number(merged["fl_x"], "fl_x", where)
        fy = _number(merged.get("fl_y", fx), "fl_y", where)
        cx = _number(merged.get("cx", w / 2.0), "cx", where)
        cy = _number(merged.get("cy", h / 2.0), "cy", where)
        _check_intrinsics((fx, fy, cx, cy), where)
        matrix = frame.get("transform_matrix")
        try:
            c2w_gl = np.array(matrix, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            c2w_gl = None
        if c2w_gl is None or c2w_gl.shape != (4, 4):
            raise InputError(f"{where} has no 4x4 transform_matrix")
        c2w = c2w_gl @ _GL_FROM_CV
        _check_pose(c2w, where)
        Ks.append(_intrinsics(fx, fy, cx, cy))
        c2ws.append(c2w)
        file_path = frame.get("file_path")
        paths.append(str(file_path) if file_path is not None else None)
    if len(sizes) != 1:
        raise InputError(f"frames of {name} have different image sizes {sorted(sizes)}; wanderview needs one")
    (w, h), = sizes
    return _camera(Ks, c2ws, w, h), paths


# ---- RealEstate10K .txt -----------------------------------------------------------------------
def read_re10k(path: str | os.PathLike, width: int, height: int) -> tuple[Camera, torch.Tensor]:
    """Read a RealEstate10K camera file for images of ``width`` x ``height`` pixels.

    Line 1 is the video URL; every further non-empty line is ``timestamp fx fy cx cy 0 0`` followed by
    the 12 numbers of a row-major 3x4 world-to-camera matrix (OpenCV axes); fx, cx are divided by the
    image width and fy, cy by the height in the file.

    Returns:
        cameras: batch (N,); timestamps: (N,) int64 (microseconds in the original data set).
    """
    name = Path(path).name
    if int(width) <= 0 or int(height) <= 0:
        raise InputError(f"reading {name} needs a positive image size, got {width}x{height}")
    try:
        lines = _read_bytes(Path(path)).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{name} is not a text file") from None
    rows = [line for line in lines[1:] if line.strip()]
    if not rows:
        raise InputError(f"{name} has no camera lines after the URL line")
    Ks, c2ws, stamps = [], [], []
    for i, line in enumerate(rows):
        where = f"camera line {i + 1} of {name}"
        parts = line.split()
        if len(parts) != 19:
            raise InputError(f"{where} has {len(parts)} numbers instead of 19")
        try:
            stamp = int(parts[0])
            values = [float(p) for p in parts[1:]]
        except ValueError:
            raise InputError(f"{where} holds something that is not a number") from None
        if abs(stamp) >= 2**63:
            raise InputError(f"{where} has an out-of-range timestamp")
        fx, fy, cx, cy = values[0] * width, values[1] * height, values[2] * width, values[3] * height
        _check_intrinsics((fx, fy, cx, cy), where)
        w2c = np.eye(4)
        w2c[:3, :] = np.array(values[6:], dtype=np.float64).reshape(3, 4)
        if not np.all(np.isfinite(w2c)) or abs(np.linalg.det(w2c[:3, :3])) < 1e-6:
            raise InputError(f"{where} has a singular or non-finite world-to-camera matrix")
        # a general inverse (not R^T) so that write(read(x)) reproduces x to float64 precision
        c2w = np.linalg.inv(w2c)
        _check_pose(c2w, where)
        Ks.append(_intrinsics(fx, fy, cx, cy))
        c2ws.append(c2w)
        stamps.append(stamp)
    return _camera(Ks, c2ws, int(width), int(height)), torch.tensor(stamps, dtype=torch.int64)


def write_re10k(
    path: str | os.PathLike,
    cameras: Camera,
    timestamps: Sequence[int] | torch.Tensor | None = None,
    url: str = "",
) -> None:
    """Write cameras (N,) as a RealEstate10K ``.txt`` (URL line, then one line per camera).

    ``timestamps`` (N,) integers default to 0, 1, 2, ...; ``url`` is the first line.
    """
    cameras = _as_batch(cameras)
    n = len(cameras)
    stamps = list(range(n)) if timestamps is None else [int(t) for t in torch.as_tensor(timestamps).tolist()]
    if len(stamps) != n:
        raise ValueError(f"timestamps has {len(stamps)} entries for {n} cameras")
    if "\n" in url:
        raise ValueError("the RealEstate10K url must be a single line")
    K = cameras.K.detach().cpu().double().numpy()
    w2c = np.linalg.inv(cameras.cam_to_world.detach().cpu().double().numpy())
    lines = [url]
    for i in range(n):
        intr = (K[i, 0, 0] / cameras.width, K[i, 1, 1] / cameras.height,
                K[i, 0, 2] / cameras.width, K[i, 1, 2] / cameras.height, 0.0, 0.0)
        numbers = [*intr, *w2c[i, :3, :].reshape(-1)]
        lines.append(" ".join([str(stamps[i])] + [repr(float(v)) for v in numbers]))
    text = "\n".join(lines) + "\n"
    _atomic_write(Path(path), lambda handle: handle.write(text.encode("utf-8")))


# ---- LLFF poses_bounds.npy --------------------------------------------------------------------
def read_llff(path: str | os.PathLike) -> tuple[Camera, torch.Tensor]:
    """Read an LLFF ``poses_bounds.npy`` of shape (N, 17).

    Each row is a 3x5 matrix ``[R | t | hwf]`` flattened row-major (R columns = camera [down, right,
    backward] axes, see the module docstring) followed by the near and far depth bounds.

    Returns:
        cameras: batch (N,) in OpenCV axes, principal point at the image centre; bounds: (N, 2) float32.
    """
    name = Path(path).name
    raw = _read_bytes(Path(path))
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception:  # numpy raises many kinds of errors on bad headers; all mean "not an .npy"
        raise InputError(f"{name} is not a NumPy .npy file") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0:
        raise InputError(f"{name} must hold an (N, 17) array, got shape {getattr(array, 'shape', None)}")
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name} does not hold numbers")
    array = array.astype(np.float64)
    Ks, c2ws, sizes = [], [], set()
    for i, row in enumerate(array):
        where = f"pose {i} of {name}"
        m = row[:15].reshape(3, 5)
        h, w, focal = m[:, 4]
        if not np.all(np.isfinite(m[:, 4])) or not (0 < h < 1e6 and 0 < w < 1e6):
            raise InputError(f"{where} has an invalid image size {w}x{h}")
        if not float(h).is_integer() or not float(w).is_integer():
            raise InputError(f"{where} has a fractional image size {w}x{h}")
        sizes.add((int(w), int(h)))
        _check_intrinsics((focal, focal, w / 2.0, h / 2.0), where)
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = m[:, 1], m[:, 0], -m[:, 2], m[:, 3]
        _check_pose(c2w, where)
        Ks.append(_intrinsics(focal, focal, w / 2.0, h / 2.0))
        c2ws.append(c2w)
    if len(sizes) != 1:
        raise InputError(f"poses of {name} have different image sizes {sorted(sizes)}; wanderview needs one")
    bounds = array[:, 15:17]
    if not np.all(np.isfinite(bounds.astype(np.float32))):
        raise InputError(f"{name} has non-finite near/far bounds")
    (w, h), = sizes
    return _camera(Ks, c2ws, w, h), torch.from_numpy(bounds.astype(np.float32))


def write_llff(path: str | os.PathLike, cameras: Camera, bounds: torch.Tensor | Sequence) -> None:
    """Write cameras (N,) and near/far ``bounds`` (N, 2) as an LLFF ``poses_bounds.npy`` (float64).

    LLFF stores one focal length and no principal point, so every camera must have fx == fy and the
    principal point at the image centre (ValueError otherwise).
    """
    cameras = _as_batch(cameras)
    n = len(cameras)
    bounds_np = torch.as_tensor(bounds, dtype=torch.float32).detach().cpu().double().numpy()
    if bounds_np.shape != (n, 2):
        raise ValueError(f"bounds must be ({n}, 2), got {tuple(bounds_np.shape)}")
    K = cameras.K.detach().cpu().double().numpy()
    w, h = cameras.width, cameras.height
    centred = np.all(K[:, 0, 2] == w / 2.0) and np.all(K[:, 1, 2] == h / 2.0)
    if not (np.all(K[:, 0, 0] == K[:, 1, 1]) and centred):
        raise ValueError("LLFF stores one focal and a centred principal point; these cameras differ")
    c2w = cameras.cam_to_world.detach().cpu().double().numpy()
    rows = np.zeros((n, 17))
    for i in range(n):
        columns = [c2w[i, :3, 1], c2w[i, :3, 0], -c2w[i, :3, 2], c2w[i, :3, 3], [h, w, K[i, 0, 0]]]
        m = np.stack(columns, axis=1)
        rows[i, :15] = m.reshape(-1)
    rows[:, 15:] = bounds_np
    _atomic_write(Path(path), lambda handle: np.save(handle, rows))


# ---- dispatch ---------------------------------------------------------------------------------
def camera_file_format(path: str | os.PathLike) -> str:
    """'transforms', 're10k' or 'llff', from the extension or, failing that, the first bytes."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "transforms"
    if suffix == ".npy":
        return "llff"
    if suffix == ".txt":
        return "re10k"
    head = _read_bytes(Path(path))[:8]
    if head.startswith(b"\x93NUMPY"):
        return "llff"
    if head.lstrip()[:1] == b"{":
        return "transforms"
    return "re10k"


def read_cameras(path: str | os.PathLike, width: int | None = None, height: int | None = None) -> Camera:
    """Read any supported camera file as a batch (N,) in OpenCV axes.

    ``width``/``height`` are needed for RealEstate10K files (normalised intrinsics) and for
    transforms.json files without ``w``/``h``; the other formats carry their image size, which is
    kept (use :meth:`Camera.scaled` to resize).
    """
    if not Path(path).is_file():
        raise InputError(f"camera file {path} does not exist")
    kind = camera_file_format(path)
    if kind == "transforms":
        return read_transforms_json(path, width, height)[0]
    if kind == "llff":
        return read_llff(path)[0]
    if width is None or height is None:
        name = Path(path).name
        raise InputError(f"{name} stores intrinsics relative to the image size; give a width and height")
    return read_re10k(path, width, height)[0]
