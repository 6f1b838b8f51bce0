"""Scripted failures of the Google emulator, so tests can drive a client through every error path.

Failures are queued per operation and answered in Google's shape: the
Calendar API error body for API operations (domain picked from the reason, so
``rateLimitExceeded`` comes as ``usageLimits`` like the real thing), the OAuth
error body for ``token``. They are taken after the bearer token was checked,
as a rate limit is, so a failing call is still recorded with its user.
"""

from __future__ import annotations

from ._faults import FaultPlan
from .google_errors import ApiError, OAuthError, default_message
from .google_push import PushHub
from .google_state import CalendarStore

__all__ = ["OPS", "GoogleFaults"]

OPS = frozenset({"list", "get", "patch", "instances", "watch", "stop", "token", "users"})
"""Operations ``fail`` and ``latency`` accept, as recorded in ``Recorded.op``."""


class GoogleFaults(FaultPlan[ApiError | OAuthError]):
    def __init__(self, store: CalendarStore, push: PushHub) -> None:
        super().__init__(OPS, push)
        self._store = store
        self._push: PushHub = push

    def fail(
        self,
        op: str,
        status: int,
        reason: str,
        *,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``op`` with ``status`` (queued after earlier ones)."""
        self._enqueue(op, status, reason, times, retry_after, message)

    def drop_notifications(self, count: int) -> None:
        """The next ``count`` push notifications are lost on the way (their numbers are used)."""
        self._push.drop(count)

    def duplicate_notifications(self, count: int) -> None:
        """The next ``count`` push notifications arrive twice, with the same message number."""
        self._push.duplicate(count)

    def expire_sync_tokens(self, calendar: str) -> None:
        """Every sync token issued so far for ``calendar`` now answers 410."""
        self._store.expire(calendar)

    def _error(
        self, op: str, status: int, code: str, message: str | None, headers: dict[str, str]
    ) -> ApiError | OAuthError:
        message = message or default_message(code)
        if op == "token":
            return OAuthError(status, code, message, headers)
        return ApiError(status, code, message, headers=headers)
