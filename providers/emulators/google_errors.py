"""Google's two error shapes, so every failure the emulator answers looks like the real one.

The Calendar API answers ``{"error": {"errors": [{domain, reason, message,
location?, locationType?}], "code", "message"}}``; the OAuth token endpoint
answers ``{"error", "error_description"}``. Clients (googleapiclient's
``HttpError``, google-auth's ``RefreshError``) and the adapter's error mapping
read the reason and domain, so those come from the published errors guide and
not from whatever was convenient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "OAuthError", "default_message", "domain_for"]

# Reasons whose domain is not "global", from the Calendar errors guide.
_DOMAINS = {
    "rateLimitExceeded": "usageLimits",
    "userRateLimitExceeded": "usageLimits",
    "quotaExceeded": "usageLimits",
    "dailyLimitExceeded": "usageLimits",
    "fullSyncRequired": "calendar",
    "forbiddenForNonOrganizer": "calendar",
    "timeRangeEmpty": "calendar",
    "requiredAccessLevel": "calendar",
}

_MESSAGES = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "userRateLimitExceeded": "User Rate Limit Exceeded",
    "quotaExceeded": "Calendar usage limits exceeded.",
    "dailyLimitExceeded": "Daily Limit Exceeded",
    "fullSyncRequired": "Sync token is no longer valid, a full sync is required.",
    "forbiddenForNonOrganizer": (
        "Shared properties can only be changed by the organizer of the event."
    ),
    "timeRangeEmpty": "The specified time range is empty.",
    "conditionNotMet": "Precondition Failed",
    "notFound": "Not Found",
    "deleted": "Resource has been deleted",
    "authError": "Invalid Credentials",
    "backendError": "Backend Error",
    "internalError": "Internal Error",
    "insufficientPermissions": "Request had insufficient authentication scopes.",
    "badRequest": "Bad Request",
    "invalid": "Invalid Value",
    "duplicate": "The requested identifier already exists.",
}


def domain_for(reason: str) -> str:
    return _DOMAINS.get(reason, "global")


def default_message(reason: str) -> str:
    return _MESSAGES.get(reason, reason)


@dataclass
class ApiError(Exception):
    """A Calendar API failure; raised anywhere below the HTTP layer, answered by it."""

    status: int
    reason: str
    message: str = ""
    location: str | None = None
    location_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.message:
            self.message = default_message(self.reason)
        super().__init__(f"{self.status} {self.reason}: {self.message}")

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "domain": domain_for(self.reason),
            "reason": self.reason,
            "message": self.message,
        }
        if self.location_type is not None:
            detail["locationType"] = self.location_type
        if self.location is not None:
            detail["location"] = self.location
        return {"error": {"errors": [detail], "code": self.status, "message": self.message}}


@dataclass
class OAuthError(Exception):
    """A token or authorization endpoint failure (RFC 6749 section 5.2 shape)."""

    status: int
    error: str
    description: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.error}: {self.description}")

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"error": self.error}
        if self.description:
            answer["error_description"] = self.description
        return answer
