"""Cron-like schedules: ``minute hour day-of-month month day-of-week`` (``*``, lists,
ranges, steps; ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``), in local time.

Only the latest time a schedule fired matters: a run is due when that time is later than
the last run, so a machine that was down through several fire times runs once, not N times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))  # fmt: skip
#: how far back a schedule's last fire time is looked for (a 29 February needs four years)
LOOK_BACK_DAYS = 366 * 4 + 1


class ScheduleError(ValueError):
    """A schedule that does not parse; the message says which field and why."""


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                first, last = low, high
            elif "-" in body:
                first, last = (int(x) for x in body.split("-", 1))
            else:
                first = last = int(body)
        except ValueError:
            raise ScheduleError(f"{name} {part!r} is not a number, range or step") from None
        if step < 1 or not low <= first <= last <= high:
            raise ScheduleError(f"{name} {part!r} is out of {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class Schedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 too)
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Schedule:
        spec = ALIASES.get(text.strip(), text.strip())
        parts = spec.split()
        if len(parts) != 5:
            raise ScheduleError(
                f"schedule {text!r}: five fields are needed (minute hour day month weekday), "
                "e.g. '0 3 * * *' for 03:00 every day"
            )
        minutes, hours, days, months, weekdays = (
            _field(p, *f) for p, f in zip(parts, _FIELDS, strict=True)
        )
        return cls(
            text.strip(), minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
            any_day=parts[2] == "*", any_weekday=parts[4] == "*",
        )  # fmt: skip

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:  # cron: both restricted means either will do
            return in_month and in_week
        return in_month or in_week

    def latest(self, now: datetime) -> datetime | None:
        """The last fire time at or before ``now`` (same time zone as ``now``)."""
        now = now.replace(second=0, microsecond=0)
        for back in range(LOOK_BACK_DAYS):
            day = now - timedelta(days=back)
            if not self._day_matches(day):
                continue
            for hour in sorted(self.hours, reverse=True):
                if back == 0 and hour > now.hour:
                    continue
                earlier = back or hour < now.hour
                minutes = [m for m in self.minutes if earlier or m <= now.minute]
                if minutes:
                    return day.replace(hour=hour, minute=max(minutes))
        return None

    def next(self, now: datetime) -> datetime | None:
        """The first fire time after ``now``."""
        start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for ahead in range(LOOK_BACK_DAYS):
            day = start + timedelta(days=ahead)
            if not self._day_matches(day):
                continue
            for hour in sorted(self.hours):
                if ahead == 0 and hour < start.hour:
                    continue
                later = ahead or hour > start.hour
                minutes = [m for m in self.minutes if later or m >= start.minute]
                if minutes:
                    return day.replace(hour=hour, minute=min(minutes))
        return None
