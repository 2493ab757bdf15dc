"""PSNR / SSIM agree with scikit-image on random images; masked variants count only masked pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from wanderview.metrics.image import psnr, ssim, ssim_map


def _pair(seed: int, h: int = 48, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(3, h, w, generator=gen)
    pred = (target + 0.1 * torch.randn(3, h, w, generator=gen)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_matches_skimage(seed):
    pred, target = _pair(seed)
    expected = peak_signal_noise_ratio(target.numpy(), pred.numpy(), data_range=1.0)
    assert psnr(pred, target) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_skimage_gaussian(seed):
    pred, target = _pair(seed)
    expected = structural_similarity(
        target.numpy(), pred.numpy(), data_range=1.0, channel_axis=0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )
    assert ssim(pred, target) == pytest.approx(expected, abs=1e-5)


def test_identical_images():
    img = torch.rand(3, 32, 32)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)


def test_masked_psnr_only_counts_masked_pixels():
    target = torch.zeros(3, 32, 32)
    pred = target.clone()
    pred[:, :, 16:] = 0.1  # error only on the right half
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[:, :, 16:] = True
    assert psnr(pred, target, mask) == pytest.approx(20.0, abs=1e-6)  # MSE 0.01
    assert psnr(pred, target, ~mask) == math.inf
    assert psnr(pred, target) == pytest.approx(10 * np.log10(1 / 0.005), abs=1e-6)
    assert math.isnan(psnr(pred, target, torch.zeros_like(mask)))


def test_masked_ssim_is_mean_of_map_over_mask():
    pred, target = _pair(3, 40, 40)
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[:, 10:30, 12:25] = True
    values = ssim_map(pred, target)
    expected = values[:, 5:25, 7:20].mean()
    assert ssim(pred, target, mask) == pytest.approx(float(expected), abs=1e-6)


def test_shape_errors_name_the_shape():
    with pytest.raises(ValueError, match=r"\(3, 8\)"):
        psnr(torch.rand(3, 8), torch.rand(3, 8))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        psnr(torch.rand(3, 16, 16), torch.rand(3, 16, 16), torch.ones(1, 4, 4, dtype=torch.bool))
