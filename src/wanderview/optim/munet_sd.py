"""M-UNet from a pretrained Stable Diffusion inpainting checkpoint (``selfsup:hf:<id or path>``).

The UNet, autoencoder, text encoder and noise schedule come from the diffusers checkpoint; one
:class:`~wanderview.optim.munet.MaskedEnhancedBlock` is attached after every resnet of every down
block (through forward hooks, so the diffusers module is not copied or edited). The blocks are
zero-initialised, so before finetuning the model behaves exactly like the checkpoint. Training is
the paper's: ε-prediction MSE in latent space, conditions {mask, masked-image latents z̃, text}.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wanderview.errors import BackendError
from wanderview.optim.munet import MaskedEnhancedBlock
from wanderview.optim.selfsup_train import META_FILE, NoiseSchedule, SampleConfig, guided_eps, sample_inpaint

MEB_FILE = "meb.pt"


def _load_pipeline(source: str):
    from wanderview.backends.hf_common import resolve_source

    # the hf: policy of every backend, checked before diffusers is imported (its import is slow and
    # noisy): local files only (a cached hub id becomes its snapshot folder) unless
    # WANDERVIEW_DOWNLOAD=1, safetensors only, one sentence when the model is missing
    source = resolve_source(source, "", "model_index.json", allow_pickle=False)
    try:
        from diffusers import StableDiffusionInpaintPipeline
    except ImportError as err:  # pragma: no cover - depends on the install
        raise BackendError("selfsup:hf needs diffusers; install wanderview[hf]") from err
    try:
        return StableDiffusionInpaintPipeline.from_pretrained(source, safety_checker=None)
    except (OSError, ValueError) as err:
        raise BackendError(f"cannot load a Stable Diffusion inpainting model from {source!r}: {err}") from err


class SDInpaintDiffusion:
    """A diffusers SD-inpainting UNet turned into an M-UNet, with its VAE and text encoder.

    ``loss(...)`` finetunes it on pairs; ``inpaint(image (3,H,W), holes (1,H,W) bool, ...)`` fills
    holes in latent space and pastes the known pixels back exactly.
    """

    kind = "sd"

    def __init__(self, source: str, device: str | torch.device = "cpu", finetune_unet: bool = True):
        pipe = _load_pipeline(source)
        self.source = source
        self.device = torch.device(device)
        self.unet = pipe.unet.to(self.device)
        self.vae = pipe.vae.to(self.device).eval()
        self.text_encoder = pipe.text_encoder.to(self.device).eval()
        self.tokenizer = pipe.tokenizer
        self.pipe = pipe
        self.finetune_unet = finetune_unet
        cfg = pipe.scheduler.config
        self.schedule = NoiseSchedule(
            cfg.get("num_train_timesteps", 1000),
            cfg.get("beta_start", 0.00085),
            cfg.get("beta_end", 0.012),
            "scaled_linear" if cfg.get("beta_schedule", "scaled_linear") == "scaled_linear" else "linear",
        )
        self.scaling = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.latent_channels = int(self.vae.config.latent_channels)
        temb_ch = int(self.unet.config.block_out_channels[0]) * 4
        self.mebs = nn.ModuleList()
        self._cond: tuple[torch.Tensor, torch.Tensor] | None = None
        for block in self.unet.down_blocks:
            for resnet in block.resnets:
                meb = MaskedEnhancedBlock(resnet.out_channels, self.latent_channels, temb_ch, hidden=32)
                self.mebs.append(meb)
                resnet.register_forward_hook(self._hook(meb), with_kwargs=True)
        self.mebs.to(self.device)
        for p in [*self.vae.parameters(), *self.text_encoder.parameters()]:
            p.requires_grad_(False)
        for p in self.unet.parameters():
            p.requires_grad_(finetune_unet)

    def _hook(self, meb: MaskedEnhancedBlock):
        def hook(module, args, kwargs, output):
            if self._cond is None:
                return output
            z_cond, mask = self._cond
            temb = args[1] if len(args) > 1 else kwargs.get("temb")
            reps = output.shape[0] // z_cond.shape[0]
            return meb(output, z_cond.repeat(reps, 1, 1, 1), mask.repeat(reps, 1, 1, 1), temb)

        return hook

    # ---- helpers ----------------------------------------------------------------------------
    def _encode_text(self, prompts: list[str]) -> torch.Tensor:
        # a tokenizer saved without a length limit reports a huge model_max_length
        length = min(
            int(self.tokenizer.model_max_length), int(self.text_encoder.config.max_position_embeddings)
        )
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)
        with torch.no_grad():
            return self.text_encoder(ids)[0]

    def _latents(self, images01: torch.Tensor, sample: bool, generator=None) -> torch.Tensor:
        with torch.no_grad():
            dist = self.vae.encode(images01.to(self.device) * 2 - 1).latent_dist
            z = dist.sample(generator=generator) if sample else dist.mode()
        return z * self.scaling

    def _latent_mask(self, holes: torch.Tensor) -> torch.Tensor:
        # max-pool: a latent cell with any hole pixel is regenerated, never kept from a masked encode
        return F.max_pool2d(holes.to(self.device).float(), self.vae_factor)

    def _eps(self, x_t, t, mask_lat, masked_lat, text) -> torch.Tensor:
        B = x_t.shape[0]
        reps = B // mask_lat.shape[0]
        inp = torch.cat([x_t, mask_lat.repeat(reps, 1, 1, 1), masked_lat.repeat(reps, 1, 1, 1)], dim=1)
        self._cond = (masked_lat, mask_lat)
        try:
            return self.unet(inp, t, encoder_hidden_states=text).sample
        finally:
            self._cond = None

    # ---- training hooks ---------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self.mebs.parameters())
        return params + (list(self.unet.parameters()) if self.finetune_unet else [])

    def modules_to_train(self) -> list[nn.Module]:
        return [self.mebs, self.unet]

    def state(self) -> dict:
        state = {"meb": self.mebs.state_dict()}
        if self.finetune_unet:
            state["unet"] = self.unet.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.mebs.load_state_dict(state["meb"])
        if "unet" in state:
            self.unet.load_state_dict(state["unet"])

    def loss(self, targets, masked, holes, prompts, generator, hole_weight: float = 0.0) -> torch.Tensor:
        """ε-prediction MSE in latent space. targets, masked: (B,3,h,w) in [0,1] (h, w multiples of
        the VAE factor); holes: (B,1,h,w) bool. ``hole_weight`` up-weights hole latents."""
        x0 = self._latents(targets, sample=True, generator=generator)
        masked_lat = self._latents(masked, sample=False)
        mask_lat = self._latent_mask(holes)
        t = torch.randint(self.schedule.num_steps, (x0.shape[0],), generator=generator).to(self.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        eps = self._eps(
            self.schedule.add_noise(x0, noise, t), t, mask_lat, masked_lat, self._encode_text(prompts)
        )
        weight = 1 + hole_weight * mask_lat
        return (weight * (eps - noise) ** 2).mean() / weight.mean()

    @torch.no_grad()
    def inpaint(
        self,
        image,
        holes,
        prompt: str = "",
        negative_prompt: str | None = None,
        seed: int = 0,
        sample: SampleConfig = SampleConfig(),
        init: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """image: (3,H,W) in [0,1]; holes: (1,H,W) bool; init: (3,H,W) an initial fill refined with
        ``sample.strength`` (None = from noise). Returns (3,H,W), known pixels unchanged."""
        generator = torch.Generator().manual_seed(seed)
        H, W = image.shape[-2:]
        m = self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        pad = (0, (-W) % m, 0, (-H) % m)
        img = F.pad(image.to(self.device, torch.float32)[None], pad, mode="replicate")
        hole = F.pad(holes.to(self.device).float()[None], pad, mode="replicate")
        masked_lat = self._latents(img * (1 - hole), sample=False)
        mask_lat = self._latent_mask(hole)
        text = self._encode_text([prompt])
        uncond = self._encode_text([negative_prompt or ""])

        def net(x_t, t, txt):
            return self._eps(x_t, t, mask_lat, masked_lat, txt)

        eps_fn = guided_eps(net, text, uncond, sample.guidance)
        init_lat = None
        if init is not None:
            init_img = F.pad(init.to(self.device, torch.float32)[None], pad, mode="replicate")
            init_lat = self._latents(init_img, sample=False)
        z = sample_inpaint(
            eps_fn, masked_lat, mask_lat, self.schedule, sample.steps, sample.sampler, generator, clip=None,
            init=init_lat, strength=sample.strength if init is not None else 1.0,
        )
        decoded = ((self.vae.decode(z / self.scaling).sample + 1) / 2).clamp(0, 1)[0, :, :H, :W]
        return torch.where(holes.to(self.device), decoded, image.to(self.device, torch.float32))

    # ---- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write the checkpoint (``sd/``, with the finetuned UNet), the MEB weights and ``selfsup.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.pipe.save_pretrained(folder / "sd")
        torch.save(self.mebs.state_dict(), folder / MEB_FILE)
        meta = {"kind": self.kind, "base": str(self.source), **(extra or {})}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> SDInpaintDiffusion:
        folder = Path(folder)
        model = cls(str(folder / "sd"), device)
        model.mebs.load_state_dict(torch.load(folder / MEB_FILE, map_location=device, weights_only=True))
        return model
