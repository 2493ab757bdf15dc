"""hf: depth backends (tiny DPT and Depth Anything loaded from folders) and the shared loading policy."""

from __future__ import annotations

import pytest
import torch

from dummies import depth_anything_dir, dpt_dir, pickle_only_copy, zoedepth_dir
from wanderview.backends.hf_common import resolve_device, resolve_dtype, round_to_multiple
from wanderview.backends.hf_depth import HFDepthModel, network_input_size
from wanderview.backends.protocols import DepthModel, to_depth
from wanderview.backends.registry import make_depth_model
from wanderview.errors import BackendError


@pytest.mark.parametrize("folder", [dpt_dir, depth_anything_dir], ids=["dpt", "depth-anything"])
def test_hf_depth_predicts_relative_disparity_at_image_size(folder):
    model = make_depth_model(f"hf:{folder()}", device="cpu")
    assert isinstance(model, DepthModel) and not model.is_weak_default
    image = torch.rand(3, 40, 52, generator=torch.Generator().manual_seed(1))
    pred = model.predict(image)
    assert model.output == "relative_disparity"
    assert pred.shape == (1, 40, 52) and pred.dtype == torch.float32
    assert torch.isfinite(pred).all() and (pred >= 0).all()
    assert torch.equal(pred, model.predict(image)), "same image, same prediction"
    depth = to_depth(pred + 1e-3 * torch.arange(52.0), model.output, near=1.0, far=10.0)
    assert depth.min() >= 1.0 - 1e-4 and depth.max() <= 10.0 + 1e-3


def test_zoedepth_predicts_metric_depth_at_image_size():
    model = make_depth_model(f"hf:{zoedepth_dir()}", device="cpu")
    image = torch.rand(3, 40, 52, generator=torch.Generator().manual_seed(2))
    pred = model.predict(image)
    assert model.output == "depth", "ZoeDepth is metric: its output is depth, not disparity"
    assert pred.shape == (1, 40, 52) and pred.dtype == torch.float32
    assert torch.isfinite(pred).all() and (pred > 0).all()
    assert torch.equal(to_depth(pred, model.output), pred)
    grads = model.differentiable_predict(image[None])
    assert grads.shape == (1, 1, 40, 52) and grads.requires_grad


def test_differentiable_predict_reaches_the_module():
    model = HFDepthModel(depth_anything_dir())
    images = torch.rand(2, 3, 28, 42)
    pred = model.differentiable_predict(images)
    assert pred.shape == (2, 1, 28, 42) and pred.requires_grad
    pred.mean().backward()
    grads = [p.grad for p in model.module.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_processor_size_rule():
    # DPT-Large: fixed square input.
    assert network_input_size(480, 640, {"size": {"height": 384, "width": 384}}) == (384, 384)
    # Depth Anything: keep the aspect ratio, multiples of 14.
    proc = {"size": {"height": 518, "width": 518}, "keep_aspect_ratio": True, "ensure_multiple_of": 14}
    h, w = network_input_size(480, 640, proc)
    assert h % 14 == 0 and w % 14 == 0 and abs(w / h - 640 / 480) < 0.05


def test_device_and_dtype_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None).type in ("cpu", "mps") and resolve_device("cpu").type == "cpu"
    with pytest.raises(BackendError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(BackendError, match="unknown device"):
        resolve_device("tpu9")
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(BackendError, match="dtype"):
        resolve_dtype("int3", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None).type == "cuda" and resolve_device("auto").type == "cuda"
    assert round_to_multiple(61) == 64 and round_to_multiple(3) == 8


def test_dtype_override_loads_in_that_dtype_and_returns_float32():
    model = make_depth_model(f"hf:{dpt_dir()}", device="cpu", dtype="bfloat16")
    pred = model.predict(torch.rand(3, 32, 32))
    assert next(model.module.parameters()).dtype == torch.bfloat16
    assert pred.dtype == torch.float32 and pred.shape == (1, 32, 32)


def test_missing_weights_offline_is_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError) as info:
        make_depth_model("hf:nobody-here/no-such-depth-model")
    message = str(info.value)
    assert "nobody-here/no-such-depth-model" in message
    assert "huggingface-cli download nobody-here/no-such-depth-model" in message and "\n" not in message


def test_missing_folder_and_non_model_folder(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        make_depth_model(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(BackendError, match="config.json"):
        make_depth_model(f"hf:{tmp_path}")


def test_pickle_only_weights_are_refused_unless_allowed():
    folder = pickle_only_copy(dpt_dir(), "dpt")
    with pytest.raises(BackendError, match="allow-pickle"):
        make_depth_model(f"hf:{folder}")
    image = torch.rand(3, 32, 32)
    trusted = make_depth_model(f"hf:{folder}", allow_pickle=True)
    reference = make_depth_model(f"hf:{dpt_dir()}")
    assert torch.allclose(trusted.predict(image), reference.predict(image))
