"""SceneScape's unified mesh: :class:`~wanderview.scenes.mesh.MeshScene` with the paper's defaults,
and the floating-artifact fix.

:class:`SceneScapeMesh` is a :class:`MeshScene` that renders 2x supersampled (anti-aliased: blurred,
straight colour, the nearest sub-sample's depth and face, so depth is never averaged across a
discontinuity) and whose :meth:`~SceneScapeMesh.add` stitches new content onto the rendered mesh
(paper, appendix A.1). Stretched triangles (appendix A.2) are removed where they touch a depth
discontinuity (Sobel on normalised disparity > 0.3) and ``normalize(centre - camera) . normal >= -0.05``.
Memory is bounded by :meth:`~MeshScene.prune` and :meth:`~MeshScene.decimate`.

:func:`floating_artifact_mask` implements the floating-artifact fix with
:func:`wanderview.render.warp.splat`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wanderview.cameras.camera import Camera
from wanderview.render.warp import splat
from wanderview.scenes.mesh import MeshScene
from wanderview.scenes.mesh_memory import unique_rows

__all__ = ["SceneScapeMesh", "floating_artifact_mask", "unique_rows"]


class SceneScapeMesh(MeshScene):
    """:class:`MeshScene` with SceneScape's defaults: 2x anti-aliased rendering, stitched updates, and
    discontinuities from the Sobel mask alone."""

    def __init__(
        self, *, supersample: int = 2, edge_threshold: float = 0.3, stretch_eps: float = -0.05, device=None
    ):
        # the paper's rule: discontinuities from the Sobel mask alone (jump_ratio None)
        super().__init__(supersample=supersample, edge_threshold=edge_threshold, jump_ratio=None,
                         stretch_eps=stretch_eps, device=device)

    def add(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        camera: Camera,
        mask: torch.Tensor | None = None,
        *,
        observed: bool = False,
    ) -> int:
        """The :class:`GrowingScene` contract, stitched: render ``camera`` for the visible faces, then
        :meth:`add_frame` the pixels where ``mask`` (1, H, W) is True (None: every pixel)."""
        new = torch.ones_like(depth, dtype=torch.bool) if mask is None else mask
        face_id = self.render(camera).face_id if len(self) else None
        return self.add_frame(rgb, depth, camera, new, face_id, observed=observed)


def floating_artifact_mask(
    prev_depth: torch.Tensor,
    prev_camera: Camera,
    camera: Camera,
    rendered_depth: torch.Tensor,
    pad_factor: float = 1.5,
    tolerance: float = 0.9,
) -> torch.Tensor:
    """Pixels of the new view where content beyond the previous frame's border belongs.

    The previous depth is padded to ``pad_factor`` times its size by replicating its border values,
    as if the content at the border went on beyond the image; the padded depth is warped into the
    new camera. A pixel is flagged when the padding wins the z-buffer there *and* lies in front of
    what the mesh renders there (closer than ``tolerance`` x the rendered depth, or the render is
    empty): the mesh would show distant content "floating" where nearer content should be, so the
    pixel goes to the inpainter. Padding in front of nothing new (its depth matches the render)
    is not flagged, so mesh content that did exist beyond the old border is kept.

    Args:
        prev_depth: (1, h, w) z-depth of the previous frame (inf = none).
        prev_camera, camera: the previous and the new single camera.
        rendered_depth: (1, H, W) depth of the mesh rendered into ``camera`` (inf = empty).
    Returns:
        (1, H, W) bool mask to add to the inpainting mask.
    """
    if prev_depth.ndim != 3 or prev_depth.shape[0] != 1:
        raise ValueError(f"prev_depth must be (1, h, w), got {tuple(prev_depth.shape)}")
    if rendered_depth.shape != (1, camera.height, camera.width):
        raise ValueError(
            f"rendered_depth must be (1, {camera.height}, {camera.width}), got {tuple(rendered_depth.shape)}"
        )
    h, w = prev_depth.shape[1:]
    ph, pw = round((pad_factor - 1) * h / 2), round((pad_factor - 1) * w / 2)
    # replicate finite borders only: an empty (inf) border pixel stays empty beyond the border
    padded = F.pad(prev_depth[None], (pw, pw, ph, ph), mode="replicate")[0]
    is_pad = torch.ones_like(padded, dtype=torch.bool)
    is_pad[:, ph : ph + h, pw : pw + w] = False
    K = prev_camera.K.clone()
    K[..., 0, 2] += pw
    K[..., 1, 2] += ph
    padded_camera = Camera(K, prev_camera.cam_to_world, w + 2 * pw, h + 2 * ph)
    # Only the padding is splatted: the interior of the previous frame is part of the mesh, so the
    # comparison with the rendered depth already accounts for it.
    _, warped_depth = splat(padded[:0], padded, padded_camera, camera, source_mask=is_pad)
    return warped_depth < tolerance * rendered_depth
