"""The run folder (docs/design.md, "The run folder"): staging, atomic files, resume, manifest.

A run writes into a hidden staging folder ``.OUT.partial`` beside ``OUT`` and renames it onto
``OUT`` in ``finalize()``, so a killed run never leaves a half-written ``OUT``. Every file is
written atomically (temp file, then rename). A frame's colour PNG is written last, after its depth
and mask, so a frame whose PNG exists is complete.

Resume state (``save_state``) lives in ``.state/`` inside the staging folder and is deleted by
``finalize()``: the finished folder holds only what the spec lists.

    run = RunDir.create(out, overwrite=args.overwrite, resume=args.resume)
    for i in range(run.finished_frames(), num_frames):
        run.write_frame(i, rgb, depth, mask)
    run.write_json("config.json", config)
    run.finalize()
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wanderview.errors import InputError, OutputError
from wanderview.io.depth import read_depth, write_depth
from wanderview.io.images import atomic_output, read_image, read_mask, write_image, write_mask
from wanderview.io.outputs import (  # noqa: F401  (re-exported: the run-folder API of io.rundir)
    RUN_MARKER,
    _contains,
    check_output_file,
    check_replaceable,
    check_writable,
    is_run_folder,
    remove_stale_temp_files,
)

FRAME_KINDS = {"frames": ".png", "depth": ".npy", "masks": ".png"}
STATE_DIR = ".state"


def _json_default(value: Any) -> Any:
    """Make tensors, arrays, numpy scalars and paths JSON-serialisable."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


class RunDir:
    """One run's output folder, built in a staging folder; see the module docstring.

    Attributes:
        out: the final folder.
        staging: the hidden ``.OUT.partial`` folder every method writes into.
        overwrite: whether ``finalize`` may replace an existing non-empty ``out``.
    """

    def __init__(self, out: Path, staging: Path, overwrite: bool) -> None:
        self.out = out
        self.staging = staging
        self.overwrite = overwrite
        self.inputs: tuple[Path, ...] = ()

    @staticmethod
    def staging_path(out: str | os.PathLike) -> Path:
        """The staging folder of ``out``: ``.NAME.partial`` beside it."""
        out = Path(out).absolute()
        return out.parent / f".{out.name}.partial"

    @classmethod
    def check(
        cls,
        out: str | os.PathLike,
        overwrite: bool = False,
        resume: bool = False,
        *,
        inputs: Sequence[str | os.PathLike] = (),
    ) -> bool:
        """Raise the OutputError that :meth:`create` would raise, without touching the disk.

        Methods call it before expensive work that precedes the run folder (e.g. out-animation).

        Args:
            inputs: every path the run reads; a folder holding one is never replaced or discarded.

        Returns:
            whether a staging folder of an unfinished run exists.
        """
        out = Path(out).absolute()
        staging = cls.staging_path(out)
        if out.exists() and not out.is_dir():
            raise OutputError(f"The output path {out} is a file; choose a folder name.")
        check_writable(out)
        has_staging = staging.is_dir()
        if overwrite:
            check_replaceable(out, inputs)
        if has_staging and not resume and overwrite:
            for path in inputs:
                if path is not None and _contains(staging, Path(path)):
                    raise OutputError(
                        f"The input {path} lies in the unfinished run {staging}, which a new run would "
                        "discard; copy it elsewhere first."
                    )
        if _is_nonempty_dir(out) and not overwrite:
            hint = ""
            if has_staging and resume:  # never suggest the flag already given
                hint = f" when the resumed run in {staging.name} finishes"
            elif has_staging:
                hint = f", or --resume to continue the unfinished run in {staging.name}"
            raise OutputError(f"The output folder {out} is not empty; pass --overwrite to replace it{hint}.")
        if resume and not has_staging:
            raise OutputError(
                f"There is no unfinished run to resume for {out} (no {staging.name}); "
                "run again without --resume."
            )
        if not resume and has_staging and not overwrite:
            raise OutputError(
                f"An unfinished run of {out} exists in {staging}; pass --resume to continue it "
                "or --overwrite to start over."
            )
        return has_staging

    @classmethod
    def create(
        cls,
        out: str | os.PathLike,
        overwrite: bool = False,
        resume: bool = False,
        *,
        inputs: Sequence[str | os.PathLike] = (),
    ) -> RunDir:
        """Prepare the staging folder for ``out``.

        Args:
            out: the final output folder.
            overwrite: replace an existing non-empty ``out`` (at ``finalize`` time only) and discard
                a leftover staging folder unless resuming. Only an empty folder or a wanderview run
                folder (``manifest.json``) is ever replaced.
            resume: continue in the existing staging folder of a killed run.
            inputs: every path the run reads (image, depth, camera file, model folder); a folder
                holding one of them is never replaced.

        Raises:
            OutputError: ``out`` is a file; ``out`` is non-empty without ``overwrite``; a staging
                folder exists without ``resume``/``overwrite``; ``resume`` without a staging folder;
                the folder cannot be created.
        """
        out = Path(out).absolute()
        staging = cls.staging_path(out)
        has_staging = cls.check(out, overwrite=overwrite, resume=resume, inputs=inputs)
        if not resume and has_staging:
            shutil.rmtree(staging)
        try:
            staging.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"Cannot create the output folder {staging} ({err.strerror}).") from err
        if not os.access(staging, os.W_OK):
            raise OutputError(f"The output folder {staging} is not writable.")
        if resume:
            remove_stale_temp_files(staging)
        run = cls(out, staging, overwrite)
        run.inputs = tuple(Path(p) for p in inputs if p is not None)
        return run

    # ------------------------------------------------------------------ files

    def path(self, name: str) -> Path:
        """Path of ``name`` (e.g. ``"mesh.ply"``) inside the staging folder; parent folders are created."""
        target = self.staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def frame_path(self, kind: str, index: int) -> Path:
        """``frames/00012.png``, ``depth/00012.npy`` or ``masks/00012.png`` inside the staging folder."""
        if kind not in FRAME_KINDS:
            raise ValueError(f"frame kind must be one of {sorted(FRAME_KINDS)}, got {kind!r}")
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        return self.staging / kind / f"{index:05d}{FRAME_KINDS[kind]}"

    def write_frame(
        self,
        index: int,
        rgb: torch.Tensor,
        depth: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Write one frame's files, each atomically; the colour PNG goes last and marks it complete.

        Args:
            index: frame number (0 = the input view).
            rgb: (3, H, W) float in [0, 1].
            depth: optional (1, H, W) z-depth (inf = unknown), stored as float32 .npy.
            mask: optional (1, H, W) bool, True where the frame had a hole before inpainting.
        """
        if rgb.ndim != 3 or rgb.shape[0] != 3:
            raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
        for name, t in (("depth", depth), ("mask", mask)):
            if t is not None and tuple(t.shape) != (1, *rgb.shape[1:]):
                raise ValueError(f"{name} must be (1, {rgb.shape[1]}, {rgb.shape[2]}), got {tuple(t.shape)}")
        if depth is not None:
            write_depth(self.frame_path("depth", index), depth)
        if mask is not None:
            write_mask(self.frame_path("masks", index), mask.to(torch.bool))
        write_image(self.frame_path("frames", index), rgb)

    def _required_kinds(self) -> list[str]:
        # Frame 0 shows which kinds this run writes; every later frame must have the same ones.
        return [k for k in FRAME_KINDS if self.frame_path(k, 0).exists()]

    def finished_frames(self) -> int:
        """Number of consecutive complete frames from 0 (all of a frame's files exist)."""
        kinds = self._required_kinds()
        if "frames" not in kinds:
            return 0
        count = 0
        while all(self.frame_path(k, count).exists() for k in kinds):
            count += 1
        return count

    def read_frame(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Read frame ``index`` back: rgb (3, H, W), depth (1, H, W) or None, mask (1, H, W) bool or None.

        Raises:
            InputError: the frame's colour image does not exist.
        """
        rgb = read_image(self.frame_path("frames", index), max_pixels=None)
        size = tuple(rgb.shape[1:])
        depth = mask = None
        if self.frame_path("depth", index).exists():
            depth, _ = read_depth(
                self.frame_path("depth", index), size=size, mask_invalid=True, max_pixels=None
            )
        if self.frame_path("masks", index).exists():
            mask = read_mask(self.frame_path("masks", index), size=size, max_pixels=None)
        return rgb, depth, mask

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON into the staging folder, atomically; tensors become lists."""
        text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
        target = self.path(name)
        with atomic_output(target) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        return target

    def read_json(self, name: str) -> Any:
        """Read JSON ``name`` from the staging folder; None when it does not exist."""
        target = self.staging / name
        if not target.exists():
            return None
        try:
            return json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"The run file {target} is not valid JSON ({err}).") from err

    # ------------------------------------------------------------------ resume state

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Save resume state (a dict of tensors and plain values) atomically under ``.state/NAME.pt``."""
        with atomic_output(self.path(f"{STATE_DIR}/{name}.pt")) as tmp:
            torch.save(state, tmp)

    def load_state(self, name: str) -> dict[str, Any] | None:
        """Load state saved by ``save_state`` (tensors on CPU); None when there is none."""
        target = self.staging / STATE_DIR / f"{name}.pt"
        if not target.exists():
            return None
        try:
            return torch.load(target, map_location="cpu", weights_only=True)
        except Exception as err:
            raise InputError(f"The resume state {target} cannot be read; rerun with --overwrite.") from err

    # ------------------------------------------------------------------ end of a run

    def finalize(self) -> Path:
        """Move the staging folder onto ``out`` (the old ``out`` is replaced only now, with overwrite).

        Returns:
            the final folder.

        Raises:
            OutputError: ``out`` became non-empty meanwhile and ``overwrite`` is off, or it is no
                longer a folder that may be replaced (the staging folder is kept for ``--resume``).
        """
        old = None
        if self.out.exists():
            if _is_nonempty_dir(self.out) and not self.overwrite:
                raise OutputError(
                    f"The output folder {self.out} is not empty; pass --overwrite to replace it."
                )
            if not self.out.is_dir():
                raise OutputError(f"The output path {self.out} is a file; choose a folder name.")
            check_replaceable(self.out, self.inputs)  # it may have changed while the run worked
            check_writable(self.out)
        remove_stale_temp_files(self.staging)
        try:
            if self.out.exists():
                # Move the old folder aside first so the swap is two renames, never a half-deleted out.
                old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old.", dir=self.out.parent))
                os.replace(self.out, old / "out")
            os.replace(self.staging, self.out)
        except OSError as err:
            if old is not None:  # put the old result back; the staging folder stays for --resume
                if (old / "out").exists() and not self.out.exists():
                    os.replace(old / "out", self.out)
                shutil.rmtree(old, ignore_errors=True)
            raise OutputError(
                f"The finished run cannot be moved to {self.out} ({err.strerror or err}); it is kept in "
                f"{self.staging} for --resume."
            ) from err
        # The resume state goes only after the swap: a failed swap must still be resumable.
        shutil.rmtree(self.out / STATE_DIR, ignore_errors=True)
        # This swap's aside folder, and any a run killed between the two renames left behind.
        for aside in self.out.parent.glob(f".{self.out.name}.old.*"):
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
        return self.out

    def abort(self) -> None:
        """Delete the staging folder and everything in it (``out`` is untouched)."""
        shutil.rmtree(self.staging, ignore_errors=True)


OPTIONAL_LIBRARIES = ("numpy", "pillow", "opencv-python-headless", "diffusers", "transformers", "accelerate",
                      "trimesh", "imageio-ffmpeg", "pypatchmatch")  # fmt: skip


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (None where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Manifest:
    """What ``manifest.json`` records: versions, seed, device, backends, stage timings, memory, frames.

    ``timer(stage)`` accumulates wall time per stage across calls (and across resumes when the
    manifest is rebuilt with ``from_dict``).
    """

    def __init__(self, seed: int | None = None, device: str = "cpu") -> None:
        self.seed = seed
        self.device = device
        self.backends: dict[str, Any] = {}
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.frames = 0

    @contextlib.contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``timings[stage]`` (seconds)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON-ready data, with versions and peak memory measured now."""
        from wanderview import __version__

        versions = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "wanderview": __version__,
        }
        versions.update({name: v for name in OPTIONAL_LIBRARIES if (v := _version(name)) is not None})
        return {
            "versions": versions,
            "platform": platform.platform(),
            "seed": self.seed,
            "device": self.device,
            "backends": self.backends,
            "notes": self.notes,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "peak_rss_mb": peak_rss_mb(),
            "frames": self.frames,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Rebuild a manifest (e.g. from the staging folder on --resume) to keep accumulating."""
        manifest = cls(seed=data.get("seed"), device=data.get("device", "cpu"))
        manifest.backends = dict(data.get("backends", {}))
        manifest.notes = list(data.get("notes", []))
        manifest.timings = {k: float(v) for k, v in data.get("timings_s", {}).items()}
        manifest.frames = int(data.get("frames", 0))
        return manifest

    def write(self, run: RunDir) -> Path:
        """Write ``manifest.json`` into the run's staging folder."""
        return run.write_json("manifest.json", self.to_dict())
