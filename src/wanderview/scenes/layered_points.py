"""A layered point cloud animated by an Eulerian flow with symmetric splatting (Make-It-4D §3.4).

Every layer of a layered depth image (RGBA + depth on the canvas camera) is lifted to points that keep
their layer id, source pixel and source depth. A flow F (2, H, W) on the canvas moves the points that
lie where F is non-zero (optionally only in some layers): at frame t of a loop of N frames,

- the *forward* cloud has each moving point at Euler(F, t) of its source pixel,
- the *backward* cloud at Euler(-F, N - t),

each lifted to 3D at its source depth (the paper's scene flow). Both clouds are rendered and blended
with w_f = (1 - t/N) α_f exp(4 disp_f), w_b = (t/N) α_b exp(4 disp_b) (normalised; disp = nearest
depth / depth, in (0, 1]). At t = 0 only the forward cloud counts and at t = N only the backward one,
both then at their origins, so the loop is seamless; where content moves away in one cloud the other
still covers, so no holes open behind moving content.

Gaps: a moving point's splat grows with the local area scale of the flow map (exp of the divergence
integrated along its path, geometry/flow.euler_states), so content that the flow spreads apart stays
closed. Where the flow still spreads content apart faster than that (or piles it up at the edge of the
moving region) moving points drift more than two pixels apart and both clouds can show gaps. Every
moving point therefore also leaves a still copy at its origin, pushed back by ``GAP_FILL_DEPTH`` (10 %)
so the z-test keeps it behind the moving content: it is seen only where no moving point lands, and shows
the unanimated colour there instead of a hole.

Memory: the backward positions of every moving point for s = 0..N are computed once and kept,
8 * (N + 1) * (moving points) bytes (about 240 MB for 300k moving points and N = 100).
"""

from __future__ import annotations

from pathlib import Path

import torch

from wanderview.cameras.camera import Camera
from wanderview.geometry.flow import euler_states, sample_flow
from wanderview.render.points import capture_radii, render_points
from wanderview.types import RenderOutput

GAP_FILL_DEPTH = 1.1
"""Depth factor of the still copies of moving points (see the module docstring)."""
MAX_SPREAD = 4.0
"""The largest factor by which a moving point's splat grows where the flow spreads content apart."""
DISP_SHARPNESS = 4.0
"""The exponent factor of the symmetric splatting weights, exp(4 disp) (3D-Cinemagraphy)."""


class LayeredPointCloud:
    """Points of all layers: xyz (N, 3), rgb (N, 3), radius (N,), layer (N,), pixel (2, N), z (N,)."""

    def __init__(self, canvas: Camera):
        if canvas.batch_shape:
            raise ValueError("the canvas camera must be a single camera")
        self.canvas = canvas
        self.xyz = torch.zeros(0, 3)
        self.rgb = torch.zeros(0, 3)
        self.radius = torch.zeros(0)
        self.layer = torch.zeros(0, dtype=torch.long)
        self.pixel = torch.zeros(2, 0)
        self.z = torch.zeros(0)

    @classmethod
    def from_layers(cls, canvas: Camera, layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
        """Lift layers [(rgb (3, H, W), alpha (1, H, W) bool, depth (1, H, W))], nearest first."""
        cloud = cls(canvas)
        for index, (rgb, alpha, depth) in enumerate(layers):
            cloud.add_layer(rgb, alpha, depth, index)
        return cloud

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.layer.max()) + 1 if len(self) else 0

    def add_layer(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor,
        depth: torch.Tensor,
        layer: int,
        camera: Camera | None = None,
    ) -> int:
        """Append the pixels of one layer where ``alpha`` (1, H, W) bool is True and depth is finite.

        ``camera`` (default the canvas camera) is the view the layer was seen from; points added from
        another view keep their pixel in that view only for bookkeeping and never move.
        Returns the number of points added.
        """
        camera = self.canvas if camera is None else camera
        H, W = depth.shape[1:]
        if rgb.shape != (3, H, W) or alpha.shape != (1, H, W) or (camera.height, camera.width) != (H, W):
            raise ValueError(
                f"layer rgb (3,H,W), alpha and depth (1,H,W) must match the {camera.width}x"
                f"{camera.height} camera, got {tuple(rgb.shape)}, {tuple(alpha.shape)}, {tuple(depth.shape)}"
            )
        keep = (alpha & torch.isfinite(depth) & (depth > 0)).reshape(-1)
        ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
        pixel = torch.stack([xs.reshape(-1), ys.reshape(-1)])[:, keep]
        z = depth.reshape(-1)[keep].float()
        xyz = self._lift(pixel, z, camera)
        radius = capture_radii(torch.where(torch.isfinite(depth), depth, torch.ones_like(depth)), camera.K)[
            keep
        ]
        moving = camera is self.canvas
        self.xyz = torch.cat([self.xyz, xyz])
        self.rgb = torch.cat([self.rgb, rgb.reshape(3, -1).T[keep].float()])
        self.radius = torch.cat([self.radius, radius.float()])
        self.layer = torch.cat([self.layer, torch.full((int(keep.sum()),), layer if moving else -1 - layer)])
        self.pixel = torch.cat([self.pixel, pixel], dim=1)
        self.z = torch.cat([self.z, z])
        return int(keep.sum())

    @staticmethod
    def _lift(pixel: torch.Tensor, z: torch.Tensor, camera: Camera) -> torch.Tensor:
        """World points (N, 3) of pixel positions (2, N) at z-depths (N,) in ``camera``."""
        K = camera.K.double()
        x = (pixel[0].double() - K[0, 2]) / K[0, 0]
        y = (pixel[1].double() - K[1, 2]) / K[1, 1]
        cam = torch.stack([x * z, y * z, z.double(), torch.ones_like(x)], dim=1)
        return (cam @ camera.cam_to_world.double().T)[:, :3].float()

    def render(self, camera: Camera, xyz: torch.Tensor | None = None) -> RenderOutput:
        """Render the cloud (optionally with displaced positions ``xyz`` (N, 3)) with bilinear splats."""
        return render_points(self.xyz if xyz is None else xyz, self.rgb, camera, radii=self.radius)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The point arrays (for resume state)."""
        return {k: getattr(self, k) for k in ("xyz", "rgb", "radius", "layer", "pixel", "z")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key in ("xyz", "rgb", "radius", "layer", "pixel", "z"):
            setattr(self, key, state[key])

    def save(self, path: str | Path) -> None:
        """Write the static cloud as a binary PLY (x y z red green blue)."""
        from wanderview.io.mesh import save_points

        save_points(path, self.xyz, self.rgb)


class EulerianAnimation:
    """The animated cloud of a loop of ``loop_frames`` frames (see the module docstring).

    Args:
        cloud: the layered point cloud (its canvas camera is the flow's image grid).
        flow: (2, H, W) px/frame on the canvas.
        loop_frames: N, the period of the seamless loop.
        moving_layers: layer ids that move (None = every layer); points added from other views never move.
        gap_fill: keep still copies of the moving points behind them (see the module docstring).
    """

    def __init__(
        self,
        cloud: LayeredPointCloud,
        flow: torch.Tensor,
        loop_frames: int,
        moving_layers: set[int] | None = None,
        gap_fill: bool = True,
    ):
        if flow.shape != (2, cloud.canvas.height, cloud.canvas.width):
            raise ValueError(
                f"flow must be (2, {cloud.canvas.height}, {cloud.canvas.width}), got {tuple(flow.shape)}"
            )
        if loop_frames < 1:
            raise ValueError(f"loop_frames must be at least 1, got {loop_frames}")
        self.cloud, self.flow, self.loop = cloud, flow.float(), int(loop_frames)
        self.gap_fill = gap_fill
        speed = sample_flow(self.flow, cloud.pixel).abs().sum(0) if len(cloud) else torch.zeros(0)
        moving = (speed > 0) & (cloud.layer >= 0)
        if moving_layers is not None:
            moving &= torch.isin(cloud.layer, torch.tensor(sorted(moving_layers), dtype=torch.long))
        self.moving = moving.nonzero().squeeze(1)
        origins = cloud.pixel[:, self.moving]
        self.backward = self.backward_area = None
        if len(self.moving):
            states = list(euler_states(-self.flow, self.loop, origins))
            self.backward = torch.stack([p for p, _ in states])
            self.backward_area = torch.stack([a for _, a in states])
        self._forward_step, self._forward = 0, (origins.clone(), torch.zeros(origins.shape[1]))
        self._forward_iter = None
        self._still_cache, self._near_depth = None, None

    @property
    def num_moving(self) -> int:
        return int(self.moving.numel())

    def _forward_at(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._forward_iter is None or t < self._forward_step:
            self._forward_iter = euler_states(self.flow, self.loop, self.cloud.pixel[:, self.moving])
            self._forward_step, self._forward = 0, next(self._forward_iter)
        while self._forward_step < t:
            self._forward = next(self._forward_iter)
            self._forward_step += 1
        return self._forward

    def displaced(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward and backward clouds at frame t (0 <= t <= N): world positions (N, 3) each, and
        their splat radii (N,) each (moving points that the flow spread apart grow with the local area
        scale, up to ``MAX_SPREAD`` times)."""
        t = int(t)
        if not 0 <= t <= self.loop:
            raise ValueError(f"t must be in [0, {self.loop}], got {t}")
        cloud = self.cloud
        fwd, bwd = cloud.xyz.clone(), cloud.xyz.clone()
        r_fwd, r_bwd = cloud.radius.clone(), cloud.radius.clone()
        if self.num_moving:
            z = cloud.z[self.moving]
            pos, area = self._forward_at(t)
            fwd[self.moving] = cloud._lift(pos, z, cloud.canvas)
            bwd[self.moving] = cloud._lift(self.backward[self.loop - t], z, cloud.canvas)
            r = cloud.radius[self.moving]
            r_fwd[self.moving] = r * (0.5 * area).exp().clamp(1.0, MAX_SPREAD)
            r_bwd[self.moving] = r * (0.5 * self.backward_area[self.loop - t]).exp().clamp(1.0, MAX_SPREAD)
        return fwd, bwd, r_fwd, r_bwd

    def render(self, camera: Camera, t: int) -> RenderOutput:
        """The symmetric-splatting frame t (0 <= t <= N; t and t + N look the same) seen from ``camera``."""
        if not self.num_moving:
            return self.cloud.render(camera)
        fwd_xyz, bwd_xyz, r_fwd, r_bwd = self.displaced(t)
        rgb = self.cloud.rgb
        if self.gap_fill:
            still_xyz, still_r, rgb = self._still()
            fwd_xyz, bwd_xyz = torch.cat([fwd_xyz, still_xyz]), torch.cat([bwd_xyz, still_xyz])
            r_fwd, r_bwd = torch.cat([r_fwd, still_r]), torch.cat([r_bwd, still_r])
        if torch.get_num_threads() > 1:
            # the splatting kernels release the GIL: the two clouds render on two cores at once
            pending = _pool().submit(render_points, bwd_xyz, rgb, camera, radii=r_bwd)
            fwd = render_points(fwd_xyz, rgb, camera, radii=r_fwd)
            bwd = pending.result()
        else:
            fwd = render_points(fwd_xyz, rgb, camera, radii=r_fwd)
            bwd = render_points(bwd_xyz, rgb, camera, radii=r_bwd)
        return symmetric_blend(fwd, bwd, t / self.loop, self.near_depth)

    def _still(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The still copies of the moving points (positions (M, 3), radii (M,)) and the colours of the
        cloud followed by theirs (N + M, 3): the same every frame, so computed once (again when points
        were added to the cloud, as render-refine-repeat does, or its arrays replaced on resume)."""
        cloud = self.cloud
        key = (len(cloud), id(cloud.rgb), id(cloud.z))
        if self._still_cache is None or self._still_cache[0] != key:
            xyz = cloud._lift(
                cloud.pixel[:, self.moving], cloud.z[self.moving] * GAP_FILL_DEPTH, cloud.canvas
            )
            radius = cloud.radius[self.moving] * GAP_FILL_DEPTH
            self._still_cache = (key, (xyz, radius, torch.cat([cloud.rgb, cloud.rgb[self.moving]])))
        return self._still_cache[1]

    @property
    def near_depth(self) -> float:
        key = (len(self.cloud), id(self.cloud.z))
        if self._near_depth is None or self._near_depth[0] != key:
            finite = self.cloud.z[torch.isfinite(self.cloud.z)]
            self._near_depth = (key, float(finite.min()) if finite.numel() else 1.0)
        return self._near_depth[1]


_POOL = None


def _pool():
    """One worker thread for the second cloud of a symmetric-splatting frame (created on first use)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wanderview-splat")
    return _POOL


def symmetric_blend(fwd: RenderOutput, bwd: RenderOutput, phase: float, near_depth: float) -> RenderOutput:
    """Blend the forward and backward renders at loop phase t/N in [0, 1] (see module docstring).

    Args:
        fwd, bwd: renders of the forward and backward clouds from one camera.
        phase: t / N.
        near_depth: the depth whose disparity counts as 1 in exp(4 disp).
    Returns:
        RenderOutput: blended rgb and depth; alpha = max of the two (a hole only where both are empty).
    """

    def weight(out: RenderOutput, factor: float) -> torch.Tensor:
        disp = torch.where(
            torch.isfinite(out.depth), near_depth / out.depth.clamp_min(1e-12), torch.zeros_like(out.depth)
        )
        return factor * out.alpha * torch.exp(DISP_SHARPNESS * disp.clamp(0, 1))

    w_f, w_b = weight(fwd, 1.0 - phase), weight(bwd, phase)
    total = (w_f + w_b).clamp_min(1e-12)
    rgb = (w_f * fwd.rgb + w_b * bwd.rgb) / total
    df = torch.where(torch.isfinite(fwd.depth), fwd.depth, torch.zeros_like(fwd.depth))
    db = torch.where(torch.isfinite(bwd.depth), bwd.depth, torch.zeros_like(bwd.depth))
    depth = (w_f * df + w_b * db) / total
    depth = torch.where((w_f + w_b) > 0, depth, torch.minimum(fwd.depth, bwd.depth))
    return RenderOutput(rgb=rgb, depth=depth, alpha=torch.maximum(fwd.alpha, bwd.alpha))


def animate_image(
    rgb: torch.Tensor,
    depth: torch.Tensor,
    camera: Camera,
    flow: torch.Tensor,
    num_frames: int,
    far_only: bool = True,
    num_layers: int = 2,
) -> list[RenderOutput]:
    """Animate one image in place: the far layer (or everything) moves by ``flow`` for N frames.

    A small entry point for other methods (e.g. a CPU fallback for object/scenery motion): the
    image is cut into ``num_layers`` depth layers (Ward clustering), lifted, and rendered from
    ``camera`` with symmetric splatting over a seamless loop of ``num_frames`` frames.

    Args:
        rgb: (3, H, W) image; depth: (1, H, W) z-depth; camera: its camera (H x W).
        flow: (2, H, W) px/frame; num_frames: N >= 1.
        far_only: move only the farthest layer.
    Returns:
        N RenderOutputs (frame 0 is the static image).
    """
    from wanderview.geometry.ldi import assign_layers, layer_edges

    labels = assign_layers(depth, layer_edges(depth, num_layers=num_layers))
    cloud = LayeredPointCloud(camera)
    for index in range(int(labels.max()) + 1):
        cloud.add_layer(rgb, labels == index, depth, index)
    moving = {int(labels.max())} if far_only else None
    animation = EulerianAnimation(cloud, flow, num_frames, moving_layers=moving)
    return [animation.render(camera, t) for t in range(num_frames)]
