"""`wanderview fit-gaussians` and `wanderview render`: smoke tests and bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from wanderview.cameras.camera import Camera
from wanderview.cli import main
from wanderview.data.synthetic import default_camera, make_scene, render_view
from wanderview.io.cameras import write_transforms_json
from wanderview.io.depth import write_depth
from wanderview.io.images import read_image, write_image


def _write_run(folder, n=5, w=40, h=30, depth=True):
    """A run folder like the methods write: frames/, depth/, cameras.json."""
    name = "two_planes"
    scene, cam0 = make_scene(name), default_camera(name, w, h)
    cams = []
    for i in range(n):
        pose = cam0.cam_to_world.clone()
        pose[0, 3] = 0.3 * (i / (n - 1) - 0.5)
        cams.append(cam0.with_pose(pose))
        view = render_view(scene, cams[-1])
        write_image(folder / "frames" / f"{i:05d}.png", view.rgb)
        if depth:
            write_depth(folder / "depth" / f"{i:05d}.npy", view.depth)
    write_transforms_json(
        folder / "cameras.json", Camera.stack(cams), [f"frames/{i:05d}.png" for i in range(n)]
    )
    return cams


def test_fit_gaussians_then_render_the_run(tmp_path, capsys):
    _write_run(tmp_path / "run")
    out = tmp_path / "fit"
    code = main(["fit-gaussians", str(tmp_path / "run"), "-o", str(out), "--iterations", "20",
                 "--init-count", "400", "--holdout", "3", "--quiet"])  # fmt: skip
    assert code == 0
    for name in ("gaussians.ply", "video.mp4", "loss.png", "cameras.json", "manifest.json", "config.json"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames"] == 3  # views 1 and 4 are held out
    assert math.isfinite(manifest["backends"]["psnr_heldout"])
    assert read_image(out / "frames" / "00000.png").shape == (3, 30, 40)

    code = main(["render", str(out), "--trajectory", "orbit", "--frames", "3", "--time", "0..1",
                 "-o", str(tmp_path / "orbit"), "--quiet"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "orbit" / "frames").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    manifest = json.loads((tmp_path / "orbit" / "manifest.json").read_text())
    assert manifest["backends"]["kind"] == "gaussians"
    assert any("static" in note for note in manifest["notes"])
    assert "static" in capsys.readouterr().err


def test_render_a_mesh_and_points_file_with_a_camera_file(tmp_path):
    from wanderview.io.mesh import save_mesh, save_points

    verts = torch.tensor([[-1.0, -1, 3], [1, -1, 3], [-1, 1, 3], [1, 1, 3]])
    faces = torch.tensor([[0, 2, 1], [1, 2, 3]])
    save_mesh(tmp_path / "quad.ply", verts, faces, torch.rand(4, 3))
    save_points(tmp_path / "pts.ply", torch.rand(200, 3) + torch.tensor([0, 0, 2.0]), torch.rand(200, 3))
    cams = Camera.stack([Camera.from_fov(60, 32, 24)] * 2)
    write_transforms_json(tmp_path / "path.json", cams)
    for scene in ("quad.ply", "pts.ply"):
        out = tmp_path / f"out_{scene}"
        code = main(["render", str(tmp_path / scene), "--trajectory", str(tmp_path / "path.json"),
                     "--width", "32", "--height", "24", "-o", str(out), "--quiet"])  # fmt: skip
        assert code == 0, scene
        frame = read_image(out / "frames" / "00001.png")
        assert frame.shape == (3, 24, 32) and frame.max() > 0


@pytest.mark.parametrize("case", ["no_cameras", "size_mismatch", "missing_image", "not_a_folder"])
def test_fit_gaussians_bad_datasets_exit_2_with_one_sentence(tmp_path, capsys, case):
    run = tmp_path / "run"
    _write_run(run, n=3, depth=False)
    if case == "no_cameras":
        (run / "cameras.json").unlink()
    elif case == "size_mismatch":
        write_image(run / "frames" / "00001.png", torch.rand(3, 20, 20))
    elif case == "missing_image":
        (run / "frames" / "00002.png").unlink()
    else:
        run = run / "cameras.json"
    out = tmp_path / "out"
    code = main(["fit-gaussians", str(run), "-o", str(out), "--iterations", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("wanderview: error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / ".out.partial").exists()


@pytest.mark.parametrize("content", [b"hello", None])
def test_render_unknown_scene_file_exits_2(tmp_path, capsys, content):
    path = tmp_path / ("scene.obj" if content is None else "scene.ply")
    path.write_bytes(b"o thing\n" if content is None else content)
    code = main(["render", str(path), "--frames", "2", "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_render_bad_time_exits_2(tmp_path, capsys):
    from wanderview.scenes.gaussians import GaussianScene

    scene = GaussianScene.from_points(torch.rand(20, 3) + torch.tensor([0, 0, 2.0]), torch.rand(20, 3))
    scene.save(tmp_path / "g.ply")
    code = main(["render", str(tmp_path / "g.ply"), "--time", "soon", "-o", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and "--time" in capsys.readouterr().err
