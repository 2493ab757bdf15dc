"""The hf: download policy: local files only unless WANDERVIEW_DOWNLOAD=1; no network, resolved cheaply
at backend construction (before any run folder exists)."""

from __future__ import annotations

import socket

import huggingface_hub.constants
import pytest

from test_backends_models_cli import _fake_cache
from wanderview.backends.hf_common import downloads_allowed, resolve_source
from wanderview.errors import BackendError


@pytest.fixture
def online_default(monkeypatch, tmp_path):
    """A user's machine: HF_HUB_OFFLINE unset, an empty cache, and any network use is an error."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("WANDERVIEW_DOWNLOAD", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path / "hub"


def test_uncached_hub_id_is_one_sentence_without_network(online_default):
    assert not downloads_allowed()
    with pytest.raises(BackendError, match=r"not in the local Hugging Face cache.*WANDERVIEW_DOWNLOAD=1"):
        resolve_source("nobody/nothing", "", "config.json", allow_pickle=False)


def test_cached_hub_id_resolves_to_its_snapshot_folder(online_default):
    snapshot = _fake_cache(online_default, "owner/model", "config.json")
    with pytest.raises(BackendError, match="incomplete or unusable"):  # config but no weights yet
        resolve_source("owner/model", "", "config.json", allow_pickle=False)
    (snapshot / "model.bin").write_bytes(b"pickle")
    with pytest.raises(BackendError, match="pickle"):
        resolve_source("owner/model", "", "config.json", allow_pickle=False)
    (snapshot / "model.safetensors").write_bytes(b"x")
    assert resolve_source("owner/model", "", "config.json", allow_pickle=False) == str(snapshot)


def test_downloads_only_when_asked(online_default, monkeypatch):
    monkeypatch.setenv("WANDERVIEW_DOWNLOAD", "1")
    assert downloads_allowed()
    assert resolve_source("nobody/nothing", "", "config.json", allow_pickle=False) == "nobody/nothing"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline always wins
    assert not downloads_allowed()
