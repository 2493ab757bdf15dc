"""Prompt adherence: the CLIP score of a run's frames against its text prompt.

CLIP score as in Hessel et al. 2021 ("CLIPScore") and the text-to-3D/video papers that report it:
for each frame, the cosine similarity between the CLIP image embedding of the frame and the CLIP
text embedding of the prompt, times 100, averaged over the frames. Unlike CLIPScore's ``max(cos, 0)``
the similarity is not clipped at 0, so a mean over frames is never biased upwards.

The model is any transformers ``CLIPModel`` checkpoint with its ``CLIPProcessor`` (tokenizer and
image preprocessing), named ``hf:<hub-id-or-local-folder>`` and loaded with the same policy as every
Hugging Face backend (:mod:`wanderview.backends.hf_common`: safetensors only, offline cache
respected, one-sentence errors). Image preprocessing uses the processor's PIL backend, so it works
without torchvision.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from wanderview.backends.hf_common import (
    HFOptions,
    load_error,
    require,
    resolve_device,
    resolve_dtype,
    resolve_source,
    safetensors_flag,
    to_pil,
)
from wanderview.errors import BackendError, ConfigError, InputError

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
NO_MODEL = f"n/a: no CLIP model given (--clip hf:{DEFAULT_CLIP_MODEL})"
NO_PROMPT = "n/a: the run has no prompt"
SOURCE = (
    "CLIP score (Hessel et al. 2021): 100 x cosine similarity between each frame's CLIP image "
    "embedding and the prompt's text embedding, mean over frames (not clipped at 0)"
)


def parse_clip_spec(spec: str) -> str:
    """The part after ``hf:`` of a ``--clip`` value; raises ConfigError for anything else."""
    if not isinstance(spec, str) or not spec.startswith("hf:"):
        example = f"hf:{DEFAULT_CLIP_MODEL}"
        raise ConfigError(f"--clip takes hf:<hub id or local folder> (e.g. {example}), got {spec!r}")
    return spec[len("hf:") :]


def _features(output) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding;
    # older versions return the tensor itself.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def cosine_scores(image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """100 x cosine similarity of each image embedding with one text embedding.

    Args:
        image_embeddings: (N, D), any scale.
        text_embedding: (D,), any scale.
    Returns:
        (N,) float32 scores in [-100, 100].
    """
    if image_embeddings.ndim != 2:
        raise ValueError(f"image_embeddings must be (N, D), got {tuple(image_embeddings.shape)}")
    if text_embedding.shape != image_embeddings.shape[1:]:
        raise ValueError(
            f"text_embedding must be ({image_embeddings.shape[1]},), got {tuple(text_embedding.shape)}"
        )
    images = torch.nn.functional.normalize(image_embeddings.float(), dim=-1)
    text = torch.nn.functional.normalize(text_embedding.float(), dim=-1)
    return 100.0 * images @ text


class ClipScorer:
    """A CLIP model that scores frames against a prompt (weights load lazily, on first use).

    Args:
        spec: ``hf:<hub-id-or-local-folder>``; ``hf:`` alone means ``openai/clip-vit-base-patch32``.
        options: device, dtype and pickle policy (:class:`HFOptions`).
        batch_size: frames embedded per forward pass (bounds memory on long videos).
    """

    def __init__(self, spec: str, options: HFOptions | None = None, batch_size: int = 16):
        self.options = options or HFOptions()
        self.source = resolve_source(
            parse_clip_spec(spec), DEFAULT_CLIP_MODEL, "config.json", self.options.allow_pickle
        )
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self._model = None
        self._processor = None

    def _load(self):
        if self._model is not None:
            return self._model, self._processor
        transformers = require("transformers", "the CLIP score")
        try:
            config = transformers.AutoConfig.from_pretrained(self.source)
        except (OSError, ValueError) as err:
            raise load_error(self.source, err, self.options.allow_pickle) from err
        if config.model_type != "clip":
            raise BackendError(f"{self.source} is a {config.model_type!r} model, not a CLIP model")
        try:
            processor = transformers.CLIPProcessor.from_pretrained(self.source)
            model = transformers.CLIPModel.from_pretrained(
                self.source, use_safetensors=safetensors_flag(self.options.allow_pickle), dtype=self.dtype
            )
        except (OSError, ValueError) as err:
            raise load_error(self.source, err, self.options.allow_pickle) from err
        self._model, self._processor = model.to(self.device).eval(), processor
        return self._model, self._processor

    def load(self) -> ClipScorer:
        """Load the weights now (a missing model then fails before any long computation); returns self."""
        self._load()
        return self

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (N, 3, H, W) in [0, 1] -> (N, D) float32 unit-length CLIP image embeddings (CPU)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be (N, 3, H, W), got {tuple(frames.shape)}")
        model, processor = self._load()
        out = []
        for start in range(0, len(frames), self.batch_size):
            # 8-bit PIL images: what the processor (and CLIP's own evaluation) expects; the run's
            # frames are 8-bit PNGs anyway, so nothing is lost.
            images = [to_pil(frame) for frame in frames[start : start + self.batch_size]]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            features = _features(model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))
            out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """prompt -> (D,) float32 unit-length CLIP text embedding (CPU); long prompts are truncated."""
        model, processor = self._load()
        tokens = processor.tokenizer(
            [prompt], padding=True, truncation=True,
            max_length=model.config.text_config.max_position_embeddings, return_tensors="pt",
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        features = _features(model.get_text_features(**tokens))
        return torch.nn.functional.normalize(features.float(), dim=-1)[0].cpu()

    def frame_scores(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        """frames: (N, 3, H, W) in [0, 1] -> (N,) 100 x cosine(frame, prompt)."""
        return cosine_scores(self.image_embeddings(frames), self.text_embedding(prompt))

    def score(self, frames: torch.Tensor, prompt: str) -> float:
        """frames: (N, 3, H, W) in [0, 1] -> the CLIP score, 100 x mean cosine similarity."""
        return float(self.frame_scores(frames, prompt).mean())


def run_prompt(run_dir: str | Path) -> str | None:
    """The prompt in a run folder's config.json ("prompt"), or None when it has none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not readable JSON ({err}).") from err
    prompt = config.get("prompt") if isinstance(config, dict) else None
    return prompt if isinstance(prompt, str) and prompt.strip() else None


def choose_prompt(run_dir: str | Path, override: str | None = None) -> str | None:
    """The prompt to score against: ``override`` when it is non-empty, else the run's own, else None."""
    if override is not None and override.strip():
        return override
    return run_prompt(run_dir)
