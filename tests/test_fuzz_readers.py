"""Random and damaged bytes given to every reader must give InputError, never another exception."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from wanderview.errors import InputError, WanderviewError
from wanderview.io.depth import depth_to_png16, read_depth, write_pfm
from wanderview.io.images import read_image, read_mask
from wanderview.io.mesh import load_mesh, load_points, save_mesh, save_points

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_files(folder: Path) -> dict[str, bytes]:
    """One small valid file per reader and format, as bytes."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF"), (".bmp", "BMP")):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(buffer, format=fmt)
        files[ext] = buffer.getvalue()
    depth = torch.rand(1, 8, 9) + 0.5
    buffer = io.BytesIO()
    np.save(buffer, depth[0].numpy())
    files[".npy"] = buffer.getvalue()
    depth_to_png16(folder / "d.png", depth, 0.001)
    files["depth.png"] = (folder / "d.png").read_bytes()
    write_pfm(folder / "d.pfm", depth)
    files[".pfm"] = (folder / "d.pfm").read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(depth[0].numpy()).save(buffer, format="TIFF")  # 32-bit float, mode "F"
    files["depth.tif"] = buffer.getvalue()
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    save_mesh(folder / "m.ply", torch.rand(4, 3), faces, torch.rand(4, 3))
    files["mesh.ply"] = (folder / "m.ply").read_bytes()
    save_mesh(folder / "m.glb", torch.rand(4, 3), faces, torch.rand(4, 3))
    files[".glb"] = (folder / "m.glb").read_bytes()
    save_points(folder / "p.ply", torch.rand(30, 3), torch.rand(30, 3))
    files["points.ply"] = (folder / "p.ply").read_bytes()
    return files


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    return _valid_files(tmp_path_factory.mktemp("valid"))


# reader name -> (function, suffix it reads, the valid file to damage)
READERS = {
    "image_png": (read_image, ".png", ".png"),
    "image_jpg": (read_image, ".jpg", ".jpg"),
    "image_webp": (read_image, ".webp", ".webp"),
    "image_tif": (read_image, ".tif", ".tif"),
    "image_bmp": (read_image, ".bmp", ".bmp"),
    "mask_png": (read_mask, ".png", ".png"),
    "depth_npy": (read_depth, ".npy", ".npy"),
    "depth_png": (read_depth, ".png", "depth.png"),
    "depth_pfm": (read_depth, ".pfm", ".pfm"),
    "depth_tif": (read_depth, ".tif", "depth.tif"),
    "mesh_ply": (load_mesh, ".ply", "mesh.ply"),
    "mesh_glb": (load_mesh, ".glb", ".glb"),
    "points_ply": (load_points, ".ply", "points.ply"),
}


def _call(reader, path: Path) -> None:
    """Run the reader; reaching the end or an InputError are both fine, anything else fails the test."""
    try:
        reader(path)
    except WanderviewError as err:
        assert isinstance(err, InputError)
        assert str(err) and "\n" not in str(err)


def test_valid_files_are_readable(tmp_path, valid):
    # The damaged files below start from these; they must be good to begin with.
    for name, (reader, suffix, source) in READERS.items():
        path = tmp_path / f"valid_{name}{suffix}"
        path.write_bytes(valid[source])
        reader(path)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.binary(min_size=0, max_size=512))
def test_random_bytes(tmp_path, name, data):
    reader, suffix, _ = READERS[name]
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    _call(reader, path)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(
    cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4)
)
def test_truncated_and_corrupted_valid_files(tmp_path, valid, name, cut, flips):
    reader, suffix, source = READERS[name]
    data = bytearray(valid[source])
    for position, value in flips:
        data[min(int(position * len(data)), len(data) - 1)] = value
    data = data[: int(cut * len(data))] if cut < 1.0 else data
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(data))
    _call(reader, path)


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(header=st.sampled_from([b"ply\n", b"\x89PNG\r\n\x1a\n", b"\x93NUMPY", b"Pf\n", b"PF\n", b"glTF"]),
       tail=st.binary(max_size=200))  # fmt: skip
def test_right_magic_wrong_body(tmp_path, name, header, tail):
    reader, suffix, _ = READERS[name]
    path = tmp_path / f"magic{suffix}"
    path.write_bytes(header + tail)
    _call(reader, path)
