"""M-UNet: a denoising UNet whose down blocks carry Masked Enhanced Blocks (photo3d, Wang et al.).

This is the pixel-space network the self-supervised inpainter trains from scratch on CPU. It works
directly on RGB rather than in the latent space of an autoencoder because, at the CPU budget
(a few minutes of training on 64-px crops), an autoencoder trained alongside would (1) eat a large
share of the budget itself and (2) blur the known pixels through its reconstruction error, while a
small convolutional UNet runs on any image size whose sides are multiples of ``2 ** (levels - 1)``.

The network input is ``[x_t, mask, masked_image]`` (3 + 1 + 3 channels, the layout of Stable
Diffusion inpainting) and every down block ends with a :class:`MaskedEnhancedBlock`, which
re-injects the masked image and the mask at that block's resolution through two stacked
spatially-adaptive normalisations (paper eq. 10).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of diffusion timesteps. t: (B,) -> (B, dim)."""
    if t.ndim != 1:
        raise ValueError(f"timesteps must be (B,), got {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def _groups(channels: int) -> int:
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


def resize_condition(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a condition map (B, C, h, w) to ``size`` with area averaging (a mask becomes the
    fraction of hole pixels in each cell, which keeps thin slivers visible at coarse levels)."""
    if tuple(cond.shape[-2:]) == tuple(size):
        return cond
    if cond.shape[-2] % size[0] == 0 and cond.shape[-1] % size[1] == 0:
        return F.adaptive_avg_pool2d(cond, size)
    return F.interpolate(cond, size=size, mode="bilinear", align_corners=False)


class MaskedEnhancedBlock(nn.Module):
    """Masked Enhanced Block: two stacked spatially-adaptive normalisations (paper eq. 10).

    ``e1 = Norm(f) + γ_z(z̃)·Norm(f) + β_z(z̃)`` (skip at the start of the first embedding layer),
    ``e2 = e1 + γ_M(M)·e1 + β_M(M)`` (skip at the start of the second embedding layer), i.e.
    ``e2 = (1+γ_M)·((1+γ_z)·Norm(f) + β_z) + β_M``, then
    ``f_out = f + Conv(SiLU(e2 + W·temb))`` (skip at the start of the block). The output
    convolution is zero-initialised, so a freshly inserted block is exactly the identity, which is
    what lets it be added to a pretrained UNet without changing its behaviour.

    Args:
        channels: C, feature channels of f.
        cond_channels: channels of the masked-image features z̃ (3 for RGB, 4 for SD latents).
        temb_channels: width of the timestep embedding (0 for none).
        hidden: width of the small convolutions that produce γ and β.
    """

    def __init__(self, channels: int, cond_channels: int, temb_channels: int = 0, hidden: int = 32):
        super().__init__()
        self.channels = channels
        self.cond_channels = cond_channels
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.z_shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.SiLU())
        self.gamma_z = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta_z = nn.Conv2d(hidden, channels, 3, padding=1)
        self.m_shared = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.SiLU())
        self.gamma_m = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta_m = nn.Conv2d(hidden, channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb_channels, channels) if temb_channels > 0 else None
        self.out = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, f: torch.Tensor, z_cond: torch.Tensor, mask: torch.Tensor, temb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """f: (B, C, h, w); z_cond: (B, cond_channels, H', W'); mask: (B, 1, H', W') float in [0, 1]
        (1 = hole); temb: (B, temb_channels) or None. Returns (B, C, h, w)."""
        if f.ndim != 4 or f.shape[1] != self.channels:
            raise ValueError(f"features must be (B, {self.channels}, h, w), got {tuple(f.shape)}")
        if z_cond.ndim != 4 or z_cond.shape[1] != self.cond_channels:
            raise ValueError(f"z_cond must be (B, {self.cond_channels}, H, W), got {tuple(z_cond.shape)}")
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
        size = tuple(f.shape[-2:])
        z = self.z_shared(resize_condition(z_cond.to(f.dtype), size))
        m = self.m_shared(resize_condition(mask.to(f.dtype), size))
        e1 = self.norm(f)
        e1 = e1 + self.gamma_z(z) * e1 + self.beta_z(z)
        e2 = e1 + self.gamma_m(m) * e1 + self.beta_m(m)
        if self.temb_proj is not None and temb is not None:
            e2 = e2 + self.temb_proj(temb)[:, :, None, None]
        return f + self.out(F.silu(e2))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv residual block with an additive timestep embedding."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class CrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention from image features to text states (residual)."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = nn.MultiheadAttention(
            channels,
            heads if channels % heads == 0 else 1,
            kdim=context_dim,
            vdim=context_dim,
            batch_first=True,
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(q, context, context, need_weights=False)
        return x + out.transpose(1, 2).reshape(B, C, H, W)


class ByteTextEncoder(nn.Module):
    """A small text encoder over UTF-8 bytes, trained with the M-UNet (it has no pretrained
    knowledge; it can only learn what the prompts in its own training data mean).

    ``encode(prompts) -> (B, max_len, dim)``; the empty prompt is the unconditional input of
    classifier-free guidance.
    """

    def __init__(self, dim: int = 64, max_len: int = 32):
        super().__init__()
        self.dim, self.max_len = dim, max_len
        self.embed = nn.Embedding(257, dim)  # 256 byte values + padding/empty token
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(dim, 4, dim * 2, dropout=0.0, batch_first=True)

    def encode(self, prompts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """prompts: B strings -> (B, max_len, dim) states."""
        ids = torch.full((len(prompts), self.max_len), 256, dtype=torch.long)
        for i, text in enumerate(prompts):
            data = list(text.encode("utf-8"))[: self.max_len]
            if data:
                ids[i, : len(data)] = torch.tensor(data)
        h = self.embed(ids.to(device)) + self.pos
        return self.layer(h)


@dataclass(frozen=True)
class MUNetConfig:
    """Size of a pixel-space M-UNet.

    Attributes:
        channels: feature width of each resolution level (len = number of levels).
        image_channels: channels of the image being denoised (3 for RGB).
        meb_hidden: width of the γ/β convolutions inside each Masked Enhanced Block.
        text_dim: width of the text states for cross-attention; 0 disables text conditioning.
    """

    channels: tuple[int, ...] = (24, 32, 48)
    image_channels: int = 3
    meb_hidden: int = 16
    text_dim: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MUNetConfig:
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        return cls(**data)


class MUNet(nn.Module):
    """Pixel-space M-UNet predicting the noise ε.

    ``forward(x_t (B,3,H,W), t (B,), mask (B,1,H,W) float 1=hole, masked (B,3,H,W), text (B,L,D) or None)
    -> ε̂ (B,3,H,W)``. H and W must be multiples of :attr:`multiple`.
    """

    def __init__(self, config: MUNetConfig = MUNetConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        c_img = config.image_channels
        self.temb_dim = ch[0] * 4
        self.time_mlp = nn.Sequential(
            nn.Linear(ch[0], self.temb_dim), nn.SiLU(), nn.Linear(self.temb_dim, self.temb_dim)
        )
        self.conv_in = nn.Conv2d(2 * c_img + 1, ch[0], 3, padding=1)
        self.down_res = nn.ModuleList()
        self.down_meb = nn.ModuleList()
        self.downsample = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            self.down_res.append(ResBlock(prev, c, self.temb_dim))
            self.down_meb.append(MaskedEnhancedBlock(c, c_img, self.temb_dim, config.meb_hidden))
            last = i == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            prev = c
        self.mid1 = ResBlock(prev, prev, self.temb_dim)
        self.mid_attn = CrossAttention(prev, config.text_dim) if config.text_dim > 0 else None
        self.mid2 = ResBlock(prev, prev, self.temb_dim)
        self.up_res = nn.ModuleList()
        for c in reversed(ch):
            self.up_res.append(ResBlock(prev + c, c, self.temb_dim))
            prev = c
        self.norm_out = nn.GroupNorm(_groups(prev), prev)
        self.conv_out = nn.Conv2d(prev, c_img, 3, padding=1)
        self.text_encoder = ByteTextEncoder(config.text_dim) if config.text_dim > 0 else None

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this number."""
        return 2 ** (len(self.config.channels) - 1)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor,
        masked: torch.Tensor,
        text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c_img = self.config.image_channels
        if x_t.ndim != 4 or x_t.shape[1] != c_img:
            raise ValueError(f"x_t must be (B, {c_img}, H, W), got {tuple(x_t.shape)}")
        B, _, H, W = x_t.shape
        if H % self.multiple or W % self.multiple:
            raise ValueError(f"image sides must be multiples of {self.multiple}, got {H}x{W}")
        if mask.shape != (B, 1, H, W) or masked.shape != (B, c_img, H, W):
            raise ValueError(
                f"mask/masked must be (B,1,H,W)/(B,3,H,W), got {tuple(mask.shape)}/{tuple(masked.shape)}"
            )
        mask = mask.to(x_t.dtype)
        temb = self.time_mlp(timestep_embedding(t, self.config.channels[0]).to(x_t.dtype))
        h = self.conv_in(torch.cat([x_t, mask, masked], dim=1))
        skips = []
        for res, meb, down in zip(self.down_res, self.down_meb, self.downsample):
            h = meb(res(h, temb), masked, mask, temb)
            skips.append(h)
            h = down(h)
        h = self.mid1(h, temb)
        if self.mid_attn is not None and text is not None:
            h = self.mid_attn(h, text)
        h = self.mid2(h, temb)
        for res in self.up_res:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = res(torch.cat([h, skip], dim=1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))

    def encode_text(self, prompts: list[str], device: torch.device | str) -> torch.Tensor | None:
        """(B, L, D) text states, or None when the network has no text conditioning."""
        if self.text_encoder is None:
            return None
        return self.text_encoder.encode(prompts, device)
