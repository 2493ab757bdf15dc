"""Named trajectories, keyframe interpolation, spec parsing, make_trajectory, the plot and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from wanderview.cameras.camera import Camera
from wanderview.cameras.plot import plot_trajectory
from wanderview.cameras.trajectories import (
    TRAJECTORIES,
    interpolate_poses,
    make_trajectory,
    parse_trajectory_spec,
)
from wanderview.cli import main
from wanderview.errors import ConfigError, InputError
from wanderview.io.cameras import read_transforms_json, write_transforms_json

NAMED = [name for name in TRAJECTORIES if name != "keyframes"]


def keyframe_file(tmp_path, count=4, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3, :3] = Rotation.from_euler("y", rng.uniform(-0.5, 0.5, (count, 1))).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(size=(count, 3)) * 0.3, axis=0)
    cams = Camera.from_focal(50.0, 64, 48).with_pose(torch.tensor(poses, dtype=torch.float32))
    write_transforms_json(tmp_path / "keys.json", cams)
    return tmp_path / "keys.json", cams


@pytest.mark.parametrize("name", NAMED)
def test_paths_start_at_identity_with_rigid_poses(name):
    path = TRAJECTORIES[name](40)
    c2w = path.cam_to_world
    assert c2w.shape == (40, 4, 4) and c2w.dtype == torch.float32 and path.focal_scale.shape == (40,)
    assert torch.allclose(c2w[0], torch.eye(4), atol=1e-6)
    assert path.focal_scale[0] == 1.0
    R = c2w[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(40, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(40), atol=1e-5)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(40, 4))


@pytest.mark.parametrize("name", NAMED)
def test_paths_are_smooth(name):
    path = TRAJECTORIES[name](60)
    centres = path.cam_to_world[:, :3, 3].double()
    steps = (centres[1:] - centres[:-1]).norm(dim=1)
    accel = (centres[2:] - 2 * centres[1:-1] + centres[:-2]).norm(dim=1)
    # second differences stay below a quarter of the largest step (the path turns by < ~14 degrees
    # a frame and never jumps); a corner or a reset would give a second difference near a full step
    assert accel.max() <= 0.25 * max(float(steps.max()), 1e-3) + 1e-6
    forward = path.cam_to_world[:, :3, 2].double()
    turn = torch.acos((forward[1:] * forward[:-1]).sum(1).clamp(-1, 1))
    assert turn.max() < math.radians(5)


def test_paths_move_as_documented():
    assert TRAJECTORIES["forward"](5, distance=0.4).cam_to_world[-1, 2, 3] == pytest.approx(0.4)
    assert TRAJECTORIES["backward"](5).cam_to_world[-1, 2, 3] == pytest.approx(-0.5)
    zoom = TRAJECTORIES["zoom"](5, factor=3.0)
    assert zoom.focal_scale[-1] == pytest.approx(3.0) and torch.equal(zoom.cam_to_world[-1], torch.eye(4))
    pan = TRAJECTORIES["pan"](5, angle_deg=90)
    assert torch.allclose(pan.cam_to_world[-1, :3, 2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)  # right
    orbit = TRAJECTORIES["orbit"](9, angle_deg=60, depth=2.0).cam_to_world
    to_centre = torch.tensor([0.0, 0.0, 2.0]) - orbit[:, :3, 3]
    assert torch.allclose(to_centre.norm(dim=1), torch.full((9,), 2.0), atol=1e-5)
    assert torch.allclose(to_centre / 2.0, orbit[:, :3, 2], atol=1e-5)  # always looking at the centre
    swing = TRAJECTORIES["swing"](13, depth=1.5).cam_to_world
    ahead = swing[:, :3, 3] + 1.5 * swing[:, :3, 2] / swing[:, 2, 2:3]
    assert torch.allclose(ahead[:, :2], torch.zeros(13, 2), atol=1e-5)
    circle = TRAJECTORIES["circle"](17, radius=0.2).cam_to_world[:, :3, 3]
    assert torch.allclose((circle - torch.tensor([0.0, -0.2, 0.0])).norm(dim=1), torch.full((17,), 0.2))
    wonder = TRAJECTORIES["wonderjourney"](11).cam_to_world
    assert math.atan2(wonder[-1, 0, 2], wonder[-1, 2, 2]) == pytest.approx(0.45, abs=1e-5)


def test_dolly_zoom_keeps_the_subject_size():
    camera = Camera.from_fov(50, 64, 64)
    cams = make_trajectory("dolly-zoom:distance=1.0,depth=2.0", 6, camera)
    subject = torch.tensor([[0.3, 0.2, 2.0]])
    u = torch.stack([cam.project(subject)[0][0] for cam in cams])
    assert torch.allclose(u, u[:1].expand_as(u), atol=1e-3)


def test_scenescape_is_seeded_and_starts_backward():
    a = TRAJECTORIES["scenescape"](30, seed=3).cam_to_world
    b = TRAJECTORIES["scenescape"](30, seed=3).cam_to_world
    c = TRAJECTORIES["scenescape"](30, seed=4).cam_to_world
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:6, :3, :3], torch.eye(3).expand(6, 3, 3))  # k = 5 backward frames
    assert torch.allclose(a[5, :3, 3], torch.tensor([0.0, 0.0, -0.25]))
    assert torch.allclose(a[:, 1, 3], torch.zeros(30))  # stays in the x-z plane
    steps = (a[1:, :3, 3] - a[:-1, :3, 3]).norm(dim=1)
    assert torch.allclose(steps, torch.full((29,), 0.05), atol=1e-5)


def test_interpolate_poses_passes_through_keyframes(tmp_path):
    _, cams = keyframe_file(tmp_path, count=4)
    poses = interpolate_poses(cams.cam_to_world, 3 * 5 + 1)
    assert poses.shape == (16, 4, 4) and poses.dtype == torch.float32
    assert torch.allclose(poses[::5], cams.cam_to_world, atol=1e-5)
    assert torch.allclose(interpolate_poses(cams.cam_to_world[:1], 3), cams.cam_to_world[:1].expand(3, 4, 4))
    with pytest.raises(ValueError, match=r"\(K, 4, 4\)"):
        interpolate_poses(torch.eye(4), 3)


def test_keyframes_spec_is_relative_to_the_first_keyframe(tmp_path):
    file, cams = keyframe_file(tmp_path, count=3)
    path = TRAJECTORIES["keyframes"](5, file=str(file))
    relative = torch.linalg.inv(cams.cam_to_world[0]) @ cams.cam_to_world
    assert torch.allclose(path.cam_to_world[::2], relative, atol=1e-5)
    start = Camera.from_fov(60, 32, 32)
    out = make_trajectory(f"keyframes:file={file}", 5, start, scene_scale=2.0)
    assert torch.allclose(out.cam_to_world[-1, :3, 3], 2.0 * relative[-1, :3, 3], atol=1e-5)


def test_parse_trajectory_spec_converts_types():
    assert parse_trajectory_spec("orbit") == ("orbit", {})
    expected = ("dolly-zoom", {"distance": 2.0, "depth": 3.0})
    assert parse_trajectory_spec("dolly_zoom: distance=2, depth=3") == expected
    name, params = parse_trajectory_spec("scenescape:k=2,seed=7,step=0.1")
    assert name == "scenescape" and params == {"k": 2, "seed": 7, "step": 0.1}
    assert isinstance(params["k"], int) and isinstance(params["step"], float)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("teleport", "unknown trajectory 'teleport'; choose one of forward"),
        ("orbit:radius=1", "no parameter 'radius'; its parameters are: angle_deg, depth"),
        ("orbit:depth=far", "parameter 'depth' of trajectory 'orbit' must be float"),
        ("scenescape:k=1.5", "must be int"),
        ("orbit:depth", "key=value"),
        ("orbit:depth=1,depth=2", "given twice"),
        ("orbit:depth=nan", "must be float"),
    ],
)
def test_bad_specs_raise_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_trajectory_spec(spec)


def test_make_trajectory_composes_with_the_input_camera():
    pose = torch.eye(4)
    pose[:3, :3] = torch.tensor(Rotation.from_euler("xyz", [0.1, 0.2, 0.3]).as_matrix(), dtype=torch.float32)
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    camera = Camera.from_fov(55, 48, 32, pose)
    cams = make_trajectory("forward:distance=0.5", 4, camera, scene_scale=4.0)
    assert len(cams) == 4 and (cams.width, cams.height) == (48, 32)
    assert torch.allclose(cams.cam_to_world[0], pose)
    assert torch.allclose(cams.center[-1], pose[:3, 3] + 2.0 * pose[:3, 2], atol=1e-5)
    zoomed = make_trajectory("zoom:factor=2", 3, camera)
    assert torch.allclose(zoomed.fx, camera.fx * torch.tensor([1.0, math.sqrt(2), 2.0]))
    assert torch.equal(zoomed.cx, camera.cx.expand(3))
    for bad in (0, -3, 2.5):
        with pytest.raises(ConfigError, match="at least 1"):
            make_trajectory("forward", bad, camera)
    with pytest.raises(InputError, match="does not exist"):
        make_trajectory("missing_cams.json", 3, camera)


def test_make_trajectory_with_a_camera_file(tmp_path):
    file, cams = keyframe_file(tmp_path, count=3)
    start_pose = torch.eye(4)
    start_pose[:3, 3] = torch.tensor([5.0, 0.0, 0.0])
    start = Camera.from_fov(90, 128, 96, start_pose)  # twice the file's size
    out = make_trajectory(str(file), 10, start, scene_scale=7.0)
    assert len(out) == 3 and (out.width, out.height) == (128, 96)
    assert torch.allclose(out.cam_to_world[0], start_pose, atol=1e-6)
    relative = torch.linalg.inv(cams.cam_to_world[0]) @ cams.cam_to_world
    assert torch.allclose(out.cam_to_world, start_pose @ relative, atol=1e-5)
    assert torch.allclose(out.fx, torch.full((3,), 100.0)) and torch.allclose(out.cx, torch.full((3,), 64.0))


def test_plot_writes_a_png(tmp_path):
    cams = make_trajectory("spiral", 20, Camera.from_fov(55, 64, 48))
    plot_trajectory(cams, tmp_path / "p.png")
    plot_trajectory(Camera.from_fov(55, 64, 48), tmp_path / "single.png")
    for name in ("p.png", "single.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_writes_and_plots(tmp_path, capsys):
    out, png = tmp_path / "cams.json", tmp_path / "cams.png"
    code = main(["trajectory", "orbit:angle_deg=20", "--frames", "12", "-o", str(out), "--plot", str(png),
                 "--width", "96", "--height", "64", "--scale", "2"])
    assert code == 0 and png.stat().st_size > 1000
    cams, _ = read_transforms_json(out)
    assert len(cams) == 12 and (cams.width, cams.height) == (96, 64)
    expected = make_trajectory("orbit:angle_deg=20", 12, Camera.from_fov(55, 96, 64), scene_scale=2.0)
    assert torch.allclose(cams.cam_to_world, expected.cam_to_world, atol=1e-6)
    # a camera file is plotted and converted as it is
    txt = tmp_path / "cams.txt"
    assert main(["trajectory", str(out), "-o", str(txt), "--plot", str(tmp_path / "again.png")]) == 0
    assert txt.read_text().count("\n") == 13
    assert "12 cameras" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["teleport", "-o", "X.json"], "unknown trajectory"),
        (["forward", "--frames", "0", "-o", "X.json"], "--frames must be at least 1"),
        (["BAD.json", "--plot", "X.png"], "no non-empty 'frames'"),
        (["forward"], "nothing to do"),
        (["forward", "-o", "X.ply"], "must end in .json"),
    ],
)
def test_cli_user_errors_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "BAD.json").write_text('{"frames": []}')
    argv = [str(tmp_path / a) if a in ("X.json", "X.png", "X.ply", "BAD.json") else a for a in argv]
    assert main(["trajectory", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "X.json").exists() and not (tmp_path / "X.png").exists()
