# ruff: noqa: E501  (the case table reads best one case per line)
"""Every listed bad input, through the CLI: exit code 2, one line on stderr, no traceback, and
nothing written or deleted (no ``.partial``/``.old``/temp file left) — issue #11.

The cases are one table. A command added later joins by adding rows to ``CASES``: an id, the
argv (a function of the prepared :class:`World`), what the one line must contain, and optionally a
``setup(world, monkeypatch)`` that prepares the situation (read-only folder, a user's machine with
the network on, another current folder). This file uses only the CLI entry point, so it runs
unchanged against an older tree (that is how the before/after table of the issue was made).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wanderview.cli import main

IDENTITY = np.eye(4).tolist()


@dataclass
class World:
    """The files a case may point at, all inside ``root`` (whose whole tree is compared)."""

    root: Path
    img: Path
    depth: Path
    run: Path  # a finished wanderview run folder (manifest.json, cameras.json, frames, depth)
    photos: Path  # a folder of the user's own files
    images: Path  # a folder of training images
    cams: dict  # name -> camera file with one defect
    file: Path  # a plain file


def _camera_file(path: Path, matrix) -> Path:
    data = {"w": 32, "h": 24, "fl_x": 30.0, "fl_y": 30.0, "cx": 16.0, "cy": 12.0,
            "frames": [{"transform_matrix": IDENTITY}, {"transform_matrix": matrix}]}  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def _finished_run(folder: Path, image: np.ndarray, depth: np.ndarray) -> Path:
    for sub in ("frames", "depth"):
        (folder / sub).mkdir(parents=True)
    frames = []
    for i in range(2):
        Image.fromarray(image).save(folder / "frames" / f"{i:05d}.png")
        np.save(folder / "depth" / f"{i:05d}.npy", depth)
        pose = np.eye(4)
        pose[0, 3] = 0.05 * i
        frames.append({"file_path": f"frames/{i:05d}.png", "transform_matrix": pose.tolist()})
    meta = {"w": image.shape[1], "h": image.shape[0], "fl_x": 30.0, "fl_y": 30.0, "cx": 16.0, "cy": 12.0}
    (folder / "cameras.json").write_text(json.dumps({**meta, "frames": frames}))
    (folder / "manifest.json").write_text(json.dumps({"versions": {"wanderview": "0.1"}, "seed": 0}))
    return folder


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    root = tmp_path / "w"
    root.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the demo's inputs, outside root
    rng = np.random.default_rng(0)
    image = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    depth = np.full((24, 32), 3.0, np.float32)
    Image.fromarray(image).save(root / "img.png")
    np.save(root / "depth.npy", depth)
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(image).save(photos / "holiday.png")
    (photos / "notes.txt").write_text("my notes")
    images = root / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(image, 3 * i, axis=1)).save(images / f"im{i}.png")
    singular = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    far = [[1, 0, 0, 1e30], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    last_row = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 2, 3, 4]]
    cams = {name: _camera_file(root / f"{name}.json", m)
            for name, m in (("singular", singular), ("far", far), ("last_row", last_row))}  # fmt: skip
    (root / "file.txt").write_text("a file")
    run = _finished_run(root / "run", image, depth)
    return World(root, root / "img.png", root / "depth.npy", run, photos, images, cams, root / "file.txt")


# ---------------------------------------------------------------------------------- set-ups
def read_only(pick: Callable[[World], Path]):
    """A set-up making one folder unwritable: chmod for a normal user; root ignores modes, so
    ``os.access`` (what wanderview asks) is patched to say no for that folder."""

    def setup(w: World, monkeypatch) -> None:
        folder = pick(w)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            return
        real = os.access
        denied = str(folder.absolute())

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and os.path.abspath(path) == denied:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return setup


def online_user(w: World, monkeypatch) -> None:
    """A user's machine: HF_HUB_OFFLINE unset, nothing cached, any network use fails the test."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("WANDERVIEW_DOWNLOAD", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(w.root.parent / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", no_network)


def in_folder(pick: Callable[[World], Path]):
    def setup(w: World, monkeypatch) -> None:
        monkeypatch.chdir(pick(w))

    return setup


# ---------------------------------------------------------------------------------- the table
P3D = ["photo3d", "--frames", 2, "--quiet"]
TRAIN = ["train-inpainter", "--steps", 2, "--crop", 16, "--pairs", 1, "--quiet"]


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[World], list]
    says: str  # the one stderr line must contain this
    setup: Callable | None = None


CASES = [
    # data safety: --overwrite and the output location
    Case("photo3d --overwrite a folder of the user's files",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.photos, "--overwrite"], "not a wanderview run folder"),
    Case("photo3d -o . --overwrite in the user's folder",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", ".", "--overwrite"], "current folder",
         in_folder(lambda w: w.photos)),
    Case("photo3d -o . --overwrite inside a run folder",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", ".", "--overwrite"], "current folder",
         in_folder(lambda w: w.run)),
    Case("photo3d read-only existing -o --overwrite",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.run, "--overwrite"], "not writable",
         read_only(lambda w: w.run)),
    Case("photo3d -o in a read-only folder",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.photos / "new"], "not writable",
         read_only(lambda w: w.photos)),
    Case("photo3d --overwrite the run folder holding the input photo",
         lambda w: [*P3D, w.run / "frames" / "00000.png", "--depth", w.depth, "-o", w.run, "--overwrite"],
         "holds the input"),
    Case("demo --overwrite a folder of the user's files",
         lambda w: ["demo", "--frames", 2, "--quiet", "-o", w.photos, "--overwrite"], "not a wanderview run folder"),
    # hf: backends fail before the run folder exists, without the network
    Case("photo3d uncached hf: inpainter (online machine)",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.root / "out", "--inpainter", "hf:nobody/nothing"],
         "not in the local Hugging Face cache", online_user),
    Case("photo3d uncached hf: depth model (online machine)",
         lambda w: [*P3D, w.img, "-o", w.root / "out", "--depth-model", "hf:nobody/nothing"],
         "not in the local Hugging Face cache", online_user),
    Case("photo3d uncached selfsup:hf: base model (online machine)",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.root / "out", "--inpainter", "selfsup:hf:nobody/nothing"],
         "not in the local Hugging Face cache", online_user),
    Case("train-inpainter uncached hf: depth model (online machine)",
         lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--depth-model", "hf:nobody/nothing"],
         "not in the local Hugging Face cache", online_user),
    Case("eval --clip uncached hf: model (online machine)",
         lambda w: ["eval", w.run, "--no-colmap", "--clip", "hf:nobody/nothing"],
         "not in the local Hugging Face cache", online_user),
    # camera files
    Case("photo3d camera file with last row not (0,0,0,1)",
         lambda w: [*P3D, w.img, "--depth", w.depth, "-o", w.root / "out", "--trajectory", w.cams["last_row"]],
         "last row"),
    Case("trajectory camera file with last row not (0,0,0,1)",
         lambda w: ["trajectory", w.cams["last_row"], "-o", w.root / "out.json"], "last row"),
    Case("trajectory camera file with a singular rotation",
         lambda w: ["trajectory", w.cams["singular"], "-o", w.root / "out.json"], "orthonormal"),
    Case("trajectory camera file with a 1e30 translation",
         lambda w: ["trajectory", w.cams["far"], "-o", w.root / "out.json"], "translation"),
    # trajectory outputs
    Case("trajectory -o in a missing folder",
         lambda w: ["trajectory", "orbit", "-o", w.root / "nope" / "c.json"], "does not exist"),
    Case("trajectory -o is a folder", lambda w: ["trajectory", "orbit", "-o", w.root / "photos.json"],
         "is a folder", lambda w, mp: (w.root / "photos.json").mkdir()),
    Case("trajectory -o in a read-only folder", lambda w: ["trajectory", "orbit", "-o", w.photos / "c.json"],
         "not writable", read_only(lambda w: w.photos)),
    Case("trajectory --plot not a .png", lambda w: ["trajectory", "orbit", "--plot", w.root / "p.jpg"], ".png"),
    # train-inpainter
    Case("train-inpainter --crop not a multiple of 4",
         lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--crop", 30], "multiple of 4"),
    Case("train-inpainter -o is a file", lambda w: [*TRAIN, w.images, "-o", w.file], "is a file"),
    Case("train-inpainter -o in a read-only folder", lambda w: [*TRAIN, w.images, "-o", w.photos / "m"],
         "not writable", read_only(lambda w: w.photos)),
    Case("train-inpainter --overwrite a folder of the user's files",
         lambda w: [*TRAIN, w.images, "-o", w.photos, "--overwrite"], "not a wanderview run folder"),
    Case("train-inpainter -o the image folder --overwrite",
         lambda w: [*TRAIN, w.images, "-o", w.images, "--overwrite"], "holds the input"),
    Case("train-inpainter --seed beyond 64 bits",
         lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--seed", 2**70], "64 bits"),
    Case("train-inpainter --fov 0", lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--fov", 0], "--fov"),
    Case("train-inpainter --device that does not exist",
         lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--device", "tpu:7"], "device"),
    Case("train-inpainter --resume without a killed run",
         lambda w: [*TRAIN, w.images, "-o", w.root / "m", "--resume"], "no unfinished run"),
    # eval
    Case("eval on a file", lambda w: ["eval", w.file, "--no-colmap"], "is a file"),
    Case("eval on a missing folder", lambda w: ["eval", w.root / "nope", "--no-colmap"], "does not exist"),
    Case("eval on a folder that is not a run", lambda w: ["eval", w.photos, "--no-colmap"], "cameras.json"),
    Case("eval on a read-only run", lambda w: ["eval", w.run, "--no-colmap"], "not writable",
         read_only(lambda w: w.run)),
    # compare
    Case("compare with a missing run", lambda w: ["compare", w.run, w.root / "nope", "-o", w.root / "c.mp4"],
         "does not exist"),
    Case("compare -o in a missing folder",
         lambda w: ["compare", w.run, "-o", w.root / "nope" / "c.mp4", "--no-colmap"], "does not exist"),
    Case("compare -o is a folder", lambda w: ["compare", w.run, "-o", w.photos, "--no-colmap"], "must end in .mp4"),
    Case("compare -o a folder named .mp4", lambda w: ["compare", w.run, "-o", w.root / "v.mp4", "--no-colmap"],
         "is a folder", lambda w, mp: (w.root / "v.mp4").mkdir()),
    Case("compare -o in a read-only folder",
         lambda w: ["compare", w.run, "-o", w.photos / "c.mp4", "--no-colmap"], "not writable",
         read_only(lambda w: w.photos)),
    Case("compare a read-only run", lambda w: ["compare", w.run, "-o", w.root / "c.mp4", "--no-colmap"],
         "not writable", read_only(lambda w: w.run)),
    Case("compare the same run twice", lambda w: ["compare", w.run, f"{w.run}/", "--no-video"], "twice"),
    Case("compare --fps 0", lambda w: ["compare", w.run, "--fps", 0, "--no-colmap"], "--fps"),
    # fit-gaussians and render
    Case("fit-gaussians on a folder without cameras",
         lambda w: ["fit-gaussians", w.photos, "-o", w.root / "g", "--iterations", 2, "--quiet"], "no cameras.json"),
    Case("fit-gaussians --overwrite a folder of the user's files",
         lambda w: ["fit-gaussians", w.run, "-o", w.photos, "--overwrite", "--quiet"], "not a wanderview run folder"),
    Case("fit-gaussians -o the dataset --overwrite",
         lambda w: ["fit-gaussians", w.run, "-o", w.run, "--overwrite", "--quiet"], "holds the input"),
    Case("render an unknown scene file", lambda w: ["render", w.file, "-o", w.root / "r", "--quiet"],
         "Unknown scene file"),
    Case("render a run folder without a scene", lambda w: ["render", w.run, "-o", w.root / "r", "--quiet"],
         "no scene file"),
    # models
    Case("models --kind unknown", lambda w: ["models", "--kind", "sound"], "invalid choice"),
]  # fmt: skip


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def assert_refused(argv: list, root: Path, capfd, says: str = "") -> str:
    """Run the CLI; require exit 2, exactly one stderr line (no traceback) containing ``says``, and the
    tree under ``root`` unchanged: nothing written, nothing deleted, no .partial/.old/temp file."""
    before = _tree(root)
    code = main([str(a) for a in argv])
    _, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}, stderr: {err}"
    assert len(lines) == 1 and "Traceback" not in err, f"not one line: {err}"
    assert says in lines[0], lines[0]
    after = _tree(root)
    leftovers = [p for p in after if any(m in p for m in (".partial", ".old.", ".tmp"))]
    assert not leftovers, leftovers
    assert after == before, f"changed: {set(after) ^ set(before)}"
    return lines[0]


def _params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.id) for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_is_one_sentence_and_leaves_nothing(case, world, capfd, monkeypatch):
    if case.setup is not None:
        case.setup(world, monkeypatch)
    try:
        assert_refused(case.argv(world), world.root, capfd, case.says)
    finally:
        for folder in (world.run, world.photos):
            folder.chmod(0o755)
