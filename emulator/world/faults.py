"""Which fault (if any) an attempt gets: a pure function of seed, model, subject and count.

``subject`` is the transcript id, or a hash of the prompt when there is none; ``n`` counts the
attempts already made for that (model, subject). A retry of the same transcript therefore rolls
new dice, while a rerun of the whole scenario (after ``/_emulator/reset``) rolls the same ones,
however the concurrent requests interleave.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from emulator.config import MALFORMED_KINDS, FaultRule
from emulator.rng import digest, unit

_5XX = (500, 502, 503)


@dataclass(frozen=True)
class Fault:
    """A decided fault: the concrete kind to apply plus the rule's extra settings."""

    kind: str
    status: int = 500
    retry_after_s: int | None = None


def decide(
    rules: list[FaultRule], seed: int, model: str, subject: str, transcript_id: str | None, n: int
) -> Fault | None:
    """The first rule (in order) that matches and whose dice fall under its rate."""
    for index, rule in enumerate(rules):
        if not rule.matches(model, transcript_id):
            continue
        if rule.times is not None and n >= rule.times:
            continue
        if rule.rate < 1.0 and unit(seed, "fault", index, model, subject, n) >= rule.rate:
            continue
        return _concrete(rule, seed, model, subject, n)
    return None


def _concrete(rule: FaultRule, seed: int, model: str, subject: str, n: int) -> Fault:
    pick = digest(seed, "fault-kind", model, subject, n)
    kind = MALFORMED_KINDS[pick % len(MALFORMED_KINDS)] if rule.kind == "malformed" else rule.kind
    status = rule.status or _5XX[pick % len(_5XX)]
    return Fault(kind=kind, status=status, retry_after_s=rule.retry_after_s)


@dataclass
class FaultCounter:
    """Attempts made so far per (model, subject); cleared by ``/_emulator/reset``."""

    counts: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def next(self, model: str, subject: str) -> int:
        """The count before this attempt, then record the attempt."""
        key = (model, subject)
        n = self.counts[key]
        self.counts[key] = n + 1
        return n

    def clear(self) -> None:
        self.counts.clear()
