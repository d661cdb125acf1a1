"""Five-field cron expressions: parse them into sets and compute the next run times (UTC).

Pure, so the config can be validated and ``tbatch nightly check`` can show the next runs without
Celery. The expanded sets are what Celery beat's ``crontab`` receives (see ``schedule.py``), so
both agree on every field. As in Celery beat (and unlike Vixie cron), a time must match *both*
day-of-month and day-of-week.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for values from ``lowest`` on)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_SEARCH_DAYS = 8 * 366 + 1  # leap days can be 8 years apart; impossible specs raise on parse


@dataclass(frozen=True)
class Cron:
    expression: str
    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]  # 0 = Sunday

    def matches_day(self, day: date) -> bool:
        return (
            day.month in self.month
            and day.day in self.day_of_month
            and (day.weekday() + 1) % 7 in self.day_of_week
        )

    def next_times(self, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` times strictly after ``after`` (converted to UTC)."""
        found: list[datetime] = []
        for moment in self._times_from(after.astimezone(UTC)):
            found.append(moment)
            if len(found) == count:
                break
        return found

    def _times_from(self, after: datetime) -> Iterator[datetime]:
        start_day = after.date()
        for offset in range(_SEARCH_DAYS):
            day = start_day + timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for hour in sorted(self.hour):
                for minute in sorted(self.minute):
                    moment = datetime.combine(day, time(hour, minute), tzinfo=UTC)
                    if moment > after:
                        yield moment


def parse_cron(expression: str) -> Cron:
    """Parse ``"m h dom mon dow"``; raises ValueError naming the bad part."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)} in {expression!r}"
        )
    sets = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    minute, hour, dom, month, dow = sets
    cron = Cron(expression, minute, hour, dom, month, frozenset(d % 7 for d in dow))
    if not any(cron.matches_day(date(2000, 1, 1) + timedelta(days=n)) for n in range(_SEARCH_DAYS)):
        raise ValueError(f"{expression!r} never matches a day")
    return cron


def _parse_field(
    text: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, name, low, high, names)
    return frozenset(values)


def _parse_item(item: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    span, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ValueError(f"{name}: bad step {step_text!r} in {item!r}")
        step = int(step_text)
    if span == "*":
        first, last = low, high
    elif "-" in span:
        a, _, b = span.partition("-")
        first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
        if first > last:
            raise ValueError(f"{name}: range {span!r} runs backwards")
    else:
        first = _value(span, name, low, high, names)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        return low + names.index(lowered)
    if not text.isdigit():
        raise ValueError(f"{name}: {text!r} is not a number" + (" or a name" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is out of range {low}-{high}")
    return value
