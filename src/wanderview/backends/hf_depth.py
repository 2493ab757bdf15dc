"""Monocular depth from transformers: Depth Anything (V1/V2), DPT/MiDaS and ZoeDepth.

The checkpoint's ``preprocessor_config.json`` decides the input size and normalisation; the
preprocessing is done here in torch (resize to the processor's size keeping the aspect ratio,
rounded to its ``ensure_multiple_of``, then normalise) so that ``differentiable_predict`` can
backpropagate into the network for test-time finetuning.

What ``predict`` returns (``output``): relative models (Depth Anything relative, DPT/MiDaS) give
``relative_disparity``; metric ones (ZoeDepth, Depth Anything ``depth_estimation_type="metric"``)
give ``depth``. ``wanderview.backends.protocols.to_depth`` turns either into z-depth.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from wanderview.backends.hf_common import (
    HFOptions,
    load_error,
    require,
    resolve_device,
    resolve_dtype,
    resolve_source,
    safetensors_flag,
)
from wanderview.backends.protocols import check_image
from wanderview.errors import BackendError

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
ALTERNATIVE_DEPTH_MODEL = "Intel/dpt-large"
SUPPORTED_TYPES = ("depth_anything", "dpt", "zoedepth")


def _read_preprocessor(source: str) -> dict:
    """The checkpoint's preprocessor_config.json as a dict ({} when it has none)."""
    path = Path(source) / "preprocessor_config.json"
    if not path.is_file():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "preprocessor_config.json"))
        except Exception:  # the model may simply ship without one: fall back to DPT's defaults
            return {}
    return json.loads(path.read_text())


def _as_hw(size) -> tuple[int, int]:
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        edge = size.get("shortest_edge") or size.get("longest_edge") or 384
        return int(edge), int(edge)
    if isinstance(size, int):
        return size, size
    return 384, 384


def network_input_size(height: int, width: int, processor: dict) -> tuple[int, int]:
    """The (h, w) the network sees for an image of (height, width), following DPT's resize rule."""
    out_h, out_w = _as_hw(processor.get("size", 384))
    multiple = int(processor.get("ensure_multiple_of", 1) or 1)
    scale_h, scale_w = out_h / height, out_w / width
    if processor.get("keep_aspect_ratio", False):
        # Scale as little as possible: keep whichever factor is closer to 1 for both sides.
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    new_h = max(multiple, int(round(scale_h * height / multiple)) * multiple)
    new_w = max(multiple, int(round(scale_w * width / multiple)) * multiple)
    return new_h, new_w


class HFDepthModel:
    """A transformers depth-estimation checkpoint behind the DepthModel protocol (lazy load)."""

    is_weak_default = False

    def __init__(self, ref: str = "", options: HFOptions | None = None):
        self.options = options or HFOptions()
        self.source = resolve_source(ref, DEFAULT_DEPTH_MODEL, "config.json", self.options.allow_pickle)
        self.description = f"Hugging Face depth model {self.source}"
        self._model = None
        self._output: str | None = None
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)

    def _load(self):
        if self._model is not None:
            return self._model
        transformers = require("transformers", "the hf: depth backend")
        try:
            config = transformers.AutoConfig.from_pretrained(self.source)
        except (OSError, ValueError) as err:
            raise load_error(self.source, err, self.options.allow_pickle) from err
        if config.model_type not in SUPPORTED_TYPES:
            raise BackendError(
                f"{self.source} is a {config.model_type!r} model; the hf: depth backend supports "
                f"{', '.join(SUPPORTED_TYPES)}"
            )
        try:
            model = transformers.AutoModelForDepthEstimation.from_pretrained(
                self.source, use_safetensors=safetensors_flag(self.options.allow_pickle), dtype=self.dtype
            )
        except (OSError, ValueError) as err:
            raise load_error(self.source, err, self.options.allow_pickle) from err
        self._processor = _read_preprocessor(self.source)
        metric = config.model_type == "zoedepth" or getattr(config, "depth_estimation_type", None) == "metric"
        self._output = "depth" if metric else "relative_disparity"
        self._model = model.to(self.device).eval()
        return self._model

    @property
    def output(self) -> str:
        """'relative_disparity' or 'depth' (known once the config is read; reading it loads the model)."""
        self._load()
        return self._output

    @property
    def module(self) -> torch.nn.Module:
        """The transformers model, for finetuning (loads it)."""
        return self._load()

    def network(self) -> torch.nn.Module:
        """FinetunableDepth: the network that differentiable_predict runs (loads it)."""
        return self._load()

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B,3,H,W) in [0,1] -> network input (B,3,h,w) on the model's device and dtype."""
        proc = self._processor
        h, w = network_input_size(images.shape[-2], images.shape[-1], proc)
        x = F.interpolate(images.float(), size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
        if proc.get("do_normalize", True):
            mean = torch.tensor(proc.get("image_mean", [0.5, 0.5, 0.5]), dtype=x.dtype, device=x.device)
            std = torch.tensor(proc.get("image_std", [0.5, 0.5, 0.5]), dtype=x.dtype, device=x.device)
            x = (x - mean[:, None, None]) / std[:, None, None]
        return x.to(device=self.device, dtype=self.dtype)

    def differentiable_predict(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B,3,H,W) in [0,1] -> (B,1,H,W) float32 in ``output`` space, with gradients."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B,3,H,W), got {tuple(images.shape)}")
        model = self._load()
        pred = model(pixel_values=self._normalise(images)).predicted_depth
        if pred.ndim == 3:
            pred = pred[:, None]
        pred = F.interpolate(pred.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return pred.to(images.device)

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """image: (3,H,W) in [0,1] -> (1,H,W) float32 in ``output`` space on the image's device."""
        check_image(image)
        self._load()
        pred = self.differentiable_predict(image[None])[0]
        if self._output == "relative_disparity":
            # Relative models may output small negatives at the far end; disparity is non-negative.
            pred = pred.clamp_min(0.0)
        if not bool(torch.isfinite(pred).all()):
            pred = torch.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0)
        return pred.to(torch.float32)
