"""`wanderview models`: lists every kind, tells usable from not, and sees the local Hugging Face cache."""

from __future__ import annotations

import json

import huggingface_hub.constants

from wanderview.backends.catalog import ENTRIES, KINDS, availability, weights_cached
from wanderview.cli import main


def _fake_cache(root, repo_id: str, *filenames: str):
    """The on-disk layout huggingface_hub uses for cached files (refs/main -> snapshots/<commit>/...)."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for filename in filenames:
        (snapshot / filename).write_text("{}")
    return snapshot


def test_models_json_covers_every_kind_and_marks_classical_usable(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("WANDERVIEW_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["models", "--json"]) == 0
    rows = {row["spec"]: row for row in json.loads(capsys.readouterr().out)}
    assert {row["kind"] for row in rows.values()} == set(KINDS)
    for spec in ("heuristic", "telea", "ns", "patchmatch", "none"):
        assert rows[spec]["usable"] and rows[spec]["weak_default"]
    sd = rows["hf:stabilityai/stable-diffusion-2-inpainting"]
    assert not sd["usable"]
    assert sd["fetch"] == "huggingface-cli download stabilityai/stable-diffusion-2-inpainting"
    assert "GB" in sd["gpu_memory"]
    openai = rows["openai:<model>"]
    assert not openai["usable"] and "WANDERVIEW_OPENAI_BASE_URL" in openai["fetch"]


def test_cached_weights_are_reported_usable(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    entry = next(e for e in ENTRIES if e.hub_id == "Intel/dpt-large")
    assert not weights_cached("Intel/dpt-large", "config.json") and not availability(entry).usable
    _fake_cache(tmp_path, "Intel/dpt-large", "config.json")
    assert not weights_cached("Intel/dpt-large", "config.json")  # a config without weights is not usable
    _fake_cache(tmp_path, "Intel/dpt-large", "model.safetensors")
    assert weights_cached("Intel/dpt-large", "config.json")
    assert availability(entry).usable and availability(entry).status == "ready"


def test_models_table_for_one_kind(capsys, monkeypatch):
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert main(["models", "--kind", "vlm"]) == 0
    out = capsys.readouterr().out
    assert "vision-language models" in out and "depth models" not in out
    assert "openai:<model>" in out and "server configured" in out
    assert "approximate" in out
