"""Test-time decoder finetuning of a latent-diffusion inpainter (SceneScape Sec. 3.4, Eq. 4).

Encoding and decoding are lossy, so the inpainted latent ``z`` decodes to an image whose *known*
pixels no longer match the render exactly. For one frame the decoder D is finetuned with

    L = mean((D(z) - I) ** 2 over known pixels) + mean((D(z) - D_fixed(z)) ** 2 over new pixels)

(the second term is prior preservation: the new content keeps the look the frozen decoder gave
it), 100 Adam steps at lr 1e-4 by default; then the frame is decoded once more and the weights are
restored (:func:`wanderview.optim.depth_finetune.restored_weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from wanderview.optim.depth_finetune import restored_weights


@dataclass
class DecoderFinetuneResult:
    """image: (3, H, W) decoded with the finetuned decoder; losses: the loss before each step and
    after the last one (``steps + 1`` values); known_error: mean squared error on known pixels
    before and after finetuning."""

    image: torch.Tensor
    losses: list[float] = field(default_factory=list)
    known_error: tuple[float, float] = (0.0, 0.0)


def finetune_decoder(
    decode: Callable[[torch.Tensor], torch.Tensor],
    decoder: torch.nn.Module,
    latents: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor,
    steps: int = 100,
    lr: float = 1e-4,
) -> DecoderFinetuneResult:
    """Finetune ``decoder`` so that ``decode(latents)`` reproduces the known pixels of ``target``.

    Args:
        decode: differentiable ``latents (1, C, h, w) -> images (1, 3, H, W)`` in [0, 1] that runs
            ``decoder`` (e.g. ``HFInpainter.decode``).
        decoder: the module whose parameters are finetuned (e.g. ``inpainter.vae.decoder``).
        latents: (1, C, h, w) the inpainted latent.
        target: (3, H, W) the frame to reproduce on known pixels (the render).
        known: (1, H, W) bool, True = the pixel was rendered (not inpainted).
        steps: Adam steps; lr: learning rate.
    Returns:
        :class:`DecoderFinetuneResult`.
    """
    if latents.ndim != 4 or latents.shape[0] != 1:
        raise ValueError(f"latents must be (1, C, h, w), got {tuple(latents.shape)}")
    if target.ndim != 3 or target.shape[0] != 3:
        raise ValueError(f"target must be (3, H, W), got {tuple(target.shape)}")
    if known.shape != (1, *target.shape[1:]) or known.dtype != torch.bool:
        raise ValueError(
            f"known must be bool (1, {target.shape[1]}, {target.shape[2]}), got {tuple(known.shape)}"
        )
    latents = latents.detach()
    with torch.no_grad():
        prior = decode(latents)[0].float().to(target.device)
    if prior.shape != target.shape:
        raise ValueError(f"decode gives {tuple(prior.shape)} but target is {tuple(target.shape)}")
    known_f = known.to(target.dtype)
    new_f = 1.0 - known_f
    n_known, n_new = known_f.sum().clamp_min(1.0) * 3, new_f.sum().clamp_min(1.0) * 3

    def loss_of(image: torch.Tensor) -> torch.Tensor:
        keep = (((image - target) * known_f) ** 2).sum() / n_known
        preserve = (((image - prior) * new_f) ** 2).sum() / n_new
        return keep + preserve

    def known_error(image: torch.Tensor) -> float:
        return float((((image - target) * known_f) ** 2).sum() / n_known)

    losses: list[float] = []
    with restored_weights(decoder):
        params = [p for p in decoder.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
        for _ in range(int(steps)):
            loss = loss_of(decode(latents)[0].float().to(target.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            image = decode(latents)[0].float().to(target.device)
            losses.append(float(loss_of(image)))
    return DecoderFinetuneResult(
        image=image.clamp(0, 1), losses=losses, known_error=(known_error(prior), known_error(image))
    )
