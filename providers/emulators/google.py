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

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import _cli
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
        self._app = ApiApp(
            store=self._store,
            queries=self._queries,
            authority=self._authority,
            push=self._push,
            faults=self.faults,
            directory=self._directory,
        )
        self.requests: list[Recorded] = self._app.requests
        self._init_served(serve(self._app, host, port))
        self.api_root = self.base_url + "calendar/v3/"
        self.token_uri = self.base_url + "token"
        self.auth_uri = self.base_url + "o/oauth2/auth"
        self.certs_url = self.base_url + "oauth2/v1/certs"  # where ID-token keys are published
        self._app.api_root = self.api_root
        self._authority.token_uri = self.token_uri
        self._authority.auth_uri = self.auth_uri
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

    def set_person(
        self, address: str, *, full_name: str | None = None, manager: str | None = None
    ) -> None:
        """What the directory says of a person: ``name.fullName`` and the manager relation
        (``relations`` of type manager; "" removes it). None leaves a value as it is."""
        self._directory.set_flags(address, full_name=full_name, manager=manager)

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

    # ----------------------------------------------------------------- internals

    def _first_user(self) -> str | None:
        users = self._store.calendars()
        return users[0] if users else None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m providers.emulators.google --port N --users a@x,b@y``."""
    parser = _cli.parser(
        "python -m providers.emulators.google",
        "Serve an emulated Google Calendar API v3 on the loopback interface.",
    )
    parser.add_argument(
        "--service-account",
        type=Path,
        help="write the service-account JSON (with its private key) to this file",
    )
    args = parser.parse_args(argv)
    users, events = _cli.seeded(parser, args)
    emulator = GoogleEmulator(users, port=args.port)
    _cli.seed(emulator, events)
    if args.service_account is not None:
        _cli.write_private_json(args.service_account, emulator.service_account_info())
    return _cli.serve_until_interrupted(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
