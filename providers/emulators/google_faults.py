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

OPS = frozenset({"list", "get", "insert", "patch", "instances", "watch", "stop", "token", "users"})
"""Operations ``fail`` and ``latency`` accept, as recorded in ``Recorded.op``."""


class GoogleFaults(FaultPlan[ApiError | OAuthError]):
    def __init__(self, store: CalendarStore, push: PushHub) -> None:
        super().__init__(OPS, push)
        self._store = store

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
