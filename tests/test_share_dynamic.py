"""A fourreal run in `wanderview view` and `export`: frames from video_cameras.json, and the time
slider moving the deformable Gaussians (gaussians.ply + deformation.safetensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loopback import free_port
from test_fourreal_cli import TINY, _write_video
from wanderview.cli import main
from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.share.run import open_run

viser = pytest.importorskip("viser", reason="the [viewer] extra (viser) is not installed")


@pytest.fixture(scope="module")
def fourreal_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fourreal_view")
    d = dynamic_dataset(width=32, height=24, num_reference=3, num_freeze=4)
    ref = _write_video(root / "reference", d.reference, d.reference_cameras, d.reference_times)
    frz = _write_video(root / "freeze", d.freeze, d.freeze_cameras)
    out = root / "run"
    argv = ["fourreal", "--reference-video", str(root / "reference"), "--freeze-video", str(root / "freeze"),
            "--reference-cameras", str(ref), "--freeze-cameras", str(frz), "-o", str(out), *TINY]  # fmt: skip
    assert main(argv) == 0
    return out


def test_open_and_export_a_fourreal_run(fourreal_run, tmp_path):
    run = open_run(fourreal_run)  # cameras.json lists the input videos, whose frames are not in the run
    assert len(run) == 3 and run.frame_paths[0].name == "00000.png"  # --frames 3 of video.mp4
    assert run.deformation_path == fourreal_run / "deformation.safetensors"
    assert main(["export", str(fourreal_run), "--to", "splat", "-o", str(tmp_path / "s.ply")]) == 0
    assert (tmp_path / "s.ply").read_bytes() == (fourreal_run / "gaussians.ply").read_bytes()


def test_time_slider_moves_the_deformable_gaussians(fourreal_run):
    from wanderview.scenes.deformable import DeformableGaussianScene
    from wanderview.share.viewer import start_viewer

    server, viewer = start_viewer(open_run(fourreal_run), port=free_port())
    try:
        assert viewer.time_values == [0.0, 0.5, 1.0]  # the reference frames' times
        assert viewer.time_slider is not None and viewer.time_slider.max == 2
        assert "/scene" not in viewer.handles  # the canonical scene is step 0, not drawn twice
        assert [viewer.handles[f"/scene_t/{t:05d}"].visible for t in range(3)] == [True, False, False]
        scene = DeformableGaussianScene.load(fourreal_run / "gaussians.ply")
        canonical = scene.means.numpy()
        assert np.array_equal(viewer.time_scenes[0].positions, canonical)  # t = 0: no deformation
        moved = viewer.time_scenes[2].positions
        dx = scene.deformation(time=1.0)[0].detach().numpy()
        np.testing.assert_allclose(moved, canonical + dx, atol=1e-6)
        assert np.abs(moved - canonical).max() > 0
        viewer.set_time(2)
        assert [viewer.handles[f"/scene_t/{t:05d}"].visible for t in range(3)] == [False, False, True]
        assert viewer.time_label.content == "t = 1.000"
        # the render button draws the deformable scene at the step's time
        view = viewer.go_to_frame(0)
        late = viewer.render(view["wxyz"], view["position"], view["fov"])
        from wanderview.share.viewer_scene import view_camera

        camera = view_camera(view["wxyz"], view["position"], view["fov"], 32, 24)
        torch.testing.assert_close(late.rgb, scene.render(camera, time=1.0).rgb)
        viewer.set_time(0)
        early = viewer.render(view["wxyz"], view["position"], view["fov"])
        torch.testing.assert_close(early.rgb, scene.render(camera, time=0.0).rgb)
        assert not torch.equal(early.rgb, late.rgb)
    finally:
        server.stop()
