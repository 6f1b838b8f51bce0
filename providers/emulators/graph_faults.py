"""Scripted failures of the Graph emulator, so tests can drive a client through every error path.

Failures are queued per operation and answered in the Microsoft cloud's own
shapes: the Graph error body (with ``Retry-After`` when asked, as throttling
429s and 503s carry it) for API operations, the Entra AADSTS body for
``token``. API failures are taken after the bearer token was checked, as
Graph's throttling is, so a failing call is still recorded against its mailbox.
"""

from __future__ import annotations

from ._faults import FaultPlan
from .graph_errors import EntraError, GraphError, entra_error
from .graph_push import PushHub
from .graph_store import MailboxStore

__all__ = ["OPS", "GraphFaults"]

OPS = frozenset(
    {"delta", "get", "insert", "patch", "instances", "subscribe", "renew", "unsubscribe"}
    | {"token", "users"}
)
"""Operations ``fail`` and ``latency`` accept, as recorded in ``Recorded.op``."""


class GraphFaults(FaultPlan[GraphError | EntraError]):
    def __init__(self, store: MailboxStore, push: PushHub) -> None:
        super().__init__(OPS, push)
        self._store = store
        self._push: PushHub = push

    def expire_delta_tokens(self, calendar: str) -> None:
        """Every delta and skip token issued so far for ``calendar`` now answers 410."""
        self._store.expire(calendar)

    def lifecycle(self, subscription_or_calendar: str, event: str) -> list[str]:
        """Send a lifecycle notification now; returns the subscription ids it went to.

        ``event`` is ``reauthorizationRequired``, ``subscriptionRemoved`` (which
        also deletes the subscription) or ``missed``.
        """
        return self._push.lifecycle(subscription_or_calendar, event)

    def _error(
        self, op: str, status: int, code: str, message: str | None, headers: dict[str, str]
    ) -> GraphError | EntraError:
        if op == "token":
            return entra_error(status, code, message, headers)
        return GraphError(status, code, message or "", headers)
