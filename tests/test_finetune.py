"""Test-time finetuning loops (SceneScape Sec. 3.3 and 3.4) on tiny random Hugging Face models:
the losses go down, the outputs move toward their targets, and the weights are restored after."""

from __future__ import annotations

import torch

from dummies import dpt_dir, sd_inpaint_dir
from wanderview.backends.registry import make_depth_model, make_inpainter
from wanderview.optim.decoder_finetune import finetune_decoder
from wanderview.optim.depth_finetune import finetune_depth, restored_weights


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _wake_head(model) -> None:
    """The random dummy's output is ~1e-8 (ReLUs nearly dead), unlike a trained network's; give its
    head weights in the active range so gradients reach the prediction."""
    torch.manual_seed(0)
    with torch.no_grad():
        for conv in (m for m in model.module.head.modules() if isinstance(m, torch.nn.Conv2d)):
            torch.nn.init.normal_(conv.weight, std=0.3)
            conv.bias.fill_(0.1)


def test_depth_finetuning_lowers_the_disparity_loss_and_restores_the_weights():
    model = make_depth_model(f"hf:{dpt_dir()}", device="cpu")
    _wake_head(model)
    image = torch.rand(3, 32, 32)
    # the "mesh" depth: a tilted plane the random network does not predict
    ref_depth = (1.0 + torch.linspace(0, 3, 32)).view(1, 1, 32).expand(1, 32, 32).contiguous()
    visible = torch.ones(1, 32, 32, dtype=torch.bool)
    visible[:, 20:] = False
    before = _snapshot(model.module)
    result = finetune_depth(model.differentiable_predict, model.module, image, ref_depth, visible,
                            output=model.output, steps=20, lr=1e-4)  # fmt: skip
    assert len(result.losses) == 21
    assert result.losses[-1] < 0.95 * result.losses[0], result.losses
    assert result.depth.shape == (1, 32, 32) and bool(torch.isfinite(result.depth).all())
    assert bool((result.depth > 0).all())
    assert _same(before, _snapshot(model.module)), "weights are reset after the frame"
    # zero steps: the prediction aligned by the scale/shift fit only, and a higher loss
    aligned = finetune_depth(model.differentiable_predict, model.module, image, ref_depth, visible,
                             output=model.output, steps=0)  # fmt: skip
    assert aligned.losses[0] == result.losses[0]


def test_decoder_finetuning_reproduces_known_pixels_better_and_restores_the_decoder():
    inpainter = make_inpainter(f"hf:{sd_inpaint_dir()}", device="cpu")
    torch.manual_seed(0)
    target = torch.rand(3, 32, 32)
    known = torch.ones(1, 32, 32, dtype=torch.bool)
    known[:, 8:24, 8:24] = False
    with torch.no_grad():
        latents = inpainter.encode(target[None])
    decoder = inpainter.vae.decoder
    before = _snapshot(decoder)
    result = finetune_decoder(inpainter.decode, decoder, latents, target, known, steps=12, lr=1e-3)
    assert len(result.losses) == 13
    assert result.losses[-1] < result.losses[0], result.losses
    assert result.known_error[1] < 0.8 * result.known_error[0], result.known_error
    assert result.image.shape == (3, 32, 32)
    assert _same(before, _snapshot(decoder)), "the decoder is reset after the frame"


def test_restored_weights_undoes_changes_even_when_the_block_fails():
    layer = torch.nn.Linear(3, 2)
    before = _snapshot(layer)
    try:
        with restored_weights(layer):
            with torch.no_grad():
                layer.weight.add_(1.0)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert _same(before, _snapshot(layer))


def test_depth_finetuning_of_a_float16_model_stays_finite_and_keeps_its_dtype():
    """fp16 weights (the hf: default on CUDA) are finetuned in float32: Adam in float16 gave NaN."""
    model = make_depth_model(f"hf:{dpt_dir()}", device="cpu", dtype="float16")
    _wake_head(model)
    assert next(model.module.parameters()).dtype == torch.float16
    image = torch.rand(3, 32, 32)
    ref_depth = (1.0 + torch.linspace(0, 3, 32)).view(1, 1, 32).expand(1, 32, 32).contiguous()
    visible = torch.ones(1, 32, 32, dtype=torch.bool)
    before = _snapshot(model.module)
    result = finetune_depth(model.differentiable_predict, model.module, image, ref_depth, visible,
                            output=model.output, steps=3, lr=1e-4)  # fmt: skip
    assert bool(torch.isfinite(result.depth).all()), "no NaN after Adam steps"
    assert all(torch.isfinite(torch.tensor(result.losses))), result.losses
    assert result.losses[-1] < result.losses[0]
    assert _same(before, _snapshot(model.module)), "weights and dtypes are restored"
    assert all(p.dtype == torch.float16 for p in model.module.parameters())


def test_decoder_finetuning_of_a_float16_vae_stays_finite():
    inpainter = make_inpainter(f"hf:{sd_inpaint_dir()}", device="cpu", dtype="float16")
    torch.manual_seed(0)
    target = torch.rand(3, 32, 32)
    known = torch.ones(1, 32, 32, dtype=torch.bool)
    known[:, 8:24, 8:24] = False
    with torch.no_grad():
        latents = inpainter.encode(target[None])
    decoder = inpainter.decoder_module()
    before = _snapshot(decoder)
    result = finetune_decoder(inpainter.decode, decoder, latents, target, known, steps=3, lr=1e-3)
    assert bool(torch.isfinite(result.image).all()) and all(map(torch.isfinite, torch.tensor(result.losses)))
    assert result.known_error[1] < result.known_error[0]
    assert _same(before, _snapshot(decoder)) and next(decoder.parameters()).dtype == torch.float16
