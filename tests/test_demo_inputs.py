"""The demo's inputs: a cache folder (same files on --resume), or a temp folder removed even on SIGTERM."""

from __future__ import annotations

import os
import signal

import pytest

from wanderview.cli import demo


class _Sample:
    def __init__(self):
        import torch

        self.left = torch.rand(3, 6, 8)
        self.left_depth = torch.rand(1, 6, 8) + 1


def test_inputs_live_in_the_cache_and_are_the_same_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with demo._demo_inputs(_Sample()) as first:
        pass
    with demo._demo_inputs(_Sample()) as second:
        pass
    assert first == second and all(p.is_file() for p in first)
    assert first[0].parent == tmp_path / "cache" / "wanderview" / "demo"
    assert not [p for p in first[0].parent.iterdir() if ".tmp" in p.name]


def test_a_temp_folder_is_removed_on_sigterm(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # the cache cannot be created
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        with demo._demo_inputs(_Sample()) as (image, depth):
            folder = image.parent
            assert folder.name.startswith("wanderview-demo-") and depth.is_file()
            os.kill(os.getpid(), signal.SIGTERM)
    assert exit_.value.code == 128 + signal.SIGTERM
    assert not folder.exists()
    assert signal.getsignal(signal.SIGTERM) == before
