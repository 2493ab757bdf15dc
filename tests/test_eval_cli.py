"""`wanderview eval` and `wanderview compare` through the CLI entry point."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from test_metrics_support import render_room, room_cameras, write_run
from wanderview.cli import main
from wanderview.io.video import read_video

COLMAP_KEYS = {
    "registered_fraction", "reprojection_error_px", "rotation_error_deg", "translation_error_pct", "si_rmse"
}


@pytest.fixture(scope="module")
def room_views():
    cameras = room_cameras(8, 256, 192)
    return cameras, [render_room(c) for c in cameras]


def _write(folder, cameras, views, noise=0.0, holes=False):
    gen = torch.Generator().manual_seed(0)
    frames = [(rgb + noise * torch.randn(rgb.shape, generator=gen)).clamp(0, 1) for rgb, _ in views]
    masks = None
    if holes:
        masks = [torch.zeros(1, cameras.height, cameras.width, dtype=torch.bool) for _ in views]
        for m in masks:
            m[:, 40:80, 60:120] = True
    return write_run(folder, cameras, frames, [d for _, d in views], masks)


def test_eval_json_on_a_consistent_render(tmp_path, room_views, capsys):
    run = _write(tmp_path / "run", *room_views)
    assert main(["eval", str(run), "--json", "--colmap"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"consistency", "depth_consistency", "density", "colmap"} <= set(out)
    assert COLMAP_KEYS <= set(out["colmap"])
    assert out["consistency"] < 3.0 and out["depth_consistency"] < 1e-3 and out["density"] > 0.9
    assert out["colmap"]["registered_fraction"] == 1.0
    assert out["colmap"]["reprojection_error_px"] < 1.0
    assert json.loads((run / "metrics.json").read_text()) == out


def test_eval_against_ground_truth_with_holes(tmp_path, room_views, capsys):
    cameras, views = room_views
    gt = _write(tmp_path / "gt", cameras, views)
    shutil.copy(gt / "cameras.json", gt / "transforms.json")
    run = _write(tmp_path / "run", cameras, views, noise=0.05, holes=True)
    assert main(["eval", str(run), "--gt", str(gt), "--json", "--no-colmap"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 20.0 < out["psnr"] < 35.0 and 0.0 < out["ssim"] < 1.0
    assert out["psnr_holes"] == pytest.approx(out["psnr"], abs=1.0)  # same noise everywhere
    assert out["lpips"] == "n/a: weights not available"
    assert "colmap" not in out
    assert main(["eval", str(run), "--gt", str(gt), "--no-colmap"]) == 0
    table = capsys.readouterr().out
    assert "psnr_holes" in table and "consistency" in table


def test_compare_table_and_video(tmp_path, room_views, capsys):
    cameras, views = room_views
    run_a = _write(tmp_path / "a", cameras, views)
    run_b = _write(tmp_path / "b", cameras, views, noise=0.1)
    video = tmp_path / "cmp.mp4"
    assert main(["compare", str(run_a), str(run_b), "-o", str(video), "--no-colmap"]) == 0
    table = capsys.readouterr().out
    assert str(run_a) in table and str(run_b) in table and "density" in table
    frames = read_video(video)
    assert len(frames) == 8 and frames[0].shape == (3, 192, 512)
    assert (run_b / "metrics.json").is_file()


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_bad_input_exits_2(tmp_path, capsys, command):
    assert main([command, str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([command, str(tmp_path / "empty")]) == 2
    assert "not a run folder" in capsys.readouterr().err
