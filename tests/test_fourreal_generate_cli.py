"""`wanderview fourreal` with generated videos (tiny random models): end to end, and the bad combinations."""

from __future__ import annotations

import json

import pytest
import torch

from dummies import svd_dir, wan_i2v_dir, wan_t2v_dir, wan_vace_dir
from wanderview.cameras.camera import Camera
from wanderview.cli import main
from wanderview.data.synthetic_dynamic import dynamic_dataset, orbit_camera
from wanderview.io.cameras import write_transforms_json
from wanderview.io.images import read_image, write_image

TINY = [
    "--canonical-iterations",
    "6",
    "--warmup-iterations",
    "3",
    "--motion-iterations",
    "4",
    "--init-points",
    "300",
    "--frames",
    "2",
    "--video-steps",
    "2",
    "--guidance-scale",
    "1",
    "--clip-frames",
    "5",
    "--context-frames",
    "2",
    "--max-clips",
    "2",
    "--quiet",
]


def _orbit_file(path, count, width=32, height=24):
    """Cameras for a generated freeze video: random-model frames give SfM nothing to match."""
    K = Camera.intrinsics_from_fov(60.0, width, height)
    write_transforms_json(path, Camera.stack([orbit_camera(4.0 * i, K, width, height) for i in range(count)]))
    return str(path)


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def test_prompt_only_with_vace_generates_both_videos(tmp_path):
    out = tmp_path / "run"
    # reference: 5 frames by VACE text-to-video; freeze: 1 + 4 (forward) + 3 (backward, 2 context) frames;
    # no camera file: SfM finds nothing in random-model frames, so the assumed orbit is used
    code = main(["fourreal", "--prompt", "a dog running on the beach", "--video-model",
                 f"hf:{wan_vace_dir()}", "--width", "32", "--height", "24", "--reference-frames", "5",
                 "-o", str(out), *TINY])  # fmt: skip
    assert code == 0
    manifest = _manifest(out)
    gen = manifest["backends"]["generation"]
    assert gen["reference"]["frames"] == 5 and gen["reference"]["prompt"] == "a dog running on the beach"
    assert gen["freeze"]["prompt"] == "Camera circulating around a dog on the beach, time elapse."
    assert gen["freeze"]["frames"] == 8 and gen["freeze"]["match"] == 3
    assert [c["direction"] for c in gen["freeze"]["clips"]] == ["forward", "backward"]
    assert any("2 clips (--max-clips) reached" in n for n in manifest["notes"])
    assert any("SfM failed on the generated" in n for n in manifest["notes"])
    assert manifest["backends"]["freeze_cameras"]["assumed_orbit"] == "generated/freeze_orbit_cameras.json"
    assert {"generate_reference", "generate_freeze", "canonical", "motion"} <= set(manifest["timings_s"])
    assert manifest["backends"]["video"]["description"].startswith("vace adapter")
    for name in ("reference.mp4", "freeze.mp4", "reference/00004.png", "freeze/00007.png",
                 "freeze_orbit_cameras.json"):  # fmt: skip
        assert (out / "generated" / name).is_file(), name
    assert not (out / "generated" / "freeze" / "00008.png").exists()
    # the canonical reference frame is the freeze video's match frame, byte for byte
    canonical = read_image(out / "generated/reference/00000.png")
    assert torch.equal(canonical, read_image(out / "generated/freeze/00003.png"))
    cams = json.loads((out / "cameras.json").read_text())
    assert len(cams["frames"]) == 5 + 8 and cams["wanderview"]["freeze_match"] == 3
    assert (out / "gaussians.ply").is_file() and (out / "video.mp4").is_file()


def test_text_video_model_for_the_reference_and_svd_for_the_freeze_video(tmp_path):
    out = tmp_path / "run"
    code = main(["fourreal", "--prompt", "a cat chasing a mouse", "--text-video-model", f"hf:{wan_t2v_dir()}",
                 "--video-model", f"hf:{svd_dir()}", "--width", "64", "--height", "48",
                 "--reference-frames", "3", "-o", str(out), *TINY, "--max-clips", "1"])  # fmt: skip
    assert code == 0
    manifest = _manifest(out)
    gen = manifest["backends"]["generation"]
    assert gen["reference"]["model"].startswith("Hugging Face WanPipeline")
    assert gen["reference"]["frames"] == 3
    assert gen["freeze"]["frames"] == 5 and gen["freeze"]["match"] == 0 and not gen["freeze"]["prompt_used"]
    assert any("svd video model takes no text" in n for n in manifest["notes"])
    assert read_image(out / "generated/freeze/00004.png").shape == (3, 48, 64)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    d = dynamic_dataset(width=64, height=48, num_reference=3, num_freeze=2)
    (root / "reference").mkdir()
    for i, frame in enumerate(d.reference):
        write_image(root / "reference" / f"{i:05d}.png", frame)
    return root / "reference"


def test_given_reference_and_wan_freeze_at_the_working_size(reference, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "fourreal",
            "--reference-video",
            str(reference),
            "--video-model",
            f"hf:{wan_i2v_dir()}",
            "--max-side",
            "32",
            "--canonical-frame",
            "1",
            "--freeze-cameras",
            _orbit_file(tmp_path / "cams.json", 9),
            "-o",
            str(out),
            *TINY,
        ]
    )
    assert code == 0
    gen = _manifest(out)["backends"]["generation"]
    assert gen["freeze"]["frames"] == 9 and gen["freeze"]["match"] == 4  # 4 new frames per clip
    assert gen["freeze"]["prompt"] == "Camera circulating around the scene, time elapse."
    assert gen["reference"]["size"] == [32, 24]  # the 64x48 reference, copied at the working size
    ref = read_image(out / "generated/reference/00001.png")
    assert ref.shape == (3, 24, 32) and read_image(out / "generated/freeze/00000.png").shape == (3, 24, 32)
    assert torch.equal(ref, read_image(out / "generated/freeze/00004.png"))


def test_a_failing_camera_file_says_where_the_generated_videos_are(reference, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fourreal", "--reference-video", str(reference), "--video-model", f"hf:{wan_i2v_dir()}",
                 "--max-side", "32", "--freeze-cameras", _orbit_file(tmp_path / "c.json", 3),
                 "-o", str(out), *TINY])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "3 cameras for 9 frames" in err and "generated videos:" in err and not out.exists()


def _bad(capsys, argv):
    code = main(["fourreal", *TINY, *argv])  # the later option wins
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_impossible_generative_combinations(reference, tmp_path, capsys):
    out = ["-o", str(tmp_path / "out")]
    vace, svd, t2v = f"hf:{wan_vace_dir()}", f"hf:{svd_dir()}", f"hf:{wan_t2v_dir()}"
    ref = ["--reference-video", str(reference)]
    assert "--prompt" in _bad(capsys, out)
    assert "--text-video-model" in _bad(capsys, ["--prompt", "a cat", *out])  # no model for the text
    assert "cannot make a video from text" in _bad(capsys, ["--prompt", "a cat", "--video-model", svd, *out])
    assert "image-to-video --video-model" in _bad(capsys, [*ref, *out])  # no freeze video, no model
    assert "--reference-video too" in _bad(
        capsys, ["--prompt", "a", "--video-model", vace, "--freeze-video", str(reference), *out]
    )
    assert "already gives" in _bad(capsys, [*ref, "--video-model", vace, "--text-video-model", t2v, *out])
    assert "--coverage" in _bad(capsys, [*ref, "--video-model", vace, *out, "--coverage", "0"])
    assert "--context-frames" in _bad(capsys, [*ref, "--video-model", vace, *out, "--context-frames", "5"])
    assert "not an image-to-video" in _bad(capsys, [*ref, "--video-model", t2v, *out])
    assert "--canonical-frame" in _bad(capsys, [*ref, "--video-model", vace, *out, "--canonical-frame", "3"])
    wrong = _orbit_file(tmp_path / "r.json", 2)
    bad_cameras = [*ref, "--video-model", vace, "--reference-cameras", wrong, *out]
    assert "2 cameras for 3 frames" in _bad(capsys, bad_cameras)  # before anything is generated
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
