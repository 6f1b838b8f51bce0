"""The two error shapes of the Microsoft cloud, so every failure the emulator answers looks real.

Graph answers ``{"error": {"code", "message", "innerError": {"date",
"request-id", "client-request-id"}}}``; the identity platform's token endpoint
answers the OAuth shape extended with AADSTS details (``error``,
``error_description`` starting with the AADSTS number, ``error_codes``,
``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``). Clients and
the adapter's error mapping branch on ``code`` / ``error``, so those and the
status codes come from the published references and from bodies people have
reported from the real service; the messages are the real ones where known.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["EntraError", "GraphError", "default_message", "entra_error"]

# Messages the real service writes for these codes (from the references and reported bodies).
_MESSAGES = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorIrresolvableConflict": (
        "The send or update operation could not be performed because the change key passed "
        "in the request does not match the current change key for the item."
    ),
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorInvalidUser": "The requested user is invalid.",
    "InvalidAuthenticationToken": "Access token validation failure.",
    "SyncStateNotFound": "The sync state generation is not found.",
    "ApplicationThrottled": "Application is over its MailboxConcurrency limit.",
    "TooManyRequests": "Too many requests.",
    "ErrorTooManyObjectsOpened": "Too many concurrent connections opened.",
    "ServiceUnavailable": "Service Unavailable.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorInternalServerError": "An internal server error occurred. The operation failed.",
    "generalException": "General exception while processing.",
    "ResourceNotFound": "The object was not found.",
    "ErrorInvalidParameter": "The value of the parameter is invalid.",
    "ErrorInvalidUrlQuery": "The query is invalid.",
    "InvalidRequest": "Invalid request.",
    "BadRequest": "Bad request.",
}


def default_message(code: str) -> str:
    return _MESSAGES.get(code, code)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class GraphError(Exception):
    """A Graph API failure; raised anywhere below the HTTP layer, answered by it."""

    status: int
    code: str
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.message:
            self.message = default_message(self.code)
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def body(self, request_id: str, client_request_id: str) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }


@dataclass
class EntraError(Exception):
    """A token endpoint failure, as Microsoft Entra ID answers it (AADSTS codes)."""

    status: int
    error: str
    aadsts: int
    description: str
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.error}: AADSTS{self.aadsts}")

    def body(self, correlation_id: str) -> dict[str, Any]:
        trace_id = str(uuid.uuid4())
        stamp = _now().strftime("%Y-%m-%d %H:%M:%SZ")
        text = (
            f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}"
        )
        return {
            "error": self.error,
            "error_description": text,
            "error_codes": [self.aadsts],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


# AADSTS numbers for the ``error`` values a scripted token failure may name.
_AADSTS = {
    "invalid_client": (7000215, "Invalid client secret provided."),
    "unauthorized_client": (700016, "Application was not found in the directory."),
    "invalid_request": (900144, "The request body must contain the following parameter."),
    "invalid_scope": (1002012, "The provided value for scope is not valid."),
    "invalid_grant": (50173, "The provided grant has expired due to it being revoked."),
    "temporarily_unavailable": (50196, "The server is temporarily too busy."),
    "server_error": (90012, "The request has timed out."),
}


def entra_error(
    status: int, error: str, message: str | None = None, headers: dict[str, str] | None = None
) -> EntraError:
    """An Entra error for ``error`` with the AADSTS number the service pairs with it."""
    number, description = _AADSTS.get(error, (90000, error))
    return EntraError(status, error, number, message or description, headers or {})
