"""What the emulated model "read": sentences, keywords and names pulled from the source text.

Answers are built from these so a summary quotes the call and topics are words that occur in it.
Analysis looks at the first ~20k characters only and is cached per text, which keeps an hour-long
transcript cheap to answer about repeatedly.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass

from emulator.rng import text_key

_SCAN_CHARS = 20_000
_CACHE_SIZE = 512
_SENTENCE = re.compile(r"[^.!?]+[.!?]")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_NAME = re.compile(r"\b([A-Z][a-z]+ [A-Z][a-z]+)\b")
_STOP_WORDS = (
    "that this with have from your about there their would could should will what when which "
    "they them then than been were just like okay yeah right sure thank thanks please hello "
    "calling today help into also does know need want it's i'm i've i'll we've you're that's "
    "let's can't didn't don't one moment"
)
_STOP = frozenset(_STOP_WORDS.split())
_FALLBACK_SENTENCES = ("The caller asked for help and the agent resolved the request.",)


@dataclass(frozen=True)
class Source:
    key: str
    sentences: tuple[str, ...]
    keywords: tuple[str, ...]
    names: tuple[str, ...]


_cache: OrderedDict[str, Source] = OrderedDict()


def analyse(text: str) -> Source:
    """Facts about ``text`` (cached by content)."""
    key = text_key(text)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    head = text[:_SCAN_CHARS]
    sentences = tuple(dict.fromkeys(s.strip() for s in _SENTENCE.findall(head) if len(s) > 12))
    counts = Counter(w.lower() for w in _WORD.findall(head) if w.lower() not in _STOP)
    names = tuple(dict.fromkeys(_NAME.findall(head)))
    src = Source(
        key=key,
        sentences=sentences[:400] or _FALLBACK_SENTENCES,
        keywords=tuple(w for w, _ in counts.most_common(40)) or ("call", "request", "follow-up"),
        names=names[:20] or ("Alex Morgan",),
    )
    _cache[key] = src
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return src
