"""Push notification channels (events.watch / channels.stop) and their delivery.

Notifications leave from one background thread, never from the request that
caused them, and possibly before the watch response reaches the client (as
Google warns they may). Per channel: a ``sync`` message right after the
watch, then one ``exists`` message per change of the watched calendar (one
per world or API operation, however many copies it touched), with
``X-Goog-Message-Number`` increasing by one per message. A dropped message
still uses up its number, so a receiver can see the gap; a duplicated one is
delivered twice with the same number. Expired channels are dropped silently
at their next message.

Choices the reference leaves open: channels may deliver to ``http://``
addresses (Google requires https with a valid certificate; a loopback test
receiver has none); the default lifetime is one week when neither
``expiration`` nor ``params.ttl`` is given; a repeated id of a live channel is
400 ``channelIdNotUnique``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from ._delivery import DeliveryWorker
from .google_errors import ApiError

__all__ = ["PushHub", "Sent"]

_CHANNEL_ID = re.compile(r"[A-Za-z0-9\-_+/=]{1,64}")
_DEFAULT_TTL = 7 * 24 * 3600
_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


@dataclass(frozen=True)
class Sent:
    """One notification as the emulator sent it; ``status`` None: dropped or unreachable."""

    channel_id: str
    resource_state: str
    message_number: int
    status: int | None
    calendar: str


@dataclass
class _Channel:
    id: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    calendar: str
    next_number: int = 1


class PushHub(DeliveryWorker):
    """Every live channel, and the thread that tells them about changes."""

    def __init__(self, *, project_id: str, timeout: float = 2.0) -> None:
        super().__init__(thread_name="google-push")
        self.sent: list[Sent] = []
        self._project_id = project_id
        self._timeout = timeout
        self._channels: dict[str, _Channel] = {}

    # ---------------------------------------------------------------------- API

    def watch(self, calendar: str, body: Any, resource_uri: str) -> dict[str, Any]:
        """events.watch: open a channel on ``calendar`` and queue its ``sync`` message."""
        if not isinstance(body, dict):
            raise ApiError(400, "required", "Required", "resource", "parameter")
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not _CHANNEL_ID.fullmatch(channel_id):
            raise ApiError(
                400,
                "invalid",
                "Channel id must be 1 to 64 characters of [A-Za-z0-9-_+/=].",
                "id",
                "parameter",
            )
        if body.get("type") not in ("web_hook", "webhook"):
            raise ApiError(400, "invalid", "Invalid channel type.", "type", "parameter")
        address = body.get("address")
        if not isinstance(address, str) or not re.match(r"https?://", address):
            raise ApiError(400, "invalid", "Invalid channel address.", "address", "parameter")
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            raise ApiError(400, "invalid", "Invalid channel token.", "token", "parameter")
        channel = _Channel(
            id=channel_id,
            resource_id=_resource_id(self._project_id, calendar),
            resource_uri=resource_uri,
            address=address,
            token=token,
            expiration_ms=_expiration(body),
            calendar=calendar,
        )
        with self._lock:
            existing = self._channels.get(channel_id)
            if existing is not None and existing.expiration_ms > _now_ms():
                raise ApiError(400, "channelIdNotUnique", "Channel id not unique")
            self._channels[channel_id] = channel
        self._jobs.put(functools.partial(self._handle, "sync", channel_id))
        answer: dict[str, Any] = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
        }
        if token is not None:
            answer["token"] = token
        answer["expiration"] = str(channel.expiration_ms)
        return answer

    def stop_channel(self, body: Any) -> None:
        """channels.stop: both id and resourceId must name a live channel."""
        channel_id = body.get("id") if isinstance(body, dict) else None
        resource_id = body.get("resourceId") if isinstance(body, dict) else None
        with self._lock:
            channel = self._channels.get(str(channel_id))
            if channel is None or channel.resource_id != resource_id:
                raise ApiError(
                    404,
                    "notFound",
                    f"Channel '{channel_id}' not found for project '{self._project_id}'",
                )
            del self._channels[channel.id]

    def changed(self, calendar: str) -> None:
        """A calendar changed: its channels get an ``exists`` message (queued, never inline)."""
        self._jobs.put(functools.partial(self._handle, "exists", calendar))

    # ----------------------------------------------------------------- delivery

    def _handle(self, kind: str, key: str) -> None:
        with self._lock:
            if kind == "sync":
                channels = [c for c in (self._channels.get(key),) if c is not None]
            else:
                channels = [c for c in self._channels.values() if c.calendar == key]
            now = _now_ms()
            for channel in [c for c in channels if c.expiration_ms <= now]:
                self._channels.pop(channel.id, None)
            channels = [c for c in channels if c.expiration_ms > now]
        for channel in channels:
            self._deliver(channel, kind)

    def _deliver(self, channel: _Channel, state: str) -> None:
        with self._lock:
            number = channel.next_number
            channel.next_number += 1
            copies = self._copies_locked()
        if copies == 0:
            self.sent.append(Sent(channel.id, state, number, None, channel.calendar))
            return
        for _ in range(copies):
            status = self._post(channel, state, number)
            self.sent.append(Sent(channel.id, state, number, status, channel.calendar))

    def _post(self, channel: _Channel, state: str, number: int) -> int | None:
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
            "User-Agent": _USER_AGENT,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        request = urllib.request.Request(channel.address, data=b"", headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, ValueError):
            return None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _expiration(body: dict[str, Any]) -> int:
    """``expiration`` (ms) if given, else now + ``params.ttl`` seconds, else a week."""
    raw = body.get("expiration")
    if raw is not None:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ApiError(
                400, "invalid", "Invalid expiration.", "expiration", "parameter"
            ) from None
    ttl: Any = (body.get("params") or {}).get("ttl", _DEFAULT_TTL)
    try:
        seconds = float(ttl)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid", "Invalid ttl.", "params.ttl", "parameter") from None
    return _now_ms() + int(seconds * 1000)


def _resource_id(project_id: str, calendar: str) -> str:
    """Opaque and stable per watched resource, as Google's resourceId is."""
    return hashlib.sha1(f"{project_id}/{calendar}/events".encode()).hexdigest()[:27]
