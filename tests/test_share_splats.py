"""Gaussian splats in `export --to splat` and the viewer (3DGS PLY through io/gaussian_ply.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from share_runs import make_run
from wanderview.cli import main
from wanderview.io import gaussian_ply
from wanderview.io.mesh import load_mesh
from wanderview.render.gaussians import SH_C0, covariances
from wanderview.share.run import load_scene, open_run
from wanderview.share.viewer_scene import scene_calls


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("share_splats"), "mesh", frames=3)


def test_mesh_run_exports_one_gaussian_per_vertex(run_dir, tmp_path):
    out = tmp_path / "scene.ply"
    assert main(["export", str(run_dir), "--to", "splat", "-o", str(out)]) == 0
    assert gaussian_ply.is_gaussian_ply(out)
    ply = gaussian_ply.read_gaussian_ply(out)
    vertices, _, colors = load_mesh(run_dir / "mesh.ply")
    torch.testing.assert_close(ply.means, vertices)
    torch.testing.assert_close((0.5 + SH_C0 * ply.sh[:, 0]).clamp(0, 1), colors, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sigmoid(ply.opacity_logits), torch.full((len(vertices),), 0.95))
    # isotropic, 0.7 of the capture footprint: depth 2..4 at focal ~46 px -> sigma ~0.03..0.06
    sigma = ply.log_scales.exp()
    torch.testing.assert_close(sigma[:, 0], sigma[:, 2])
    assert 0.02 < float(sigma.min()) and float(sigma.max()) < 0.1


def test_viewer_shows_splats_with_a_points_fallback(run_dir, tmp_path):
    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    assert main(["export", str(run_dir), "--to", "splat", "-o", str(run_copy / "gaussians.ply")]) == 0
    run = open_run(run_copy)
    assert run.scene_path.name == "gaussians.ply"  # preferred over mesh.ply
    scene = load_scene(run.scene_path)
    assert scene.kind == "gaussians"
    ply = gaussian_ply.read_gaussian_ply(run.scene_path)
    expected = covariances(ply.quats / ply.quats.norm(dim=1, keepdim=True), ply.log_scales.exp())
    np.testing.assert_allclose(scene.gaussians["covariances"], expected.numpy(), rtol=1e-4, atol=1e-9)
    splats, points = scene_calls(scene, "/scene", 0.01)
    assert splats.method == "add_gaussian_splats" and points.kwargs["visible"] is False
    np.testing.assert_allclose(splats.kwargs["opacities"][:, 0], 0.95, rtol=1e-5)
    # a run that already holds Gaussians is exported as it is
    again = tmp_path / "again.ply"
    assert main(["export", str(run_copy), "--to", "splat", "-o", str(again)]) == 0
    assert again.read_bytes() == (run_copy / "gaussians.ply").read_bytes()


def test_rotated_anisotropic_covariances_match_the_renderer():
    from wanderview.share.splats import covariances as share_covariances

    g = torch.Generator().manual_seed(0)
    quats = torch.randn(20, 4, generator=g) * 3
    scales = torch.rand(20, 3, generator=g) + 0.1
    expected = covariances(quats / quats.norm(dim=1, keepdim=True), scales)
    np.testing.assert_allclose(share_covariances(quats.double().numpy(), scales.double().numpy()),
                               expected.double().numpy(), rtol=1e-5, atol=1e-7)  # fmt: skip


def test_viewer_server_switches_splats_to_points(run_dir, tmp_path):
    from loopback import free_port
    from wanderview.share.viewer import start_viewer

    run_copy = tmp_path / "run"
    shutil.copytree(run_dir, run_copy)
    assert main(["export", str(run_dir), "--to", "splat", "-o", str(run_copy / "gaussians.ply")]) == 0
    server, viewer = start_viewer(open_run(run_copy), port=free_port())
    try:
        splats, points = viewer.handles["/scene"], viewer.handles["/scene_points"]
        assert (splats.visible, points.visible) == (True, False)
        viewer.show_splats_as("points")
        assert (splats.visible, points.visible) == (False, True)
        viewer.show_splats_as("splats")
        assert (splats.visible, points.visible) == (True, False)
    finally:
        server.stop()
