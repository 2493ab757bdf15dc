"""The depth rule (to_depth), the registry's spec parsing and the protocols' structural checks."""

from __future__ import annotations

import pytest
import torch

from wanderview.backends import registry
from wanderview.backends.classical import FileDepth, NoInpainter, OpenCVInpainter, PatchMatchInpainter
from wanderview.backends.heuristic_depth import HeuristicDepth
from wanderview.backends.protocols import DepthModel, Inpainter, to_depth
from wanderview.errors import BackendError, WanderviewError


def _true_depth() -> torch.Tensor:
    rows = torch.linspace(1.0, 8.0, 24)[:, None].expand(24, 32)
    return rows[None].clone()


def test_to_depth_depth_and_disparity():
    depth = _true_depth()
    assert torch.equal(to_depth(depth, "depth"), depth)
    assert torch.allclose(to_depth(1.0 / depth, "disparity"), depth, rtol=1e-6)
    bad = depth.clone()
    bad[0, 0, 0], bad[0, 0, 1] = -1.0, float("nan")
    out = to_depth(bad, "depth")
    assert torch.isinf(out[0, 0, :2]).all() and torch.isfinite(out[0, 0, 2:]).all()
    assert torch.isinf(to_depth(torch.zeros(1, 2, 2), "disparity")).all()


def test_to_depth_relative_disparity_recovers_reference_exactly():
    depth = _true_depth()
    relative = 3.0 * (1.0 / depth) + 0.25  # what a MiDaS-like network gives: affine in disparity
    mask = torch.zeros_like(depth, dtype=torch.bool)
    mask[:, ::3, ::3] = True  # only a sparse set of reference pixels
    out = to_depth(relative, "relative_disparity", reference_depth=depth, mask=mask)
    assert torch.allclose(out, depth, rtol=1e-4)


def test_to_depth_relative_without_reference_spans_near_far():
    depth = _true_depth()
    out = to_depth(1.0 / depth, "relative_disparity", near=2.0, far=50.0)
    assert out.min().item() == pytest.approx(2.0, rel=1e-5)
    assert out.max().item() == pytest.approx(50.0, rel=1e-5)
    # Ordering is kept: larger disparity is nearer.
    assert torch.all(out[0, 1:, 0] >= out[0, :-1, 0])


def test_to_depth_falls_back_to_near_far_when_reference_is_empty():
    depth = _true_depth()
    empty_ref = torch.full_like(depth, float("inf"))
    out = to_depth(1.0 / depth, "relative_disparity", reference_depth=empty_ref, near=1.0, far=10.0)
    assert out.min().item() == pytest.approx(1.0, rel=1e-5)
    assert out.max().item() == pytest.approx(10.0, rel=1e-5)


def test_to_depth_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        to_depth(torch.ones(3, 4), "depth")
    with pytest.raises(ValueError, match="output"):
        to_depth(torch.ones(1, 3, 4), "metres")
    with pytest.raises(ValueError, match="near"):
        to_depth(torch.ones(1, 3, 4), "relative_disparity", near=5.0, far=1.0)


def test_unknown_specs_list_the_valid_ones():
    with pytest.raises(BackendError, match="telea") as info:
        registry.make_inpainter("stable-diffusion")
    assert "hf:<hub-id-or-path>" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BackendError, match="heuristic"):
        registry.make_depth_model("midas")
    with pytest.raises(BackendError, match="openai:<model>"):
        registry.make_vision_language("gpt")
    with pytest.raises(BackendError):
        registry.make_video_generator("")
    with pytest.raises(WanderviewError, match="takes no argument"):
        registry.make_inpainter("telea:fast")


def test_registry_builds_classical_backends_and_ignores_loading_options():
    assert isinstance(registry.make_depth_model("heuristic", device="auto"), HeuristicDepth)
    assert isinstance(registry.make_inpainter("none", device="cpu"), NoInpainter)
    telea = registry.make_inpainter("telea", device="auto", dtype=None, radius=2)
    assert isinstance(telea, OpenCVInpainter) and telea.method == "telea" and telea.radius == 2
    assert registry.make_inpainter("ns").method == "ns"
    assert isinstance(registry.make_inpainter("patchmatch"), PatchMatchInpainter)
    depth = torch.ones(1, 4, 4)
    assert isinstance(registry.make_depth_model("file", depth=depth), FileDepth)


def test_selfsup_spec_reaches_the_selfsup_factory():
    backend = registry.make_inpainter("selfsup", device="cpu")
    assert type(backend).__module__ == "wanderview.backends.selfsup"


def test_classical_backends_satisfy_the_protocols_and_declare_weakness():
    for backend in (NoInpainter(), OpenCVInpainter("telea"), PatchMatchInpainter()):
        assert isinstance(backend, Inpainter)
        assert backend.is_weak_default and backend.description
    heuristic = HeuristicDepth()
    assert isinstance(heuristic, DepthModel) and heuristic.is_weak_default and heuristic.module is None
    assert isinstance(FileDepth(torch.ones(1, 2, 2)), DepthModel)
