"""Issue #15's input/output checklist for ``fourreal`` that the smoke test does not cover.

Frames read from a folder in name order (other files ignored) or an MP4; per-frame ``time`` of a
reference camera file honoured; ``--canonical-frame``; the canonical camera shared by both videos;
every output file's contents; ``wanderview render RUN --trajectory FILE`` reproducing the run's own
video.mp4 (per-frame times, the canonical start camera); and the bad inputs (one sentence, exit 2,
no run folder).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_fourreal_cli import TINY, _bad, _write_video
from wanderview.cameras.camera import Camera
from wanderview.cli import main
from wanderview.data.synthetic_dynamic import dynamic_dataset
from wanderview.errors import InputError
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import read_image, write_image
from wanderview.methods import fourreal
from wanderview.methods.fourreal_inputs import read_frames

FLIP = np.diag([1.0, -1.0, -1.0, 1.0])  # transforms.json holds OpenGL axes


def test_read_frames_sorts_a_folder_by_name_ignores_other_files_and_reads_mp4(tmp_path):
    from wanderview.io.video import write_video

    frames = [torch.full((3, 8, 12), v) for v in (0.2, 0.5, 0.8)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, frame in zip(("b.png", "a.PNG", "c.jpg"), (frames[1], frames[0], frames[2])):
        write_image(folder / name, frame)
    (folder / "notes.txt").write_text("not a frame")
    (folder / "z.png").mkdir()  # a folder with a frame's name is not a frame
    got = read_frames(folder, "reference video")
    assert got.shape == (3, 3, 8, 12)
    assert torch.allclose(got.mean(dim=(1, 2, 3)), torch.tensor([0.2, 0.5, 0.8]), atol=0.02)
    write_video(tmp_path / "v.mp4", [torch.full((3, 16, 16), v) for v in (0.1, 0.5, 0.9, 0.5)], fps=4)
    video = read_frames(tmp_path / "v.mp4", "reference video")
    assert video.shape == (4, 3, 16, 16)
    assert abs(float(video[2].mean()) - 0.9) < 0.05
    with pytest.raises(InputError, match="no image frames"):
        read_frames(tmp_path / "frames" / "z.png", "reference video")


@pytest.fixture(scope="module")
def data():
    return dynamic_dataset(width=32, height=24, num_reference=3, num_freeze=4)


@pytest.fixture(scope="module")
def reversed_run(data, tmp_path_factory):
    """A run on the reversed reference video (the canonical frame is its last one, --canonical-frame 2),
    with uneven per-frame times, a moving reference camera file, a freeze camera file and a camera
    file as --trajectory."""
    d, root = data, tmp_path_factory.mktemp("fourreal_checklist")
    moved = d.reference_cameras.cam_to_world.clone()
    moved[:, 0, 3] += torch.tensor([0.1, 0.05, 0.0])  # the reference camera moves (anchored at frame 2)
    ref_cams = Camera(d.reference_cameras.K, moved, 32, 24)
    ref_file = _write_video(root / "reference", d.reference.flip(0), ref_cams, [1.0, 0.3, 0.0])
    frz_file = _write_video(root / "freeze", d.freeze, d.freeze_cameras)
    path_file = root / "path.json"
    write_transforms_json(path_file, d.heldout_static_cameras[:2])
    out = root / "run"
    argv = ["fourreal", "--reference-video", str(root / "reference"), "--freeze-video", str(root / "freeze"),
            "--reference-cameras", str(ref_file), "--freeze-cameras", str(frz_file), "--canonical-frame", "2",
            "--trajectory", str(path_file), "--time", "0.2..0.8", "-o", str(out), *TINY]  # fmt: skip
    assert main(argv) == 0
    return root, out, ref_file, frz_file


def test_times_canonical_frame_and_cameras_json(data, reversed_run):
    _, out, _, _ = reversed_run
    doc = json.loads((out / "cameras.json").read_text())
    assert doc["wanderview"] == {"canonical_frame": 2, "freeze_match": data.canonical_index}
    reference, freeze = doc["frames"][:3], doc["frames"][3:]
    assert [f["time"] for f in reference] == [1.0, 0.3, 0.0]  # the file's uneven times, not 0, .5, 1
    assert [f["time"] for f in freeze] == [0.0] * 4  # the freeze video is at the canonical time
    poses = np.array([f["transform_matrix"] for f in doc["frames"]]) @ FLIP
    assert np.allclose(poses[2], np.eye(4), atol=1e-6)  # the canonical camera is the identity
    # relative to the canonical camera (frame 2, not the file's first): 0.1 and 0.05 away
    assert np.linalg.norm(poses[:3, :3, 3], axis=1) == pytest.approx([0.1, 0.05, 0.0], abs=1e-5)
    assert np.allclose(poses[3 + data.canonical_index], np.eye(4), atol=1e-6)

    from wanderview.scenes.deformable import DeformableGaussianScene

    scene = DeformableGaussianScene.load(out / "gaussians.ply")
    assert scene.canonical_time == 0.0  # the time of reference frame 2
    assert torch.equal(scene.deformation(time=0.0)[0], torch.zeros(len(scene), 3))
    assert scene.deformation(time=1.0)[0].abs().max() > 0
    assert torch.equal(scene.frames(scene.means, data.canonical_index)[0], torch.zeros(len(scene), 3))


def test_output_files_are_what_the_issue_names(data, reversed_run):
    from safetensors import safe_open

    from wanderview.io.video import read_video

    _, out, _, _ = reversed_run
    header = (out / "gaussians.ply").read_bytes().split(b"end_header")[0].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    assert props == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
                     *[f"f_rest_{i}" for i in range(45)], "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
    with safe_open(str(out / "deformation.safetensors"), framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
        keys = set(handle.keys())
    assert {"temporal", "frames", "schedule"} <= set(config)
    assert config["temporal"]["canonical_time"] == 0.0
    assert config["frames"]["canonical"] == data.canonical_index
    assert any(k.startswith("temporal.") for k in keys) and any(k.startswith("frames.") for k in keys)
    assert len(read_video(out / "fixed_view.mp4")) == len(read_video(out / "freeze_time.mp4")) == 3
    assert len(read_video(out / "video.mp4")) == 2  # --trajectory FILE: the file's two cameras
    video = json.loads((out / "video_cameras.json").read_text())
    assert [f["time"] for f in video["frames"]] == pytest.approx([0.2, 0.8])  # --time A..B


def test_render_reproduces_the_runs_video_from_its_camera_file(reversed_run, tmp_path):
    _, out, _, _ = reversed_run
    # video_cameras.json carries per-frame times; its first camera is the canonical camera, and so
    # is render's start camera for a fourreal run (not cameras.json's first, reference frame 0)
    argv = ["render", str(out), "--trajectory", str(out / "video_cameras.json"), "-o", str(tmp_path / "r"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    for i in range(2):
        name = f"frames/{i:05d}.png"
        assert torch.equal(read_image(tmp_path / "r" / name), read_image(out / name)), name
    again = json.loads((tmp_path / "r" / "cameras.json").read_text())
    assert [f["time"] for f in again["frames"]] == pytest.approx([0.2, 0.8])
    argv = ["render", str(out), "--trajectory", str(out / "video_cameras.json"), "--time", "0",
            "-o", str(tmp_path / "r0"), "--quiet"]  # fmt: skip
    assert main(argv) == 0  # --time overrides the file's times: another picture at frame 1
    frame = "frames/00001.png"
    assert not torch.equal(read_image(tmp_path / "r0" / frame), read_image(out / frame))


def test_a_freeze_camera_file_alone_gives_the_reference_camera_its_intrinsics(data, tmp_path):
    cams = data.freeze_cameras
    K = Camera.intrinsics_from_fov(45.0, 32, 24)  # not --fov's 60 degrees
    frz_file = _write_video(tmp_path / "freeze", data.freeze,
                            Camera(K.expand(4, 3, 3), cams.cam_to_world, 32, 24))  # fmt: skip
    _write_video(tmp_path / "reference", data.reference)
    config = fourreal.Config(reference_video=tmp_path / "reference", freeze_video=tmp_path / "freeze",
                             freeze_cameras=frz_file)  # fmt: skip
    loaded = fourreal.load_inputs(config)
    assert torch.allclose(loaded["reference_cameras"].K, K.expand(3, 3, 3))
    assert torch.allclose(loaded["freeze_cameras"].K, K.expand(4, 3, 3))


def test_bad_inputs_of_the_checklist(data, reversed_run, tmp_path, capsys):
    root, _, ref_file, frz_file = reversed_run
    out = tmp_path / "out"
    videos = ["--reference-video", str(root / "reference"), "--freeze-video", str(root / "freeze")]
    # the reversed video's frame 0 is at time 1: no freeze frame matches it
    assert "matches the canonical" in _bad(capsys, [*videos, "-o", str(out)])
    too_far = [*videos, "--canonical-frame", "3", "-o", str(out)]
    assert "--canonical-frame must be in 0..2" in _bad(capsys, too_far)
    wrong = tmp_path / "wrong.json"
    write_transforms_json(wrong, data.reference_cameras[:2])
    assert "2 cameras for 3 frames" in _bad(
        capsys, [*videos, "--canonical-frame", "2", "--reference-cameras", str(wrong), "-o", str(out)]
    )
    wide = tmp_path / "wide.json"
    cams = data.freeze_cameras
    write_transforms_json(wide, Camera(Camera.intrinsics_from_fov(40.0, 32, 24).expand(4, 3, 3),
                                       cams.cam_to_world, 32, 24))  # fmt: skip
    assert "disagree on the canonical camera" in _bad(capsys, [
        *videos, "--canonical-frame", "2", "--reference-cameras", str(ref_file),
        "--freeze-cameras", str(wide), "-o", str(out)])  # fmt: skip
    assert "give --freeze-cameras too" in _bad(
        capsys, [*videos, "--canonical-frame", "2", "--reference-cameras", str(ref_file), "-o", str(out)]
    )
    partial = tmp_path / "partial.json"
    doc = json.loads(ref_file.read_text())
    del doc["frames"][1]["time"]
    partial.write_text(json.dumps(doc))
    assert "'time' on some frames only" in _bad(
        capsys, [*videos, "--canonical-frame", "2", "--reference-cameras", str(partial), "-o", str(out)]
    )
    missing = ["--reference-video", str(tmp_path / "nope.mp4"), "--freeze-video", str(root / "freeze")]
    assert "nope.mp4" in _bad(capsys, [*missing, "-o", str(out)])
    (tmp_path / "empty").mkdir()
    empty = ["--reference-video", str(tmp_path / "empty"), "--freeze-video", str(root / "freeze")]
    assert "no image frames" in _bad(capsys, [*empty, "-o", str(out)])
    assert not out.exists()
