"""Embedded backends on small images: inpainters keep known pixels exactly, depth priors behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wanderview.backends.classical import FileDepth, NoInpainter, OpenCVInpainter, PatchMatchInpainter
from wanderview.backends.heuristic_depth import HeuristicDepth, guided_filter, sky_mask
from wanderview.errors import InputError


def _gradient_image(h: int = 48, w: int = 64) -> torch.Tensor:
    ys = torch.linspace(0, 1, h)[:, None].expand(h, w)
    xs = torch.linspace(0, 1, w)[None].expand(h, w)
    return torch.stack([xs, ys, 0.5 * (xs + ys)])


def _hole(h: int = 48, w: int = 64) -> torch.Tensor:
    mask = torch.zeros(1, h, w, dtype=torch.bool)
    mask[:, 16:30, 20:40] = True
    return mask


@pytest.mark.parametrize("backend", [OpenCVInpainter("telea"), OpenCVInpainter("ns"), PatchMatchInpainter()])
def test_inpainters_fill_holes_and_keep_known_pixels_exactly(backend):
    image = _gradient_image()
    mask = _hole()
    corrupted = torch.where(mask, torch.zeros_like(image), image)
    out = backend.inpaint(corrupted, mask, seed=3)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out[:, ~mask[0]], corrupted[:, ~mask[0]])
    assert 0.0 <= out.min() and out.max() <= 1.0
    # A smooth gradient is continued into the hole: far better than the black it was.
    hole_error = (out - image).abs()[:, mask[0]].mean().item()
    assert hole_error < 0.12, hole_error
    assert (corrupted - image).abs()[:, mask[0]].mean().item() > 0.3


def test_patchmatch_is_seeded():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((3, 40, 40), dtype=np.float32))
    mask = _hole(40, 40)
    backend = PatchMatchInpainter()
    assert torch.equal(backend.inpaint(image, mask, seed=1), backend.inpaint(image, mask, seed=1))


def test_none_inpainter_is_a_declared_no_op():
    image = _gradient_image()
    out = NoInpainter().inpaint(image, _hole())
    assert torch.equal(out, image) and out is not image
    assert "no inpainting" in NoInpainter.description


def test_inpainters_without_holes_and_with_only_holes():
    image = _gradient_image(16, 16)
    empty = torch.zeros(1, 16, 16, dtype=torch.bool)
    for backend in (OpenCVInpainter("telea"), PatchMatchInpainter()):
        assert torch.equal(backend.inpaint(image, empty), image)
        assert torch.all(backend.inpaint(image, ~empty) == 0.5)


def test_inpainters_check_shapes():
    image = _gradient_image(16, 16)
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        OpenCVInpainter().inpaint(image, torch.zeros(16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="float32"):
        OpenCVInpainter().inpaint(image, torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match=r"\(16, 16\)"):
        PatchMatchInpainter().inpaint(image[0], torch.zeros(1, 16, 16, dtype=torch.bool))


def _outdoor_scene(h: int = 64, w: int = 96) -> torch.Tensor:
    """Blue sky above row 24, a dark tree block on the left above the horizon, textured ground below."""
    image = torch.zeros(3, h, w)
    image[:, :32] = torch.tensor([0.45, 0.65, 0.95])[:, None, None]
    image[:, 12:32, 5:25] = torch.tensor([0.1, 0.3, 0.1])[:, None, None]
    ground = 0.35 + 0.1 * torch.rand(h - 32, w, generator=torch.Generator().manual_seed(0))
    image[:, 32:] = torch.stack([ground, 0.8 * ground, 0.5 * ground])
    return image


def test_heuristic_depth_ground_sky_and_backdrop():
    image = _outdoor_scene()
    model = HeuristicDepth(horizon=0.5, near=1.0, far=20.0)
    depth = model.predict(image)
    assert depth.shape == (1, 64, 96) and depth.dtype == torch.float32
    assert torch.isfinite(depth).all() and depth.min() >= 1.0 - 1e-4 and depth.max() <= 20.0 + 1e-3
    column = depth[0, 34:, 60]
    assert torch.all(column[1:] <= column[:-1] + 1e-3), "ground depth must fall towards the bottom row"
    assert depth[0, -1, 60] < 1.5
    sky, tree = depth[0, 2, 60].item(), depth[0, 20, 14].item()
    assert sky > 15.0 and tree < sky and tree > depth[0, 50, 14].item()


def test_sky_mask_needs_connection_to_the_top():
    image = _outdoor_scene()
    image[:, :4] = 0.05  # a dark band on top cuts the blue region off from the top edge
    assert not sky_mask(image, 32).any()
    assert sky_mask(_outdoor_scene(), 32)[0, :8, 40:].all()


def test_separable_box_mean_equals_the_square_window_mean():
    import torch.nn.functional as F

    from wanderview.backends.heuristic_depth import _box

    x = torch.rand(1, 37, 29)
    for radius in (1, 5):
        square = F.avg_pool2d(F.pad(x[None], (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)[0]
        assert torch.allclose(_box(x, radius), square, atol=1e-6)


def test_guided_filter_keeps_constant_and_follows_edges():
    guide = torch.zeros(1, 20, 20)
    guide[:, :, 10:] = 1.0
    flat = torch.full((1, 20, 20), 0.3)
    assert torch.allclose(guided_filter(guide, flat, 3, 1e-3), flat, atol=1e-5)
    step = guide.clone()
    out = guided_filter(guide, step, 3, 1e-4)
    assert (out - step).abs().max() < 0.05


def test_file_depth_refuses_another_size_like_read_depth():
    """One rule for depth files (review bug 7): the image's size, or refused; FileDepth used to
    resize a map of the same aspect ratio silently while read_depth refused it."""
    depth = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4) + 1
    depth[0, 0, 0] = float("inf")
    model = FileDepth(depth)
    out = model.predict(torch.rand(3, 3, 4))
    assert out.shape == (1, 3, 4) and torch.isinf(out[0, 0, 0]) and torch.equal(out[0, 1], depth[0, 1])
    for size in ((6, 8), (6, 6)):
        with pytest.raises(InputError, match="its size"):
            model.predict(torch.rand(3, *size))
    with pytest.raises(InputError, match="--depth"):
        FileDepth()


def test_patchmatch_never_copies_excluded_pixels():
    image = torch.zeros(3, 48, 64)
    image[0, :, :40] = 1.0  # red
    image[1, :, 40:48] = 1.0  # a green band right beside the hole
    holes = torch.zeros(1, 48, 64, dtype=torch.bool)
    holes[0, :, 48:] = True
    inpainter = PatchMatchInpainter()
    green = lambda rgb: (rgb[1] > 0.5)[holes[0]].float().mean()  # noqa: E731
    assert green(inpainter.inpaint(image, holes, seed=0)) > 0.5, "without exclusion the band is copied"
    band = torch.zeros_like(holes)
    band[0, :, 40:48] = True
    filled = inpainter.inpaint(image, holes, seed=0, exclude=band)
    assert green(filled) == 0 and torch.equal(filled[:, ~holes[0]], image[:, ~holes[0]])
    everything = ~holes  # excluding every source is ignored rather than failing
    assert torch.equal(inpainter.inpaint(image, holes, seed=0, exclude=everything),
                       inpainter.inpaint(image, holes, seed=0))  # fmt: skip


def test_patchmatch_ignores_an_exclusion_that_leaves_less_than_a_patch():
    image = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(3))
    holes = torch.zeros(1, 40, 40, dtype=torch.bool)
    holes[0, 10:30, 10:30] = True
    exclude = ~holes
    exclude[0, :5, :5] = False  # a 5 x 5 corner is all the source left: smaller than one 7 x 7 patch
    inpainter = PatchMatchInpainter()
    filled = inpainter.inpaint(image, holes, seed=0, exclude=exclude)
    assert torch.equal(filled, inpainter.inpaint(image, holes, seed=0))
    assert float(filled[:, holes[0]].mean()) > 0.2, "not the black fill of a starved PatchMatch"
