"""Vision-language models: transformers chat models (LLaVA, Qwen2-VL) and OpenAI-compatible servers.

``hf:<id-or-path>`` loads ``AutoModelForImageTextToText`` with its ``AutoProcessor`` and asks through
the processor's chat template, decoding greedily (same question, same answer).

``openai:<model>`` speaks the chat-completions protocol over plain HTTP (urllib), so it works with
OpenAI and with local servers such as Ollama, vLLM or llama.cpp. Base URL from
``WANDERVIEW_OPENAI_BASE_URL`` or ``OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``), key
from ``OPENAI_API_KEY`` (optional for local servers). Images travel as base64 PNG data URLs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import urllib.error
import urllib.request

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
from wanderview.backends.protocols import check_image
from wanderview.errors import BackendError

DEFAULT_VLM_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
ALTERNATIVE_VLM_MODEL = "llava-hf/llava-1.5-7b-hf"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"


def _check_images(images) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        images = [images]
    images = list(images)
    for index, image in enumerate(images):
        check_image(image, f"images[{index}]")
    return images


class HFVisionLanguage:
    """A transformers image-text-to-text chat model behind the VisionLanguage protocol (lazy load)."""

    is_weak_default = False

    def __init__(self, ref: str = "", options: HFOptions | None = None, max_new_tokens: int = 128):
        self.options = options or HFOptions()
        self.source = resolve_source(ref, DEFAULT_VLM_MODEL, "config.json", self.options.allow_pickle)
        self.description = f"Hugging Face vision-language model {self.source}"
        self.max_new_tokens = int(max_new_tokens)
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_dtype(self.options.dtype, self.device)
        self._model = None
        self._processor = None

    def _load(self):
        if self._model is None:
            transformers = require("transformers", "the hf: vision-language backend")
            try:
                self._processor = transformers.AutoProcessor.from_pretrained(self.source)
                model = transformers.AutoModelForImageTextToText.from_pretrained(
                    self.source, dtype=self.dtype, use_safetensors=safetensors_flag(self.options.allow_pickle)
                )
            except ImportError as err:  # e.g. Qwen2-VL's video processor needs torchvision
                if "torchvision" in str(err).lower():
                    raise BackendError(
                        f"{self.source} needs torchvision to build its processor (pip install torchvision "
                        f"for your torch build); LLaVA models such as hf:{ALTERNATIVE_VLM_MODEL} do not"
                    ) from err
                package = getattr(err, "name", None) or "a Python package"
                raise BackendError(
                    f"{self.source} needs {package}, which is not installed, to build its processor"
                ) from err
            except (OSError, ValueError) as err:
                raise load_error(self.source, err, self.options.allow_pickle) from err
            self._model = model.to(self.device).eval()
        return self._model, self._processor

    @property
    def module(self) -> torch.nn.Module:
        """The transformers model (loads it)."""
        return self._load()[0]

    @torch.no_grad()
    def ask(self, images: list[torch.Tensor], text: str) -> str:
        """images: list of (3,H,W) in [0,1]; text: the question -> the answer (greedy decoding)."""
        images = _check_images(images)
        model, processor = self._load()
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )
        inputs = processor(images=[to_pil(i) for i in images] or None, text=prompt, return_tensors="pt")
        inputs = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        generated = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = generated[0, inputs["input_ids"].shape[1] :]
        return processor.decode(new_tokens, skip_special_tokens=True).strip()


def _data_url(image: torch.Tensor) -> str:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAIVisionLanguage:
    """Chat completions over HTTP against any OpenAI-compatible server."""

    is_weak_default = False

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = 512,
    ):
        if not model:
            raise BackendError(
                "the openai backend needs a model name, e.g. openai:gpt-4o-mini or openai:llava"
            )
        self.model = model
        self.base_url = (
            base_url
            or os.environ.get("WANDERVIEW_OPENAI_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or DEFAULT_OPENAI_BASE_URL
        ).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_tokens = float(timeout), int(max_tokens)
        self.description = f"OpenAI-compatible chat model {model} at {self.base_url}"

    def _request(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:200].decode("utf-8", "replace").replace("\n", " ")
            raise BackendError(f"{url} answered HTTP {err.code} for model {self.model}: {detail}") from err
        except TimeoutError as err:
            raise BackendError(f"{url} did not answer within {self.timeout:g} s") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError | socket.timeout):
                raise BackendError(f"{url} did not answer within {self.timeout:g} s") from err
            raise BackendError(f"cannot reach {url} ({err.reason}); set WANDERVIEW_OPENAI_BASE_URL") from err
        try:
            return json.loads(body)
        except ValueError as err:
            raise BackendError(f"{url} sent a reply that is not JSON") from err

    def ask(self, images: list[torch.Tensor], text: str) -> str:
        """images: list of (3,H,W) in [0,1]; text: the question -> the first choice's message text."""
        images = _check_images(images)
        content = [{"type": "text", "text": text}]
        content += [{"type": "image_url", "image_url": {"url": _data_url(image)}} for image in images]
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        reply = self._request(payload)
        try:
            answer = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise BackendError(
                f"{self.base_url} sent a chat reply without choices[0].message.content"
            ) from err
        if isinstance(answer, list):  # some servers return content parts
            answer = "".join(part.get("text", "") for part in answer if isinstance(part, dict))
        if not isinstance(answer, str):
            raise BackendError(f"{self.base_url} sent a chat reply whose content is not text")
        return answer.strip()
