"""Save and load coloured triangle meshes (PLY/GLB) and point clouds (PLY).

One PLY writer serves meshes and points (``write_ply_streamed``: binary, chunked, float xyz and
uchar rgb, triangles when given); GLB goes through trimesh; PLY files are read with trimesh's
parser (plyfile is GPL and not a dependency).

Axes: files keep the project's OpenCV world axes (x right, y down, z forward) — except GLB, whose
viewers assume glTF's y-up, -z-forward axes. ``save_mesh(..., gltf_axes=True)`` (the default)
therefore stores GLB vertices multiplied by diag(1, -1, -1) so the scene appears upright, and
``load_mesh`` undoes it. That matrix is a rotation (det +1), so triangle winding and normals keep
their orientation. PLY files are never converted.

Colours are per vertex, float in [0, 1] in memory and 8-bit in the files. Every write is atomic;
every malformed file raises InputError (the PLY header is checked against the file size first, so
a damaged count cannot make a parser allocate gigabytes).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from wanderview.errors import InputError
from wanderview.io.images import atomic_output, check_readable_file, error_reason

GLTF_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])
_PLY_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip


def _as_numpy(array: torch.Tensor | np.ndarray, name: str, columns: int) -> np.ndarray:
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if values.ndim != 2 or values.shape[1] != columns:
        raise ValueError(f"{name} must be (N, {columns}), got {tuple(values.shape)}")
    return values


def _colors_uint8(colors: torch.Tensor | np.ndarray | None, count: int) -> np.ndarray:
    if colors is None:
        return np.full((count, 3), 255, dtype=np.uint8)
    values = _as_numpy(colors, "colors", 3).astype(np.float64)
    if len(values) != count:
        raise ValueError(f"colors must have one row per vertex ({count}), got {len(values)}")
    return np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def _check_ply_header(path: Path) -> None:
    """Raise InputError unless the PLY header parses and its element counts fit in the file."""
    with open(path, "rb") as f:
        head = f.read(65536)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(f"The file {path} is not a PLY file (no 'ply' ... 'end_header' header).")
    body = path.stat().st_size - (head.find(b"\n", end) + 1)
    lines = [line.split() for line in head[:end].decode("latin-1").splitlines()]
    fmt, needed, element_count = None, 0, None
    try:
        for words in lines:
            if not words:
                continue
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                element_count = int(words[2])
                if element_count < 0:
                    raise ValueError("negative element count")
            elif words[0] == "property":
                if element_count is None:
                    raise ValueError("a property comes before any element")
                # The fewest bytes one value can take: in ascii a digit and its separator.
                size = _PLY_SIZES[words[2]] if words[1] == "list" else _PLY_SIZES[words[1]]
                needed += element_count * (2 if fmt == "ascii" else size)
    except (IndexError, KeyError, ValueError) as err:
        raise InputError(f"The PLY file {path} has a malformed header ({error_reason(err)}).") from err
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"The PLY file {path} has an unknown format {fmt!r}.")
    if needed > body:
        raise InputError(
            f"The PLY file {path} is truncated: its header promises more data than the file holds."
        )


def save_mesh(
    path: str | os.PathLike,
    vertices: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    colors: torch.Tensor | np.ndarray | None = None,
    gltf_axes: bool = True,
) -> None:
    """Save a triangle mesh with vertex colours as ``.ply`` (binary) or ``.glb``, atomically.

    Args:
        vertices: (V, 3) world points (OpenCV axes).
        faces: (F, 3) integer vertex indices.
        colors: (V, 3) float in [0, 1]; white when None.
        gltf_axes: for ``.glb`` only, store vertices in glTF axes (y up), see the module docstring.
    """
    import trimesh

    suffix = Path(path).suffix.lower()
    if suffix not in (".ply", ".glb"):
        raise InputError(f"The mesh file {path} must end in .ply or .glb.")
    verts = _as_numpy(vertices, "vertices", 3).astype(np.float64)
    tris = _as_numpy(faces, "faces", 3).astype(np.int64)
    if len(tris) and (tris.min() < 0 or tris.max() >= len(verts)):
        raise ValueError(f"faces index vertices outside [0, {len(verts)})")
    rgb = _colors_uint8(colors, len(verts))
    if suffix == ".ply":
        rgb01 = torch.from_numpy(rgb.astype(np.float32) / 255.0)
        write_ply_streamed(path, torch.from_numpy(verts.astype(np.float32)), torch.from_numpy(tris), rgb01)
        return
    rgba = np.concatenate([rgb, np.full((len(verts), 1), 255, np.uint8)], 1)
    if suffix == ".glb" and gltf_axes:
        verts = verts @ GLTF_FROM_OPENCV.T
    # trimesh cannot export an empty colour array, so an empty mesh goes out without colours.
    mesh = trimesh.Trimesh(
        vertices=verts, faces=tris, vertex_colors=rgba if len(verts) else None, process=False
    )
    data = mesh.export(file_type=suffix[1:])
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def load_mesh(
    path: str | os.PathLike, gltf_axes: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load a ``.ply``, ``.glb``, ``.gltf`` or ``.obj`` mesh (several GLB meshes are concatenated).

    Args:
        gltf_axes: for ``.glb``/``.gltf``, convert from glTF axes back to OpenCV (undoes ``save_mesh``).

    Returns:
        vertices (V, 3) float32, faces (F, 3) int64, colors (V, 3) float32 in [0, 1]
        (white where the file has no colours; texture colours are sampled per vertex).

    Raises:
        InputError: missing, empty or malformed file, or a file without triangles (use load_points).
    """
    import trimesh

    path = check_readable_file(path, "mesh")
    suffix = path.suffix.lower()
    if suffix not in (".ply", ".glb", ".gltf", ".obj"):
        raise InputError(f"The mesh file {path} must be .ply, .glb, .gltf or .obj.")
    if suffix == ".ply":
        _check_ply_header(path)
    try:
        mesh = trimesh.load(io.BytesIO(path.read_bytes()), file_type=suffix[1:], process=False)
        if isinstance(mesh, trimesh.Scene):
            mesh = mesh.to_mesh() if mesh.geometry else trimesh.Trimesh()
        if isinstance(mesh, trimesh.PointCloud):
            raise ValueError("it holds points but no triangles; load it with load_points")
        if not isinstance(mesh, trimesh.Trimesh):
            raise ValueError(f"found a {type(mesh).__name__}")
        verts = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
        tris = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        if len(verts) and len(tris) == 0:
            raise ValueError("it has vertices but no triangles; load it with load_points")
        if len(tris) and (tris.min() < 0 or tris.max() >= len(verts)):
            raise ValueError("its faces index missing vertices")
        colors = _mesh_colors(mesh, len(verts))
    except Exception as err:  # trimesh raises many types for bad bytes
        raise InputError(f"The mesh file {path} cannot be read ({error_reason(err)}).") from err
    if suffix in (".glb", ".gltf") and gltf_axes:
        verts = verts @ GLTF_FROM_OPENCV  # the matrix is its own inverse
    return (
        torch.from_numpy(verts.astype(np.float32)),
        torch.from_numpy(tris),
        torch.from_numpy(colors),
    )


def _mesh_colors(mesh, count: int) -> np.ndarray:
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        visual = visual.to_color()
        kind = "vertex"
    if kind in ("vertex", "face"):
        rgba = np.asarray(visual.vertex_colors, dtype=np.float32).reshape(-1, 4)
        if len(rgba) == count:
            return rgba[:, :3] / 255.0
    return np.ones((count, 3), dtype=np.float32)


def save_points(
    path: str | os.PathLike,
    points: torch.Tensor | np.ndarray,
    colors: torch.Tensor | np.ndarray | None = None,
) -> None:
    """Save a coloured point cloud as binary PLY (``x y z`` float32, ``red green blue`` uchar), atomically.

    Args:
        points: (N, 3) world points (OpenCV axes, stored unchanged).
        colors: (N, 3) float in [0, 1]; white when None.
    """
    xyz = torch.from_numpy(_as_numpy(points, "points", 3).astype(np.float32))
    rgb = torch.from_numpy(_colors_uint8(colors, len(xyz)).astype(np.float32) / 255.0)
    write_ply_streamed(path, xyz, None, rgb)


def load_points(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the vertices of a PLY file as a point cloud (a mesh PLY gives its vertices).

    Returns:
        points (N, 3) float32, colors (N, 3) float32 in [0, 1] (``red green blue`` as uchar 0-255 or
        float 0-1; white when absent).

    Raises:
        InputError: missing, empty or malformed file, or no ``vertex`` element with ``x y z``.
    """
    from trimesh.exchange.ply import load_ply

    path = check_readable_file(path, "point cloud")
    _check_ply_header(path)
    try:
        raw = load_ply(io.BytesIO(path.read_bytes()))["metadata"]["_ply_raw"]
        if "vertex" not in raw:
            raise ValueError("it has no vertex element")
        vertex = raw["vertex"]["data"]
        names = vertex.dtype.names or ()
        if not {"x", "y", "z"} <= set(names):
            raise ValueError("the vertex element has no x, y, z properties")
        points = np.stack([np.asarray(vertex[a], dtype=np.float32) for a in "xyz"], axis=1)
        if {"red", "green", "blue"} <= set(names):
            rgb = np.stack(
                [np.asarray(vertex[c], dtype=np.float32) for c in ("red", "green", "blue")], axis=1
            )
            integer = vertex.dtype["red"].kind in "iu"
            colors = np.clip(rgb / 255.0 if integer else rgb, 0.0, 1.0).astype(np.float32)
        else:
            colors = np.ones_like(points)
    except Exception as err:  # the parser raises many types for bad bytes
        raise InputError(f"The point cloud {path} cannot be read ({error_reason(err)}).") from err
    return torch.from_numpy(points), torch.from_numpy(colors)


def write_ply_streamed(path, vertices, faces, colors, chunk: int = 1 << 20) -> None:
    """Write a binary little-endian PLY (float xyz, uchar rgb, int32 triangles) in chunks, atomically:
    the one PLY writer of meshes (``save_mesh``, the scenes) and point clouds (``faces`` None).

    Unlike building a trimesh object (float64 and int64 copies plus the whole file in memory) this
    needs one chunk of extra memory, so a mesh of tens of millions of faces can be written at the end
    of a long run without doubling the peak.

    Args:
        vertices: (V, 3) float; faces: (F, 3) integer indices into vertices, or None (points only);
        colors: (V, 3) in [0, 1].
    """
    points_only = faces is None
    if points_only:
        faces = torch.zeros(0, 3, dtype=torch.int32)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or colors.shape != vertices.shape:
        raise ValueError(
            f"vertices and colors must be (V, 3), got {tuple(vertices.shape)}, {tuple(colors.shape)}"
        )
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    V, Fn = vertices.shape[0], faces.shape[0]
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {V}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        + ("" if points_only else f"element face {Fn}\nproperty list uchar int vertex_indices\n")
        + "end_header\n"
    )
    vertex_row = np.dtype([("xyz", "<f4", (3,)), ("rgb", "u1", (3,))])
    face_row = np.dtype([("n", "u1"), ("ids", "<i4", (3,))])
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        for start in range(0, V, chunk):
            rows = np.empty(min(chunk, V - start), vertex_row)
            rows["xyz"] = vertices[start : start + chunk].detach().cpu().float().numpy()
            rgb = (colors[start : start + chunk].detach().cpu().float().clamp(0, 1) * 255).round()
            rows["rgb"] = rgb.to(torch.uint8).numpy()
            f.write(rows.tobytes())
        for start in range(0, Fn, chunk):
            rows = np.empty(min(chunk, Fn - start), face_row)
            rows["n"] = 3
            rows["ids"] = faces[start : start + chunk].detach().cpu().to(torch.int32).numpy()
            f.write(rows.tobytes())
