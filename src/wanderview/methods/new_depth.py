"""Depth of new content: the one rule every method uses for the depth of pixels it just invented.

A rendered view knows the depth of what the scene already holds; the holes were filled by an
inpainter and need depth before they can be fused into the scene. :func:`new_content_depth`:

1. **Background** (no depth model, or fewer than 16 known pixels to align to): each hole takes the
   depth of the farthest known pixel around it, grown inward (a disocclusion shows what lies
   behind the occluder; ``geometry.fill.fill_depth_from_background``).
2. **Finetuned model** (a :class:`~wanderview.backends.protocols.FinetunableDepth` and
   ``finetune``): the network is finetuned on this frame so that it reproduces the rendered
   depth on the known pixels (SceneScape Eq. 3; ``optim.depth_finetune``), then predicts the holes.
3. **Aligned model** (any other depth model): its prediction for the filled frame is fitted to the
   rendered depth on the known pixels by least squares (scale and shift in disparity).

Fallbacks, the same for every path: a prediction with no scale to fit (constant on the known
pixels) counts as no prediction; new depth is capped at 10x the farthest known depth (an affine fit
can extrapolate to near-zero disparity and throw vertices thousands of units away); hole pixels
still without a finite positive depth (sky predicted at infinity, a failed fit) continue the
background as in 1. The result is finite wherever the holes are, so a hole is never left empty
to be inpainted again by the next frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wanderview.backends.protocols import FinetunableDepth, to_depth
from wanderview.geometry.align import align_depth
from wanderview.geometry.fill import fill_depth_from_background

MIN_KNOWN = 16
MAX_DEPTH_RATIO = 10.0


@dataclass(frozen=True)
class DepthFinetuning:
    """Test-time depth finetuning settings (SceneScape: 300 Adam steps at lr 1e-7)."""

    steps: int = 300
    lr: float = 1e-7


def new_content_depth(
    frame: torch.Tensor,
    rendered_depth: torch.Tensor,
    holes: torch.Tensor,
    depth_model=None,
    finetune: DepthFinetuning | None = None,
) -> torch.Tensor:
    """Depth of a filled frame: the rendered depth where known, new depth in the holes (module doc).

    Args:
        frame: (3, H, W) the inpainted frame in [0, 1].
        rendered_depth: (1, H, W) z-depth of the render (inf = nothing rendered).
        holes: (1, H, W) bool, the pixels that were filled.
        depth_model: a DepthModel, or None for the background rule.
        finetune: finetune a FinetunableDepth model on the frame first (None = align only).
    Returns:
        (1, H, W) z-depth on ``rendered_depth``'s device; finite and positive in the holes
        whenever any pixel of ``rendered_depth`` is.
    """
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError(f"frame must be (3, H, W), got {tuple(frame.shape)}")
    if rendered_depth.shape != (1, *frame.shape[1:]) or holes.shape != rendered_depth.shape:
        raise ValueError(
            f"rendered_depth and holes must be (1, H, W) like frame, got {tuple(rendered_depth.shape)}, "
            f"{tuple(holes.shape)}"
        )
    known = ~holes & torch.isfinite(rendered_depth) & (rendered_depth > 0)
    if depth_model is None or int(known.sum()) < MIN_KNOWN:
        return fill_depth_from_background(rendered_depth, holes)
    new = _predicted(frame, rendered_depth, known, depth_model, finetune).to(rendered_depth)
    new = new.clamp(max=MAX_DEPTH_RATIO * float(rendered_depth[known].max()))
    missing = holes & ~(torch.isfinite(new) & (new > 0))
    if bool(missing.any()):
        filled = fill_depth_from_background(torch.where(holes, new, rendered_depth), missing)
        new = torch.where(missing, filled, new)
    return torch.where(holes, new, rendered_depth)


def _predicted(frame, rendered_depth, known, depth_model, finetune) -> torch.Tensor:
    """(1, H, W) model depth of the whole frame in the render's scale; inf where it has none."""
    if finetune is not None and isinstance(depth_model, FinetunableDepth):
        from wanderview.optim.depth_finetune import finetune_depth

        result = finetune_depth(depth_model.differentiable_predict, depth_model.network(), frame,
                                rendered_depth, known, output=depth_model.output, steps=finetune.steps,
                                lr=finetune.lr)  # fmt: skip
        return result.depth
    pred = depth_model.predict(frame).to(rendered_depth)
    try:
        if depth_model.output == "relative_disparity":
            return to_depth(pred, depth_model.output, reference_depth=rendered_depth, mask=known)
        return align_depth(to_depth(pred, depth_model.output), rendered_depth, known, space="disparity")
    except ValueError:  # a constant prediction has no scale to fit
        return torch.full_like(pred, float("inf"))
