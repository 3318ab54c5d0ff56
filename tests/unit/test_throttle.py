"""Throttles: the items/s ceiling and the adaptive window that follows per-item latency."""

from __future__ import annotations

from pathlib import Path

from mediamill.catalog.db import Catalog
from mediamill.engine.throttle import AdaptiveWindow, RateLimit
from tests.conftest import make_files
from tests.helpers.run import run_folder


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_allows_at_most_rate_items_per_second() -> None:
    clock = FakeClock()
    limit = RateLimit(10, clock=clock)
    started = 0
    for _ in range(300):  # 3 simulated seconds in 10 ms steps
        while limit.delay(1) == 0:
            started += 1
        clock.now += 0.01
    assert 30 <= started <= 10 + 30 + 1, "a one-second burst, then 10 per second"


def test_no_rate_means_no_waiting() -> None:
    assert RateLimit(None).delay(1000) == 0


def test_adaptive_window_backs_off_when_items_slow_down_and_grows_when_fast() -> None:
    clock = FakeClock()
    window = AdaptiveWindow(16, target_latency=0.1, clock=clock)
    start = window.size
    for _ in range(5):  # the NAS slows down: items take 0.5 s
        clock.now += 0.6
        for _ in range(4):
            window.observe(0.5)
    assert window.size == 1
    for _ in range(30):  # it recovers: items take 10 ms
        clock.now += 0.6
        for _ in range(4):
            window.observe(0.01)
    assert window.size == 16
    assert start == 8


def test_without_a_target_the_window_stays_full() -> None:
    window = AdaptiveWindow(6, None)
    for _ in range(50):
        window.observe(10.0)
    assert window.size == 6


def test_a_job_with_a_rate_ceiling_does_not_exceed_it(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    make_files(root, [f"f{i}.bin" for i in range(30)])
    catalog = Catalog.open(f"sqlite:///{tmp_path / 'c.db'}")
    job = run_folder(
        catalog, root, "tests.helpers.processors:Echo", executor="threads", workers=2, rate=20.0
    )
    catalog.close()
    assert job["succeeded"] == 30
    elapsed = job["summary"]["elapsed"]
    assert elapsed >= (30 - 20) / 20 * 0.9, f"30 items at 20/s took only {elapsed:.2f} s"
