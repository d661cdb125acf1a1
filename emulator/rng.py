"""Deterministic randomness for the emulator.

Every "random" choice the emulator makes (transcript ids, answer content, fault decisions) is a
pure function of the seed and of named parts, hashed with blake2b. Python's ``hash()`` is salted
per process, so it would make two runs of the same scenario disagree.
"""

from __future__ import annotations

import hashlib
import random

_SEP = "\x1f"


def digest(*parts: object) -> int:
    """A stable 64-bit integer for ``parts`` (same in every process and run)."""
    raw = _SEP.join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A stable float in [0, 1) for ``parts``; the fault dice."""
    return digest(*parts) / 2.0**64


def seeded(*parts: object) -> random.Random:
    """A ``random.Random`` whose stream depends only on ``parts``."""
    return random.Random(digest(*parts))


def text_key(text: str) -> str:
    """A short stable key for a (possibly long) text, used to cache per-text work."""
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
