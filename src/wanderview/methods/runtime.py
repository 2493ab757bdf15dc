"""The method runtime: everything a method's ``run()`` does that is not its paper's algorithm.

One :class:`MethodRun` owns the run folder (``RunDir``), the manifest and its stage timers, the
progress bar, the resume state and the final writes. A per-frame method reads like this::

    def run(config, out_dir, *, overwrite=False, resume=False, quiet=False) -> RunResult:
        rt = MethodRun("photo3d", config, out_dir, overwrite=overwrite, resume=resume, quiet=quiet,
                       inputs=input_paths(config.image, config.depth, config.trajectory),
                       checkpoint_every=config.checkpoint_every)
        # 1. the constructor only checks (seed, device, output folder, and on --resume that the
        #    stored config of the interrupted run matches); nothing is written yet
        depth_model = make_depth_model(config.depth_model, **config.loading_options(rt.device))
        rgb, depth = ...                                   # 2. everything that can fail on input
        rt.begin(backends={"depth": depth_model, "inpainter": inpainter})   # 3. folder + config.json
        scene = Scene.from_rgbd(...)
        state = rt.resume_state()                          # what checkpoint() saved, or None
        if state is not None:
            scene.load_state_dict(state["scene"])
        for i in rt.frames(num_frames, start=rt.resume_frame(state)):      # 4. the loop
            with rt.timer("render"):
                view = scene.render(cameras[i])
            ...
            rt.write_frame(i, frame, depth, holes)
            rt.checkpoint(i, lambda: {"scene": scene.state_dict()}, last=i == num_frames - 1)
        rt.write_video(num_frames)                         # 5. outputs, from the frames on disk
        rt.write_cameras(cameras)
        scene.save(rt.path("mesh.ply"))
        return rt.finish(num_frames, scene="mesh.ply")     # 6. manifest, atomic rename

Other shapes of run use the same pieces: a *staged* run (rounds of stages that each produce
frames) times each stage with ``rt.timer(stage)`` and numbers its checkpoints by round; an
*optimisation* run iterates ``rt.progress(range(start, steps), "fit")`` and calls
``rt.checkpoint(step, state_fn)``, then writes several videos with ``rt.write_video(...,
name=...)`` from frames it wrote with ``rt.write_frame`` or from tensors it passes in.

Resume state: :meth:`checkpoint` saves ``state_fn()`` (tensors and plain values) every
``checkpoint_every`` steps and at the last one, timed as the ``checkpoint`` stage. A killed run
continues after its last checkpoint; the frames written after it are computed again, which gives
the same bytes because every random choice is seeded per frame. ``checkpoint_every`` trades the
cost of a save (a growing mesh is tens of MB) against the frames recomputed after a kill.

Devices: ``device`` (``auto`` = cuda > mps > cpu) is where the backends run *and* where the
method's tensors and scene live; ``rt.device`` is the resolved ``torch.device``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from wanderview.errors import ConfigError
from wanderview.io.rundir import Manifest, RunDir
from wanderview.methods.common import RunResult, config_to_json, describe_backend

STATE = "method"
SEED_LIMIT = 2**63
# Config fields that change how a run is computed or loaded, never what it produces: a resumed
# run may give other values for them.
NOT_RESULT_AFFECTING = frozenset({"checkpoint_every", "cpu_offload", "attention_slicing", "save_pairs"})


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda > mps > cpu; any other name is checked to exist.

    Raises:
        ConfigError: not a device name, or a CUDA device this torch build does not see.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"--device {name!r} is not a device name; use cpu, cuda, cuda:N, mps or auto"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} was asked for but this torch build sees no CUDA device")
    return device


def check_seed(seed: int) -> None:
    """Refuse a seed torch cannot take (it must fit 64 bits with room for per-frame offsets)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")


def first_difference(stored: dict, now: dict, ignore: Iterable[str] = ()) -> str | None:
    """The first result-affecting option whose value differs between two config.json dicts, as a
    sentence fragment naming it (``--trajectory: 'swing' before, 'circle' now``); None if none."""
    skip = NOT_RESULT_AFFECTING | set(ignore)
    for key in [*now, *(k for k in stored if k not in now)]:
        if key in skip:
            continue
        before, after = stored.get(key, "<unset>"), now.get(key, "<unset>")
        if before != after:
            return f"--{key.replace('_', '-')} was {before!r} in the interrupted run, {after!r} now"
    return None


def input_paths(*candidates: str | Path | None) -> list[Path]:
    """The local paths a run reads, for ``MethodRun(inputs=...)``: files given directly, and the
    existing files or folders named by a camera-file trajectory or a backend spec
    (``hf:FOLDER``, ``selfsup:FOLDER``, ``file:DEPTH``)."""
    paths = []
    for value in candidates:
        if value is None or value == "":
            continue
        text = str(value)
        for prefix in ("hf:", "selfsup:hf:", "selfsup:", "file:"):
            if text.startswith(prefix) and Path(text[len(prefix) :]).exists():
                text = text[len(prefix) :]
                break
        if Path(text).exists():
            paths.append(Path(text))
    return paths


def _stored_config(out_dir: str | Path) -> dict | None:
    """config.json of the unfinished run of ``out_dir`` (None when absent or unreadable: a run
    killed before it wrote one has produced nothing that could be mixed)."""
    import json

    path = RunDir.staging_path(out_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class MethodRun:
    """The bookkeeping of one method run; see the module docstring for the order of calls.

    Attributes:
        device: the resolved ``torch.device`` of backends, tensors and scene.
        manifest: the run's :class:`Manifest` (``notes`` and ``backends`` may be extended).
        quiet: progress bars off.
    """

    def __init__(
        self,
        method: str,
        config: Any,
        out_dir: str | Path,
        *,
        overwrite: bool = False,
        resume: bool = False,
        quiet: bool = False,
        inputs: Sequence[str | Path | None] = (),
        effective: dict[str, Any] | None = None,
        checkpoint_every: int = 1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        """Check everything about the run that needs no model; write nothing.

        Args:
            method: the method's name (``config.json`` records it).
            config: the method's Config dataclass; written as ``config.json``.
            out_dir: the run folder.
            inputs: files the run reads (image, depth, camera file, model folder): --overwrite never
                replaces or discards a folder holding one (None entries are skipped).
            effective: values derived from the config that decide the result (e.g. the path spec
                with its seed), recorded in ``config.json`` and compared on --resume.
            checkpoint_every: save resume state every this many steps (and at the last).
            seed, device: the config's seed and device.
        Raises:
            ConfigError: bad seed or device, ``checkpoint_every`` < 1, or a resume whose
                result-affecting options differ from the interrupted run's.
            OutputError: the output folder cannot be used as asked (see ``RunDir.check``).
        """
        self._start = time.perf_counter()
        check_seed(seed)
        if checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every must be at least 1, got {checkpoint_every}")
        self.device = resolve_device(device)
        self.method, self.out_dir, self.quiet = method, Path(out_dir), quiet
        self.overwrite, self.resume, self.checkpoint_every = overwrite, resume, checkpoint_every
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.config_json = {"method": method, **config_to_json(config), **(effective or {})}
        self.config_json["device"] = str(self.device)
        self.manifest = Manifest(seed=seed, device=str(self.device))
        self._rundir: RunDir | None = None
        self._prior_total = 0.0
        RunDir.check(out_dir, overwrite=overwrite, resume=resume, inputs=self.inputs)
        if resume:
            stored = _stored_config(out_dir)
            if stored is not None:
                diff = first_difference(stored, self.config_json)
                if diff is not None:
                    raise ConfigError(
                        f"--resume continues a run only with the options it was started with: {diff} "
                        "(give the same options, or start over with --overwrite instead of --resume)"
                    )
        torch.manual_seed(seed)

    # ------------------------------------------------------------------ the run folder
    def begin(self, backends: dict[str, Any] | None = None) -> None:
        """Create the run folder (staging) and write ``config.json``; the first write of a run.

        Args:
            backends: name -> manifest entry (``methods.common.describe_backend(backend, spec)``),
                a backend object (described without its spec), or None (skipped).
        """
        for name, backend in (backends or {}).items():
            if backend is not None:
                self.manifest.backends[name] = (
                    backend if isinstance(backend, dict) else describe_backend(backend)
                )
        self._rundir = RunDir.create(
            self.out_dir, overwrite=self.overwrite, resume=self.resume, inputs=self.inputs
        )
        self._rundir.write_json("config.json", self.config_json)

    @property
    def rundir(self) -> RunDir:
        """The run's :class:`RunDir` (after :meth:`begin`)."""
        if self._rundir is None:
            raise RuntimeError("MethodRun.begin() must be called before writing into the run folder")
        return self._rundir

    def path(self, name: str) -> Path:
        """Path of ``name`` inside the run's staging folder (parents created)."""
        return self.rundir.path(name)

    def timer(self, stage: str):
        """Context manager adding the block's wall time to the manifest stage ``stage``."""
        return self.manifest.timer(stage)

    # ------------------------------------------------------------------ loop and resume
    def progress(self, steps: range, desc: str, unit: str = "step") -> Iterator[int]:
        """Iterate ``steps`` (a range that may start late after a resume) with a progress bar
        (off with ``quiet``) that counts from 0 to ``steps.stop``."""
        bar = tqdm(steps, desc=desc, unit=unit, disable=self.quiet, initial=steps.start, total=steps.stop)
        return iter(bar)

    def frames(self, num_frames: int, start: int = 0) -> Iterator[int]:
        """Frame indices ``start .. num_frames - 1`` with the method's progress bar."""
        return self.progress(range(start, num_frames), self.method, unit="frame")

    def write_frame(self, index: int, rgb: torch.Tensor, depth: torch.Tensor | None = None,
                    holes: torch.Tensor | None = None) -> None:  # fmt: skip
        """Write frame ``index``: rgb (3, H, W) in [0, 1], depth (1, H, W), holes (1, H, W) bool."""
        self.rundir.write_frame(index, rgb.cpu(), None if depth is None else depth.cpu(),
                                None if holes is None else holes.cpu())  # fmt: skip

    def checkpoint(self, step: int, state_fn: Callable[[], dict[str, Any]], *, last: bool = False) -> bool:
        """Save resume state after ``step`` every ``checkpoint_every`` steps, and when ``last``.

        ``state_fn`` is called only when a checkpoint is due; its tensors are saved on the CPU
        with the step and the stage timings. Returns whether a checkpoint was written.
        """
        if not last and (step + 1) % self.checkpoint_every:
            return False
        with self.timer("checkpoint"):
            state = {**state_fn(), "step": step, "timings": dict(self.manifest.timings),
                     "total": self._prior_total + time.perf_counter() - self._start}  # fmt: skip
            self.rundir.save_state(STATE, state)
        return True

    def resume_state(self) -> dict[str, Any] | None:
        """The state of the interrupted run's last checkpoint (None when not resuming or none).

        Its stage timings are restored, so the manifest of a resumed run adds up both processes.
        """
        if not self.resume:
            return None
        state = self.rundir.load_state(STATE)
        if state is not None:
            self.manifest.timings = {k: float(v) for k, v in state["timings"].items()}
            self._prior_total = float(state["total"])
            self._start = time.perf_counter()
        return state

    def resume_frame(self, state: dict[str, Any] | None) -> int:
        """The first frame a per-frame loop has to compute: after the checkpoint, 0 without one."""
        if state is None:
            return 0
        return min(self.rundir.finished_frames(), int(state["step"]) + 1)

    # ------------------------------------------------------------------ outputs
    def write_video(self, num_frames: int | None = None, name: str = "video.mp4", *, reverse: bool = False,
                    frames: Iterable[torch.Tensor] | None = None, fps: int = 24) -> Path:  # fmt: skip
        """Write an H.264 video: the run's frames 0..num_frames-1 read back from disk (reversed when
        ``reverse``), or the given (3, H, W) ``frames``. Timed as the ``write`` stage."""
        from wanderview.io.video import write_video

        if frames is None:
            order = range(num_frames - 1, -1, -1) if reverse else range(num_frames)
            frames = (self.rundir.read_frame(i)[0] for i in order)
        with self.timer("write"):
            write_video(self.path(name), frames, fps=fps)
        return self.path(name)

    def write_cameras(self, cameras, name: str = "cameras.json") -> Path:
        """Write the frames' cameras (N,) as nerfstudio transforms.json naming ``frames/NNNNN.png``."""
        from wanderview.io.cameras import write_transforms_json

        n = len(cameras)
        with self.timer("write"):
            write_transforms_json(
                self.path(name), cameras.to("cpu"), [f"frames/{i:05d}.png" for i in range(n)]
            )
        return self.path(name)

    def finish(self, num_frames: int, scene: str | None = None, video: str = "video.mp4") -> RunResult:
        """Write ``manifest.json`` and move the staging folder onto the run folder.

        Args:
            num_frames: frames of the run; scene, video: file names inside the run folder.
        """
        self.manifest.frames = num_frames
        self.manifest.timings["total"] = self._prior_total + time.perf_counter() - self._start
        self.manifest.write(self.rundir)
        final = self.rundir.finalize()
        return RunResult(final, num_frames, final / video, None if scene is None else final / scene,
                         dict(self.manifest.timings))  # fmt: skip
