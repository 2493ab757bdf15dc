"""`wanderview app`: a Gradio app (the ``[app]`` extra) that runs a method and shows its results.

Upload an image or type a prompt, pick the method and its backends (only those usable on this
machine are offered, as ``wanderview models`` reports them), pick a camera path and see its plot
before running, run with a progress bar (the method's own tqdm bars), then see the video, the scene
in ``gr.Model3D`` and download the run folder as a zip. Runs go through Gradio's queue, one at a
time (``concurrency_limit=1``: the methods use every core), while the other events (the trajectory
plot) have their own concurrency, so a long run never blocks another user's page. A run is the same
command line a user would type (``build_argv``), parsed by the CLI's own parser.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from wanderview.errors import BackendError

DEFAULT_PORT = 7860
DEFAULT_MAX_SIDE = 192  # CPU defaults: small frames, short paths
DEFAULT_FRAMES = 12
DEFAULT_MAX_PIXELS = 4096 * 4096  # photo3d's --max-pixels default


@dataclass(frozen=True)
class MethodForm:
    """How the app's inputs become one method's command line.

    Attributes:
        command: the CLI command (``wanderview <command>``).
        image_flag: the option that takes the image, or None when it is the positional argument.
        needs_image: whether an image is required (otherwise the prompt alone may do).
        backends: backend kind (``depth``, ``inpaint``, ``image``) -> its option.
        trajectory: the method's default camera path.
        defaults: backend kind -> the method's default spec (what its CLI uses).
    """

    command: str
    image_flag: str | None
    needs_image: bool
    backends: dict[str, str] = field(default_factory=dict)
    trajectory: str = "swing"
    defaults: dict[str, str] = field(default_factory=dict)


METHODS: dict[str, MethodForm] = {
    "photo3d": MethodForm("photo3d", None, True,
                          {"depth": "--depth-model", "inpaint": "--inpainter"}, "swing",
                          {"depth": "heuristic", "inpaint": "telea"}),
    "scenescape": MethodForm("scenescape", "--image", False,
                             {"depth": "--depth-model", "inpaint": "--inpainter", "image": "--generator"},
                             "scenescape", {"depth": "heuristic", "inpaint": "patchmatch", "image": "none"}),
}  # fmt: skip
BACKEND_KINDS = ("depth", "inpaint", "image")
BACKEND_LABELS = {"depth": "depth model", "inpaint": "inpainter", "image": "text-to-image generator"}


def import_gradio():
    """The gradio module (analytics off: the app never calls out), or a BackendError naming the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as err:
        raise BackendError(
            "wanderview app needs gradio: pip install 'wanderview[app]' (or pip install gradio)."
        ) from err
    return gradio


def available_methods() -> list[str]:
    """The methods of ``METHODS`` whose command exists in this installation."""
    from wanderview.cli import _command_modules

    commands = set(_command_modules())
    return [name for name, form in METHODS.items() if form.command in commands]


def backend_choices(kind: str) -> list[str]:
    """Specs of the backends of ``kind`` usable here now (``file`` depth needs an upload: left out)."""
    from wanderview.backends.catalog import catalog

    specs = [entry.spec for entry, avail in catalog(kind) if avail.usable and entry.spec != "file"]
    return (["none"] + specs) if kind == "image" else specs


def image_size(image: str | os.PathLike | None, max_side: int) -> tuple[int, int]:
    """Frame (width, height): the image's aspect with its longer side ``max_side``, multiples of 8
    (H.264 wants even sizes); square without an image."""
    if image is None:
        side = max(8, max_side // 8 * 8)
        return side, side
    from wanderview.io.images import check_readable_file, open_image_header

    # the project's header check: a broken or huge upload is one sentence, before any work
    with open_image_header(check_readable_file(image, "image"), DEFAULT_MAX_PIXELS, "image") as img:
        w, h = img.size
    scale = max_side / max(w, h)
    return max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8)


def build_argv(method: str, out: Path, *, image: str | None = None, prompt: str = "",
               trajectory: str | None = None, frames: int = DEFAULT_FRAMES, max_side: int = DEFAULT_MAX_SIDE,
               backends: dict[str, str] | None = None, seed: int = 0) -> list[str]:  # fmt: skip
    """The ``wanderview`` command line of one app run (without the program name).

    Raises:
        WanderviewError: unknown method, or no image where the method needs one.
    """
    from wanderview.errors import ConfigError, InputError

    if method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    form = METHODS[method]
    if image is None and (form.needs_image or not prompt.strip()):
        raise InputError(f"{method} needs an image{'' if form.needs_image else ' or a prompt'}: upload one.")
    width, height = image_size(image, max_side)
    argv = [form.command]
    if image is not None:
        argv += [str(image)] if form.image_flag is None else [form.image_flag, str(image)]
    if prompt.strip():
        argv += ["--prompt", prompt.strip()]
    for kind, spec in (backends or {}).items():
        if kind in form.backends and spec and not (kind == "image" and spec == "none"):
            argv += [form.backends[kind], spec]
    argv += ["--trajectory", trajectory or form.trajectory, "--frames", str(int(frames))]
    argv += ["--width", str(width), "--height", str(height), "--seed", str(int(seed)), "-o", str(out)]
    return argv


def run_command(argv: list[str]) -> None:
    """Run one ``wanderview`` command in this process (the CLI's own parser and function).

    Raises:
        WanderviewError: whatever the command raises for bad input.
    """
    from wanderview.cli import build_parser
    from wanderview.errors import ConfigError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        raise ConfigError(f"The app built an invalid command line: wanderview {' '.join(argv)}") from exit_
    args.func(args)


def plot_path(trajectory: str, frames: int, width: int, height: int, out: Path) -> Path:
    """Plot the camera path ``trajectory`` (``NAME`` or ``NAME:key=value``) into the PNG ``out``."""
    from wanderview.cameras.camera import Camera
    from wanderview.cameras.plot import plot_trajectory
    from wanderview.cameras.trajectories import make_trajectory

    cameras = make_trajectory(trajectory, int(frames), Camera.from_fov(55.0, width, height))
    plot_trajectory(cameras, out, title=f"{trajectory}, {len(cameras)} frames (units: scene depth)")
    return out


def scene_for_model3d(run_dir: Path) -> Path | None:
    """A file ``gr.Model3D`` shows: the Gaussian PLY, the run's GLB, or a GLB of its points."""
    for name in ("gaussians.ply", "mesh.glb"):
        if (run_dir / name).is_file():
            return run_dir / name
    if (run_dir / "points.ply").is_file():
        from wanderview.share.export import export_glb
        from wanderview.share.run import open_run

        return export_glb(open_run(run_dir), run_dir.parent / f"{run_dir.name}_points.glb", overwrite=True)
    return None


def run_and_package(method: str, runs_dir: Path, **inputs) -> tuple[Path, Path | None, Path]:
    """Run a method into a new folder of ``runs_dir``; returns (video, scene file or None, zip)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(tempfile.mkdtemp(prefix=f"{stamp}-{method}-", dir=runs_dir))
    out = folder / "run"
    try:
        run_command(build_argv(method, out, **inputs))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a failed run leaves nothing in runs_dir
        raise
    archive = shutil.make_archive(str(folder / f"{method}-{stamp}"), "zip", root_dir=out)
    return out / "video.mp4", scene_for_model3d(out), Path(archive)


def default_backend(method: str, kind: str, choices: list[str]) -> str | None:
    """The method's default spec for ``kind`` when it is usable here, else the first usable one."""
    wanted = METHODS[method].defaults.get(kind) if method in METHODS else None
    return wanted if wanted in choices else (choices[0] if choices else None)
