"""String values: formats, regex patterns, and text drawn from the source by property name."""

from __future__ import annotations

import random
import re
import string
import uuid
from typing import Any

from emulator.answers.source import Source
from emulator.answers.xeger import sample_pattern


def _datetime(rng: random.Random) -> str:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    return f"2026-{month:02d}-{day:02d}T{rng.randint(8, 19):02d}:{rng.randint(0, 59):02d}:00Z"


def _email(rng: random.Random, src: Source) -> str:
    name = rng.choice(src.names).lower().replace(" ", ".")
    return re.sub(r"[^a-z.]", "", name) + "@example.com"


FORMATS: dict[str, Any] = {
    "date-time": _datetime,
    "date": lambda rng: _datetime(rng)[:10],
    "time": lambda rng: f"{rng.randint(8, 19):02d}:{rng.randint(0, 59):02d}:00Z",
    "duration": lambda rng: f"PT{rng.randint(1, 59)}M{rng.randint(0, 59)}S",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "ipv4": lambda rng: ".".join(str(rng.randint(1, 254)) for _ in range(4)),
    "ipv6": lambda rng: ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)),
    "hostname": lambda rng: f"calls{rng.randint(1, 99)}.example.com",
    "idn-hostname": lambda rng: f"calls{rng.randint(1, 99)}.example.com",
    "uri": lambda rng: f"https://example.com/calls/{rng.randint(1000, 9999)}",
    "iri": lambda rng: f"https://example.com/calls/{rng.randint(1000, 9999)}",
    "uri-reference": lambda rng: f"/calls/{rng.randint(1000, 9999)}",
    "iri-reference": lambda rng: f"/calls/{rng.randint(1000, 9999)}",
    "uri-template": lambda rng: "https://example.com/calls/{id}",
    "json-pointer": lambda rng: f"/calls/{rng.randint(0, 9)}",
    "relative-json-pointer": lambda rng: f"{rng.randint(0, 3)}/calls",
    "regex": lambda rng: "^[a-z]+$",
}

_LONG_HINTS = (
    "summary",
    "description",
    "overview",
    "notes",
    "reason",
    "explanation",
    "resolution",
    "details",
    "rationale",
    "feedback",
    "outcome",
    "comment",
)
_QUOTE_HINTS = ("quote", "evidence", "excerpt", "utterance", "text", "sentence")
_NAME_HINTS = ("name", "speaker", "customer", "agent", "owner", "assignee", "person", "caller")
_WORD_HINTS = (
    "topic",
    "keyword",
    "tag",
    "label",
    "category",
    "subject",
    "title",
    "theme",
    "intent",
    "issue",
    "product",
)


def from_source(rng: random.Random, src: Source, name: str) -> str:
    """A plausible value for a string property called ``name``, taken from the source text."""
    low = name.lower()
    if any(h in low for h in _LONG_HINTS):
        start = rng.randrange(len(src.sentences))
        return " ".join(src.sentences[start : start + rng.randint(1, 3)])
    if any(h in low for h in _QUOTE_HINTS):
        return rng.choice(src.sentences)
    if any(h in low for h in _NAME_HINTS):
        return rng.choice(src.names)
    if low.endswith("id") or low.endswith("_ids"):
        return f"{rng.choice(src.keywords)[:8]}-{rng.randint(100, 999)}"
    if any(h in low for h in _WORD_HINTS):
        return " ".join(rng.sample(src.keywords, k=min(len(src.keywords), rng.randint(1, 2))))
    words = rng.choice(src.sentences).split()
    start = rng.randrange(max(1, len(words) - 3))
    return " ".join(words[start : start + rng.randint(3, 8)]).strip(",.?!") or "follow up"


def _fit_length(rng: random.Random, src: Source, text: str, lo: int, hi: int | None) -> str:
    while len(text) < lo:
        text = f"{text} {rng.choice(src.keywords)}".strip()
    if hi is not None and len(text) > hi:
        text = text[:hi].rstrip() if hi > 0 else ""
        while len(text) < lo:  # rstrip may undercut minLength
            text += rng.choice(string.ascii_lowercase)
    return text


def make_string(rng: random.Random, schema: dict[str, Any], src: Source, name: str) -> str:
    """A string satisfying ``format``, ``pattern``, ``minLength`` and ``maxLength``."""
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in FORMATS:
        return str(FORMATS[fmt](rng)) if fmt not in ("email", "idn-email") else _email(rng, src)
    if fmt in ("email", "idn-email"):
        return _email(rng, src)
    patterns = [p for p in [schema.get("pattern"), *schema.get("_patterns", [])] if p]
    if patterns:
        for _ in range(20):
            text = sample_pattern(rng, str(patterns[0]), lo, hi)
            if all(re.search(str(p), text) for p in patterns) and lo <= len(text) <= (hi or 10**9):
                return text
        return text
    return _fit_length(rng, src, from_source(rng, src, name), lo, None if hi is None else int(hi))
