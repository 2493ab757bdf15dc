"""Camera files: exact round trips, axis conventions, and clean errors on malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from wanderview.cameras.camera import Camera
from wanderview.errors import InputError, WanderviewError
from wanderview.io.cameras import (
    read_cameras,
    read_llff,
    read_re10k,
    read_transforms_json,
    write_llff,
    write_re10k,
    write_transforms_json,
)

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "shared/data/trajectories/re10k").glob("*.txt"))


def random_cameras(n: int, seed: int, shared_intrinsics: bool = True, centred: bool = False) -> Camera:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(n, 3)) * 3
    w, h = 320, 240
    if centred:
        f = rng.uniform(100, 400, size=(n, 1)).repeat(2, axis=1)
        pp = np.tile([w / 2, h / 2], (n, 1))
    else:
        f, pp = rng.uniform(100, 400, size=(n, 2)), rng.uniform(50, 200, size=(n, 2))
    if shared_intrinsics:
        f[:], pp[:] = f[0], pp[0]
    K = np.tile(np.eye(3), (n, 1, 1))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = f[:, 0], f[:, 1], pp[:, 0], pp[:, 1]
    return Camera(torch.tensor(K, dtype=torch.float32), torch.tensor(c2w, dtype=torch.float32), w, h)


def assert_same(a: Camera, b: Camera) -> None:
    assert (a.width, a.height) == (b.width, b.height)
    assert torch.equal(a.K, b.K)
    assert torch.equal(a.cam_to_world, b.cam_to_world)


@pytest.mark.parametrize("shared", [True, False])
def test_transforms_json_round_trip_is_exact(tmp_path, shared):
    cams = random_cameras(7, seed=1, shared_intrinsics=shared)
    paths = [f"frames/{i:05d}.png" for i in range(7)]
    write_transforms_json(tmp_path / "cams.json", cams, file_paths=paths, extra={"note": "x"})
    data = json.loads((tmp_path / "cams.json").read_text())
    assert ("fl_x" in data) == shared and ("fl_x" in data["frames"][0]) == (not shared)
    assert data["w"] == 320 and data["h"] == 240 and data["note"] == "x"
    back, back_paths = read_transforms_json(tmp_path / "cams.json")
    assert_same(cams, back)
    assert back_paths == paths


def test_transforms_json_uses_opengl_axes(tmp_path):
    cam = Camera.from_fov(60, 64, 48)
    write_transforms_json(tmp_path / "c.json", cam)
    matrix = json.loads((tmp_path / "c.json").read_text())["frames"][0]["transform_matrix"]
    assert np.array_equal(np.array(matrix), np.diag([1.0, -1.0, -1.0, 1.0]))


def test_transforms_json_reads_nerf_camera_angle(tmp_path):
    frame = {"transform_matrix": np.eye(4).tolist(), "file_path": "a.png"}
    (tmp_path / "t.json").write_text(json.dumps({"camera_angle_x": np.pi / 2, "frames": [frame]}))
    with pytest.raises(InputError, match="no image size"):
        read_transforms_json(tmp_path / "t.json")
    cams, _ = read_transforms_json(tmp_path / "t.json", width=100, height=80)
    assert cams.fx.item() == pytest.approx(50.0) and cams.cy.item() == 40.0


def test_re10k_round_trip_is_exact(tmp_path):
    cams = random_cameras(5, seed=2, shared_intrinsics=False)
    stamps = torch.tensor([10, 20, 33, 47, 2**40])
    write_re10k(tmp_path / "c.txt", cams, stamps, url="https://example.org/v")
    lines = (tmp_path / "c.txt").read_text().splitlines()
    assert lines[0] == "https://example.org/v" and len(lines) == 6
    back, back_stamps = read_re10k(tmp_path / "c.txt", 320, 240)
    assert_same(cams, back)
    assert torch.equal(back_stamps, stamps)


def test_re10k_file_holds_world_to_camera_and_normalised_intrinsics(tmp_path):
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    cam = Camera.from_focal(160.0, 320, 240, pose)
    write_re10k(tmp_path / "c.txt", cam)
    numbers = [float(v) for v in (tmp_path / "c.txt").read_text().splitlines()[1].split()]
    assert numbers[1:5] == [0.5, 160 / 240, 0.5, 0.5]
    assert numbers[7:] == [1, 0, 0, -1, 0, 1, 0, -2, 0, 0, 1, -3]


@pytest.mark.skipif(not SAMPLES, reason="optional RealEstate10K samples not present in ../shared/data")
@pytest.mark.parametrize("index", range(3))
def test_re10k_samples_round_trip(tmp_path, index):
    sample = SAMPLES[index % len(SAMPLES)]
    cams, stamps = read_re10k(sample, 640, 360)
    assert len(cams) == len(sample.read_text().split("\n")[1:]) - 1  # trailing newline
    write_re10k(tmp_path / "c.txt", cams, stamps, url=sample.read_text().splitlines()[0])
    back, back_stamps = read_re10k(tmp_path / "c.txt", 640, 360)
    assert_same(cams, back)
    assert torch.equal(stamps, back_stamps)
    original = np.array([line.split() for line in sample.read_text().splitlines()[1:]], dtype=np.float64)
    lines = (tmp_path / "c.txt").read_text().splitlines()[1:]
    written = np.array([line.split() for line in lines], dtype=np.float64)
    assert np.allclose(original, written, atol=1e-6)


def test_llff_round_trip_is_exact(tmp_path):
    cams = random_cameras(4, seed=3, shared_intrinsics=False, centred=True)
    bounds = torch.tensor([[0.5, 10.0], [0.6, 11.0], [0.7, 12.0], [0.8, 13.0]])
    write_llff(tmp_path / "poses_bounds.npy", cams, bounds)
    back, back_bounds = read_llff(tmp_path / "poses_bounds.npy")
    assert_same(cams, back)
    assert torch.equal(bounds, back_bounds)


def test_llff_axes_are_down_right_back(tmp_path):
    cam = Camera.from_focal(100.0, 64, 48)  # identity pose: right = +x, down = +y, forward = +z
    write_llff(tmp_path / "p.npy", cam, [[1.0, 2.0]])
    row = np.load(tmp_path / "p.npy")[0]
    m = row[:15].reshape(3, 5)
    assert np.array_equal(m[:, :3], [[0, 1, 0], [1, 0, 0], [0, 0, -1]])
    assert np.array_equal(m[:, 4], [48, 64, 100])


def test_llff_refuses_intrinsics_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="one focal"):
        write_llff(tmp_path / "p.npy", random_cameras(2, seed=4), torch.ones(2, 2))


def test_read_cameras_dispatches_by_extension_and_content(tmp_path):
    cams = random_cameras(3, seed=5, centred=True)
    write_transforms_json(tmp_path / "a.json", cams)
    write_re10k(tmp_path / "b.txt", cams)
    write_llff(tmp_path / "c.npy", cams, torch.ones(3, 2))
    (tmp_path / "noext_json").write_bytes((tmp_path / "a.json").read_bytes())
    (tmp_path / "noext_npy").write_bytes((tmp_path / "c.npy").read_bytes())
    for name in ("a.json", "c.npy", "noext_json", "noext_npy"):
        assert_same(read_cameras(tmp_path / name), cams)
    assert_same(read_cameras(tmp_path / "b.txt", 320, 240), cams)
    with pytest.raises(InputError, match="width and height"):
        read_cameras(tmp_path / "b.txt")
    with pytest.raises(InputError, match="does not exist"):
        read_cameras(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cams.json", '{"fl_x": 1, "w": 4, "h": 4, "frames": [{"transform_matrix": [[1, 0], [0, 1]]}]}',
         "frame 0 of cams.json has no 4x4 transform_matrix"),
        ("cams.json", '{"frames": []}', "no non-empty 'frames'"),
        ("cams.json", '{"frames": [', "not valid JSON"),
        ("cams.json", '{"w": 4, "h": 4, "frames": [{"transform_matrix": '
         + json.dumps(np.eye(4).tolist()) + "}]}", "no focal length"),
        ("cams.json", '{"fl_x": 2, "w": 4, "h": 4, "frames": [{"transform_matrix": '
         + json.dumps((2 * np.eye(4)).tolist()) + "}]}", "not orthonormal"),
        ("cams.txt", "url\n1 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1\n", "has 18 numbers instead of 19"),
        ("cams.txt", "url\n1 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 x 0\n", "not a number"),
        ("cams.txt", "url\n", "no camera lines"),
    ],
)
def test_malformed_files_raise_input_error_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_cameras(tmp_path / name, 64, 64)
    assert name in str(info.value)


def test_truncated_llff_raises_input_error(tmp_path):
    write_llff(tmp_path / "p.npy", Camera.from_focal(10.0, 8, 8), [[1.0, 2.0]])
    data = (tmp_path / "p.npy").read_bytes()
    (tmp_path / "p.npy").write_bytes(data[: len(data) - 20])
    with pytest.raises(InputError, match="p.npy"):
        read_llff(tmp_path / "p.npy")
    np.save(tmp_path / "q.npy", np.zeros((3, 15)))
    with pytest.raises(InputError, match=r"\(N, 17\)"):
        read_llff(tmp_path / "q.npy")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
frame_like = st.fixed_dictionaries(
    {"frames": st.lists(st.dictionaries(st.sampled_from(["transform_matrix", "fl_x", "w", "file_path"]),
                                        json_values), max_size=3)},
    optional={"fl_x": json_values, "w": json_values, "h": json_values, "camera_angle_x": json_values},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300), suffix=st.sampled_from([".json", ".txt", ".npy", ".cam"]))
def test_random_bytes_only_raise_wanderview_errors(tmp_path, blob, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(blob)
    for reader in (lambda: read_cameras(path, 64, 48), lambda: read_transforms_json(path),
                   lambda: read_re10k(path, 64, 48), lambda: read_llff(path)):
        try:
            reader()
        except WanderviewError:
            pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=json_values | frame_like)
def test_random_json_only_raises_wanderview_errors(tmp_path, data):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    try:
        read_transforms_json(path, 64, 48)
    except WanderviewError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.floats(width=32) | st.integers(-5, 5), min_size=17, max_size=19),
                     max_size=3))
def test_random_number_files_only_raise_wanderview_errors(tmp_path, rows):
    (tmp_path / "r.txt").write_text("url\n" + "\n".join(" ".join(map(str, r)) for r in rows))
    arrays = [np.array(r[:17], dtype=np.float64) for r in rows if len(r) >= 17]
    np.save(tmp_path / "r.npy", np.array(arrays) if arrays else np.zeros((0, 17)))
    for reader in (lambda: read_re10k(tmp_path / "r.txt", 64, 48), lambda: read_llff(tmp_path / "r.npy")):
        try:
            reader()
        except WanderviewError:
            pass


def test_huge_json_integers_raise_input_error(tmp_path):
    frame = {"transform_matrix": np.eye(4).tolist()}
    (tmp_path / "t.json").write_text(json.dumps({"fl_x": 10**400, "w": 4, "h": 4, "frames": [frame]}))
    with pytest.raises(InputError, match="out-of-range fl_x"):
        read_transforms_json(tmp_path / "t.json")
