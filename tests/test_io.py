"""Round trips and refusals of the image, depth, video and mesh readers/writers."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from wanderview.errors import InputError
from wanderview.io.depth import colorize_depth, depth_to_png16, read_depth, read_pfm, write_depth, write_pfm
from wanderview.io.images import read_image, read_image_rgba, read_mask, write_image
from wanderview.io.mesh import load_mesh, load_points, save_mesh, save_points
from wanderview.io.video import read_video, write_video


def _rgb8(h=12, w=17, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ images


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_8bit_round_trip(tmp_path, ext):
    array = _rgb8()
    path = tmp_path / f"a{ext}"
    Image.fromarray(array).save(path, **({"lossless": True} if ext == ".webp" else {}))
    image = read_image(path)
    assert image.shape == (3, 12, 17) and image.dtype == torch.float32
    assert torch.equal((image * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(array))


def test_write_image_round_trip_and_no_temp_left(tmp_path):
    rgb = torch.rand(3, 9, 11)
    write_image(tmp_path / "x.png", rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    assert (read_image(tmp_path / "x.png") - rgb).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_colour_keeps_precision(tmp_path, ext):
    array = np.random.default_rng(1).integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"a{ext}"), array[..., ::-1])  # OpenCV writes BGR
    image = read_image(tmp_path / f"a{ext}")
    assert np.abs(image.permute(1, 2, 0).numpy() * 65535 - array).max() < 0.02


def test_16bit_grey_and_8bit_grey(tmp_path):
    grey16 = np.random.default_rng(2).integers(0, 65536, (5, 6), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.shape == (3, 5, 6)
    assert np.abs(image[1].numpy() * 65535 - grey16).max() < 0.02
    Image.fromarray(grey16.astype(np.uint8)).save(tmp_path / "g8.png")
    assert torch.equal(read_image(tmp_path / "g8.png")[0], read_image(tmp_path / "g8.png")[2])


def test_rgba_composited_on_black_and_alpha_returned(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb, alpha = read_image_rgba(tmp_path / "a.png")
    assert alpha.shape == (1, 4, 4) and alpha[0, 0, 0] == 1 and alpha[0, 3, 0] == 0
    assert rgb[0, 3, 0] == pytest.approx(200 / 255)
    composited = read_image(tmp_path / "a.png")
    assert composited[0, 0, 0] == pytest.approx(200 / 255) and composited[0, 3, 0] == 0


def test_exif_rotated_jpeg_is_upright(tmp_path):
    array = np.zeros((10, 30, 3), np.uint8)  # stored landscape, 30 wide
    array[:, :5] = 255  # white strip on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(array).save(tmp_path / "r.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "r.jpg")
    assert image.shape == (3, 30, 10)  # displayed portrait
    assert image[:, :5].mean() > 0.9 and image[:, -5:].mean() < 0.1  # stored left edge is now on top


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_huge_image_refused_from_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(20000, 20000))  # 60 bytes claiming 400 million pixels
    with pytest.raises(InputError, match=r"20000x20000.*--max-pixels"):
        read_image(path)
    with pytest.raises(InputError, match="--max-pixels"):
        read_mask(path)


def test_max_pixels_option_is_honoured(tmp_path):
    Image.fromarray(_rgb8(20, 20)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="400 pixels"):
        read_image(tmp_path / "a.png", max_pixels=100)
    assert read_image(tmp_path / "a.png", max_pixels=None).shape == (3, 20, 20)


def test_bad_image_files_raise_input_error(tmp_path):
    Image.fromarray(_rgb8(64, 64)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello, not an image")
    (tmp_path / "dir.png").mkdir()
    for name, words in [("trunc.png", "truncated"), ("empty.png", "empty"), ("text.png", "not a readable"),
                        ("dir.png", "folder"), ("missing.png", "does not exist")]:  # fmt: skip
        with pytest.raises(InputError, match=words):
            read_image(tmp_path / name)


def test_read_mask_rules(tmp_path):
    grey = np.zeros((4, 5), np.uint8)
    grey[1, 2] = 255
    grey[2, 2] = 40  # dark JPEG-like noise: not a hole
    Image.fromarray(grey).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", size=(4, 5))
    assert mask.dtype == torch.bool and mask.shape == (1, 4, 5)
    assert mask.sum() == 1 and mask[0, 1, 2]
    Image.fromarray((grey > 0).astype(np.uint8)).save(tmp_path / "labels.png")  # values 0/1
    assert read_mask(tmp_path / "labels.png").sum() == 2
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    assert read_mask(tmp_path / "alpha.png").nonzero().tolist() == [[0, 0, 0]]
    with pytest.raises(InputError, match="5x4"):
        read_mask(tmp_path / "m.png", size=(5, 4))


# ------------------------------------------------------------------ depth


def test_depth_npy_round_trip_keeps_inf(tmp_path):
    depth = torch.rand(1, 6, 8) + 0.5
    depth[0, 2, 3] = float("inf")
    write_depth(tmp_path / "d.npy", depth)
    stored = np.load(tmp_path / "d.npy")
    assert stored.shape == (6, 8) and stored.dtype == np.float32 and np.isinf(stored[2, 3])
    back, valid = read_depth(tmp_path / "d.npy", mask_invalid=True)
    assert torch.equal(back, depth) and valid.sum() == 47 and not valid[0, 2, 3]
    np.save(tmp_path / "d1.npy", depth.numpy()[:, :2])  # (1, H, W) accepted
    assert read_depth(tmp_path / "d1.npy", mask_invalid=True)[0].shape == (1, 2, 8)


def test_depth_png16_round_trip(tmp_path):
    depth = torch.rand(1, 5, 7) * 10 + 0.5
    depth_to_png16(tmp_path / "d.png", depth, scale=0.001)
    back, valid = read_depth(tmp_path / "d.png", scale=0.001, size=(5, 7))
    assert valid.all() and (back - depth).abs().max() <= 0.0005 + 1e-6
    with pytest.raises(ValueError, match="16-bit range"):
        depth_to_png16(tmp_path / "far.png", depth * 1e4, scale=0.001)


def test_pfm_round_trip_both_byte_orders(tmp_path):
    array = np.random.default_rng(3).random((4, 6)).astype(np.float32) + 0.1
    write_pfm(tmp_path / "le.pfm", array)
    assert np.array_equal(read_pfm(tmp_path / "le.pfm"), array)
    # A big-endian file (positive scale), rows bottom-up, written by hand.
    body = array[::-1].astype(">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(b"Pf\n6 4\n1.0\n" + body)
    depth, valid = read_depth(tmp_path / "be.pfm")
    assert valid.all() and np.array_equal(depth[0].numpy(), array)
    write_pfm(tmp_path / "c.pfm", torch.rand(3, 4, 6))
    with pytest.raises(InputError, match="shape"):
        read_depth(tmp_path / "c.pfm")


def test_float_tiff_depth(tmp_path):
    array = np.random.default_rng(4).random((5, 6)).astype(np.float32) + 0.2
    Image.fromarray(array).save(tmp_path / "d.tif")
    depth, valid = read_depth(tmp_path / "d.tif", scale=2.0)
    assert valid.all() and np.array_equal(depth[0].numpy(), array * 2)


def test_disparity_becomes_depth(tmp_path):
    disp = np.full((3, 4), 8.0, np.float32)
    np.save(tmp_path / "disp.npy", disp)
    depth, _ = read_depth(tmp_path / "disp.npy", kind="disparity")
    assert torch.allclose(depth, torch.full((1, 3, 4), 1 / 8))
    depth, _ = read_depth(tmp_path / "disp.npy", kind="disparity", scale=100.0)  # focal x baseline
    assert torch.allclose(depth, torch.full((1, 3, 4), 12.5))


def test_invalid_depth_reports_counts_and_where(tmp_path):
    depth = np.ones((10, 12), np.float32)
    depth[2, 3] = np.nan
    depth[4, 5] = 0
    depth[6, 7] = -1
    depth[6, 8] = -2
    np.save(tmp_path / "d.npy", depth)
    with pytest.raises(InputError) as info:
        read_depth(tmp_path / "d.npy")
    message = str(info.value)
    assert "4 invalid" in message and "1 NaN" in message and "1 zero" in message and "2 negative" in message
    assert "x 3-8, y 2-6" in message and "(3, 2)" in message
    depth_t, valid = read_depth(tmp_path / "d.npy", mask_invalid=True)
    assert valid.sum() == 116 and torch.isinf(depth_t[~valid]).all()


def test_depth_shape_errors(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((4, 5), np.float32))
    with pytest.raises(InputError, match="5x4.*6x4"):
        read_depth(tmp_path / "d.npy", size=(4, 6))
    np.save(tmp_path / "c.npy", np.ones((4, 5, 3), np.float32))
    with pytest.raises(InputError, match=r"\(4, 5, 3\)"):
        read_depth(tmp_path / "c.npy")
    Image.fromarray(_rgb8(4, 5)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="3 channels"):
        read_depth(tmp_path / "rgb.png")
    np.save(tmp_path / "big.npy", np.ones((10, 10), np.float32))
    with pytest.raises(InputError, match="--max-pixels"):
        read_depth(tmp_path / "big.npy", max_pixels=50)


def test_colorize_depth_near_is_warm_far_is_cool_invalid_black():
    depth = torch.linspace(1, 10, 20).reshape(1, 4, 5)
    depth[0, 0, 1] = float("inf")
    colors = colorize_depth(depth)
    assert colors.shape == (3, 4, 5) and colors.min() >= 0 and colors.max() <= 1
    assert colors[:, 0, 1].sum() == 0
    near, far = colors[:, 0, 0], colors[:, 3, 4]
    assert near[0] > near[2] and far[2] > far[0]


# ------------------------------------------------------------------ video


def test_video_round_trip_pads_odd_size(tmp_path):
    frames = (torch.full((3, 15, 21), i / 5) for i in range(6))  # a generator: streamed
    assert write_video(tmp_path / "v.mp4", frames, fps=12) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    back = read_video(tmp_path / "v.mp4")
    assert len(back) == 6 and back[0].shape == (3, 16, 22)
    assert abs(back[3].mean().item() - 0.6) < 0.03


def test_video_errors(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        write_video(tmp_path / "v.mp4", [])
    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "v.mp4", [torch.zeros(3, 8, 8), torch.zeros(3, 8, 10)])
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError):
        read_video(tmp_path / "bad.mp4")


# ------------------------------------------------------------------ mesh and points


@pytest.mark.parametrize("ext", [".ply", ".glb"])
def test_mesh_round_trip(tmp_path, ext):
    vertices = torch.rand(6, 3)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4], [3, 4, 5]])
    colors = torch.rand(6, 3)
    save_mesh(tmp_path / f"m{ext}", vertices, faces, colors)
    v, f, c = load_mesh(tmp_path / f"m{ext}")
    assert torch.allclose(v, vertices, atol=1e-6) and torch.equal(f, faces)
    assert (c - colors).abs().max() <= 0.5 / 255 + 1e-6


def test_glb_is_stored_in_gltf_axes(tmp_path):
    import trimesh

    vertices = torch.tensor([[1.0, 2.0, 3.0], [0, 0, 1], [1, 0, 1]])
    save_mesh(tmp_path / "m.glb", vertices, torch.tensor([[0, 1, 2]]))
    raw = trimesh.load(tmp_path / "m.glb", force="mesh", process=False)
    assert np.allclose(raw.vertices[0], [1, -2, -3])
    assert torch.allclose(load_mesh(tmp_path / "m.glb", gltf_axes=False)[0][0], torch.tensor([1.0, -2, -3]))


def test_points_round_trip_and_mesh_vs_points(tmp_path):
    points, colors = torch.randn(50, 3), torch.rand(50, 3)
    save_points(tmp_path / "p.ply", points, colors)
    p, c = load_points(tmp_path / "p.ply")
    assert torch.equal(p, points) and (c - colors).abs().max() <= 0.5 / 255 + 1e-6
    with pytest.raises(InputError, match="load_points"):
        load_mesh(tmp_path / "p.ply")


def test_malformed_mesh_files(tmp_path):
    save_points(tmp_path / "p.ply", torch.randn(100, 3), torch.rand(100, 3))
    data = (tmp_path / "p.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[: len(data) // 2])
    (tmp_path / "huge.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 999999999999\n"
                                        b"property float x\nend_header\n1\n")  # fmt: skip
    for name in ("t.ply", "huge.ply"):
        with pytest.raises(InputError, match="truncated"):
            load_points(tmp_path / name)
        with pytest.raises(InputError):
            load_mesh(tmp_path / name)
    (tmp_path / "x.glb").write_bytes(b"glTF" + bytes(40))
    with pytest.raises(InputError):
        load_mesh(tmp_path / "x.glb")
    with pytest.raises(InputError, match="empty"):
        (tmp_path / "e.ply").write_bytes(b"")
        load_points(tmp_path / "e.ply")


def test_write_helpers_check_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        write_image(tmp_path / "a.png", torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        write_depth(tmp_path / "d.npy", torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        save_mesh(tmp_path / "m.ply", torch.zeros(5, 2), torch.zeros(0, 3))


def test_atomic_outputs_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from wanderview.io.images import write_image

    umask = os.umask(0)
    os.umask(umask)
    write_image(tmp_path / "a.png", torch.zeros(3, 4, 4))
    mode = stat.S_IMODE((tmp_path / "a.png").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)
