"""The supersampling filters against a conv2d reference of the same kernels."""

import pytest
import torch
import torch.nn.functional as F

from wanderview.render.antialias import blur3, blur_halve, downsample


def _conv_reference(x: torch.Tensor, taps: list[float], stride: int) -> torch.Tensor:
    """Separable conv2d of (C, H, W) with replicated borders (pad 1), the textbook way."""
    k = torch.tensor(taps, dtype=x.dtype)
    c = x.shape[0]
    y = F.pad(x[None], (1, 1, 1, 1), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, stride), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(stride, 1), groups=c)[0]


def test_blur3_matches_the_binomial_convolution():
    x = torch.rand(3, 9, 13)
    assert torch.allclose(blur3(x), _conv_reference(x, [0.25, 0.5, 0.25], 1), atol=1e-6)


def test_blur_halve_is_blur_then_average_pooling():
    x = torch.rand(4, 20, 14)
    expected = F.avg_pool2d(blur3(x)[None], 2)[0]
    assert blur_halve(x).shape == (4, 10, 7)
    assert torch.allclose(blur_halve(x), expected, atol=1e-6)
    assert torch.allclose(blur_halve(x), _conv_reference(x, [0.125, 0.375, 0.375, 0.125], 2), atol=1e-6)


def test_downsample_keeps_a_constant_image_and_averages_blocks():
    assert torch.allclose(downsample(torch.full((2, 6, 6), 0.7), 3), torch.full((2, 2, 2), 0.7))
    x = torch.arange(16.0).view(1, 4, 4)
    assert torch.equal(downsample(x, 2, blur=False), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    assert downsample(x, 1) is x


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="even"):
        blur_halve(torch.rand(1, 5, 4))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        blur3(torch.rand(5, 4))
