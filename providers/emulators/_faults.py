"""The fault-plan bookkeeping both emulators share, so their scripting behaves alike.

A test that moves from one emulator to the other should find failures queued,
counted down and cleared the same way; only the error bodies differ, and
those stay with each emulator (``_error``). Everything here is locked because
the plan is scripted from the test's thread while handler threads consume it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["FaultPlan"]

E = TypeVar("E")


class _Push(Protocol):
    def drop(self, count: int) -> None: ...

    def duplicate(self, count: int) -> None: ...

    def clear_faults(self) -> None: ...


@dataclass
class _Failure:
    status: int
    code: str
    remaining: int
    retry_after: float | None
    message: str | None


class FaultPlan(Generic[E]):
    def __init__(self, ops: Set[str], push: _Push) -> None:
        self._ops = ops
        self._push = push
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._latency: dict[str | None, float] = {}
        self._hook: Callable[[str, str], None] | None = None
        self._hook_left: int | None = None
        self._raw: dict[str, list[object]] = {}

    def _enqueue(
        self,
        op: str,
        status: int,
        code: str,
        times: int,
        retry_after: float | None,
        message: str | None,
    ) -> None:
        self._check_op(op)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._failures.setdefault(op, []).append(
                _Failure(status, code, times, retry_after, message)
            )

    def _error(
        self, op: str, status: int, code: str, message: str | None, headers: dict[str, str]
    ) -> E:
        raise NotImplementedError

    def fail(
        self,
        op: str,
        status: int,
        code: str,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``op`` with ``status`` (queued after earlier ones).

        ``code`` is the service's error code (Google's ``reason``, such as
        ``rateLimitExceeded``; Graph's code, such as ``ApplicationThrottled``)
        or, for ``token``, the OAuth ``error`` (``invalid_client``,
        ``temporarily_unavailable``, ...).
        """
        self._enqueue(op, status, code, times, retry_after, message)

    def drop_notifications(self, count: int) -> None:
        """The next ``count`` notifications are lost on the way (Google: their numbers are used)."""
        self._push.drop(count)

    def duplicate_notifications(self, count: int) -> None:
        """The next ``count`` notifications arrive twice (Google: with the same message number)."""
        self._push.duplicate(count)

    def latency(self, seconds: float, op: str | None = None) -> None:
        """Delay every answer (or only ``op``'s) by ``seconds``; 0 removes the delay."""
        if op is not None:
            self._check_op(op)
        with self._lock:
            if seconds > 0:
                self._latency[op] = seconds
            else:
                self._latency.pop(op, None)

    def before_patch(
        self, callback: Callable[[str, str], None] | None, *, times: int | None = None
    ) -> None:
        """Call ``callback(calendar, event_id)`` when a PATCH arrives, before its If-Match check.

        That is the window in which a person can edit an event after the client
        read it. ``times`` limits how many PATCHes it sees (``None``: until
        replaced); ``None`` as callback removes it.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._hook = callback
            self._hook_left = times if callback is not None else None

    def inject(self, calendar: str, *resources: object) -> None:
        """Append ``resources``, exactly as given, to every page of changes of ``calendar``.

        They can be anything JSON can carry (an event with no start, a time that
        does not parse, a number where an object belongs): what a client must
        skip without losing the rest of the page. ``clear`` removes them.
        """
        with self._lock:
            self._raw.setdefault(calendar, []).extend(resources)

    def clear(self) -> None:
        """Drop pending failures, delays, notification faults, injections and the PATCH hook."""
        with self._lock:
            self._failures.clear()
            self._latency.clear()
            self._raw.clear()
            self._hook = None
            self._hook_left = None
        self._push.clear_faults()

    # ------------------------------------------------------ for the HTTP layer

    def delay(self, op: str | None) -> float:
        with self._lock:
            return self._latency.get(op, 0.0) + self._latency.get(None, 0.0)

    def take(self, op: str) -> E | None:
        """The scripted failure for this call of ``op``, if one is due."""
        with self._lock:
            queue = self._failures.get(op)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining == 0:
                queue.pop(0)
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(failure.retry_after)))
        return self._error(op, failure.status, failure.code, failure.message, headers)

    def injected(self, calendar: str) -> list[object]:
        with self._lock:
            return list(self._raw.get(calendar, ()))

    def run_before_patch(self, calendar: str, event_id: str) -> None:
        with self._lock:
            hook = self._hook
            if hook is not None and self._hook_left is not None:
                self._hook_left -= 1
                if self._hook_left == 0:
                    self._hook = None
                    self._hook_left = None
        if hook is not None:
            hook(calendar, event_id)

    def _check_op(self, op: str) -> None:
        if op not in self._ops:
            raise ValueError(f"unknown operation {op!r}; expected one of {sorted(self._ops)}")
