"""Strings that match a regular expression, built from Python's own regex parse tree.

Covers what schema authors write in practice: literals, classes, ``\\d``/``\\w``/``\\s``,
groups, alternation, bounded and unbounded repeats (capped a few past the minimum) and
backreferences. Lookarounds are ignored; the caller validates and retries.
"""

from __future__ import annotations

import random
import string

# The regex parser (public as the deprecated ``sre_parse`` alias; re._parser since 3.11, the
# oldest Python tbatch supports). Typeshed does not describe the private module.
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

_CATEGORIES = {
    "CATEGORY_DIGIT": string.digits,
    "CATEGORY_NOT_DIGIT": string.ascii_letters,
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_SPACE": string.ascii_letters + string.digits,
    "CATEGORY_WORD": string.ascii_letters + string.digits + "_",
    "CATEGORY_NOT_WORD": " -.,",
}
_PRINTABLE = string.ascii_letters + string.digits + " -_"
_EXTRA_REPEATS = 3


def _class(rng: random.Random, items: list[Any]) -> str:
    negate = False
    pool: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            pool.append(chr(arg))
        elif name == "RANGE":
            lo, hi = arg
            pool.extend(chr(c) for c in range(lo, min(hi, lo + 200) + 1))
        elif name == "CATEGORY":
            pool.extend(_CATEGORIES.get(str(arg), string.ascii_letters))
    if negate:
        banned = set(pool)
        pool = [c for c in _PRINTABLE if c not in banned]
    return rng.choice(pool) if pool else "x"


class _Gen:
    def __init__(self, rng: random.Random, budget: int) -> None:
        self.rng = rng
        self.budget = budget
        self.groups: dict[int, str] = {}

    def emit(self, tree: Any) -> str:
        return "".join(self._node(op, arg) for op, arg in tree)

    def _node(self, op: Any, arg: Any) -> str:
        name = str(op)
        rng = self.rng
        if name == "LITERAL":
            return chr(arg)
        if name == "NOT_LITERAL":
            return next(c for c in _PRINTABLE if ord(c) != arg)
        if name == "ANY":
            return rng.choice(string.ascii_lowercase)
        if name == "IN":
            return _class(rng, arg)
        if name == "BRANCH":
            return self.emit(rng.choice(arg[1]))
        if name == "SUBPATTERN":
            text = self.emit(arg[-1])
            if arg[0] is not None:
                self.groups[arg[0]] = text
            return text
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = arg
            top = min(hi, lo + _EXTRA_REPEATS, max(lo, self.budget))
            return "".join(self.emit(sub) for _ in range(rng.randint(lo, max(lo, top))))
        if name == "GROUPREF":
            return self.groups.get(arg, "")
        if name == "CATEGORY":
            return rng.choice(_CATEGORIES.get(str(arg), "x"))
        return ""  # AT (anchors), ASSERT, ASSERT_NOT: no characters


def sample_pattern(rng: random.Random, pattern: str, lo: int = 0, hi: object = None) -> str:
    """A string matching ``pattern`` (best effort), preferring lengths in [lo, hi]."""
    tree = sre_parse.parse(pattern)
    budget = int(hi) if isinstance(hi, int) else max(lo, 8)
    return _Gen(rng, budget).emit(tree)
