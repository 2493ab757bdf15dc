"""DreamJourney's prompting agent: a vision-language model asked in the paper's chain of thought.

Two jobs (texts in ``agent_prompts.py``):

- ``imagine_entities(vlm, image)``: identify the entities in the view, then imagine ``count`` entities
  with significant visible motion that fit the scene (scene name + list). They go into Stage I's
  inpainting prompt (moving things first) and become Stage II's list of possible dynamic objects.
- ``motion_prompt(vlm, image, entities)``: the three-step chain of thought - identify which listed
  entities are in the image, describe each one's visual significance and motion possibility, write the
  final motion prompt - as three questions, each carrying the previous answer.

Every question and answer is kept (``AgentLog``, written to ``agent.json``). An answer that is not usable
(empty, no words, a backend error) falls back to the defaults (``--entities`` and the paper's default
prompt) with a note saying why. Without a model (``vlm=None``) the defaults are used directly.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import torch

from wanderview.backends import agent_prompts as prompts
from wanderview.errors import BackendError

MAX_PROMPT_CHARS = 400  # video models read ~226-512 tokens; a rambling answer is cut at a sentence end


@dataclass
class AgentLog:
    """Everything the agent asked and answered during a run (JSON-ready through ``to_dict``)."""

    model: str = "none"
    steps: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _ask(vlm, image: torch.Tensor, text: str, log: AgentLog, stage: str) -> str:
    """One question; a backend failure becomes an empty answer and a note (the run continues)."""
    try:
        answer = vlm.ask([image], text)
    except BackendError as err:
        log.notes.append(f"{stage}: the vision-language model failed ({err}); using the default")
        answer = ""
    log.steps.append({"stage": stage, "question": text, "answer": answer})
    return answer


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z][A-Za-z'-]+", text)


def is_text(text: str, min_words: int = 1) -> bool:
    """True for readable text: no replacement or control characters, mostly letters, spaces and
    punctuation, and at least ``min_words`` words (a random model's bytes are not a prompt)."""
    if not text or "\ufffd" in text or any(ord(c) < 32 and c not in "\n\t" for c in text):
        return False
    plain = sum(c.isalpha() or c.isspace() or c in ".,;:!?'\"-()" for c in text)
    return plain >= 0.9 * len(text) and len(_words(text)) >= min_words


def _clean_prompt(answer: str) -> str:
    """The motion prompt inside an answer: labels and quotes dropped, cut near MAX_PROMPT_CHARS."""
    text = answer.strip()
    match = re.search(r"dynamical description['\"]?\s*[:=]\s*(.+)", text, flags=re.IGNORECASE | re.DOTALL)
    if match:
        text = match.group(1)
    text = " ".join(text.replace("\n", " ").split()).strip(" '\"`{}")
    if len(text) > MAX_PROMPT_CHARS:
        cut = text[:MAX_PROMPT_CHARS]
        text = cut[: cut.rfind(".") + 1] if "." in cut else cut
    return text


def parse_entities(answer: str, limit: int = 10) -> tuple[str, list[str]]:
    """'Scene Name: a, b and c.' -> ('Scene Name', ['a', 'b', 'c']); ('', []) when nothing usable."""
    text = " ".join(answer.strip().split())
    scene = ""
    if ":" in text:
        scene, text = (part.strip() for part in text.split(":", 1))
        if len(_words(scene)) > 8:  # a sentence before the colon, not a name
            scene = ""
    parts = re.split(r",|;|\band\b|\n", text)
    entities = []
    for part in parts:
        part = part.strip(" .'\"`-*0123456789)")
        if (
            1 <= len(_words(part)) <= 8
            and is_text(part)
            and part.lower() not in (e.lower() for e in entities)
        ):
            entities.append(part)
    return scene.strip(" '\"`*"), entities[:limit]


def default_motion_prompt(entities: list[str]) -> str:
    """The paper's default guidance, naming the given entities when there are any."""
    if not entities:
        return prompts.DEFAULT_DYNAMICS_PROMPT
    return f"{prompts.DEFAULT_DYNAMICS_PROMPT} {', '.join(entities)} in motion."


def inpaint_prompt(entities: list[str]) -> str:
    """Stage I's inpainting prompt: the entities, moving ones first (the agent orders them so)."""
    return ", ".join(entities) if entities else prompts.DEFAULT_INPAINT_PROMPT


def imagine_entities(
    vlm, image: torch.Tensor, log: AgentLog, fallback: list[str], count: int = 10
) -> list[str]:
    """Entities for the next views: the agent's imagined list, or ``fallback`` (with a note) without one.

    image: (3, H, W) in [0, 1]. Returns at most ``count`` entity names.
    """
    if vlm is None:
        return list(fallback)[:count]
    current = _ask(vlm, image, prompts.IDENTIFY_ENTITIES, log, "identify current entities")
    _, seen = parse_entities(current, limit=count)
    text = prompts.IMAGINE_ENTITIES.format(count=count, current=", ".join(seen) or "(none identified)")
    scene, imagined = parse_entities(_ask(vlm, image, text, log, "imagine dynamic entities"), limit=count)
    if not imagined:
        log.notes.append("the agent imagined no usable entities; using --entities")
        return list(fallback)[:count]
    log.steps[-1]["scene_name"], log.steps[-1]["entities"] = scene, imagined
    return imagined


def motion_prompt(vlm, image: torch.Tensor, entities: list[str], log: AgentLog) -> str:
    """Stage II's prompt from the three-step chain of thought, or the default prompt (with a note).

    image: (3, H, W) in [0, 1], the view Stage II animates; entities: possible dynamic objects.
    """
    default = default_motion_prompt(entities)
    if vlm is None:
        return default
    listed = ", ".join(entities) or "(none given: identify some yourself)"
    identified = _ask(vlm, image, prompts.CHAIN_IDENTIFY.format(entities=listed), log, "chain 1: identify")
    described = _ask(
        vlm,
        image,
        prompts.CHAIN_DESCRIBE.format(identified=identified.strip() or listed),
        log,
        "chain 2: describe",
    )
    written = _ask(
        vlm,
        image,
        prompts.CHAIN_WRITE.format(described=described.strip() or listed),
        log,
        "chain 3: write prompt",
    )
    prompt = _clean_prompt(written)
    if not is_text(prompt, min_words=2):
        log.notes.append(
            f"the agent's final answer {written[:60]!r} is not a usable prompt; using the default"
        )
        prompt = default
    log.steps[-1]["prompt"] = prompt
    return prompt
