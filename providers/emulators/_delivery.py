"""The notification worker both emulators' push hubs build on.

Real services notify from their own machinery, never inside the request that
caused a change, so the emulators deliver from one background thread too; a
client that only works when the notification lands before its response would
pass against an inline emulator and fail in production. ``wait_idle`` exists
so tests can still assert on deliveries without sleeping. Dropped and
duplicated deliveries are counted here so both emulators misbehave alike.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.request
from collections.abc import Callable

__all__ = ["DeliveryWorker"]


class DeliveryWorker:
    """Subclasses hold their own state under ``_lock`` too, so a fault decision and the
    message it applies to are taken together."""

    def __init__(self, *, thread_name: str) -> None:
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._drop = 0
        self._duplicate = 0
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued notification has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._jobs.all_tasks_done:
            while self._jobs.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._jobs.all_tasks_done.wait(remaining)
        return True

    # ------------------------------------------------------------------- faults

    def drop(self, count: int) -> None:
        with self._lock:
            self._drop += count

    def duplicate(self, count: int) -> None:
        with self._lock:
            self._duplicate += count

    def clear_faults(self) -> None:
        with self._lock:
            self._drop = self._duplicate = 0

    def _copies_locked(self) -> int:
        """How often the next delivery is sent: 0 when dropped. Call with ``_lock`` held."""
        if self._drop > 0:
            self._drop -= 1
            return 0
        if self._duplicate > 0:
            self._duplicate -= 1
            return 2
        return 1

    # ----------------------------------------------------------------- delivery

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            finally:
                self._jobs.task_done()
