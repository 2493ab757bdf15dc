"""One PLY writer for meshes and points, read back without plyfile (GPL, not a dependency)."""

from __future__ import annotations

import sys

import numpy as np
import torch

from wanderview.io.mesh import load_mesh, load_points, save_mesh, save_points


def test_points_and_meshes_round_trip_without_plyfile(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plyfile", None)  # any import of plyfile now fails
    points = torch.tensor([[0.0, 1.0, 2.0], [-1.5, 0.25, 8.0], [3.0, -2.0, 0.5]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0], [0.2, 0.2, 0.2]])
    save_points(tmp_path / "p.ply", points, colors)
    got_points, got_colors = load_points(tmp_path / "p.ply")
    assert torch.equal(got_points, points)
    assert (got_colors - colors).abs().max() <= 0.5 / 255 + 1e-6
    assert b"element face" not in (tmp_path / "p.ply").read_bytes()[:300], "points carry no face element"
    faces = torch.tensor([[0, 1, 2]])
    save_mesh(tmp_path / "m.ply", points, faces, colors)
    vertices, got_faces, mesh_colors = load_mesh(tmp_path / "m.ply")
    assert torch.equal(vertices, points) and torch.equal(got_faces, faces)
    assert (mesh_colors - colors).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(load_points(tmp_path / "m.ply")[0], points), "a mesh PLY gives its vertices"


def test_float_colours_of_another_writer_are_read(tmp_path):
    rows = np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "<f4"), ("green", "<f4"),
                              ("blue", "<f4")])  # fmt: skip
    rows["x"], rows["red"], rows["blue"] = [1.0, 2.0], [0.5, 1.0], [0.25, 0.0]
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
              + "".join(f"property float {n}\n" for n in ("x", "y", "z", "red", "green", "blue"))
              + "end_header\n")  # fmt: skip
    (tmp_path / "f.ply").write_bytes(header.encode() + rows.tobytes())
    points, colors = load_points(tmp_path / "f.ply")
    assert torch.equal(points[:, 0], torch.tensor([1.0, 2.0]))
    assert torch.allclose(colors[:, 0], torch.tensor([0.5, 1.0])) and torch.allclose(
        colors[:, 2], torch.tensor([0.25, 0.0])
    )
