"""The standard 3DGS PLY (what SuperSplat, gsplat, nerfstudio and the 3DGS code read and write).

One ``vertex`` element, binary little-endian float32 properties in this order:
``x y z nx ny nz f_dc_0..2 f_rest_0..(3·(K−1)−1) opacity scale_0..2 rot_0..3``, where

- opacity is a logit, scales are logs, rot is a wxyz quaternion (not normalised),
- f_dc is the SH DC coefficient (colour = 0.5 + C0·f_dc) and f_rest holds the other K−1
  coefficients **channel-major** (all of red, then green, then blue),
- normals are written as zeros (the format has them; nobody uses them).

Our own writer and reader (numpy only; plyfile is GPL-3.0 and not used). Writing and reading back
is bit-exact. Reading accepts any property order and float/double properties, and raises
InputError for files that are not 3DGS PLYs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import InputError
from wanderview.io.images import atomic_output, check_readable_file

_TYPES = {
    "char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "<i2", "ushort": "<u2",
    "int16": "<i2", "uint16": "<u2", "int": "<i4", "uint": "<u4", "int32": "<i4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip


@dataclass
class GaussianPly:
    """The raw parameters of a 3DGS PLY (all float32 CPU tensors).

    Attributes:
        means: (N, 3); log_scales: (N, 3); quats: (N, 4) wxyz; opacity_logits: (N,);
        sh: (N, K, 3) SH coefficients, K = 1, 4, 9 or 16 (index 0 is the DC term).
    """

    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor


def _property_names(k: int) -> list[str]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def write_gaussian_ply(
    path: str | os.PathLike,
    means: torch.Tensor,
    log_scales: torch.Tensor,
    quats: torch.Tensor,
    opacity_logits: torch.Tensor,
    sh: torch.Tensor,
) -> None:
    """Write Gaussians as a 3DGS PLY, atomically.

    Args:
        means: (N, 3) world positions; log_scales: (N, 3); quats: (N, 4) wxyz;
        opacity_logits: (N,); sh: (N, K, 3) SH coefficients with K a square ≤ 16.
    """
    n = means.shape[0]
    k = sh.shape[1] if sh.ndim == 3 else -1
    checks = {"means": (means, (n, 3)), "log_scales": (log_scales, (n, 3)), "quats": (quats, (n, 4)),
              "opacity_logits": (opacity_logits, (n,)), "sh": (sh, (n, k, 3))}  # fmt: skip
    for name, (tensor, shape) in checks.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must be {shape}, got {tuple(tensor.shape)}")
    if k not in (1, 4, 9, 16):
        raise ValueError(f"sh must have 1, 4, 9 or 16 coefficients, got {k}")

    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().to(torch.float32).numpy().reshape(n, -1)

    rest = sh[:, 1:, :].transpose(1, 2)  # (N, 3, K-1): channel-major, as 3DGS writes it
    columns = [f32(means), np.zeros((n, 3), np.float32), f32(sh[:, 0, :]), f32(rest),
               f32(opacity_logits), f32(log_scales), f32(quats)]  # fmt: skip
    data = np.ascontiguousarray(np.concatenate(columns, axis=1), dtype="<f4")
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in _property_names(k)] + ["end_header"]
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(data.tobytes())


def _parse_header(path: Path) -> tuple[int, list[tuple[str, str]], int]:
    """-> (vertex count, [(name, numpy dtype)], byte offset of the data)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(f"The file {path} is not a PLY file (no 'ply' ... 'end_header' header).")
    offset = head.find(b"\n", end) + 1
    count, props, element, fmt = None, [], None, None
    for words in (line.split() for line in head[:end].decode("latin-1").splitlines()):
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else None
        elif words[0] == "element" and len(words) == 3:
            if element == "vertex":
                raise InputError(f"The PLY file {path} has elements after its vertices; not a 3DGS PLY.")
            element = words[1]
            if element == "vertex":
                count = int(words[2]) if words[2].isdigit() else None
        elif words[0] == "property" and element == "vertex":
            if len(words) != 3 or words[1] not in _TYPES:
                raise InputError(
                    f"The PLY file {path} has an unsupported vertex property {' '.join(words)!r}."
                )
            props.append((words[2], _TYPES[words[1]]))
    if fmt != "binary_little_endian":
        raise InputError(f"The PLY file {path} is {fmt}; 3DGS PLYs are binary_little_endian.")
    if count is None:
        raise InputError(f"The PLY file {path} has no vertex element.")
    return count, props, offset


def is_gaussian_ply(path: str | os.PathLike) -> bool:
    """True when ``path`` is a PLY whose vertices carry the 3DGS properties."""
    try:
        _, props, _ = _parse_header(Path(path))
    except (InputError, OSError, ValueError):
        return False
    names = {name for name, _ in props}
    return all(name in names for name in _REQUIRED)


def read_gaussian_ply(path: str | os.PathLike) -> GaussianPly:
    """Read a 3DGS PLY.

    Returns:
        :class:`GaussianPly` with float32 tensors; ``sh`` has K = 1 + (number of f_rest)/3.
    Raises:
        InputError: not a PLY, not binary little-endian, missing 3DGS properties, truncated.
    """
    path = check_readable_file(path, "Gaussian PLY")
    count, props, offset = _parse_header(path)
    names = [name for name, _ in props]
    missing = [name for name in _REQUIRED if name not in names]
    if missing:
        raise InputError(f"The PLY file {path} is not a 3DGS PLY (it lacks {', '.join(missing[:4])}).")
    dtype = np.dtype(props)
    if path.stat().st_size - offset < count * dtype.itemsize:
        raise InputError(f"The PLY file {path} is truncated ({count} vertices announced).")
    data = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    n_rest = sum(1 for name in names if name.startswith("f_rest_"))
    k = 1 + n_rest // 3
    if n_rest % 3 or math.isqrt(k) ** 2 != k or k > 16:
        raise InputError(f"The PLY file {path} has {n_rest} f_rest properties; expected 0, 9, 24 or 45.")

    def cols(*keys: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([data[key].astype(np.float32) for key in keys], axis=1))

    sh = torch.zeros(count, k, 3)
    sh[:, 0, :] = cols("f_dc_0", "f_dc_1", "f_dc_2")
    if k > 1:
        rest = cols(*[f"f_rest_{i}" for i in range(n_rest)]).reshape(count, 3, k - 1)
        sh[:, 1:, :] = rest.transpose(1, 2)
    return GaussianPly(
        means=cols("x", "y", "z"),
        log_scales=cols("scale_0", "scale_1", "scale_2"),
        quats=cols("rot_0", "rot_1", "rot_2", "rot_3"),
        opacity_logits=cols("opacity")[:, 0].contiguous(),
        sh=sh,
    )
