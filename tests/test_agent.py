"""DreamJourney's prompting agent: the chain of thought with a tiny LLaVA and with the openai: client
against a scripted chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from dummies import llava_dir
from wanderview.backends import agent_prompts
from wanderview.backends.agent import (
    AgentLog,
    default_motion_prompt,
    imagine_entities,
    inpaint_prompt,
    is_text,
    motion_prompt,
    parse_entities,
)
from wanderview.backends.registry import make_vision_language


class ScriptedServer:
    """Answers the n-th chat request with ``replies[n]`` (the last one repeats); records the questions."""

    def __init__(self, replies: list[str]):
        self.replies, self.questions = replies, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.questions.append(body["messages"][0]["content"][0]["text"])
                reply = server.replies[min(len(server.questions), len(server.replies)) - 1]
                data = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def scripted(monkeypatch):
    servers = []

    def start(replies):
        server = ScriptedServer(replies)
        servers.append(server)
        monkeypatch.setenv("WANDERVIEW_OPENAI_BASE_URL", server.url)
        return server

    yield start
    for server in servers:
        server.close()


def _image():
    return torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(0))


def test_chain_of_thought_through_the_openai_client(scripted):
    server = scripted(
        [
            "temple, trees, lanterns",
            "Dragon Temple Garden: dragon wings fluttering, incense smoke swirling, "
            "and paper lanterns swaying.",
            "1. Dragon wings are identified. 2. Paper lanterns are identified.",
            "1. Dragon wings (Visual Significance: High, Motion Possibility: High).",
            "'Dynamical Description': 'The dragon's wings flap. The lanterns swing.'",
        ]
    )
    vlm = make_vision_language("openai:gpt-test")
    log = AgentLog(model=vlm.description)
    entities = imagine_entities(vlm, _image(), log, fallback=["boat"])
    assert entities == ["dragon wings fluttering", "incense smoke swirling", "paper lanterns swaying"]
    assert "temple, trees, lanterns" in server.questions[1]  # the identified entities feed the imagination
    prompt = motion_prompt(vlm, _image(), entities, log)
    assert prompt == "The dragon's wings flap. The lanterns swing."
    # each stage carries the previous answer; the texts are the ones in agent_prompts
    assert server.questions[2].startswith(agent_prompts.CHAIN_IDENTIFY.split("{")[0])
    assert "dragon wings fluttering" in server.questions[2]
    assert "Dragon wings are identified" in server.questions[3]
    assert "Visual Significance: High" in server.questions[4]
    assert [s["stage"] for s in log.steps][2:] == [
        "chain 1: identify",
        "chain 2: describe",
        "chain 3: write prompt",
    ]
    assert log.steps[1]["scene_name"] == "Dragon Temple Garden" and not log.notes
    json.dumps(log.to_dict())


def test_unusable_answers_fall_back_with_notes(scripted):
    scripted(["", "   ", "...", "", "?!"])
    vlm = make_vision_language("openai:gpt-test")
    log = AgentLog()
    assert imagine_entities(vlm, _image(), log, fallback=["boat", "waves"]) == ["boat", "waves"]
    prompt = motion_prompt(vlm, _image(), ["boat", "waves"], log)
    assert (
        prompt
        == default_motion_prompt(["boat", "waves"])
        == (agent_prompts.DEFAULT_DYNAMICS_PROMPT + " boat, waves in motion.")
    )
    assert any("no usable entities" in n for n in log.notes) and any(
        "not a usable prompt" in n for n in log.notes
    )


def test_a_failing_server_is_a_note_not_a_crash():
    vlm = make_vision_language("openai:gpt-test", base_url="http://127.0.0.1:9/v1")  # nothing listens there
    vlm.timeout = 0.5
    log = AgentLog()
    assert motion_prompt(vlm, _image(), [], log) == agent_prompts.DEFAULT_DYNAMICS_PROMPT
    assert any("failed" in n for n in log.notes) and len(log.steps) == 3


def test_chain_with_a_tiny_llava():
    vlm = make_vision_language(f"hf:{llava_dir()}", device="cpu", max_new_tokens=8)
    log = AgentLog(model=vlm.description)
    entities = imagine_entities(vlm, _image(), log, fallback=["river"])
    prompt = motion_prompt(vlm, _image(), entities, log)
    assert len(log.steps) == 5 and all(isinstance(s["answer"], str) for s in log.steps)
    # random weights answer noise: either it parses into a prompt, or the default is used and noted
    assert prompt == log.steps[-1]["prompt"]
    assert prompt == default_motion_prompt(entities) or not any("usable prompt" in n for n in log.notes)
    # this tiny model's greedy answer is byte noise: the default prompt, with a note
    assert is_text(prompt, min_words=2)


def test_parsers_and_defaults():
    assert (
        is_text("The boat rocks.", 2)
        and not is_text("\ufffdu` {K\ufffd'6", 1)
        and not is_text("#$%^&*( ab", 1)
    )
    assert parse_entities("Harbour: boats rocking; gulls and waves.") == (
        "Harbour",
        ["boats rocking", "gulls", "waves"],
    )
    assert parse_entities("") == ("", []) and parse_entities("x: \ufffdu` {K\ufffd")[1] == []
    assert inpaint_prompt([]) == agent_prompts.DEFAULT_INPAINT_PROMPT and inpaint_prompt(["a", "b"]) == "a, b"
    assert motion_prompt(None, _image(), [], AgentLog()) == agent_prompts.DEFAULT_DYNAMICS_PROMPT
    assert imagine_entities(None, _image(), AgentLog(), fallback=["x"]) == ["x"]
