"""Bounded-memory accumulators: a counter of the most frequent keys and a number summary.

Both keep a fixed amount of state however many values they see, so a 100,000-result batch
costs no more memory than a 100-result one.
"""

from __future__ import annotations

import math
import random
from typing import Any

RESERVOIR_SIZE = 4096
PERCENTILES = (10, 25, 50, 75, 90)
_MAX_LABEL_CHARS = 200


class TopCounter:
    """Counts keys exactly while there are at most ``capacity`` distinct ones.

    Beyond that (free-text items from an LLM can be endless), it keeps the ``capacity`` most
    frequent keys whenever the table doubles, so memory stays bounded; counts of keys that were
    dropped and came back are then lower bounds and ``approximate`` says so.
    """

    def __init__(self, capacity: int = 2000, *, seed_keys: tuple[str, ...] = ()) -> None:
        self.capacity = max(capacity, len(seed_keys))
        self.counts: dict[str, int] = dict.fromkeys(seed_keys, 0)
        self.labels: dict[str, str] = {}  # display text, when it differs from the key
        self._seeded = frozenset(seed_keys)
        self.total = 0
        self.approximate = False

    def add(self, key: str, n: int = 1, *, label: str | None = None) -> None:
        key = key[:_MAX_LABEL_CHARS]
        if key not in self.counts and label is not None and label[:_MAX_LABEL_CHARS] != key:
            self.labels[key] = label[:_MAX_LABEL_CHARS]
        self.counts[key] = self.counts.get(key, 0) + n
        self.total += n
        if len(self.counts) > 2 * self.capacity:
            self._prune()

    def _prune(self) -> None:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ranked[: self.capacity])
        for key in self._seeded:  # known enum values stay, even at zero
            kept.setdefault(key, self.counts[key])
        self.counts = kept
        self.labels = {k: v for k, v in self.labels.items() if k in kept}
        self.approximate = True

    def most_common(self, n: int | None = None) -> list[tuple[str, int]]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked if n is None else ranked[:n]

    def label(self, key: str) -> str:
        return self.labels.get(key, key)

    @property
    def distinct(self) -> int | None:
        """How many distinct keys were seen; unknown once pruning dropped some."""
        if self.approximate:
            return None
        return sum(1 for key, n in self.counts.items() if n > 0 or key not in self._seeded)


class NumberSummary:
    """Count, mean, spread, extremes, percentiles and a histogram of a stream of numbers.

    Mean and standard deviation are exact (Welford). Percentiles come from a fixed-size uniform
    reservoir sample, exact while no more than ``RESERVOIR_SIZE`` values were seen. The histogram
    is exact over ``minimum``..``maximum`` when the schema gives both; otherwise it is drawn from
    the sample (``estimated`` once the sample is smaller than the stream).
    """

    def __init__(
        self,
        *,
        bins: int = 10,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        reservoir_size: int = RESERVOIR_SIZE,
        seed: int = 0,
    ) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.sample: list[float] = []
        self._size = reservoir_size
        self._rng = random.Random(seed)  # seeded so the same results give the same report
        self.edges: list[float] | None = None
        if minimum is not None and maximum is not None and maximum > minimum:
            self.edges = _edges(minimum, maximum, bins, integer)
        self.hist = [0] * (len(self.edges) - 1) if self.edges else []
        self.bins = bins
        self.integer = integer

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if len(self.sample) < self._size:
            self.sample.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot < self._size:
                self.sample[slot] = value
        if self.edges:
            self.hist[_bin_index(self.edges, value)] += 1

    def finish(self) -> dict[str, Any]:
        if not self.count:
            return {
                "count": 0,
                "mean": None,
                "min": None,
                "max": None,
                "stdev": None,
                "percentiles": {},
                "histogram": None,
            }
        ordered = sorted(self.sample)
        return {
            "count": self.count,
            "mean": _round(self.mean),
            "min": _round(self.low),
            "max": _round(self.high),
            "stdev": _round(math.sqrt(self._m2 / self.count)),
            "percentiles": {f"p{q}": _round(_quantile(ordered, q / 100)) for q in PERCENTILES},
            "percentiles_exact": self.count <= self._size,
            "histogram": self._histogram(ordered),
        }

    def _histogram(self, ordered: list[float]) -> dict[str, Any]:
        if self.edges:
            return {"edges": self.edges, "counts": list(self.hist), "estimated": False}
        edges = _edges(ordered[0], ordered[-1], self.bins, self.integer, nice=True)
        counts = [0] * (len(edges) - 1)
        for value in ordered:
            counts[_bin_index(edges, value)] += 1
        estimated = self.count > len(ordered)
        if estimated:  # scale the sample's shape up to the stream's count
            counts = _scaled(counts, self.count)
        return {"edges": edges, "counts": counts, "estimated": estimated}


def _quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _edges(
    low: float, high: float | None, bins: int, integer: bool, *, nice: bool = False
) -> list[float]:
    """Bin edges from ``low`` to ``high``; integers get whole-number bins, the last one closed."""
    high = low if high is None else high
    if integer:
        low, high = math.floor(low), math.floor(high) + 1
        width: float = max(1, math.ceil((high - low) / bins))
    elif high <= low:
        return [low, low + 1.0]
    elif nice:
        width = _nice(span=(high - low) / bins)
        low = math.floor(low / width) * width
    else:
        width = (high - low) / bins
    edges = [_round(low + i * width) for i in range(bins + 2)]
    while len(edges) > 2 and edges[-2] >= high:
        edges.pop()
    return edges


def _nice(span: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least ``span``."""
    power: float = 10.0 ** math.floor(math.log10(span))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= span)


def _bin_index(edges: list[float], value: float) -> int:
    """Half-open bins, except that the last one also takes its upper edge; outliers clamp."""
    last = len(edges) - 2
    if value >= edges[-1]:
        return last
    lo, hi = 0, last
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if edges[mid] <= value:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _scaled(counts: list[int], total: int) -> list[int]:
    """Scale ``counts`` to sum to ``total`` (largest remainders get the rounding)."""
    base = sum(counts)
    exact = [c * total / base for c in counts]
    scaled = [math.floor(x) for x in exact]
    order = sorted(range(len(counts)), key=lambda i: scaled[i] - exact[i])
    for i in order[: total - sum(scaled)]:
        scaled[i] += 1
    return scaled


def _round(value: float) -> float:
    return round(value, 6)
