"""Change notification subscriptions on ``/users/{id}/events`` and their delivery over webhooks.

Creation follows the reference: the ``notificationUrl`` (and the
``lifecycleNotificationUrl``, when given) is validated first by a POST with
``?validationToken=...`` that must answer 200, ``text/plain``, the decoded
token, within 10 seconds; only then is the subscription created (201).
Renewal is a PATCH of ``expirationDateTime``; deletion answers 204.

Notifications leave from one background thread, never from the request that
caused them. After each change of a mailbox (one world or API operation) every
live subscription on it whose ``changeType`` includes the change gets one POST
with a ``value`` array holding one notification per changed event:
``subscriptionId``, ``subscriptionExpirationDateTime``, ``changeType``,
``resource`` (``Users/{userId}/Events/{id}``), ``resourceData``
(``@odata.type``, ``@odata.id``, ``@odata.etag`` except on deletions, ``id``),
``clientState`` and ``tenantId``. Our own PATCHes notify too. Lifecycle
notifications go to the ``lifecycleNotificationUrl`` with ``lifecycleEvent``;
``subscriptionRemoved`` also deletes the subscription.

Choices the reference leaves open: ``http://`` addresses are accepted (Graph
requires https; a loopback test receiver has none); the validation token is
Graph's readable ``Validation: Testing client application reachability ...``
text, so a receiver must URL-decode it; failed deliveries are recorded, not
retried; expirations may be at most 10,080 minutes ahead, the limit the current
reference gives for Outlook events (older pages and services said 4230; beyond
the limit it is 400 ``ExtensionError`` with Graph's message); an expired
subscription is dropped at its next delivery and is 404 ``ResourceNotFound``
to renewal and deletion.
"""

from __future__ import annotations

import functools
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from ._delivery import DeliveryWorker
from .graph_errors import GraphError
from .graph_model import Mailbox
from .graph_query import parse_time
from .graph_resources import timestamp

__all__ = ["LIFECYCLE_EVENTS", "Notice", "PushHub", "Sent"]

LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
MAX_LIFETIME = timedelta(minutes=10_080)
_CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
_RESOURCE = re.compile(
    r"^/?users(?:/(?P<plain>[^/()]+)|\('(?P<quoted>[^']+)'\))/(?:calendar/)?events$",
    re.IGNORECASE,
)
_CLIENT_STATE_MAX = 128
_NOT_OK = (
    "Subscription validation request failed. Notification endpoint must respond with 200 OK "
    "to validation request."
)
_MISMATCH = (
    "Subscription validation request failed. Response must exactly match validationToken "
    "query parameter."
)


@dataclass(frozen=True)
class Sent:
    """One notification as the emulator sent it; ``status`` None: dropped or unreachable.

    ``kind`` is the change type, or the lifecycle event when ``lifecycle``.
    """

    subscription_id: str
    kind: str
    status: int | None
    mailbox: str
    event_id: str | None = None
    lifecycle: bool = False


@dataclass(frozen=True)
class Notice:
    """A change of one event in one mailbox, with the etag it had right after."""

    mailbox: str
    user_id: str
    event_id: str
    change_type: str
    etag: str | None


@dataclass
class _Subscription:
    id: str
    mailbox: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime


class PushHub(DeliveryWorker):
    """Every live subscription, and the thread that tells them about changes."""

    def __init__(
        self,
        *,
        tenant: str,
        application_id: str,
        creator_id: str,
        find: Callable[[str], Mailbox | None],
        validation_timeout: float = 10.0,
        delivery_timeout: float = 3.0,
    ) -> None:
        super().__init__(thread_name="graph-push")
        self.sent: list[Sent] = []
        self.context_root = ""
        self._tenant = tenant
        self._application_id = application_id
        self._creator_id = creator_id
        self._find = find
        self._validation_timeout = validation_timeout
        self._delivery_timeout = delivery_timeout
        self._subscriptions: dict[str, _Subscription] = {}

    # ---------------------------------------------------------------------- API

    def subscribe(self, body: Any) -> dict[str, Any]:
        """POST /subscriptions: check, validate both URLs, then create."""
        if not isinstance(body, dict):
            raise GraphError(400, "InvalidRequest", "A subscription object is required.")
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise GraphError(
                    400,
                    "InvalidRequest",
                    f"{name} is a required property for subscription creation.",
                )
        change_types = frozenset(part.strip() for part in body["changeType"].split(","))
        if not change_types or not change_types <= _CHANGE_TYPES:
            raise GraphError(
                400, "InvalidRequest", f"Invalid changeType '{body['changeType']}' for events."
            )
        mailbox = self._mailbox(body["resource"])
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > _CLIENT_STATE_MAX
        ):
            raise GraphError(
                400, "InvalidRequest", "clientState must be a string of at most 128 characters."
            )
        expires = _expiration(body["expirationDateTime"])
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None and not isinstance(lifecycle_url, str):
            raise GraphError(400, "InvalidRequest", "Invalid lifecycleNotificationUrl.")
        self._validate(body["notificationUrl"])
        if lifecycle_url:
            self._validate(lifecycle_url)
        subscription = _Subscription(
            id=str(uuid.uuid4()),
            mailbox=mailbox.address,
            resource=body["resource"],
            change_types=change_types,
            notification_url=body["notificationUrl"],
            lifecycle_url=lifecycle_url or None,
            client_state=client_state,
            expires=expires,
        )
        with self._lock:
            self._subscriptions[subscription.id] = subscription
        return self._resource(subscription)

    def get(self, subscription_id: str) -> dict[str, Any]:
        return self._resource(self._live(subscription_id))

    def renew(self, subscription_id: str, body: Any) -> dict[str, Any]:
        """PATCH /subscriptions/{id}: a new expirationDateTime, within the same limit."""
        raw = body.get("expirationDateTime") if isinstance(body, dict) else None
        if not isinstance(raw, str):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
        expires = _expiration(raw)
        with self._lock:
            subscription = self._live(subscription_id)
            subscription.expires = expires
        return self._resource(subscription)

    def unsubscribe(self, subscription_id: str) -> None:
        with self._lock:
            self._live(subscription_id)
            del self._subscriptions[subscription_id]

    def changed(self, notices: list[Notice]) -> None:
        """Changes of one operation: queued for the delivery thread, never sent inline."""
        self._jobs.put(functools.partial(self._notify, notices))

    def lifecycle(self, target: str, event: str) -> list[str]:
        """Send ``event`` for a subscription id, or for every subscription on a mailbox."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(
                f"unknown lifecycle event {event!r}; expected {sorted(LIFECYCLE_EVENTS)}"
            )
        with self._lock:
            chosen = [
                s
                for s in self._subscriptions.values()
                if s.id == target or s.mailbox.casefold() == target.casefold()
            ]
            if event == "subscriptionRemoved":
                for subscription in chosen:
                    del self._subscriptions[subscription.id]
        for subscription in chosen:
            self._jobs.put(functools.partial(self._announce, subscription, event))
        return [s.id for s in chosen]

    # ----------------------------------------------------------------- delivery

    def _notify(self, notices: list[Notice]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            for expired in [s for s in self._subscriptions.values() if s.expires <= now]:
                del self._subscriptions[expired.id]
            subscriptions = list(self._subscriptions.values())
        for subscription in subscriptions:
            mine = [
                n
                for n in notices
                if n.mailbox == subscription.mailbox and n.change_type in subscription.change_types
            ]
            if mine:
                self._deliver(subscription, mine)

    def _deliver(self, subscription: _Subscription, notices: list[Notice]) -> None:
        payload = {"value": [self._notification(subscription, n) for n in notices]}
        for status in self._post_with_faults(subscription.notification_url, payload):
            for notice in notices:
                self.sent.append(
                    Sent(
                        subscription.id,
                        notice.change_type,
                        status,
                        subscription.mailbox,
                        notice.event_id,
                    )
                )

    def _announce(self, subscription: _Subscription, event: str) -> None:
        if subscription.lifecycle_url is None:
            self.sent.append(Sent(subscription.id, event, None, subscription.mailbox, None, True))
            return
        payload = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": timestamp(subscription.expires),
                    "tenantId": self._tenant,
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        for status in self._post_with_faults(subscription.lifecycle_url, payload):
            self.sent.append(Sent(subscription.id, event, status, subscription.mailbox, None, True))

    def _post_with_faults(self, url: str, payload: dict[str, Any]) -> list[int | None]:
        with self._lock:
            copies = self._copies_locked()
        if copies == 0:
            return [None]
        return [self._post(url, payload) for _ in range(copies)]

    def _notification(self, subscription: _Subscription, notice: Notice) -> dict[str, Any]:
        resource = f"Users/{notice.user_id}/Events/{notice.event_id}"
        data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource}
        if notice.etag is not None and notice.change_type != "deleted":
            data["@odata.etag"] = notice.etag
        data["id"] = notice.event_id
        return {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": timestamp(subscription.expires),
            "changeType": notice.change_type,
            "resource": resource,
            "resourceData": data,
            "clientState": subscription.client_state,
            "tenantId": self._tenant,
        }

    def _post(self, url: str, payload: dict[str, Any]) -> int | None:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self._delivery_timeout) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ checks

    def _validate(self, url: str) -> None:
        """The handshake: POST ?validationToken=..., expect the decoded token back as text."""
        if not re.match(r"https?://", url, re.IGNORECASE):
            raise GraphError(400, "ValidationError", _NOT_OK)
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            f"{uuid.uuid4()}"
        )
        separator = "&" if "?" in url else "?"
        request = urllib.request.Request(
            f"{url}{separator}validationToken={quote(token, safe='')}",
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self._validation_timeout) as response:
                status = int(response.status)
                kind = response.headers.get("Content-Type", "")
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError:
            raise GraphError(400, "ValidationError", _NOT_OK) from None
        except TimeoutError:
            raise GraphError(
                400, "InvalidRequest", "Subscription validation request timed out."
            ) from None
        except (OSError, ValueError):
            raise GraphError(400, "ValidationError", _NOT_OK) from None
        if status != 200:
            raise GraphError(400, "ValidationError", _NOT_OK)
        if not kind.lower().startswith("text/plain") or text != token:
            raise GraphError(400, "ValidationError", _MISMATCH)

    def _mailbox(self, resource: str) -> Mailbox:
        match = _RESOURCE.match(resource.strip())
        if match is None:
            raise GraphError(
                400, "InvalidRequest", f"The resource '{resource}' is not supported for events."
            )
        user = unquote(match.group("plain") or match.group("quoted"))
        mailbox = self._find(user)
        if mailbox is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if mailbox.disabled:
            raise GraphError(403, "ErrorAccessDenied")
        return mailbox

    def _live(self, subscription_id: str) -> _Subscription:
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None or subscription.expires <= datetime.now(UTC):
            raise GraphError(
                404, "ResourceNotFound", f"Subscription '{subscription_id}' not found."
            )
        return subscription

    def _resource(self, subscription: _Subscription) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.context_root}$metadata#subscriptions/$entity",
            "id": subscription.id,
            "resource": subscription.resource,
            "applicationId": self._application_id,
            "changeType": ",".join(
                t for t in ("created", "updated", "deleted") if t in subscription.change_types
            ),
            "clientState": subscription.client_state,
            "notificationUrl": subscription.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": subscription.lifecycle_url,
            "expirationDateTime": timestamp(subscription.expires),
            "creatorId": self._creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


def _expiration(raw: str) -> datetime:
    expires = parse_time(raw, "expirationDateTime")
    now = datetime.now(UTC)
    limit = int(MAX_LIFETIME.total_seconds() // 60)
    if expires <= now:
        raise GraphError(
            400, "InvalidRequest", "Subscription expiration date time must be in the future."
        )
    if expires > now + MAX_LIFETIME:
        raise GraphError(
            400,
            "ExtensionError",
            f"Subscription expiration can only be {limit} minutes in the future.",
        )
    return expires
