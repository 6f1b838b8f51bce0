"""Scripted failures of the Graph emulator, so tests can drive a client through every error path.

Failures are queued per operation and answered in the Microsoft cloud's own
shapes: the Graph error body (with ``Retry-After`` when asked, as throttling
429s and 503s carry it) for API operations, the Entra AADSTS body for
``token``. API failures are taken after the bearer token was checked, as
Graph's throttling is, so a failing call is still recorded against its mailbox.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .graph_errors import EntraError, GraphError, entra_error
from .graph_push import PushHub
from .graph_store import MailboxStore

__all__ = ["OPS", "GraphFaults"]

OPS = frozenset(
    {"delta", "get", "patch", "instances", "subscribe", "renew", "unsubscribe", "token"}
)
"""Operations ``fail`` and ``latency`` accept, as recorded in ``Recorded.op``."""


@dataclass
class _Failure:
    status: int
    code: str
    remaining: int
    retry_after: float | None
    message: str | None


class GraphFaults:
    def __init__(self, store: MailboxStore, push: PushHub) -> None:
        self._store = store
        self._push = push
        self._lock = threading.Lock()
        self._failures: dict[str, list[_Failure]] = {}
        self._latency: dict[str | None, float] = {}
        self._hook: Callable[[str, str], None] | None = None
        self._hook_left: int | None = None

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

        ``code`` is the Graph error code (``ApplicationThrottled``,
        ``ServiceUnavailable``, ...) or, for ``token``, the OAuth ``error``
        (``invalid_client``, ``temporarily_unavailable``, ...).
        """
        _check_op(op)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._failures.setdefault(op, []).append(
                _Failure(status, code, times, retry_after, message)
            )

    def latency(self, seconds: float, op: str | None = None) -> None:
        """Delay every answer (or only ``op``'s) by ``seconds``; 0 removes the delay."""
        if op is not None:
            _check_op(op)
        with self._lock:
            if seconds > 0:
                self._latency[op] = seconds
            else:
                self._latency.pop(op, None)

    def drop_notifications(self, count: int) -> None:
        """The next ``count`` notification POSTs are lost on the way."""
        self._push.drop(count)

    def duplicate_notifications(self, count: int) -> None:
        """The next ``count`` notification POSTs arrive twice."""
        self._push.duplicate(count)

    def expire_delta_tokens(self, calendar: str) -> None:
        """Every delta and skip token issued so far for ``calendar`` now answers 410."""
        self._store.expire(calendar)

    def lifecycle(self, subscription_or_calendar: str, event: str) -> list[str]:
        """Send a lifecycle notification now; returns the subscription ids it went to.

        ``event`` is ``reauthorizationRequired``, ``subscriptionRemoved`` (which
        also deletes the subscription) or ``missed``.
        """
        return self._push.lifecycle(subscription_or_calendar, event)

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

    def clear(self) -> None:
        """Drop pending failures, delays, notification faults and the PATCH hook."""
        with self._lock:
            self._failures.clear()
            self._latency.clear()
            self._hook = None
            self._hook_left = None
        self._push.clear_faults()

    # ------------------------------------------------------ for the HTTP layer

    def delay(self, op: str | None) -> float:
        with self._lock:
            return self._latency.get(op, 0.0) + self._latency.get(None, 0.0)

    def take(self, op: str) -> GraphError | EntraError | None:
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
        if op == "token":
            return entra_error(failure.status, failure.code, failure.message, headers)
        return GraphError(failure.status, failure.code, failure.message or "", headers)

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


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}; expected one of {sorted(OPS)}")
