"""`wanderview export`: nerfstudio datasets read back with the same cameras, GLB/PLY load with trimesh."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from share_runs import make_run
from wanderview.cli import main
from wanderview.io.cameras import read_transforms_json
from wanderview.io.images import read_image
from wanderview.io.mesh import GLTF_FROM_OPENCV, load_mesh, load_points
from wanderview.share.run import open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("share_export")
    return {"mesh": make_run(folder, "mesh"), "points": make_run(folder, "points")}


def test_open_run_reads_the_folder(runs):
    run = open_run(runs["mesh"])
    assert len(run) == 3 and run.method == "photo3d"
    assert run.scene_path.name == "mesh.ply"
    assert open_run(runs["points"]).scene_path.name == "points.ply"
    assert run.read_frame(0).shape == (3, 32, 48)
    depth = run.read_depth(2)
    assert depth.shape == (1, 32, 48) and bool(torch.isinf(depth).any())  # no inpainting: holes stay


def test_nerfstudio_round_trip(runs, tmp_path):
    out = tmp_path / "ns"
    assert main(["export", str(runs["mesh"]), "--to", "nerfstudio", "-o", str(out)]) == 0
    run = open_run(runs["mesh"])
    cameras, paths = read_transforms_json(out / "transforms.json")
    torch.testing.assert_close(cameras.cam_to_world, run.cameras.cam_to_world)
    torch.testing.assert_close(cameras.K, run.cameras.K)
    assert (cameras.width, cameras.height) == (48, 32)
    assert paths == [f"images/frame_{i:05d}.png" for i in range(3)]
    data = json.loads((out / "transforms.json").read_text())
    # the file itself is in OpenGL axes: frame 0 (identity in OpenCV) reads diag(1, -1, -1, 1)
    np.testing.assert_allclose(data["frames"][0]["transform_matrix"], np.diag([1.0, -1.0, -1.0, 1.0]))
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        assert key in data
    scale = data["depth_unit_scale_factor"]
    for i, frame in enumerate(data["frames"]):
        torch.testing.assert_close(read_image(out / frame["file_path"]), run.read_frame(i))
        stored = np.load(out / frame["depth_file_path"])
        depth = run.read_depth(i)[0].numpy()
        finite = np.isfinite(depth)
        np.testing.assert_allclose(stored[finite] * scale, depth[finite], rtol=1e-6)
        assert np.all(stored[~finite] == 0)
    points, colors = load_points(out / data["ply_file_path"])
    vertices, _, _ = load_mesh(runs["mesh"] / "mesh.ply")
    assert len(points) == len(vertices)


def test_glb_and_ply_load_with_trimesh(runs, tmp_path):
    vertices, faces, colors = load_mesh(runs["mesh"] / "mesh.ply")
    assert main(["export", str(runs["mesh"]), "--to", "glb", "-o", str(tmp_path / "m.glb")]) == 0
    glb = trimesh.load(tmp_path / "m.glb", force="mesh", process=False)
    # y-up: the stored vertices are the OpenCV ones flipped in y and z
    np.testing.assert_allclose(np.asarray(glb.vertices), vertices.numpy() @ GLTF_FROM_OPENCV.T, atol=1e-5)
    assert len(glb.faces) == len(faces)
    assert main(["export", str(runs["mesh"]), "--to", "ply", "-o", str(tmp_path / "m.ply")]) == 0
    ply = trimesh.load(tmp_path / "m.ply", process=False)
    np.testing.assert_allclose(np.asarray(ply.vertices), vertices.numpy(), atol=1e-6)
    ply_colors = np.asarray(ply.visual.vertex_colors)[:, :3] / 255
    np.testing.assert_allclose(ply_colors, colors.numpy(), atol=1 / 255)


def test_points_run_exports_point_clouds(runs, tmp_path):
    points, colors = load_points(runs["points"] / "points.ply")
    assert main(["export", str(runs["points"]), "--to", "glb", "-o", str(tmp_path / "p.glb")]) == 0
    scene = trimesh.load(tmp_path / "p.glb", process=False)
    (cloud,) = scene.geometry.values()
    assert isinstance(cloud, trimesh.PointCloud)
    np.testing.assert_allclose(np.asarray(cloud.vertices), points.numpy() @ GLTF_FROM_OPENCV.T, atol=1e-5)
    assert main(["export", str(runs["points"]), "--to", "ply", "-o", str(tmp_path / "p.ply")]) == 0
    back, back_colors = load_points(tmp_path / "p.ply")
    torch.testing.assert_close(back, points)
    torch.testing.assert_close(back_colors, colors)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}", "--to", "ply", "-o", "{tmp}/x.ply"], "not a wanderview run folder"),
        (["{run}", "--to", "glb", "-o", "{tmp}/x.ply"], "must end in .glb"),
        (["{run}", "--to", "ply", "-o", "{tmp}/exists.ply"], "exists; pass --overwrite"),
        (["{run}", "--to", "nerfstudio", "-o", "{tmp}/full"], "not empty"),
    ],
)
def test_bad_exports_are_one_sentence_and_write_nothing(runs, tmp_path, capsys, args, message):
    (tmp_path / "exists.ply").write_text("keep")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path, run=runs["mesh"]) for a in args]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "exists.ply").read_text() == "keep"


def test_overwrite_replaces_an_export(runs, tmp_path):
    out = tmp_path / "m.glb"
    out.write_text("old")
    assert main(["export", str(runs["mesh"]), "--to", "glb", "-o", str(out), "--overwrite"]) == 0
    assert trimesh.load(out, force="mesh").faces.shape[1] == 3


def test_cli_formats_match_the_exporters():
    from wanderview.cli.export import FORMATS as cli_formats
    from wanderview.share.export import FORMATS

    assert cli_formats == FORMATS


def test_splat_web_format_holds_every_vertex(runs, tmp_path):
    from wanderview.share.splats import read_splat_file

    out = tmp_path / "scene.splat"
    assert main(["export", str(runs["mesh"]), "--to", "splat", "-o", str(out)]) == 0
    rows = read_splat_file(out)
    vertices, _, colors = load_mesh(runs["mesh"] / "mesh.ply")
    assert len(rows) == len(vertices)
    order = np.lexsort(vertices.numpy().T)
    back = np.lexsort(rows["position"].T)
    np.testing.assert_array_equal(rows["position"][back], vertices.numpy()[order])
    np.testing.assert_allclose(rows["rgba"][back, :3] / 255, colors.numpy()[order], atol=0.5 / 255 + 1e-6)
    assert np.all(rows["rgba"][:, 3] == 242)  # opacity 0.95
    assert np.all(rows["rot"] == [255, 128, 128, 128])  # identity quaternion, (q * 128 + 128) clipped
    sizes = rows["scale"].prod(axis=1)
    assert np.all(np.diff(sizes) <= 1e-12)  # largest first
    # 0.7 of the capture footprint: depth 2..4 seen at focal ~46 px -> sigma ~0.03..0.06
    assert 0.02 < rows["scale"].min() and rows["scale"].max() < 0.1
