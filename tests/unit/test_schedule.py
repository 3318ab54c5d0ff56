"""Cron-like schedules: when they fire, and a run missed during downtime runs once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mediamill.catalog.db import Catalog
from mediamill.sources.folder import library_for_folder
from mediamill.watch.automation import (
    Automation,
    automation,
    claim_scheduled_run,
    set_automation,
)
from mediamill.watch.schedule import Schedule, ScheduleError


def test_a_nightly_schedule_fires_at_its_time_and_not_before() -> None:
    nightly = Schedule.parse("30 3 * * *")
    assert nightly.latest(datetime(2026, 5, 2, 3, 29)) == datetime(2026, 5, 1, 3, 30)
    assert nightly.latest(datetime(2026, 5, 2, 3, 30, 59)) == datetime(2026, 5, 2, 3, 30)
    assert nightly.next(datetime(2026, 5, 2, 3, 30)) == datetime(2026, 5, 3, 3, 30)
    assert nightly.next(datetime(2026, 5, 2, 1, 0)) == datetime(2026, 5, 2, 3, 30)


def test_steps_ranges_lists_weekdays_and_aliases() -> None:
    weekdays = Schedule.parse("*/15 9-17 * * 1-5")  # every quarter hour, office hours
    saturday = datetime(2026, 5, 2, 12, 0)  # a Saturday
    assert weekdays.next(saturday) == datetime(2026, 5, 4, 9, 0)
    assert weekdays.latest(saturday) == datetime(2026, 5, 1, 17, 45)
    assert Schedule.parse("@weekly").next(saturday) == datetime(2026, 5, 3, 0, 0)  # Sunday
    assert Schedule.parse("0 0 1,15 * *").next(saturday) == datetime(2026, 5, 15, 0, 0)
    # day of month and day of week both given: either one will do, as in cron
    assert Schedule.parse("0 0 13 * 5").next(saturday) == datetime(2026, 5, 8, 0, 0)
    assert Schedule.parse("0 0 29 2 *").next(saturday) == datetime(2028, 2, 29, 0, 0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 3 * *", "five fields"),
        ("61 * * * *", "minute '61' is out of 0-59"),
        ("0 3 * * mon", "day of week 'mon' is not a number"),
        ("*/0 * * * *", "out of"),
    ],
)
def test_a_bad_schedule_says_which_field_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        Schedule.parse(text)


def test_a_schedule_missed_during_downtime_runs_once(catalog: Catalog, tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    library = library_for_folder(catalog, tmp_path / "lib")
    set_automation(catalog, library.id, Automation(processors=("probe",), schedule="0 * * * *"))
    assert automation(catalog, library.id).schedule == "0 * * * *"
    hourly = Schedule.parse("0 * * * *")
    # a new schedule counts from now: the hour that began before it was set does not run
    now = datetime.now(UTC)
    fired = hourly.latest(now.astimezone().replace(tzinfo=None))
    assert fired is not None
    assert not claim_scheduled_run(catalog, library.id, fired.astimezone(UTC))
    # three fire times later (the machine was off), the latest one runs once
    later = now + timedelta(hours=3)
    fired = hourly.latest(later.astimezone().replace(tzinfo=None))
    assert fired is not None
    assert claim_scheduled_run(catalog, library.id, fired.astimezone(UTC))
    assert not claim_scheduled_run(catalog, library.id, fired.astimezone(UTC))


def test_automation_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="nosuch"):
        Automation.from_dict({"processors": ["nosuch"]})
    with pytest.raises(ValueError, match="watch must be one of"):
        Automation.from_dict({"watch": "sometimes"})
    with pytest.raises(ValueError, match="five fields"):
        Automation.from_dict({"schedule": "daily"})
    with pytest.raises(ValueError, match="unknown automation setting"):
        Automation.from_dict({"procesors": ["probe"]})
    auto = Automation.from_dict({"processors": ["probe", "audio"], "schedule": ""})
    assert (auto.processors, auto.schedule, auto.watch) == (("probe", "audio"), None, "auto")
