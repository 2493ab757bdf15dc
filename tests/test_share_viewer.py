"""`wanderview view`: the viser calls for each scene type (no browser), camera conversions, and a real
server on a free 127.0.0.1 port (page over HTTP, listening on loopback only, Ctrl-C stops it)."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

from loopback import assert_loopback_only, free_port
from share_runs import make_run
from wanderview.cameras.camera import Camera, look_at_pose
from wanderview.cli import main
from wanderview.io.images import read_image
from wanderview.io.mesh import save_points
from wanderview.share.run import SceneData, open_run
from wanderview.share.viewer_scene import (
    camera_path_calls,
    camera_view,
    rotation_to_wxyz,
    scene_calls,
    view_camera,
    wxyz_to_rotation,
)

viser = pytest.importorskip("viser", reason="the [viewer] extra (viser) is not installed")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("share_view"), "mesh", frames=3)


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_quaternions_round_trip_and_match_viser():
    rng = np.random.default_rng(0)
    rotations = [_random_rotation(rng) for _ in range(50)]
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    for R in rotations:
        wxyz = rotation_to_wxyz(R)
        np.testing.assert_allclose(wxyz_to_rotation(wxyz), R, atol=1e-9)
        np.testing.assert_allclose(viser.transforms.SO3(wxyz).as_matrix(), R, atol=1e-9)


def test_camera_view_and_back():
    pose = look_at_pose(torch.tensor([0.5, -0.2, -1.0]), torch.tensor([0.0, 0.0, 3.0]))
    camera = Camera.from_fov(60.0, 96, 64, pose)
    view = camera_view(camera)
    assert view["aspect"] == pytest.approx(1.5)
    # vertical fov of a 60 degree horizontal fov at 3:2
    assert view["fov"] == pytest.approx(2 * math.atan(math.tan(math.radians(30)) / 1.5))
    back = view_camera(view["wxyz"], view["position"], view["fov"], 96, 64)
    torch.testing.assert_close(back.cam_to_world, camera.cam_to_world, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.K, camera.K, atol=1e-3, rtol=0)


def _scene(kind: str, n: int = 50) -> SceneData:
    rng = np.random.default_rng(1)
    positions = rng.normal(size=(n, 3)).astype(np.float32)
    colors = rng.random((n, 3)).astype(np.float32)
    if kind == "mesh":
        return SceneData("mesh", positions, colors, faces=rng.integers(0, n, (20, 3)))
    if kind == "points":
        return SceneData("points", positions, colors)
    cov = np.tile(np.eye(3, dtype=np.float32) * 0.01, (n, 1, 1))
    g = {"opacities": np.full(n, 0.8, np.float32), "covariances": cov}
    return SceneData("gaussians", positions, colors, gaussians=g)


def test_scene_calls_for_each_scene_type():
    (mesh,) = scene_calls(_scene("mesh"), "/scene", 0.01)
    assert mesh.method == "add_mesh_trimesh" and mesh.name == "/scene"
    np.testing.assert_allclose(mesh.kwargs["mesh"].vertices, _scene("mesh").positions, atol=1e-6)
    colours = np.asarray(mesh.kwargs["mesh"].visual.vertex_colors)[:, :3]
    np.testing.assert_array_equal(colours, np.round(_scene("mesh").colors * 255).astype(np.uint8))

    (points,) = scene_calls(_scene("points"), "/scene", 0.02, max_points=30)
    assert points.method == "add_point_cloud"
    assert points.kwargs["points"].shape == (30, 3) and points.kwargs["colors"].dtype == np.uint8
    assert points.kwargs["point_size"] == 0.02

    splats, fallback = scene_calls(_scene("gaussians"), "/scene", 0.02)
    assert splats.method == "add_gaussian_splats" and splats.name == "/scene"
    assert splats.kwargs["covariances"].shape == (50, 3, 3) and splats.kwargs["opacities"].shape == (50, 1)
    assert fallback.method == "add_point_cloud" and fallback.name == "/scene_points"
    assert fallback.kwargs["visible"] is False and splats.kwargs["visible"] is True


def test_camera_path_calls(run_dir):
    run = open_run(run_dir)
    calls = camera_path_calls(run, extent=2.0, thumb_width=24)
    frustums = [c for c in calls if c.method == "add_camera_frustum"]
    assert [c.name for c in frustums] == ["/cameras/00000", "/cameras/00001", "/cameras/00002"]
    for i, call in enumerate(frustums):
        np.testing.assert_allclose(call.kwargs["position"], run.cameras[i].center.numpy(), atol=1e-6)
        R = wxyz_to_rotation(call.kwargs["wxyz"])
        np.testing.assert_allclose(R, run.cameras[i].cam_to_world[:3, :3].numpy(), atol=1e-6)
        assert call.kwargs["image"].shape == (16, 24, 3)
        assert 0.02 * 2.0 <= call.kwargs["scale"] <= 0.1 * 2.0
    (path,) = [c for c in calls if c.name == "/cameras/path"]
    assert path.kwargs["points"].shape == (2, 2, 3)


def test_frustum_scale_follows_the_camera_spacing():
    from wanderview.share.viewer_scene import frustum_scale

    line = np.stack([np.zeros(11), np.zeros(11), np.linspace(0, 0.1, 11)], axis=1)  # steps of 0.01
    assert frustum_scale(line, extent=1.0) == pytest.approx(0.02)
    assert frustum_scale(line * 3, extent=1.0) == pytest.approx(0.06)
    assert frustum_scale(line * 100, extent=1.0) == pytest.approx(0.1)
    assert frustum_scale(line[:1], extent=1.0) == pytest.approx(0.1)


def test_server_serves_on_loopback_only(run_dir, tmp_path):
    from wanderview.share.viewer import start_viewer

    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    server, viewer = start_viewer(open_run(run_copy), port=free_port())
    try:
        port = server.get_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
            assert b"<html" in response.read().lower()
        assert_loopback_only(port)
        assert set(viewer.handles) >= {"/scene", "/cameras/00000", "/cameras/00002", "/cameras/path"}
        assert viewer.time_slider is None
        # the render button's work: frame 0's camera renders the input view back
        view = viewer.go_to_frame(0)
        path = viewer.save_view(view["wxyz"], view["position"], view["fov"])
        assert path == run_copy / "views" / "view_000.png"
        rendered, frame = read_image(path), open_run(run_copy).read_frame(0)
        # (the mesh spans pixel centres and drops faces across depth edges: those pixels stay empty)
        assert float(((rendered - frame).abs().amax(0) < 0.02).float().mean()) > 0.85
        own = viewer.render(view["wxyz"], view["position"], view["fov"])
        renderer = viewer._renderers[run_copy / "mesh.ply"]
        torch.testing.assert_close(own.rgb, renderer.render(open_run(run_copy).cameras[0]).rgb)
        assert viewer.save_view(view["wxyz"], view["position"], view["fov"]).name == "view_001.png"
    finally:
        server.stop()


def test_time_slider_for_a_dynamic_scene(run_dir, tmp_path):
    from wanderview.share.viewer import start_viewer

    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    (run_copy / "scene_t").mkdir()
    for t in range(3):
        save_points(run_copy / "scene_t" / f"{t:05d}.ply", torch.rand(20, 3) + t, torch.rand(20, 3))
    server, viewer = start_viewer(open_run(run_copy), port=free_port())
    try:
        assert viewer.time_slider is not None and viewer.time_slider.max == 2
        assert [viewer.handles[f"/scene_t/{t:05d}"].visible for t in range(3)] == [True, False, False]
        viewer.set_time(2)
        assert [viewer.handles[f"/scene_t/{t:05d}"].visible for t in range(3)] == [False, False, True]
        # the render button draws the time step shown: its points lie at +2, in front of frame 0
        view = viewer.go_to_frame(0)
        viewer.render(view["wxyz"], view["position"], view["fov"])
        assert set(viewer._renderers) == {run_copy / "scene_t" / "00002.ply"}
    finally:
        server.stop()


def test_view_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a wanderview run folder" in err and err.count("\n") == 1


def test_serve_warns_off_loopback_and_stops_on_ctrl_c(run_dir, monkeypatch, capsys):
    from wanderview.share import viewer as viewer_module

    class FakeServer:
        stopped = False

        def get_port(self):
            return 9999

        def stop(self):
            FakeServer.stopped = True

    def interrupt(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(viewer_module, "start_viewer", lambda run, host, port: (FakeServer(), None))
    monkeypatch.setattr(viewer_module.time, "sleep", interrupt)
    assert viewer_module.serve(open_run(run_dir), host="0.0.0.0", port=9999) == 0
    out = capsys.readouterr()
    assert "reachable from the network" in out.err and "stopped" in out.out and FakeServer.stopped
    assert viewer_module.is_loopback("127.0.0.1") and viewer_module.is_loopback("::1")
    assert not viewer_module.is_loopback("0.0.0.0") and not viewer_module.is_loopback("192.168.1.2")


def test_cli_prints_the_url_and_stops_on_sigint(run_dir):
    port = free_port()
    code = "import sys; from wanderview.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "view", str(run_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        line = ""
        while "wanderview view: http://" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, "the viewer did not start"
            line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped" in rest and "Traceback" not in rest


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _client_position(server):
    for client in server.get_clients().values():
        try:
            return np.asarray(client.camera.position)
        except AssertionError:  # viser asserts until the browser has reported its camera once
            return None
    return None


@pytest.mark.slow
def test_browser_frame_slider_and_render_button(run_dir, tmp_path):
    from selenium.webdriver.common.by import By

    from browser import make_driver
    from wanderview.share.viewer import start_viewer

    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    server, viewer = start_viewer(open_run(run_copy), port=free_port())
    browser = None
    try:
        browser = make_driver(900, 600)
        browser.get(f"http://127.0.0.1:{server.get_port()}/")
        _wait(lambda: _client_position(server) is not None, 120, "the browser to connect")
        target = viewer.go_to_frame(2)["position"]
        _wait(lambda: np.allclose(_client_position(server), target, atol=1e-4), 60,
              "the browser's camera to move to frame 2")  # fmt: skip
        button = _wait(lambda: browser.find_elements(By.XPATH, "//button[contains(., 'render this view')]"),
                       60, "the render button")  # fmt: skip
        button[0].click()
        _wait(lambda: (run_copy / "views" / "view_000.png").exists(), 120, "the rendered view")
        rendered = read_image(run_copy / "views" / "view_000.png")
        # no inpainting, so frame 2 is the input mesh rendered from camera 2: the browser's camera,
        # sent back to the server, must be that camera
        frame = open_run(run_copy).read_frame(2)
        assert float(((rendered - frame).abs().amax(0) < 0.05).float().mean()) > 0.9
    finally:
        if browser is not None:
            browser.quit()
        server.stop()
