"""Throttles: an items-per-second ceiling, and an adaptive window that keeps per-item latency
near a target (backs off when the disk or NAS slows down, speeds up when it is idle)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimit:
    """A token bucket: at most ``rate`` items per second on average, bursts of one second."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate = rate if rate and rate > 0 else None
        self._tokens = self.rate or 0.0
        self._last = clock()

    def delay(self, n: int) -> float:
        """Seconds to wait before ``n`` more items may start (0 when they may start now);
        when 0 is returned, the items are counted as started."""
        if self.rate is None:
            return 0.0
        now = self.clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n or (n > self.rate and self._tokens >= self.rate):
            self._tokens -= n
            return 0.0
        return (min(n, self.rate) - self._tokens) / self.rate


class AdaptiveWindow:
    """AIMD on the number of batches in flight, steered by the mean per-item latency.

    Above the target the window halves; well below it the window grows by one. Checked at
    most twice a second so one slow item does not whipsaw it.
    """

    def __init__(
        self,
        maximum: int,
        target_latency: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.maximum = max(1, maximum)
        self.target = target_latency if target_latency and target_latency > 0 else None
        self.size = self.maximum if self.target is None else max(1, self.maximum // 2)
        self._sum = 0.0
        self._n = 0
        self._checked = clock()

    def grow_to(self, maximum: int) -> None:
        """Allow up to ``maximum`` batches (an executor found more workers than asked for)."""
        if maximum > self.maximum:
            self.maximum = maximum
            if self.target is None:
                self.size = maximum

    def observe(self, duration: float) -> None:
        if self.target is None:
            return
        self._sum += duration
        self._n += 1
        now = self.clock()
        if now - self._checked < 0.5 or self._n < 4:
            return
        mean = self._sum / self._n
        if mean > self.target * 1.2:
            self.size = max(1, self.size // 2)
        elif mean < self.target * 0.8:
            self.size = min(self.maximum, self.size + 1)
        self._sum, self._n, self._checked = 0.0, 0, now
