"""Test-time depth finetuning (SceneScape Sec. 3.3, Eq. 3).

The depth network is finetuned, for one frame only, so that its prediction on the inpainted frame
matches the mesh's rendered depth on the visible pixels: an L1 loss in disparity, Adam, 300 steps
at lr 1e-7 by default. The weights are restored afterwards (:func:`restored_weights`), so the
network never drifts from its prior across frames.

Relative depth networks (MiDaS/DPT, Depth Anything) predict disparity only up to a scale and a shift.
The loss therefore compares ``scale * x + shift`` with the rendered disparity, where ``x`` is the
network's prediction expressed as disparity and (scale, shift) is the least-squares fit on the
visible pixels, computed once before the first step and held fixed (the network, not the fit,
has to move). The depth of the frame is ``1 / (scale * x + shift)`` with the finetuned network.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from wanderview.geometry.align import DISP_FLOOR_RATIO, fit_scale_shift


@dataclass
class DepthFinetuneResult:
    """depth: (1, H, W) z-depth from the finetuned network; losses: the L1 loss before each step
    and after the last one (``steps + 1`` values)."""

    depth: torch.Tensor
    losses: list[float] = field(default_factory=list)


@contextlib.contextmanager
def restored_weights(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run a block that changes ``module``'s parameters, then put the original values back.

    Inside the block the module computes in float32: half-precision weights (the default of hf:
    backends on CUDA) are cast up, and floating-point inputs are cast to float32 on the way in,
    because Adam in float16 turns the weights NaN after one step (its epsilon underflows) and
    small learning rates (SceneScape's 1e-7) vanish in float16 rounding. Afterwards every
    parameter and buffer gets its original dtype and value back.
    """
    saved = copy.deepcopy(module.state_dict())
    dtypes = {name: t.dtype for name, t in [*module.named_parameters(), *module.named_buffers()]}
    handle = None
    if any(t.is_floating_point and t != torch.float32 for t in dtypes.values()):
        module.float()
        handle = module.register_forward_pre_hook(_inputs_to_float32, with_kwargs=True)
    try:
        yield module
    finally:
        if handle is not None:
            handle.remove()
            _restore_dtypes(module, dtypes)
        module.load_state_dict(saved)


def _restore_dtypes(module: torch.nn.Module, dtypes: dict[str, torch.dtype]) -> None:
    for name, param in module.named_parameters():
        param.data = param.data.to(dtypes[name])
    for name, buffer in list(module.named_buffers()):
        owner, _, leaf = name.rpartition(".")
        module.get_submodule(owner)._buffers[leaf] = buffer.to(dtypes[name])


def _inputs_to_float32(module, args, kwargs):
    """Forward pre-hook: floating-point tensor arguments in float32 (the module was cast up)."""

    def up(value):
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    return tuple(up(a) for a in args), {k: up(v) for k, v in kwargs.items()}


def _as_disparity(pred: torch.Tensor, output: str) -> torch.Tensor:
    """A prediction in ``output`` space ('depth', 'disparity', 'relative_disparity') as disparity."""
    if output == "depth":
        return 1.0 / pred.clamp_min(1e-6)
    return pred


def _fit(x: torch.Tensor, ref_disp: torch.Tensor, use: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares (scale, shift) from x to the reference disparity; a prediction that is constant
    on the visible pixels has no scale to fit, so it is scaled to the reference's mean instead."""
    try:
        scale, shift = fit_scale_shift(x, ref_disp, use)
    except ValueError:
        mean_x = x[use].mean().abs().clamp_min(1e-12)
        scale, shift = ref_disp[use].mean() / mean_x, torch.zeros((), dtype=x.dtype, device=x.device)
    return scale.detach(), shift.detach()


def finetune_depth(
    predict: Callable[[torch.Tensor], torch.Tensor],
    module: torch.nn.Module,
    image: torch.Tensor,
    ref_depth: torch.Tensor,
    visible: torch.Tensor,
    output: str = "relative_disparity",
    steps: int = 300,
    lr: float = 1e-7,
) -> DepthFinetuneResult:
    """Finetune ``module`` on one frame and return the frame's depth; weights are restored after.

    Args:
        predict: differentiable ``images (1, 3, H, W) -> (1, 1, H, W)`` prediction in ``output`` space
            that runs ``module`` (e.g. ``HFDepthModel.differentiable_predict``).
        module: the network whose parameters are finetuned.
        image: (3, H, W) the inpainted frame in [0, 1].
        ref_depth: (1, H, W) the mesh's rendered z-depth (inf = nothing rendered).
        visible: (1, H, W) bool, pixels where the render is valid (the loss uses only these).
        output: what ``predict`` returns: 'depth', 'disparity' or 'relative_disparity'.
        steps: Adam steps (0 = just predict and align).
        lr: Adam learning rate.
    Returns:
        :class:`DepthFinetuneResult` with depth (1, H, W) and the loss history.
    Raises:
        ValueError: bad shapes, or fewer than 16 visible pixels with a finite reference.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    shape = (1, *image.shape[1:])
    if ref_depth.shape != shape or visible.shape != shape:
        raise ValueError(
            f"ref_depth and visible must be {shape}, got {tuple(ref_depth.shape)}, {tuple(visible.shape)}"
        )
    use = visible & torch.isfinite(ref_depth) & (ref_depth > 0)
    if int(use.sum()) < 16:
        raise ValueError(f"need at least 16 visible pixels to finetune depth, got {int(use.sum())}")
    ref_disp = torch.where(use, 1.0 / ref_depth.clamp_min(1e-12), torch.zeros_like(ref_depth))
    floor = DISP_FLOOR_RATIO * float(ref_disp[use].min())
    batch = image[None]
    was_training = module.training
    losses: list[float] = []
    with restored_weights(module):
        with torch.no_grad():
            x0 = _as_disparity(predict(batch)[0], output)
        scale, shift = _fit(x0, ref_disp, use & torch.isfinite(x0))
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
        module.train()  # dropout-free networks behave the same; batch norm is frozen below
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        for _ in range(int(steps)):
            disp = scale * _as_disparity(predict(batch)[0], output) + shift
            loss = (disp - ref_disp)[use].abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        module.train(was_training)
        with torch.no_grad():
            disp = scale * _as_disparity(predict(batch)[0], output) + shift
            losses.append(float((disp - ref_disp)[use].abs().mean()))
            depth = 1.0 / disp.clamp_min(floor)
    return DepthFinetuneResult(depth=depth.float(), losses=losses)
