"""The plumbing of methods/makeit4d.py: reading inputs (motion sources: methods/motion.py), the canvas,
writing outputs.

Kept apart from ``makeit4d.run`` so that the algorithm reads like the paper; nothing here is specific
to the paper beyond the canvas layout and the run-folder files it names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wanderview.backends.protocols import to_depth
from wanderview.cameras.camera import Camera
from wanderview.errors import WanderviewError
from wanderview.geometry.align import align_depth
from wanderview.geometry.fill import fill_depth_from_background
from wanderview.geometry.flow import flow_to_color
from wanderview.io.images import atomic_output, read_image, to_uint8, write_image
from wanderview.methods.common import (
    crop_box,
    crop_to_aspect,
    input_camera,
    resize_cover,
    resize_depth,
    working_size,
)


class OnDevice:
    """A depth model and an inpainter that take and give CPU tensors while running on ``device``.

    The layered scene and the point renderer stay on the CPU; only model calls move to the device.
    """

    def __init__(self, inpainter, depth_model, device):
        self._inpainter, self._depth, self._device = inpainter, depth_model, device

    @property
    def output(self) -> str:
        return self._depth.output

    @property
    def module(self):
        return getattr(self._depth, "module", None)

    def predict(self, rgb: torch.Tensor) -> torch.Tensor:
        return self._depth.predict(rgb.to(self._device)).cpu().float()

    def inpaint(self, rgb, mask, prompt="", negative_prompt=None, seed=0) -> torch.Tensor:
        out = self._inpainter.inpaint(
            rgb.to(self._device), mask.to(self._device), prompt, negative_prompt, seed=seed
        )
        return out.cpu().float().clamp(0, 1)


def make_backends(config, rt, quiet: bool):
    """(depth model, inpainter) on the run's device."""
    from wanderview.backends.registry import make_depth_model, make_inpainter

    loading = config.loading_options(rt.device)
    extra = {"steps": config.inpaint_steps} if config.inpainter.startswith("hf:") else {}
    if config.inpainter.startswith("selfsup"):
        extra.update(seed=config.seed, quiet=quiet)
    return make_depth_model(config.depth_model, **loading), make_inpainter(
        config.inpainter, **loading, **extra
    )


def load_input(config) -> tuple[torch.Tensor, torch.Tensor | None, Camera]:
    """The input rgb (3, H, W) at working size, the depth file's depth (1, H, W) or None, and the
    input camera (camera file, focal/cx/cy or fov; cropped like the image to the working aspect)."""
    from wanderview.io.depth import read_depth

    rgb = read_image(config.image, max_pixels=config.max_pixels)
    in_h, in_w = rgb.shape[1:]
    H, W = working_size(in_h, in_w, config.width, config.height, config.max_side)
    spec = "" if config.trajectory == "autocruise" else config.trajectory
    camera = input_camera(spec, in_w, in_h, config.fov, config.focal, config.cx, config.cy)
    top, left, ch, cw = crop_box(in_h, in_w, H, W)
    camera = camera.cropped(left, top, cw, ch).scaled(W, H)
    depth = None
    if config.depth is not None:
        depth, valid = read_depth(
            config.depth,
            kind=config.depth_kind,
            scale=config.depth_scale,
            size=(in_h, in_w),
            mask_invalid=config.mask_invalid_depth,
            max_pixels=config.max_pixels,
        )
        depth = torch.where(valid, depth, torch.full_like(depth, float("inf")))
        depth = resize_depth(crop_to_aspect(depth, H, W), H, W)
    return resize_cover(rgb, H, W), depth, camera


def prepare_inpainter(inpainter, rgb, file_depth, depth_model, camera, config, rt) -> None:
    """Train a self-supervised inpainter on the input image (the only image there is) first."""
    from wanderview.backends.protocols import Trainable

    if isinstance(inpainter, Trainable) and not inpainter.is_trained():
        depth = file_depth
        if depth is None:
            depth = to_depth(depth_model.predict(rgb.to(rt.device)), depth_model.output).cpu()
        depth = fill_depth_from_background(depth, ~torch.isfinite(depth))
        with rt.timer("inpainter_training"):
            inpainter.prepare(
                rgb.to(rt.device), depth.to(rt.device), camera.to(rt.device), prompt=config.prompt
            )


def canvas_camera(camera: Camera, scale: float, placement: str) -> tuple[Camera, tuple[int, int]]:
    """The canvas camera (same focal, principal point shifted) and the input's (x, y) offset on it."""
    W, H = camera.width, camera.height
    Wc, Hc = max(W, round(W * scale)), max(H, round(H * scale))
    Wc, Hc = Wc + (Wc - W) % 2, Hc + (Hc - H) % 2  # an even margin keeps the centred input on whole pixels
    ox = (Wc - W) // 2
    oy = (Hc - H) // 2 if placement == "center" else Hc - H
    K = camera.K.clone()
    K[0, 2] += ox
    K[1, 2] += oy
    return Camera(K, camera.cam_to_world, Wc, Hc), (ox, oy)


def crop(image: torch.Tensor, offset: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """The input region (C, height, width) of a canvas image (C, Hc, Wc)."""
    ox, oy = offset
    return image[:, oy : oy + height, ox : ox + width]


def paste(canvas: torch.Tensor, image: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    ox, oy = offset
    out = canvas.clone()
    out[:, oy : oy + image.shape[1], ox : ox + image.shape[2]] = image
    return out


def outpaint(
    rgb: torch.Tensor, canvas_cam: Camera, offset, inpainter, config, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1: the canvas rgb (3, Hc, Wc), input pasted and the rest inpainted, and known (1, Hc, Wc)."""
    Hc, Wc = canvas_cam.height, canvas_cam.width
    known = paste(
        torch.zeros(1, Hc, Wc, dtype=torch.bool), torch.ones(1, *rgb.shape[1:], dtype=torch.bool), offset
    )
    canvas = paste(rgb.new_zeros(3, Hc, Wc), rgb, offset)
    if bool(known.all()):
        return canvas, known
    filled = OnDevice(inpainter, None, device).inpaint(
        canvas, ~known, config.prompt, config.negative_prompt, seed=config.seed
    )
    return torch.where(known, canvas, filled), known


def canvas_depth(canvas, known, offset, file_depth, depth_model, device) -> torch.Tensor:
    """Step 2: finite depth (1, Hc, Wc) of the canvas (see methods/makeit4d.py)."""
    depth_model = OnDevice(None, depth_model, device)
    if file_depth is None:
        depth = to_depth(depth_model.predict(canvas), depth_model.output)
    else:
        ref = paste(torch.full_like(canvas[:1], float("inf")), file_depth, offset)
        if getattr(depth_model, "module", None) is not None:
            pred = to_depth(depth_model.predict(canvas), depth_model.output)
            aligned = align_depth(pred, ref, known & torch.isfinite(ref))
            depth = torch.where(known & torch.isfinite(ref), ref, aligned)
        else:
            depth = fill_depth_from_background(ref, ~(known & torch.isfinite(ref)))
    finite = torch.isfinite(depth) & (depth > 0)
    if not bool(finite.any()):
        raise WanderviewError("the depth of the canvas has no valid pixel")
    # sky without a finite depth in a file: the farthest finite depth keeps it in the farthest layer
    return torch.where(finite, depth, depth[finite].max())


def box_mask(mask: torch.Tensor, margin: int) -> torch.Tensor:
    """(1, H, W) bool: the bounding box of ``mask`` grown by ``margin`` pixels (all False if empty)."""
    out = torch.zeros_like(mask)
    if not bool(mask.any()):
        return out
    ys, xs = mask[0].nonzero(as_tuple=True)
    H, W = mask.shape[1:]
    y0, y1 = max(0, int(ys.min()) - margin), min(H, int(ys.max()) + 1 + margin)
    x0, x1 = max(0, int(xs.min()) - margin), min(W, int(xs.max()) + 1 + margin)
    out[:, y0:y1, x0:x1] = True
    return out


def canvas_flow(source, offset, canvas_cam: Camera, num_layers: int, sky: torch.Tensor):
    """The flow (2, Hc, Wc) on the canvas and the layers that move (None = all).

    The sky preset moves the farthest layer where ``sky`` (1, Hc, Wc) bool is True.
    A flow given on the input is continued into the outpainted border by replicating its edge (the
    outpainting continues what is at the input's edge, water included).
    """
    kind, value = source
    Hc, Wc = canvas_cam.height, canvas_cam.width
    if kind == "none":
        return torch.zeros(2, Hc, Wc), None
    if kind == "sky":
        return torch.tensor(value, dtype=torch.float32)[:, None, None] * sky.float(), {num_layers - 1}
    ox, oy = offset
    H, W = value.shape[1:]
    padded = F.pad(value[None], (ox, Wc - W - ox, oy, Hc - H - oy), mode="replicate")[0]
    return padded, None


def write_rgba(path: Path, rgb: torch.Tensor, alpha: torch.Tensor) -> None:
    from PIL import Image

    array = np.concatenate([to_uint8(rgb), (alpha[0].numpy() * 255).astype(np.uint8)[..., None]], axis=2)
    with atomic_output(path, suffix=".png") as tmp:
        Image.fromarray(array, mode="RGBA").save(tmp, format="PNG")


def write_scene_files(rundir, cloud, layers, flow: torch.Tensor, canvas: torch.Tensor) -> None:
    """points.ply, layers/ (RGBA PNG + depth .npy each), flow.png, flow.npy and canvas.png, through
    ``rundir.path(name)`` (a RunDir or the method runtime)."""
    cloud.save(rundir.path("points.ply"))
    for i, (rgb, alpha, depth) in enumerate(layers):
        write_rgba(rundir.path(f"layers/layer_{i}.png"), rgb, alpha)
        with atomic_output(rundir.path(f"layers/layer_{i}_depth.npy"), suffix=".npy") as tmp:
            np.save(tmp, torch.where(alpha, depth, torch.full_like(depth, float("inf")))[0].numpy())
    with atomic_output(rundir.path("flow.npy"), suffix=".npy") as tmp:
        np.save(tmp, flow.numpy().astype(np.float32))
    write_image(rundir.path("flow.png"), flow_to_color(flow))
    write_image(rundir.path("canvas.png"), canvas)


def render_frame(config, animation, camera, index: int, loop: int, painter, rt):
    """Frame ``index``: (rgb (3,H,W), depth (1,H,W), holes (1,H,W)); per_frame fills the holes and adds
    them to the cloud as still points (render-refine-repeat)."""
    from wanderview.methods.photo3d import inpaint_from_background

    with rt.timer("render"):
        view = animation.render(camera, index % loop)
    holes, frame, depth = view.holes, view.rgb, view.depth
    if config.per_frame and bool(holes.any()):
        with rt.timer("inpaint"):
            frame = inpaint_from_background(
                painter,
                view.rgb,
                view.depth,
                holes,
                config.prompt,
                config.negative_prompt,
                seed=config.seed + 100 + index,
            )
        depth = fill_depth_from_background(view.depth, holes)
        animation.cloud.add_layer(frame, holes, depth, animation.cloud.num_layers, camera=camera)
    return frame, depth, holes


def write_loop_gif(rt, num_frames: int, fps: int) -> None:
    """video.gif from the frames on disk."""
    from wanderview.io.gif import write_gif

    with rt.timer("write"):
        write_gif(rt.path("video.gif"), (rt.rundir.read_frame(i)[0] for i in range(num_frames)), fps=fps)


def camera_notes(camera: Camera, canvas_cam: Camera) -> list[str]:
    """Manifest notes: the cameras of the frames and of the canvas, and what the points carry."""
    fx, cx, cy = float(camera.K[0, 0]), float(camera.K[0, 2]), float(camera.K[1, 2])
    return [
        f"frames: the input camera ({camera.width}x{camera.height}, fx {fx:.1f}, cx {cx:.1f}, cy {cy:.1f}); "
        f"canvas camera {canvas_cam.width}x{canvas_cam.height}, same focal, principal point "
        f"({float(canvas_cam.K[0, 2]):.1f}, {float(canvas_cam.K[1, 2]):.1f}); both in makeit4d.json",
        "points carry RGB: the paper's feature encoder/decoder has no public weights",
        "the layered scene is built and rendered on the CPU; only model calls run on the device",
    ]
