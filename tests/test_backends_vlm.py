"""Vision-language backends: a tiny LLaVA loaded from a folder, and the openai: client against a real
HTTP server on 127.0.0.1 that speaks the chat-completions protocol."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from dummies import llava_dir, qwen2_vl_dir
from wanderview.backends.protocols import VisionLanguage
from wanderview.backends.registry import make_vision_language
from wanderview.backends.vlm import OpenAIVisionLanguage
from wanderview.errors import BackendError


def _images(n: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return [torch.rand(3, 24, 32, generator=g) for _ in range(n)]


def test_llava_answers_deterministically():
    model = make_vision_language(f"hf:{llava_dir()}", device="cpu", max_new_tokens=6)
    assert isinstance(model, VisionLanguage)
    answer = model.ask(_images(1), "What in this picture could move?")
    assert isinstance(answer, str)
    assert answer == model.ask(_images(1), "What in this picture could move?")
    assert isinstance(model.ask(_images(2), "Compare the two views."), str)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        model.ask([torch.rand(24, 32)], "?")


def test_qwen2_vl_answers_or_names_torchvision():
    """Qwen2-VL (the default hf: vision-language model) loads through the same generic code. transformers
    builds its video processor, which needs torchvision: where torchvision is installed the tiny model
    answers, elsewhere (this project's CPU machines) loading is one sentence naming it."""
    import importlib.util

    model = make_vision_language(f"hf:{qwen2_vl_dir()}", device="cpu", max_new_tokens=4)
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(BackendError, match=r"needs torchvision .*pip install torchvision"):
            model.ask(_images(1), "What is here?")
    else:
        answer = model.ask(_images(1), "What is here?")
        assert isinstance(answer, str) and answer == model.ask(_images(1), "What is here?")


class _ChatServer:
    """A chat-completions endpoint whose behaviour each test chooses ('ok', 'slow', 'garbage', ...)."""

    def __init__(self):
        self.mode = "ok"
        self.requests: list[tuple[dict, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((dict(self.headers), body))
                if server.mode == "slow":
                    time.sleep(1.5)
                if server.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"model exploded")
                    return
                payload = {
                    "ok": {"choices": [{"message": {"role": "assistant", "content": " The water moves. "}}]},
                    "slow": {"choices": [{"message": {"content": "late"}}]},
                    "no_choices": {"id": "x", "object": "chat.completion"},
                }.get(server.mode)
                data = b"<html>not json" if payload is None else json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def chat_server():
    server = _ChatServer()
    yield server
    server.close()


def test_openai_client_sends_images_and_returns_text(chat_server, monkeypatch):
    monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", chat_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = make_vision_language("openai:llava:7b", device="cuda")  # loading options do not apply
    assert isinstance(model, OpenAIVisionLanguage) and chat_server.url in model.description
    assert model.ask(_images(2), "What moves?") == "The water moves."
    headers, body = chat_server.requests[0]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "llava:7b"
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What moves?"}
    urls = [p["image_url"]["url"] for p in parts[1:]]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    assert base64.b64decode(urls[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_openai_base_url_fallback_and_no_key(chat_server, monkeypatch):
    monkeypatch.delenv("WANDERVIEW_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.url + "/")
    assert OpenAIVisionLanguage("m").ask([], "hi") == "The water moves."
    assert "Authorization" not in chat_server.requests[0][0]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("slow", "did not answer within"), ("garbage", "not JSON"), ("no_choices", "without choices"),
     ("error", "HTTP 500")],
)
def test_openai_failures_are_one_sentence(chat_server, mode, message):
    chat_server.mode = mode
    model = OpenAIVisionLanguage("m", base_url=chat_server.url, timeout=0.5)
    with pytest.raises(BackendError, match=message) as info:
        model.ask(_images(1), "hi")
    assert "\n" not in str(info.value)


def test_openai_unreachable_server_and_missing_model():
    with pytest.raises(BackendError, match="cannot reach"):
        OpenAIVisionLanguage("m", base_url="http://127.0.0.1:9/v1", timeout=2).ask([], "hi")
    with pytest.raises(BackendError, match="model name"):
        make_vision_language("openai:")
