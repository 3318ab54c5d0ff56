"""A library's automation, kept in the catalog: the processors that run on its new and
changed files (in order), how it is watched, and its schedule. Also what its watcher is
doing (its watch state), which the API and the page show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from mediamill.catalog.db import Catalog
from mediamill.catalog.models import Library, utcnow
from mediamill.watch.schedule import Schedule

WATCH_MODES = ("auto", "native", "poll", "off")
#: a watcher refreshes its state this often; older than twice that, nobody watches
STATE_REFRESH = 30.0


@dataclass(frozen=True, slots=True)
class Automation:
    """``watch``: ``auto`` (native events, polling on network file systems), ``native``,
    ``poll`` (every ``poll_seconds``), ``off`` (only the schedule runs)."""

    processors: tuple[str, ...] = ()
    watch: str = "auto"
    poll_seconds: float | None = None
    settle_seconds: float | None = None
    schedule: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Automation:
        """Checked: an unknown processor, watch mode or a bad schedule is a ``ValueError``."""
        from mediamill.watch.queue import check_processors

        raw = dict(raw or {})
        unknown = set(raw) - {"processors", "watch", "poll_seconds", "settle_seconds", "schedule"}
        if unknown:
            raise ValueError(f"unknown automation setting(s): {', '.join(sorted(unknown))}")
        auto = cls(
            processors=tuple(check_processors(list(raw.get("processors") or []))),
            watch=str(raw.get("watch") or "auto"),
            poll_seconds=_positive(raw, "poll_seconds"),
            settle_seconds=_positive(raw, "settle_seconds"),
            schedule=str(raw["schedule"]).strip() or None if raw.get("schedule") else None,
        )
        if auto.watch not in WATCH_MODES:
            raise ValueError(f"watch must be one of {', '.join(WATCH_MODES)}, not {auto.watch!r}")
        if auto.schedule:
            Schedule.parse(auto.schedule)
        return auto

    def as_dict(self) -> dict[str, Any]:
        return {
            "processors": list(self.processors),
            "watch": self.watch,
            "poll_seconds": self.poll_seconds,
            "settle_seconds": self.settle_seconds,
            "schedule": self.schedule,
        }

    @property
    def active(self) -> bool:
        """Whether anything runs by itself: processors to watch for, or a schedule."""
        return bool(self.processors) and (self.watch != "off" or bool(self.schedule))


def _positive(raw: dict[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    number = float(value)
    if number <= 0:
        raise ValueError(f"{key} must be more than 0")
    return number


def automation(catalog: Catalog, library_id: int) -> Automation:
    with catalog.engine.connect() as conn:
        raw = conn.execute(
            select(Library.c.automation).where(Library.c.id == library_id)
        ).scalar_one_or_none()
    return Automation.from_dict(raw) if raw else Automation()


def set_automation(catalog: Catalog, library_id: int, auto: Automation) -> None:
    """Store it; a new schedule counts from now (it does not fire for times already past)."""
    old = automation(catalog, library_id)
    values: dict[str, Any] = {"automation": auto.as_dict()}
    if auto.schedule != old.schedule:
        values["scheduled_at"] = utcnow()
    with catalog.engine.begin() as conn:
        conn.execute(update(Library).where(Library.c.id == library_id).values(**values))


def automations(catalog: Catalog) -> dict[int, Automation]:
    """Every folder library's automation that runs anything, by library id."""
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(Library.c.id, Library.c.automation).where(
                Library.c.kind == "folder", Library.c.automation.is_not(None)
            )
        ).all()
    found = {}
    for library_id, raw in rows:
        try:
            auto = Automation.from_dict(raw)
        except ValueError:
            continue  # a processor that is no longer installed: its state says so
        if auto.active:
            found[library_id] = auto
    return found


def save_state(catalog: Catalog, library_id: int, state: dict[str, Any] | None) -> None:
    from mediamill.jobs.manager import this_owner

    value = None if state is None else {**state, "owner": this_owner(), "seen_at": _now()}
    with catalog.engine.begin() as conn:
        conn.execute(update(Library).where(Library.c.id == library_id).values(watch_state=value))


def watch_state(catalog: Catalog, library_id: int) -> dict[str, Any] | None:
    """What the library's watcher last said, or ``stopped`` when it has not said anything
    for a while (its process ended); ``None`` when it was never watched."""
    with catalog.engine.connect() as conn:
        state = conn.execute(
            select(Library.c.watch_state).where(Library.c.id == library_id)
        ).scalar_one_or_none()
    if not state:
        return None
    seen = datetime.fromisoformat(state.get("seen_at") or "1970-01-01T00:00:00+00:00")
    if datetime.now(UTC) - seen > timedelta(seconds=2 * STATE_REFRESH + 5):
        return {**state, "state": "stopped", "detail": f"not watched since {seen:%Y-%m-%d %H:%M}"}
    return dict(state)


def claim_scheduled_run(catalog: Catalog, library_id: int, fired: datetime) -> bool:
    """Take the run of a schedule that fired at ``fired`` (aware); ``False`` when it ran
    since (here or in another process sharing the catalog)."""
    with catalog.engine.begin() as conn:
        taken = conn.execute(
            update(Library)
            .where(
                Library.c.id == library_id,
                or_(Library.c.scheduled_at.is_(None), Library.c.scheduled_at < fired),
            )
            .values(scheduled_at=fired)
        ).rowcount
    return bool(taken)


def _now() -> str:
    return datetime.now(UTC).isoformat()
