"""A loopback Google Calendar API v3 (and its OAuth endpoints) for tests, benchmarks and demos.

The real google-api-python-client and google-auth talk to it unchanged::

    with GoogleEmulator(["ana@example.test", "bo@example.test"]) as emulator:
        info = emulator.service_account_info()
        creds = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/calendar"]
        ).with_subject("ana@example.test")
        service = build("calendar", "v3", credentials=creds, static_discovery=True,
                        client_options={"api_endpoint": emulator.api_root})

while tests shape the world through the same world-building API as
``providers.memory`` (``create_event``, ``move_occurrence``, ...), script
failures through ``faults`` and read what happened in ``requests`` and
``notifications``.

Modules: google_model (data), google_state (changes, change log),
google_resources (Event JSON), google_listing (list/instances/get, tokens),
google_auth (OAuth), google_push (channels), google_faults, google_http
(routing). What each chose where the reference leaves room is written in its
docstring; in short:

* Ids: one event id shared by every attendee's copy; instance ids
  ``{id}_{YYYYMMDDTHHMMSSZ}`` (``{id}_{YYYYMMDD}`` for all-day series);
  iCalUID ``{id}@google.com`` unless given. Every calendar is in UTC.
* Cancelled exceptions are stubs (id, recurringEventId, originalStartTime);
  deleted events are stubs (id) except on the organizer's calendar with
  ``showDeleted`` or through ``get``, which returns them with
  ``status: cancelled`` instead of 404.
* PATCH accepts ``description`` and ``extendedProperties`` only (400 for other
  fields); checks are 404, then If-Match (412), then body (400), then
  organizer-only fields (403 ``forbiddenForNonOrganizer``).
* ``syncToken`` with a filter parameter is 400 ``invalid`` naming the
  parameter; an unknown, foreign or expired token is 410 ``fullSyncRequired``.
* The Admin SDK's ``users.list`` (google_directory) lists the users, answers
  administrators only (``add_user(..., admin=True)``) and needs an
  admin.directory.user scope; ``delegate_scopes`` models the domain-wide
  delegation an admin configured.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from providers.calendar_model import Recurrence
from syncd.model import Attendee, EventType

from ._server import Served
from ._world import WorldEdits
from .google_auth import Authority
from .google_directory import Directory
from .google_faults import OPS, GoogleFaults
from .google_http import ApiApp, Recorded, serve
from .google_listing import Queries
from .google_push import PushHub, Sent
from .google_state import CalendarStore

__all__ = ["OPS", "GoogleEmulator", "GoogleFaults", "Recorded", "Sent", "main"]


class GoogleEmulator(WorldEdits, Served):
    """Many people's Google calendars behind one loopback HTTP server.

    The socket is bound at construction, so every URL and the service-account
    JSON are valid before ``start``; requests are served between ``start``
    and ``stop``.
    """

    _thread_name = "google-emulator"
    _push: PushHub

    def __init__(
        self,
        users: Iterable[str] = (),
        *,
        page_size: int = 250,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._store: CalendarStore = CalendarStore()
        self._queries = Queries(self._store, page_size=page_size)
        self._authority = Authority(self._store.address, self._first_user)
        self._push = PushHub(project_id=self._authority.project_id)
        self._store.listener = self._push.changed
        self.faults = GoogleFaults(self._store, self._push)
        self._directory = Directory(self._store, self._authority, self.faults)
        self.customer_id = self._directory.customer_id
        self.requests: list[Recorded] = []
        self._app = ApiApp(
            store=self._store,
            queries=self._queries,
            authority=self._authority,
            push=self._push,
            faults=self.faults,
            requests=self.requests,
            directory=self._directory,
        )
        self._server = serve(self._app, host, port)
        bound_host, bound_port = self._server.server_address[:2]
        self.base_url = f"http://{_url_host(str(bound_host))}:{bound_port}/"
        self.api_root = self.base_url + "calendar/v3/"
        self.token_uri = self.base_url + "token"
        self.auth_uri = self.base_url + "o/oauth2/auth"
        self.certs_url = self.base_url + "oauth2/v1/certs"  # where ID-token keys are published
        self._app.api_root = self.api_root
        self._authority.token_uri = self.token_uri
        self._authority.auth_uri = self.auth_uri
        self._init_served()
        for user in users:
            self.add_user(user)

    # ------------------------------------------------------------ accounts

    def add_user(
        self,
        address: str,
        *,
        suspended: bool = False,
        archived: bool = False,
        admin: bool = False,
    ) -> None:
        """A person in the domain: a primary calendar, and a subject for delegation.

        The flags are what the Admin SDK's users.list says of them; the address
        is their ``primaryEmail`` as given (any case).
        """
        self._store.add_calendar(address)
        self._directory.set_flags(address, suspended=suspended, archived=archived, admin=admin)

    def set_directory_flags(
        self,
        address: str,
        *,
        suspended: bool | None = None,
        archived: bool | None = None,
        admin: bool | None = None,
    ) -> None:
        """Suspend, archive or make an admin of a person already added (None: unchanged)."""
        self._directory.set_flags(address, suspended=suspended, archived=archived, admin=admin)

    def delegate_scopes(self, scopes: Iterable[str] | None) -> None:
        """The scopes domain-wide delegation grants the service account (None: any).

        A delegated token request for any other scope is refused with
        ``unauthorized_client``, as Google refuses it.
        """
        self._authority.delegated_scopes = None if scopes is None else frozenset(scopes)

    add_calendar = add_user  # the memory provider's name for the same thing

    def users(self) -> list[str]:
        return self._store.calendars()

    def service_account_info(self) -> dict[str, str]:
        """Service-account JSON whose key the token endpoint checks signatures against."""
        return self._authority.service_account_info(self.base_url)

    def client_config(self) -> dict[str, Any]:
        """An installed-app OAuth client, for google-auth-oauthlib's flows."""
        return self._authority.client_config()

    def web_client_config(self, redirect_uris: Iterable[str]) -> dict[str, Any]:
        """A "Web application" OAuth client (sign-in), these redirect URIs registered."""
        return self._authority.web_client_config(redirect_uris)

    def tamper_next_id_token(self, **claims: Any) -> None:
        """The next ID token issued carries these claims instead (None removes one)."""
        self._authority.tamper_next_id_token(**claims)

    def revoke(self, user: str) -> None:
        """The grant for ``user`` is withdrawn: invalid_grant on refresh, 401 on old tokens."""
        self._authority.revoke(user)

    def expire_tokens(self, user: str | None = None) -> None:
        """Outstanding access tokens (one user's or all) expire now; refresh gets new ones."""
        self._authority.expire_tokens(user)

    @property
    def notifications(self) -> list[Sent]:
        return self._push.sent

    def wait_for_notifications(self, timeout: float = 5.0) -> bool:
        """Block until every notification queued so far was delivered (or given up)."""
        return self._push.wait_idle(timeout)

    # ------------------------------------------------- world (as providers.memory)

    def create_event(
        self,
        organizer: str,
        attendees: Sequence[str | Attendee],
        title: str,
        start: datetime,
        end: datetime,
        *,
        description: str = "",
        html: bool = False,
        all_day: bool = False,
        event_type: EventType = EventType.DEFAULT,
        recurrence: Recurrence | None = None,
        ical_uid: str | None = None,
    ) -> str:
        """Create an event (a series if ``recurrence``) as the organizer; returns its iCalUID.

        ``html`` is accepted for parity with the memory provider: Google keeps no
        such flag, an HTML description is simply a description holding HTML.
        """
        del html
        return self._store.create_event(
            organizer,
            attendees,
            title,
            start,
            end,
            description=description,
            all_day=all_day,
            event_type=event_type,
            recurrence=recurrence,
            ical_uid=ical_uid,
        )

    def copy_id(self, calendar: str, ical_uid: str, original_start: datetime | None = None) -> str:
        """The event id in ``calendar`` (the same in every calendar, as in Google)."""
        return self._store.copy_id(calendar, ical_uid, original_start)

    def description(self, calendar: str, event_id: str) -> str:
        """Read a description without it counting as a request."""
        return self._store.description(calendar, event_id)

    def expire_cursors(self, calendar: str) -> None:
        """Every sync token issued so far for ``calendar`` now answers 410."""
        self._store.expire(calendar)

    # ----------------------------------------------------------------- internals

    def _first_user(self) -> str | None:
        users = self._store.calendars()
        return users[0] if users else None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m providers.emulators.google --port N --users a@x,b@y``."""
    parser = argparse.ArgumentParser(
        prog="python -m providers.emulators.google",
        description="Serve an emulated Google Calendar API v3 on the loopback interface.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--users", default="", help="comma-separated user addresses")
    parser.add_argument(
        "--service-account",
        type=Path,
        help="write the service-account JSON (with its private key) to this file",
    )
    args = parser.parse_args(argv)
    users = [user.strip() for user in args.users.split(",") if user.strip()]
    emulator = GoogleEmulator(users, port=args.port)
    if args.service_account is not None:
        # Created private: the file holds the private key.
        descriptor = os.open(args.service_account, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(emulator.service_account_info(), handle, indent=1)
    emulator.start()
    try:  # an interrupt at any point from here stops the server cleanly
        print(emulator.base_url, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
