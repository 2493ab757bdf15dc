"""The prompt engineering of fourreal's freeze-time video (4Real §3.2), in one place.

The paper asks its video model for "camera motion and minimal object movement" by adding
"Camera circulating around" and "time elapse" to the beginning and end of the prompt "while
omitting action verbs". :func:`freeze_time_prompt` does exactly that to the user's scene prompt:

- an action verb is dropped with the auxiliaries, manner adverbs and conjunction before it ("a dog
  is running on the beach" -> "a dog on the beach", "a corgi dancing and spinning in a room" -> "a
  corgi in a room"); when its object follows, "and" (a creature: "a cat chasing a mouse" -> "a cat
  and a mouse") or "with" (a thing: "a girl playing the violin" -> "a girl with the violin") takes
  its place, so the scene keeps every object; manner adverbs ("quickly", ...) go everywhere;
- a verb form first in the prompt or right after an article is a noun or an adjective and stays
  ("waves crashing on rocks" -> "waves on rocks", "the running water");
- a leading article is lower-cased and trailing punctuation removed, then the template
  :data:`FREEZE_TIME_TEMPLATE` wraps the scene ("" -> "the scene").

The verb list (:data:`ACTION_VERBS`, each with its -s/-ing/-ed forms) is a hand-picked list of the
motions text-to-video prompts describe (people, animals, water, wind); a verb outside it is kept,
which at worst leaves some motion in the prompt — the per-frame deformation of §3.3 absorbs that.
The reference video uses the user's prompt unchanged.
"""

from __future__ import annotations

import re

FREEZE_TIME_TEMPLATE = "Camera circulating around {scene}, time elapse."
"""The freeze-time prompt; ``{scene}`` is the user's prompt without action verbs."""

_STEMS = """
    walk run jump dance play swim fly eat drink chase climb ride drive sing fight kick throw catch
    crash flow rush splash blow burst flicker
    roll spin splash wave sail surf ski skate crawl hop gallop race fall dive jog paddle pour stir
    cook chop type write paint read knit sew sweep wash shake nod blink wag flap flutter bounce
    slide swing push pull carry lift drop hit bite lick chew sniff scratch stretch yawn laugh cry
    shout talk smile wink clap whistle strum sip graze hunt pounce leap march stroll wander hover
    glide soar float drift move turn rotate twirl shuffle tumble wiggle waddle prowl sprint
""".split()
_IRREGULAR = """
    ran swam flew ate drank rode drove sang fought threw caught fell dove rang wrote read sewed
    swung bit shook spun leapt sat stood
""".split()
_AUXILIARIES = {"is", "are", "was", "were", "be", "being", "been", "keeps", "keep", "starts", "start"}
_MANNER = {"quickly", "slowly", "rapidly", "gracefully", "happily", "playfully", "energetically",
           "wildly", "excitedly", "fast", "vigorously", "gently", "briskly"}  # fmt: skip
_ARTICLES = {"a", "an", "the", "his", "her", "its", "their", "some", "two", "three", "several"}
_CONJUNCTIONS = {"and", "while", "as", "then", "or"}


def _forms(stem: str) -> set[str]:
    """stem, stem+s/es, stem+ing/ed with the usual spelling rules (run -> running, dance -> dancing)."""
    forms = {stem, stem + "s", stem + "es", stem + "ing", stem + "ed"}
    if stem.endswith("e"):
        forms |= {stem[:-1] + "ing", stem + "d"}
    if stem.endswith("y") and stem[-2:-1] not in "aeiou":
        forms |= {stem[:-1] + "ies", stem[:-1] + "ied"}
    if re.fullmatch(r".*[^aeiou][aeiou][bdgklmnprt]", stem):  # one short vowel: double the consonant
        forms |= {stem + stem[-1] + "ing", stem + stem[-1] + "ed"}
    return forms


ACTION_VERBS: frozenset[str] = frozenset().union(*(_forms(s) for s in _STEMS), _IRREGULAR)
"""Every form of the action verbs the freeze-time prompt drops."""


def strip_action_verbs(prompt: str) -> str:
    """``prompt`` without action verbs (see the module docstring): "a dog running on the beach" ->
    "a dog on the beach"."""
    words = prompt.strip().split()
    out: list[str] = []

    def drop(raw: str) -> None:  # a dropped word's punctuation stays with the text before it
        if raw[-1:] in ".,;:!?" and out:
            out[-1] = out[-1].rstrip(".,;:!?") + raw[-1]

    for i, raw in enumerate(words):
        word = _norm(raw)
        # a verb form right after an article, or first, is a noun or an adjective ("waves crashing",
        # "the running water")
        verb = word in ACTION_VERBS and i > 0 and _norm(words[i - 1]) not in _ARTICLES
        if word in _MANNER or (verb and not out):
            drop(raw)
            continue
        if not verb:
            out.append(raw)
            continue
        while out and _norm(out[-1]) in _AUXILIARIES | _MANNER | _CONJUNCTIONS:
            out.pop()
        nxt = _norm(words[i + 1]) if i + 1 < len(words) and raw[-1:] not in ".,;:!?" else ""
        if nxt and nxt not in _PREPOSITIONS | _CONJUNCTIONS | _MANNER | ACTION_VERBS:
            out.append("and" if _is_animate_object(words, i + 1) else "with")  # the verb's object
        drop(raw)
    text = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(out))
    return re.sub(r"[,;:\s]+$", "", text).strip()


def _norm(raw: str) -> str:
    return raw.lower().strip(".,;:!?")


_PREPOSITIONS = {"on", "in", "at", "with", "through", "across", "over", "under", "into", "onto", "around",
                 "along", "by", "near", "toward", "towards", "down", "up", "from", "past", "beside",
                 "behind", "between", "among", "inside", "outside", "above", "below", "to", "off",
                 "out", "away", "about", "underneath", "against", "during", "for"}  # fmt: skip
_ANIMATE = {"man", "woman", "boy", "girl", "child", "kid", "person", "people", "dog", "cat", "mouse", "bird",
            "horse", "cow", "sheep", "fish", "bear", "panda", "fox", "rabbit", "deer", "lion", "tiger",
            "squirrel", "duck", "puppy", "kitten", "monkey", "elephant", "wolf"}  # fmt: skip


def _is_animate_object(words: list[str], start: int) -> bool:
    """Whether the noun phrase at ``words[start:]`` names a creature ("a cat chasing a mouse": "and")
    rather than a thing ("a girl playing the violin": "with")."""
    for raw in words[start : start + 4]:
        word = raw.lower().strip(".,;:!?")
        if word in _ANIMATE or word.rstrip("s") in _ANIMATE:
            return True
    return False


def freeze_time_prompt(prompt: str) -> str:
    """The freeze-time video's prompt for a scene prompt: :data:`FREEZE_TIME_TEMPLATE` around it
    without action verbs ("A dog running on the beach." -> "Camera circulating around a dog on the
    beach, time elapse."). An empty prompt gives "the scene"."""
    scene = strip_action_verbs(prompt).rstrip(".,;:!? ")
    if not scene:
        scene = "the scene"
    first, _, rest = scene.partition(" ")
    if first in {"A", "An", "The"}:
        scene = first.lower() + (" " + rest if rest else "")
    return FREEZE_TIME_TEMPLATE.format(scene=scene)
