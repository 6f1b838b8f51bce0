"""A heartbeat: the scheduler's proof of life, read by ``/readyz`` and the watchdog.

A process can serve HTTP while its scheduler thread is stuck (a hung
provider call, a deadlock): then calendars silently stop syncing. The
scheduler beats after every calendar it syncs and every idle round, and a
heartbeat older than its ``max_age`` makes the process unready. Monotonic
time, so a clock step on the host neither fakes nor hides a stall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Heartbeat:
    """Thread-safe: the scheduler beats, web requests and the watchdog read."""

    def __init__(self, max_age: float = 120.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age <= 0:
            raise ValueError("a heartbeat's max_age must be positive")
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def beat(self) -> None:
        now = self._clock()
        with self._lock:
            self._last = now

    def age(self) -> float | None:
        """Seconds since the last beat; None before the first one."""
        with self._lock:
            last = self._last
        return None if last is None else max(0.0, self._clock() - last)

    def fresh(self, max_age: float | None = None) -> bool:
        """Whether it beat within ``max_age`` seconds (default: its own); never before a beat."""
        age = self.age()
        return age is not None and age <= (self.max_age if max_age is None else max_age)


class WriteHealth:
    """Whether the web's last database write went through; read by ``/readyz``.

    A person's edit that the database refuses (locked, disk full, read-only
    after a failover) makes the process unready until a write goes through
    again, or the readiness probe finds the database writable, so a load
    balancer sends people to a replica that can save what they type.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing = False

    def refused(self) -> None:
        with self._lock:
            self._failing = True

    def accepted(self) -> None:
        with self._lock:
            self._failing = False

    @property
    def failing(self) -> bool:
        with self._lock:
            return self._failing
