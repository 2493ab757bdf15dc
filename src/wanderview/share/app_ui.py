"""The Gradio page of `wanderview app` (see ``share/app.py`` for what it runs and why)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from wanderview.errors import OutputError, WanderviewError
from wanderview.share.app import (
    BACKEND_KINDS,
    BACKEND_LABELS,
    DEFAULT_FRAMES,
    DEFAULT_MAX_SIDE,
    METHODS,
    available_methods,
    backend_choices,
    default_backend,
    image_size,
    import_gradio,
    plot_path,
    run_and_package,
)

INTRO = """# wanderview
One image (or a prompt) → a camera-controlled 3D scene video and an explorable 3D scene.
The defaults run on a CPU in under a minute at a small size; the embedded depth and inpainting
backends are **weak stand-ins** for the neural models (`wanderview models` lists what is installed)."""


def build_app(runs_dir: str | Path) -> Any:
    """The ``gr.Blocks`` app; every run writes a new folder under ``runs_dir``."""
    gr = import_gradio()
    from wanderview.cameras.trajectories import TRAJECTORIES

    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = Path(tempfile.mkdtemp(prefix="plots-", dir=runs_dir))
    methods = available_methods()
    first = methods[0] if methods else None
    choices = {kind: backend_choices(kind) for kind in BACKEND_KINDS}

    def plot(method, trajectory, frames, max_side, image):
        try:
            width, height = image_size(image, int(max_side))
            spec = trajectory or METHODS[method].trajectory
            out = plots_dir / f"path-{abs(hash((spec, int(frames), width, height)))}.png"
            return str(plot_path(spec, int(frames), width, height, out))
        except WanderviewError as err:
            raise gr.Error(str(err)) from None

    def run(method, image, prompt, trajectory, frames, max_side, seed, depth_model, inpainter, generator,
            progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        progress(0, desc=f"starting {method}")
        backends = dict(zip(BACKEND_KINDS, (depth_model, inpainter, generator)))
        try:
            video, scene, archive = run_and_package(
                method, runs_dir, image=image, prompt=prompt or "", trajectory=trajectory or None,
                frames=int(frames), max_side=int(max_side), backends=backends, seed=int(seed),
            )  # fmt: skip
        except WanderviewError as err:
            raise gr.Error(str(err)) from None
        return str(video), (str(scene) if scene else None), str(archive)

    with gr.Blocks(title="wanderview") as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="filepath", label="input image", elem_id="image")
                prompt = gr.Textbox(label="prompt (scenescape with a text-to-image model; inpainter text)",
                                    elem_id="prompt")
                method = gr.Dropdown(methods, value=first, label="method", elem_id="method")
                backend_inputs = [
                    gr.Dropdown(choices[k], value=default_backend(first, k, choices[k]),
                                label=BACKEND_LABELS[k], elem_id=f"backend-{k}")
                    for k in BACKEND_KINDS
                ]  # fmt: skip
                with gr.Row():
                    trajectory = gr.Dropdown(
                        list(TRAJECTORIES), value=None, allow_custom_value=True, elem_id="trajectory",
                        label="camera path (empty: the method's default; NAME:key=value works)",
                    )
                    frames = gr.Slider(2, 120, value=DEFAULT_FRAMES, step=1, label="frames", elem_id="frames")
                with gr.Row():
                    max_side = gr.Slider(64, 768, value=DEFAULT_MAX_SIDE, step=8,
                                         label="frame size (longer side)", elem_id="max-side")
                    seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
                path_plot = gr.Image(label="camera path (top and side view)", elem_id="path-plot",
                                     interactive=False)
                run_button = gr.Button("Run", variant="primary", elem_id="run")
            with gr.Column():
                video = gr.Video(label="video", elem_id="video", interactive=False)
                # glTF is y-up with the input camera looking down -z: start on the +z side, level
                scene = gr.Model3D(label="scene (mesh GLB or Gaussian PLY)", elem_id="scene",
                                   clear_color=(0.9, 0.9, 0.9, 1.0), camera_position=(90, 90, None))
                archive = gr.File(label="run folder (zip)", elem_id="zip", interactive=False)

        def method_defaults(name):
            return [gr.update(value=default_backend(name, k, choices[k])) for k in BACKEND_KINDS]

        method.change(method_defaults, method, backend_inputs, api_name=False)
        plot_inputs = [method, trajectory, frames, max_side, image]
        for component in (method, trajectory, frames, max_side):
            component.change(plot, plot_inputs, path_plot, api_name=False, concurrency_limit=4,
                             concurrency_id="plot")
        app.load(plot, plot_inputs, path_plot, api_name="plot", concurrency_limit=4, concurrency_id="plot")
        run_button.click(run, [method, image, prompt, trajectory, frames, max_side, seed, *backend_inputs],
                         [video, scene, archive], api_name="run", concurrency_limit=1,
                         concurrency_id="run")  # fmt: skip
    app.queue(max_size=32)
    return app


def launch(runs_dir: str | Path | None = None, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the app on ``host:port``; ``block=False`` returns (app, url) with the server running.

    Raises:
        OutputError: the port is taken (Gradio looks no further than the port asked for).
    """
    runs_dir = Path(runs_dir) if runs_dir is not None else Path(tempfile.mkdtemp(prefix="wanderview-app-"))
    app = build_app(runs_dir)
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                               ssr_mode=False, allowed_paths=[str(runs_dir.absolute())],
                               share=False)  # fmt: skip
    except OSError:
        raise OutputError(f"Port {port} on {host} is in use (or not allowed); pass another --port.") from None
    if not block:
        return app, url
    try:  # a Ctrl-C at any moment from here on stops the server cleanly
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"wanderview app: http://{shown}:{port} (runs in {runs_dir}; Ctrl-C to stop)", flush=True)
        app.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    print("wanderview app: stopped", flush=True)
    return app, url
