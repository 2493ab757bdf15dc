"""`wanderview dreamjourney` end to end: the CPU fallback, 2 rounds with tiny video models and a scripted
agent, and user errors (one sentence, exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dummies import sd_inpaint_dir, svd_dir, wan_i2v_dir, wan_vace_dir
from test_agent import ScriptedServer
from wanderview.backends import agent_prompts
from wanderview.cli import main
from wanderview.io.cameras import read_transforms_json
from wanderview.io.mesh import load_points

SMALL = ["--width", 64, "--height", 64, "--quiet", "--device", "cpu", "--seed", 1]
TINY_VIDEO = ["--video-steps", 2, "--renoise-rounds", 2, "--pad-views", 1, "--inpainter", "telea"]


def _image(tmp_path: Path, size: int = 80) -> Path:
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], -1)
    path = tmp_path / "start.png"
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


def _run(*args) -> int:
    return main([str(a) for a in args])


def _read(out: Path, name: str):
    return json.loads((out / name).read_text())


def _check_folder(out: Path, frames: int) -> None:
    for name in [
        "video.mp4",
        "cameras.json",
        "config.json",
        "manifest.json",
        "points.ply",
        "agent.json",
        "stages.json",
    ]:
        assert (out / name).is_file(), name
    for kind in ["frames", "depth", "masks"]:
        assert len(list((out / kind).iterdir())) == frames, kind
    assert len(read_transforms_json(out / "cameras.json")[0]) == frames
    assert len(load_points(out / "points.ply")[0]) > 64 * 64


def _frames(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)).astype(np.float32) / 255 for p in sorted((out / "frames").iterdir())]


def test_cpu_fallback_two_rounds_with_eulerian_dynamics(tmp_path):
    out = tmp_path / "run"
    args = ["--rounds", 2, "--frames", 4, "--dynamic-frames", 5, "--motion", "sky:2,0"]
    assert _run("dreamjourney", _image(tmp_path), "-o", out, *args, *SMALL) == 0
    _check_folder(out, 1 + 2 * (3 + 4))
    stages = _read(out, "stages.json")["stages"]
    assert [(s["stage"], s["round"], s["start"], s["end"]) for s in stages] == [
        ("transition", 0, 0, 3),
        ("dynamics", 0, 3, 7),
        ("transition", 1, 7, 10),
        ("dynamics", 1, 10, 14),
    ]
    assert [s["motion"] for s in stages[::2]] == ["linear", "rotate"]
    assert [s["source"] for s in stages[1::2]] == ["Eulerian animation (CPU fallback)"] * 2
    assert stages[1]["flow"] == "sky:2,0" and stages[1]["loop_frames"] == 5
    notes = " ".join(_read(out, "manifest.json")["notes"])
    assert "ablation baseline" in notes and "Stage II (temporal dynamics) is makeit4d's Eulerian" in notes
    assert _read(out, "agent.json") == {"model": "none", "steps": [], "notes": []}
    masks = [np.asarray(Image.open(p)) for p in sorted((out / "masks").iterdir())]
    assert not masks[0].any() and any(m.any() for m in masks[1:3])  # moving back reveals holes
    cameras = read_transforms_json(out / "cameras.json")[0]
    assert all(np.allclose(cameras[3].cam_to_world, cameras[i].cam_to_world) for i in range(4, 8))
    frames = _frames(out)
    for still, moved in ((frames[3], frames[5]), (frames[10], frames[12])):
        change = np.abs(moved - still).max(axis=2)
        # the farthest of 3 depth layers drifts, the nearer ones stand still
        assert 0.02 < float((change > 0.05).mean()) < 0.8


@pytest.mark.parametrize(
    ("option", "note"),
    [("--no-dynamics", None), ("--motion=none", "--motion none: Stage II (temporal dynamics) skipped")],
)
def test_cpu_fallback_static_journey(tmp_path, option, note):
    out = tmp_path / "run"
    assert (
        _run("dreamjourney", _image(tmp_path), "-o", out, "--rounds", 2, "--frames", 3, option, *SMALL) == 0
    )
    _check_folder(out, 1 + 2 * 2)
    assert [s["stage"] for s in _read(out, "stages.json")["stages"]] == ["transition"] * 2
    notes = " ".join(_read(out, "manifest.json")["notes"])
    assert "Eulerian" not in notes and (note is None or note in notes)


def test_cpu_dynamics_with_an_agent_record_its_prompt_unused(tmp_path, monkeypatch):
    server = ScriptedServer(
        [
            "house, path",
            "Village: clouds drifting, smoke rising",
            "Clouds are identified.",
            "Clouds: High, High.",
            "Dynamical Description: The clouds drift slowly.",
        ]
    )
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", server.url)
    out = tmp_path / "run"
    args = ["--rounds", 1, "--frames", 2, "--dynamic-frames", 3, "--vlm", "openai:test"]
    try:
        assert _run("dreamjourney", _image(tmp_path), "-o", out, *args, *SMALL) == 0
    finally:
        server.close()
    transition, dynamics = _read(out, "stages.json")["stages"]
    assert transition["inpaint_prompt"] == "clouds drifting, smoke rising"
    assert dynamics["source"] == "Eulerian animation (CPU fallback)"
    assert dynamics["prompt"] == "The clouds drift slowly." and dynamics["prompt_used"] is False
    assert len(_read(out, "agent.json")["steps"]) == 5
    assert "the motion prompt does not steer it" in " ".join(_read(out, "manifest.json")["notes"])


def test_cpu_dynamics_take_makeit4ds_mask_and_vector(tmp_path):
    """--motion-mask with --motion-vector, parsed as in makeit4d: only what the mask covers moves."""
    mask = np.zeros((80, 80), np.uint8)
    mask[:, :30] = 255  # the left part of the input image
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "run"
    args = ["--rounds", 1, "--frames", 2, "--dynamic-frames", 4, "--motion-mask", tmp_path / "mask.png"]
    assert _run("dreamjourney", _image(tmp_path), "-o", out, *args, "--motion-vector", "0,2", *SMALL) == 0
    dynamics = _read(out, "stages.json")["stages"][1]
    assert dynamics["stage"] == "dynamics" and dynamics["flow"].startswith("from --motion-mask")
    frames = _frames(out)
    change = np.abs(frames[3] - frames[1]).max(axis=2)  # 64 px frames: the mask covers x < 24
    # outside the mask at most one 8-bit step (the blend of two equal renders rounds)
    assert float(change[:, :20].mean()) > 0.02 and float(change[:, 30:].max()) <= 1.5 / 255


def test_two_rounds_with_tiny_wan_and_a_scripted_agent(tmp_path, monkeypatch):
    server = ScriptedServer(
        [
            "river, trees",
            "Forest River: leaves falling, water flowing, birds flying",
            "Leaves and water are identified.",
            "Water: High, High.",
            "Dynamical Description: The water flows. The leaves fall.",
        ]
    )
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", server.url)
    out = tmp_path / "run"
    try:
        code = _run(
            "dreamjourney",
            _image(tmp_path),
            "-o",
            out,
            "--rounds",
            2,
            "--frames",
            4,
            "--dynamic-frames",
            3,
            "--video-model",
            f"hf:{wan_i2v_dir()}",
            "--vlm",
            "openai:test",
            *TINY_VIDEO,
            *SMALL,
        )
    finally:
        server.close()
    assert code == 0
    _check_folder(out, 1 + 2 * (3 + 2))
    stages = _read(out, "stages.json")["stages"]
    assert [(s["stage"], s["start"], s["end"]) for s in stages] == [
        ("transition", 0, 3),
        ("dynamics", 3, 5),
        ("transition", 5, 8),
        ("dynamics", 8, 10),
    ]
    transition = stages[0]
    assert transition["source"] == "guided wan sampling" and transition["guided_steps"] == 1
    assert transition["model_calls"] == 3 and transition["renoises"] == 1
    assert transition["model_frames"] == 9  # 4 frames + 2 padded views -> the next 1 + 4k
    assert transition["inpaint_prompt"] == "leaves falling, water flowing, birds flying"
    assert stages[1]["prompt"] == "The water flows. The leaves fall." and stages[1]["prompt_used"]
    manifest = _read(out, "manifest.json")
    assert manifest["backends"]["video"]["adapter"] == "wan" and "vlm" in manifest["backends"]
    agent = _read(out, "agent.json")
    assert [s["stage"] for s in agent["steps"][:5]] == [
        "identify current entities",
        "imagine dynamic entities",
        "chain 1: identify",
        "chain 2: describe",
        "chain 3: write prompt",
    ]
    assert len(agent["steps"]) == 10
    cameras = read_transforms_json(out / "cameras.json")[0]
    assert np.allclose(cameras[3].cam_to_world, cameras[4].cam_to_world)  # dynamics: the camera stands still
    # the transitions scored apart from the dynamics: frames 0-3 and 5-8
    assert _run("eval", out, "--stage", "transition", "--no-colmap", "--quiet") == 0
    assert _read(out, "metrics_transition.json")["frames"] == 8


@pytest.mark.parametrize(("name", "folder"), [("svd", svd_dir), ("vace", wan_vace_dir)])
def test_static_journey_and_an_agent_that_says_nothing(tmp_path, monkeypatch, name, folder):
    server = ScriptedServer([""])
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", server.url)
    out = tmp_path / "run"
    try:
        code = _run(
            "dreamjourney",
            _image(tmp_path),
            "-o",
            out,
            "--rounds",
            1,
            "--frames",
            3,
            "--no-dynamics",
            "--video-model",
            f"hf:{folder()}",
            "--vlm",
            "openai:test",
            "--entities",
            "boat, waves",
            *TINY_VIDEO,
            *SMALL,
        )
    finally:
        server.close()
    assert code == 0
    _check_folder(out, 3)
    stages = _read(out, "stages.json")["stages"]
    assert [s["stage"] for s in stages] == ["transition"] and stages[0]["source"] == f"guided {name} sampling"
    assert stages[0]["inpaint_prompt"] == "boat, waves"  # the agent imagined nothing: --entities
    notes = " ".join(_read(out, "manifest.json")["notes"])
    assert "no usable entities" in notes


def test_unusable_motion_prompt_falls_back_to_the_default(tmp_path, monkeypatch):
    server = ScriptedServer(["\ufffd\ufffd"])
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", server.url)
    out = tmp_path / "run"
    try:
        code = _run(
            "dreamjourney",
            _image(tmp_path),
            "-o",
            out,
            "--rounds",
            1,
            "--frames",
            2,
            "--dynamic-frames",
            2,
            "--video-model",
            f"hf:{wan_i2v_dir()}",
            "--vlm",
            "openai:test",
            "--entities",
            "smoke",
            *TINY_VIDEO,
            *SMALL,
        )
    finally:
        server.close()
    assert code == 0
    dynamics = _read(out, "stages.json")["stages"][1]
    assert dynamics["prompt"] == agent_prompts.DEFAULT_DYNAMICS_PROMPT + " smoke in motion."
    assert "not a usable prompt" in " ".join(_read(out, "manifest.json")["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video-model", "hf:{svd}", "--video-adapter", "cog"], "unknown video adapter 'cog'"),
        (["--video-model", "hf:{sd}"], "StableDiffusionInpaintPipeline, not an image-to-video model"),
        (["--video-model", "hf:{svd}", "--video-adapter", "wan"], "wan adapter cannot run"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--camera-motion", "spin"], "invalid choice: 'spin'"),
        (["--early-stop", "1.5"], "--early-stop must be between 0 and 1"),
        (["--renoise-rounds", "0"], "renoise_rounds >= 1"),
        (["--video-model", "wan:x"], "unknown video model 'wan:x'"),
        (["--vlm", "bogus:x"], "unknown vision-language model 'bogus:x'"),
        (["--motion", "spin"], "--motion must be none, sky:DX,DY or a hints .json file"),
        (["--motion-mask", "{image}"], "--motion-mask and --motion-vector go together"),
        (["--motion", "sky:1"], "--motion sky:DX,DY must be two numbers"),
        (["--motion-video", "{missing}"], "does not exist"),
    ],
)
def test_bad_inputs_are_one_sentence_and_write_nothing(tmp_path, capsys, args, message):
    image = _image(tmp_path)
    args = [
        a.format(svd=svd_dir(), sd=sd_inpaint_dir(), image=image, missing=tmp_path / "no.mp4") for a in args
    ]
    out = tmp_path / "run"
    assert _run("dreamjourney", image, "-o", out, *args, *SMALL) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_eval_scores_one_stage_of_a_journey(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--rounds", 2, "--frames", 3, "--dynamic-frames", 3]
    assert _run("dreamjourney", _image(tmp_path), "-o", out, *args, *SMALL) == 0
    # frames 0-2 transition, 2-4 dynamics, 4-6 transition, 6-8 dynamics
    capsys.readouterr()
    assert _run("eval", out, "--stage", "transition", "--no-colmap", "--json") == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["stage"] == "transition" and scored["frames"] == 6
    assert _read(out, "metrics_transition.json")["frames"] == 6 and not (out / "metrics.json").exists()
    assert _run("eval", out, "--stage", "dynamics", "--no-colmap", "--json") == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 6
    assert _run("eval", out, "--stage", "flying", "--no-colmap") == 2
    assert "no 'flying' stage (it has: dynamics, transition)" in capsys.readouterr().err


def test_a_killed_journey_resumes_to_the_same_frames(tmp_path, monkeypatch):
    from wanderview.methods import dreamjourney

    image = _image(tmp_path)
    args = ["--rounds", 2, "--frames", 3, "--dynamic-frames", 3, *SMALL]  # killed after round 1's dynamics
    assert _run("dreamjourney", image, "-o", tmp_path / "whole", *args) == 0
    original = dreamjourney._Journey.spatial_transition

    def killed_in_round_2(self, r, *rest):
        if r == 1:
            raise KeyboardInterrupt
        return original(self, r, *rest)

    monkeypatch.setattr(dreamjourney._Journey, "spatial_transition", killed_in_round_2)
    out = tmp_path / "resumed"
    assert _run("dreamjourney", image, "-o", out, *args) == 130
    monkeypatch.setattr(dreamjourney._Journey, "spatial_transition", original)
    assert _run("dreamjourney", image, "-o", out, *args, "--resume") == 0
    for name in ["stages.json", "agent.json"]:
        assert _read(out, name) == _read(tmp_path / "whole", name)
    whole, resumed = (sorted((d / "frames").iterdir()) for d in (tmp_path / "whole", out))
    assert len(resumed) == len(whole) == 9
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(whole, resumed))
