"""CLIP score (prompt adherence): the computation, the hf: loading policy, and `eval`/`compare --clip`.

The CLIP model is tiny and random (built in code, saved like a real checkpoint and loaded through
``hf:<folder>``), so its scores carry no meaning: the tests check the computation against an
independent manual one with the same model, not semantics.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from dummies import clip_tokenizer
from test_metrics_support import render_room, room_cameras, write_run
from wanderview.cli import main
from wanderview.errors import BackendError, ConfigError
from wanderview.metrics.clip import NO_MODEL, NO_PROMPT, ClipScorer, cosine_scores, run_prompt
from wanderview.metrics.report import load_run

PROMPT = "a textured room"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    text = dict(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=514,
        max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513,
    )
    vision = dict(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=clip_tokenizer(),
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cameras = room_cameras(3, 64, 48)
    views = [render_room(c) for c in cameras]
    folder = tmp_path_factory.mktemp("run") / "run"
    write_run(folder, cameras, [v[0] for v in views], [v[1] for v in views])
    (folder / "config.json").write_text(json.dumps({"method": "scenescape", "prompt": PROMPT}))
    return folder


def _manual_score(folder, frames: torch.Tensor, prompt: str) -> torch.Tensor:
    """Per-frame 100 x cosine, computed straight with transformers (no wanderview code)."""
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    images = [Image.fromarray((f.permute(1, 2, 0) * 255).round().byte().numpy()) for f in frames]
    inputs = processor(images=images, text=[prompt], return_tensors="pt", padding=True)
    with torch.no_grad():
        image = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        text = text.pooler_output[0]
    return torch.stack([100 * (v @ text) / (v.norm() * text.norm()) for v in image])


def test_cosine_scores_known_values():
    images = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0], [5.0, 5.0]])
    scores = cosine_scores(images, torch.tensor([3.0, 0.0]))
    assert torch.allclose(scores, torch.tensor([100.0, 0.0, -100 / math.sqrt(2), 100 / math.sqrt(2)]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        cosine_scores(torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        cosine_scores(torch.ones(4, 2), torch.ones(3))


def test_score_matches_a_manual_computation(clip_dir, run_dir):
    frames = load_run(run_dir).frames
    scorer = ClipScorer(f"hf:{clip_dir}", batch_size=2)  # 3 frames: the batches are 2 + 1
    per_frame = scorer.frame_scores(frames, PROMPT)
    manual = _manual_score(clip_dir, frames, PROMPT)
    assert per_frame.shape == (3,) and torch.isfinite(per_frame).all()
    assert torch.allclose(per_frame, manual, atol=1e-3)
    assert scorer.score(frames, PROMPT) == pytest.approx(float(manual.mean()), abs=1e-3)
    assert scorer.score(frames, PROMPT) == scorer.score(frames, PROMPT)  # deterministic
    # The score depends on both inputs (a constant would pass the checks above only by luck).
    assert per_frame.std() > 1e-3
    other_prompt = scorer.score(frames, "a completely different prompt")
    assert other_prompt != pytest.approx(scorer.score(frames, PROMPT))
    with pytest.raises(ValueError, match=r"\(3, 48, 64\)"):
        scorer.image_embeddings(frames[0])


def test_loading_errors_are_one_sentence(tmp_path, clip_dir):
    from transformers import CLIPTextConfig, CLIPTextModel

    with pytest.raises(ConfigError, match="hf:"):
        ClipScorer(str(clip_dir))
    with pytest.raises(BackendError, match="does not exist"):
        ClipScorer(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(BackendError, match="not in the local Hugging Face cache"):
        ClipScorer("hf:wanderview-tests/no-such-clip")  # conftest sets HF_HUB_OFFLINE=1
    text_only = tmp_path / "text-only"
    CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                 num_hidden_layers=1)).save_pretrained(text_only)
    with pytest.raises(BackendError, match="not a CLIP model"):
        ClipScorer(f"hf:{text_only}").load()


def test_run_prompt(tmp_path):
    assert run_prompt(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"prompt": "  "}))
    assert run_prompt(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"prompt": "a beach"}))
    assert run_prompt(tmp_path) == "a beach"


def test_eval_cli_clip_score(tmp_path, clip_dir, run_dir, capsys):
    assert main(["eval", str(run_dir), "--json", "--no-colmap"]) == 0
    assert json.loads(capsys.readouterr().out)["clip_score"] == NO_MODEL

    assert main(["eval", str(run_dir), "--json", "--no-colmap", "--clip", f"hf:{clip_dir}"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = float(_manual_score(clip_dir, load_run(run_dir).frames, PROMPT).mean())
    assert out["clip_score"] == pytest.approx(expected, abs=1e-3)
    assert out["clip_prompt"] == PROMPT and out["clip_model"] == str(clip_dir)
    assert "clip_score" in out["sources"]
    assert json.loads((run_dir / "metrics.json").read_text())["clip_score"] == out["clip_score"]

    assert main(["eval", str(run_dir), "--no-colmap", "--clip", f"hf:{clip_dir}", "--prompt", "a cat"]) == 0
    table = capsys.readouterr().out
    other = float(_manual_score(clip_dir, load_run(run_dir).frames, "a cat").mean())
    assert "clip_score" in table and f"{other:.4f}" in table
    assert "a cat" not in table  # the prompt stays in the JSON only

    no_prompt = tmp_path / "no-prompt"
    cameras = room_cameras(2, 64, 48)
    views = [render_room(c) for c in cameras]
    write_run(no_prompt, cameras, [v[0] for v in views], [v[1] for v in views])
    assert main(["eval", str(no_prompt), "--json", "--no-colmap", "--clip", f"hf:{clip_dir}"]) == 0
    assert json.loads(capsys.readouterr().out)["clip_score"] == NO_PROMPT


def test_eval_cli_bad_clip_exits_2(tmp_path, run_dir, capsys):
    assert main(["eval", str(run_dir), "--no-colmap", "--clip", str(tmp_path)]) == 2
    assert "--clip takes hf:" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--no-colmap", "--clip", "hf:wanderview-tests/no-such-clip"]) == 2
    assert "huggingface-cli download" in capsys.readouterr().err


def test_compare_recomputes_a_stored_clip_score(clip_dir, run_dir, capsys):
    stored = run_dir / "metrics.json"
    assert main(["eval", str(run_dir), "--json", "--no-colmap"]) == 0
    capsys.readouterr()
    assert json.loads(stored.read_text())["clip_score"] == NO_MODEL
    args = ["compare", str(run_dir), "--no-video", "--json", "--no-colmap"]
    assert main([*args, "--clip", f"hf:{clip_dir}"]) == 0
    out = json.loads(capsys.readouterr().out)[str(run_dir)]
    expected = float(_manual_score(clip_dir, load_run(run_dir).frames, PROMPT).mean())
    assert out["clip_score"] == pytest.approx(expected, abs=1e-3)
    assert "consistency" in out  # the other stored metrics are kept
    assert json.loads(stored.read_text()) == out
