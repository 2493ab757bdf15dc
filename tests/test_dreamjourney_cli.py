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


def test_cpu_fallback_two_rounds(tmp_path):
    out = tmp_path / "run"
    assert _run("dreamjourney", _image(tmp_path), "-o", out, "--rounds", 2, "--frames", 4, *SMALL) == 0
    _check_folder(out, 1 + 2 * 3)
    stages = _read(out, "stages.json")["stages"]
    assert [(s["stage"], s["round"], s["start"], s["end"]) for s in stages] == [
        ("transition", 0, 0, 3),
        ("transition", 1, 3, 6),
    ]
    assert [s["motion"] for s in stages] == ["linear", "rotate"]
    notes = " ".join(_read(out, "manifest.json")["notes"])
    assert "ablation baseline" in notes and "Stage II (temporal dynamics) skipped" in notes
    assert _read(out, "agent.json") == {"model": "none", "steps": [], "notes": []}
    masks = [np.asarray(Image.open(p)) for p in sorted((out / "masks").iterdir())]
    assert not masks[0].any() and any(m.any() for m in masks[1:])  # moving back reveals holes


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
    ],
)
def test_bad_inputs_are_one_sentence_and_write_nothing(tmp_path, capsys, args, message):
    args = [a.format(svd=svd_dir(), sd=sd_inpaint_dir()) for a in args]
    out = tmp_path / "run"
    assert _run("dreamjourney", _image(tmp_path), "-o", out, *args, *SMALL) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not any(p.name.startswith(".run") for p in tmp_path.iterdir())


def test_eval_scores_one_stage_of_a_journey(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run("dreamjourney", _image(tmp_path), "-o", out, "--rounds", 2, "--frames", 3, *SMALL) == 0
    stages = _read(out, "stages.json")
    stages["stages"][1]["stage"] = "dynamics"  # pretend round 2 were a dynamics clip: frames 2..4
    (out / "stages.json").write_text(json.dumps(stages))
    capsys.readouterr()
    assert _run("eval", out, "--stage", "transition", "--no-colmap", "--json") == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["stage"] == "transition" and scored["frames"] == 3
    assert _read(out, "metrics_transition.json")["frames"] == 3 and not (out / "metrics.json").exists()
    assert _run("eval", out, "--stage", "flying", "--no-colmap") == 2
    assert "no 'flying' stage (it has: dynamics, transition)" in capsys.readouterr().err


def test_a_killed_journey_resumes_to_the_same_frames(tmp_path, monkeypatch):
    from wanderview.methods import dreamjourney

    image = _image(tmp_path)
    args = ["--rounds", 2, "--frames", 3, *SMALL]
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
    assert len(resumed) == len(whole) == 5
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(whole, resumed))
