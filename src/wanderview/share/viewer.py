"""`wanderview view`: a viser server that shows a run folder (the ``[viewer]`` extra).

It shows the scene, the camera path as frustums with each frame's picture, a frame slider that moves
the viewport to that frame's camera, a time slider when the run holds a dynamic scene (``scene_t/``),
a switch between Gaussian splats and their centres as points (viser's splats are experimental), and
a button that renders the current viewport with wanderview's own renderer into
``RUN/views/view_NNN.png``. viser binds 0.0.0.0 unless told otherwise, so the host is always passed.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from wanderview.errors import BackendError
from wanderview.io.images import write_image
from wanderview.share.run import RunFolder, SceneData, load_scene, scene_extent
from wanderview.share.viewer_scene import (
    UP_DIRECTION,
    apply_calls,
    camera_path_calls,
    camera_view,
    point_size,
    scene_calls,
    view_camera,
)
from wanderview.types import RenderOutput

DEFAULT_HOST = "127.0.0.1"


def import_viser():
    """The viser module, or a BackendError naming the extra to install."""
    try:
        import viser
    except ImportError as err:
        raise BackendError(
            "wanderview view needs viser: pip install 'wanderview[viewer]' (or pip install viser)."
        ) from err
    return viser


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RunViewer:
    """A run folder on a viser server: scene, camera path, GUI (see the module docstring).

    Args:
        server: a ``viser.ViserServer``.
        run: the opened run folder.
    """

    def __init__(self, server: Any, run: RunFolder) -> None:
        self.server = server
        self.run = run
        self.scene: SceneData | None = load_scene(run.scene_path) if run.scene_path is not None else None
        self.extent = scene_extent(run, self.scene)
        self._renderers: dict[Path, Any] = {}
        self.time_step = 0
        self.time_label = None
        self._render_lock = threading.Lock()
        self._save_lock = threading.Lock()
        server.scene.set_up_direction(UP_DIRECTION)
        size = point_size(run, self.extent)
        self.time_values: list[float] = []  # a fourreal run: the time of each step
        if run.deformation_path is not None and self.scene is not None:
            from wanderview.share.dynamic import deformed_scenes, load_deformable, slider_times

            self._deformable = load_deformable(run.scene_path)
            self.time_values = slider_times(run)
            self.time_scenes = deformed_scenes(self._deformable, self.scene, self.time_values)
        else:
            self.time_scenes = [load_scene(p) for p in run.time_paths]
        # a fourreal run's canonical scene is the time steps' base, not drawn on its own
        static = self.scene is not None and not self.time_values
        calls = scene_calls(self.scene, "/scene", size) if static else []
        for t, scene in enumerate(self.time_scenes):
            calls += scene_calls(scene, f"/scene_t/{t:05d}", size, visible=t == 0)
        calls += camera_path_calls(run, self.extent)
        self.handles = apply_calls(server.scene, calls)
        self._set_initial_camera()
        self._add_gui()

    # ------------------------------------------------------------------ camera

    def _set_initial_camera(self) -> None:
        # Start behind and above the first camera, so the frustums and the scene are both in view.
        view = camera_view(self.run.cameras[0])
        axes = self.run.cameras[0].cam_to_world.reshape(4, 4)[:3, :3].double().numpy()
        right, down, forward = axes.T
        back = view["position"] - 0.7 * self.extent * forward - 0.3 * self.extent * down
        self.server.initial_camera.position = back + 0.2 * self.extent * right
        self.server.initial_camera.look_at = view["position"] + 0.8 * self.extent * forward
        self.server.initial_camera.up = (0.0, -1.0, 0.0)
        self.server.initial_camera.fov = view["fov"]

    def go_to_frame(self, index: int) -> dict[str, Any]:
        """Move every connected viewport to frame ``index``'s camera; returns that camera's view."""
        view = camera_view(self.run.cameras[index])
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.wxyz = view["wxyz"]
                client.camera.position = view["position"]
                client.camera.fov = view["fov"]
        return view

    def set_time(self, step: int) -> None:
        """Show time step ``step`` of a dynamic scene (the time-slider hook) and hide the others."""
        for t in range(len(self.time_scenes)):
            self.handles[f"/scene_t/{t:05d}"].visible = t == step
        self.time_step = step
        if self.time_label is not None:
            self.time_label.content = f"t = {self.time_values[step]:.3f}"

    def show_splats_as(self, mode: str) -> None:
        """``"splats"``: viser's Gaussian splats; ``"points"``: their centres as a point cloud."""
        for name, handle in self.handles.items():
            if name.endswith("_points"):
                handle.visible = mode == "points"
                self.handles[name[: -len("_points")]].visible = mode != "points"

    # ------------------------------------------------------------------ rendering

    def render(self, wxyz: np.ndarray, position: np.ndarray, fov: float) -> RenderOutput:
        """Render the scene (of a dynamic run: the time step shown) with wanderview's renderer at the
        run's frame size from a viewport pose."""
        if self.time_values:  # a fourreal run: the deformable Gaussians at the step's time
            camera = view_camera(wxyz, position, fov, self.run.cameras.width, self.run.cameras.height)
            with self._render_lock:
                return self._deformable.render(camera, time=self.time_values[self.time_step])
        if self.time_scenes:
            path, scene = self.run.time_paths[self.time_step], self.time_scenes[self.time_step]
        elif self.run.scene_path is not None:
            path, scene = self.run.scene_path, self.scene
        else:
            raise BackendError(f"The run folder {self.run.root} has no scene to render.")
        camera = view_camera(wxyz, position, fov, self.run.cameras.width, self.run.cameras.height)
        with self._render_lock:  # one render at a time: several clients may press the button
            if path not in self._renderers:
                self._renderers[path] = scene_renderer(path, scene)
            return self._renderers[path].render(camera)

    def save_view(self, wxyz: np.ndarray, position: np.ndarray, fov: float) -> Path:
        """Render a viewport pose and write it to the next free ``RUN/views/view_NNN.png``."""
        out = self.render(wxyz, position, fov)
        folder = self.run.root / "views"
        with self._save_lock:  # two clicks never pick the same name
            folder.mkdir(exist_ok=True)
            index = len(list(folder.glob("view_*.png")))
            while (path := folder / f"view_{index:03d}.png").exists():
                index += 1
            write_image(path, out.rgb)
        return path

    # ------------------------------------------------------------------ GUI

    def _add_gui(self) -> None:
        gui = self.server.gui
        info = (f"**{self.run.root.name}** — {self.run.method}, {len(self.run)} frames, "
                f"{self.scene.kind if self.scene else 'no scene'}"
                f"{f' ({len(self.scene):,})' if self.scene else ''}")  # fmt: skip
        gui.add_markdown(info)
        self.frame_slider = gui.add_slider("frame", min=0, max=max(len(self.run) - 1, 1), step=1,
                                           initial_value=0, disabled=len(self.run) < 2)
        self.frame_slider.on_update(lambda _: self.go_to_frame(int(self.frame_slider.value)))
        self.time_slider = self.time_label = None
        if len(self.time_scenes) > 1:
            self.time_slider = gui.add_slider("time", min=0, max=len(self.time_scenes) - 1, step=1,
                                              initial_value=0)
            self.time_slider.on_update(lambda _: self.set_time(int(self.time_slider.value)))
            if self.time_values:
                self.time_label = gui.add_markdown(f"t = {self.time_values[0]:.3f}")
        if any(name.endswith("_points") for name in self.handles):
            mode = gui.add_dropdown("Gaussians as", ("splats", "points"), initial_value="splats")
            mode.on_update(lambda _: self.show_splats_as(mode.value))
        frustums = gui.add_checkbox("camera path", True)
        frustums.on_update(lambda _: self._show_cameras(frustums.value))
        renderable = self.run.scene_path is not None or bool(self.time_scenes)
        button = gui.add_button("render this view (PNG)", disabled=not renderable)
        button.on_click(self._on_render_click)

    def _show_cameras(self, visible: bool) -> None:
        for name, handle in self.handles.items():
            if name.startswith("/cameras/"):
                handle.visible = visible

    def _on_render_click(self, event: Any) -> None:
        client = event.client
        if client is None:
            return
        cam = client.camera
        path = self.save_view(cam.wxyz, cam.position, cam.fov)
        client.add_notification("view saved", str(path), auto_close_seconds=5.0)
        print(f"saved {path}", flush=True)


def scene_renderer(path: Path, scene: SceneData | None):
    """An object with ``render(camera) -> RenderOutput`` for the run's scene file."""
    if scene is not None and scene.kind == "gaussians":
        from wanderview.share.splats import gaussian_renderer

        return gaussian_renderer(path)
    if scene is not None and scene.kind == "mesh":
        import torch

        from wanderview.scenes.mesh import MeshScene

        return MeshScene(torch.from_numpy(scene.positions), torch.from_numpy(scene.colors),
                         torch.from_numpy(scene.faces))
    from wanderview.scenes.points import PointScene

    return PointScene.load(path)


def start_viewer(run: RunFolder, host: str = DEFAULT_HOST, port: int = 8080) -> tuple[Any, RunViewer]:
    """Start a viser server on ``host:port`` (viser moves to the next free port if it is taken) and
    show ``run`` on it. Returns (server, viewer); call ``server.stop()`` to end it."""
    viser = import_viser()
    server = viser.ViserServer(host=host, port=port, label=f"wanderview: {run.root.name}", verbose=False)
    try:
        viewer = RunViewer(server, run)
    except BaseException:
        server.stop()
        raise
    return server, viewer


def serve(run: RunFolder, host: str = DEFAULT_HOST, port: int = 8080) -> int:
    """Serve until Ctrl-C; prints the URL (and a warning when reachable from the network)."""
    if not is_loopback(host):
        print(f"warning: serving on {host}: the scene is reachable from the network, not only this machine",
              file=sys.stderr)
    server = None
    try:  # the whole life of the server, so a Ctrl-C at any moment stops it cleanly
        server, _ = start_viewer(run, host, port)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"wanderview view: http://{shown}:{server.get_port()} (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
    print("wanderview view: stopped", flush=True)
    return 0
