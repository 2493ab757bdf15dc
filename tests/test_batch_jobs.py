"""`wanderview batch` jobs files: grids, templates, argv mapping, validation (nothing runs here)."""

from __future__ import annotations

import argparse
import json

import pytest

from batch_helpers import write_photo
from wanderview.batch.jobs import load_jobs, option_tokens
from wanderview.batch.runner import Batch
from wanderview.cli import main


def _jobs(tmp_path, text, name="jobs.yaml"):
    write_photo(tmp_path)
    write_photo(tmp_path, "other.png")
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_grid_expands_the_cross_product_with_out_templates(tmp_path):
    path = _jobs(
        tmp_path,
        """
defaults: {frames: 5, device: cpu}
jobs:
  - method: photo3d
    out: runs/{method}/{image.stem}-s{seed}
    grid: {image: [photo.png, other.png], seed: [0, 1]}
    options: {inpainter: patchmatch}
    depth-model: heuristic
    mask_invalid_depth: false
    outanimate: false
  - method: scenescape
    out: runs/ss
    image: photo.png
    no_mesh: true
    frames: 3
""",
    )
    jobs = load_jobs(path)
    assert [j.name for j in jobs] == [
        "runs/photo3d/photo-s0",
        "runs/photo3d/photo-s1",
        "runs/photo3d/other-s0",
        "runs/photo3d/other-s1",
        "runs/ss",
    ]
    first = jobs[0]
    assert first.argv[0] == "photo.png", "the positional input comes first"
    assert first.argv[1:] == [
        "--frames",
        "5",
        "--device",
        "cpu",
        "--out",
        "runs/photo3d/photo-s0",
        "--depth-model",
        "heuristic",
        "--no-mask-invalid-depth",
        "--no-outanimate",
        "--inpainter",
        "patchmatch",
        "--seed",
        "0",
    ], "false switches are --no-x"
    assert first.out == tmp_path / "runs/photo3d/photo-s0" and first.cwd == tmp_path
    ss = jobs[-1]
    assert "--no-mesh" in ss.argv and ss.argv[ss.argv.index("--frames") + 1] == "3", (
        "a job overrides defaults"
    )
    assert all(j.state == "new" for j in jobs)


def test_json_jobs_file_and_plain_list(tmp_path):
    path = _jobs(
        tmp_path,
        json.dumps([{"method": "photo3d", "out": "a", "image": "photo.png", "frames": 2}]),
        "jobs.json",
    )
    (job,) = load_jobs(path)
    assert job.argv == ["photo.png", "--out", "a", "--frames", "2"]


BAD = """
jobs:
  - {method: photo4d, out: x}
  - {method: photo3d, out: runs/b, image: photo.png, framez: 3}
  - {method: photo3d, out: runs/c, image: photo.png, frames: many}
  - {method: photo3d, out: runs/d, image: missing.png, inpainter: magic}
  - {method: photo3d, out: "runs/e-{seed}", image: photo.png, grid: {seed: [1, 1]}}
  - {method: photo3d, out: runs/f, image: photo.png, resume: true, scene: cube}
  - {method: photo3d, out: "runs/{nope}", image: photo.png}
  - {method: photo3d, out: runs/g, image: photo.png, outanimate: "yes please"}
  - {method: photo3d, out: runs/h, image: photo.png, prompt: yes}
  - {method: photo3d, image: photo.png}
"""


def test_every_problem_is_one_line_exit_2_and_nothing_runs(tmp_path, capsys):
    path = _jobs(tmp_path, BAD)
    assert main(["batch", str(path), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    expected = [
        "job 1: unknown method 'photo4d'",
        "job 2 (runs/b): photo3d has no option 'framez'",
        "job 3 (runs/c): argument --frames: expected a whole number, got 'many'",
        "job 4 (runs/d): missing.png (image) does not exist",
        "job 4 (runs/d): --inpainter 'magic' is not a known backend",
        "job 5 (runs/e-1) writes the same folder as job 5 (runs/e-1)",
        "job 6 (runs/f): remove 'resume'",
        "job 6 (runs/f): argument --scene: invalid choice: 'cube'",
        "job 7: the out template 'runs/{nope}' names {nope}",
        "job 8 (runs/g): option outanimate is a ",
        "job 9 (runs/h): option prompt takes a value, not true/false",
        "job 10: no 'out' folder",
    ]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected):
        assert line.startswith("wanderview batch: error: " + start), (line, start)
        assert "Traceback" not in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "batch.json").exists(), "nothing written"


def test_foreign_and_other_method_folders_are_refused(tmp_path, capsys):
    path = _jobs(
        tmp_path,
        """
- {method: photo3d, out: mine, image: photo.png}
- {method: photo3d, out: done, image: photo.png}
""",
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "manifest.json").write_text("{}")
    (tmp_path / "done" / "config.json").write_text('{"method": "scenescape"}')
    assert main(["batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mine exists and holds no finished run" in err
    assert "holds a finished scenescape run, not photo3d" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"


def test_dry_run_shows_run_resume_and_skip(tmp_path, capsys):
    path = _jobs(
        tmp_path,
        """
- {method: photo3d, out: runs/a, image: photo.png}
- {method: photo3d, out: runs/b, image: photo.png}
- {method: photo3d, out: runs/c, image: photo.png}
""",
    )
    (tmp_path / "runs" / ".b.partial").mkdir(parents=True)
    (tmp_path / "runs" / "c").mkdir()
    (tmp_path / "runs" / "c" / "manifest.json").write_text('{"frames": 7}')
    assert main(["batch", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "runs/a: run" in out and "runs/b: resume" in out and "runs/c: skip (finished)" in out
    assert "wanderview photo3d photo.png --out runs/a" in out
    assert not (tmp_path / "runs" / "a").exists()


def test_bad_batch_options_and_metric_names(tmp_path, capsys):
    path = _jobs(tmp_path, "- {method: photo3d, out: a, image: photo.png}\n")
    assert main(["batch", str(path), "--metrics", "consistency,vibes"]) == 2
    assert "unknown metric 'vibes'" in capsys.readouterr().err
    assert main(["batch", str(path), "--retries", "-1", "--memory-per-job", "lots"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "--retries" in err[0] and "--memory-per-job" in err[1]
    assert main(["batch", str(tmp_path / "none.yaml")]) == 2
    (tmp_path / "broken.yaml").write_text("jobs: [a")
    assert main(["batch", str(tmp_path / "broken.yaml")]) == 2
    assert "broken.yaml is not valid YAML (line 1" in capsys.readouterr().err


def test_option_tokens_for_every_kind_of_action():
    p = argparse.ArgumentParser()
    acts = {
        "switch": p.add_argument("--switch", action=argparse.BooleanOptionalAction),
        "flag": p.add_argument("--flag", action="store_true"),
        "keep": p.add_argument("--no-keep", dest="keep", action="store_false"),
        "tag": p.add_argument("--tag", action="append"),
        "sizes": p.add_argument("--sizes", nargs="+"),
        "verbose": p.add_argument("-v", "--verbose", action="count"),
    }
    assert option_tokens("switch", False, acts["switch"]) == ["--no-switch"]
    assert option_tokens("no_switch", True, acts["switch"]) == ["--no-switch"]
    assert option_tokens("no_switch", False, acts["switch"]) == ["--switch"]
    assert (
        option_tokens("flag", True, acts["flag"]) == ["--flag"]
        and option_tokens("flag", False, acts["flag"]) == []
    )
    assert option_tokens("keep", False, acts["keep"]) == ["--no-keep"], "keyed by dest, false sets the flag"
    assert option_tokens("no_keep", True, acts["keep"]) == ["--no-keep"]
    assert option_tokens("tag", ["a", "b"], acts["tag"]) == ["--tag", "a", "--tag", "b"]
    assert option_tokens("sizes", [1, 2], acts["sizes"]) == ["--sizes", "1", "2"]
    assert option_tokens("verbose", 2, acts["verbose"]) == ["--verbose", "--verbose"]
    with pytest.raises(ValueError, match="is a switch"):
        option_tokens("switch", "yes", acts["switch"])


def test_retries_only_for_crashes_and_killed_workers(tmp_path):
    path = _jobs(tmp_path, "- {method: photo3d, out: a, image: photo.png}\n")
    batch = Batch(load_jobs(path), retries=2)
    (record,) = batch.to_run()
    died = {"status": "failed", "error": "the worker process was killed (SIGKILL)", "seconds": 1.0}
    assert batch.record(record, died) and batch.record(record, died)
    assert not batch.record(record, died), "the third failure is final with --retries 2"
    assert record.attempts == 3 and record.status == "failed" and batch.failed == [record]
    other = Batch(load_jobs(path), retries=2)
    (record,) = other.to_run()
    assert not other.record(record, {"status": "error", "rc": 2, "error": "bad image", "seconds": 0.1})
    assert "bad image" in other.table() and record.attempts == 1


def test_weight_cache_loads_once_and_copies(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoModelForDepthEstimation

    from dummies import dpt_dir
    from wanderview.batch.weights import WeightCache

    folder = dpt_dir()
    cache = WeightCache().install()
    try:
        a = AutoModelForDepthEstimation.from_pretrained(folder)
        b = AutoModelForDepthEstimation.from_pretrained(folder)
        assert cache.stats() == {"loaded": 1, "reused": 1, "models": 1}
        pa, pb = next(a.parameters()), next(b.parameters())
        assert pa.data_ptr() != pb.data_ptr(), "each job gets its own copy"
        pa.data.add_(1.0)  # a job finetuning its model must not change the next job's
        c = AutoModelForDepthEstimation.from_pretrained(folder)
        assert (next(c.parameters()) == pb).all()
    finally:
        cache.uninstall()
    AutoModelForDepthEstimation.from_pretrained(folder)
    assert cache.stats()["loaded"] == 1, "uninstalled: loads go to disk again"


def test_a_worker_without_the_shared_folder_says_so(tmp_path):
    from wanderview.batch.worker import run_job

    payload = {
        "method": "photo3d",
        "argv": ["photo.png", "--out", "a"],
        "out": str(tmp_path / "gone" / "a"),
        "cwd": str(tmp_path / "gone"),
        "metrics": [],
        "quiet_flag": True,
    }
    result = run_job(payload)
    assert result["status"] == "error" and "shared storage" in result["error"]
