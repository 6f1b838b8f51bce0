"""A loopback Microsoft Graph v1.0 (calendar) and identity platform for tests, benchmarks and demos.

msal and httpx talk to it unchanged, over its https listener (msal takes
https authorities only), trusting the CA it made::

    with GraphEmulator(["ana@example.test", "bo@example.test"]) as emulator:
        session = requests.Session()
        session.verify = emulator.ca_file
        app = msal.ConfidentialClientApplication(
            emulator.client_id,
            client_credential=emulator.client_secret,
            authority=emulator.https_authority,      # https://127.0.0.1:<port>/{tenant}
            http_client=session,
            instance_discovery=False,                # the cloud is known: nothing to look up
        )
        token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        graph = httpx.Client(base_url=emulator.graph_root,
                             headers={"Authorization": f"Bearer {token['access_token']}"})

msal then fetches only ``/{tenant}/v2.0/.well-known/openid-configuration``
and posts to ``/{tenant}/oauth2/v2.0/token``. ``http_client()`` is the other
way in, for the emulator's own tests of msal against the production
authority (login.microsoftonline.com rewritten to here over plain http;
instance discovery is served too); a deployment's config never needs it. Tests shape the
world through the same world-building API as ``providers.memory``
(``create_event``, ``move_occurrence``, ...), script failures through
``faults`` and read what happened in ``requests`` and ``notifications``.

Modules: graph_model (data, ids), graph_store (changes, change log),
graph_body (HTML bodies), graph_resources (event JSON), graph_query (query
options), graph_views (delta, get, instances), graph_patch (PATCH bodies),
graph_identity (tokens), graph_push (subscriptions), graph_faults,
graph_errors, graph_http (routing, server). What each chose where the
reference leaves room is in its docstring; in short:

* Every attendee mailbox holds its own copy with its own id and the same
  iCalUId; occurrences have their own iCalUId (the GlobalObjectId with the
  instance date), so the master's iCalUId + ``originalStart`` names one.
* calendarView delta never lists masters; plain occurrences come as stubs
  (``@odata.type``, ``@odata.etag``, ``id``, ``seriesMasterId``, ``type``,
  ``start``, ``end``), exceptions and single events in full; anything deleted,
  out of the window or changed outside it is ``@removed``; 410
  ``SyncStateNotFound`` for stale tokens.
* The organizer's cancelled occurrence is gone from their calendar (404,
  absent from instances, ``@removed`` in delta); attendees see it with
  ``isCancelled``. ``instances`` lists exceptions first, then occurrences.
* Bodies are stored as Outlook stores them (HTML, wrapped); PATCH writes
  ``body`` and ``singleValueExtendedProperties`` only and checks ``If-Match``
  (412 ``ErrorIrresolvableConflict``); attendees may PATCH their own copy.
* Subscriptions validate their URLs, live at most 10,080 minutes and notify
  from a background thread after every change, our own PATCHes included.
* ``GET /users`` (graph_directory) lists the mailboxes and the users without
  one, for an app-only token holding User.Read.All (``app_roles``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from . import _cli
from ._server import Served, url_of
from ._tls import make_authority
from ._world import WorldEdits
from .graph_directory import Directory
from .graph_faults import OPS, GraphFaults
from .graph_http import GraphApp, Recorded, serve
from .graph_identity import GRAPH_RESOURCE, LOGIN_HOST, Authority
from .graph_push import LIFECYCLE_EVENTS, Notice, PushHub, Sent
from .graph_store import Change, MailboxStore, etag_of
from .graph_views import Views

__all__ = [
    "DEFAULT_TENANT",
    "LIFECYCLE_EVENTS",
    "OPS",
    "GraphEmulator",
    "GraphFaults",
    "Recorded",
    "Sent",
    "main",
]

DEFAULT_TENANT = "11111111-2222-3333-4444-555555555555"
_LOGIN_ROOT = f"https://{LOGIN_HOST}/"


class _ToEmulator(HTTPAdapter):
    """Sends what msal addresses to the production login host to the emulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._base_url = base_url

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = request.url or ""
        if url.startswith(_LOGIN_ROOT):
            request.url = self._base_url + url[len(_LOGIN_ROOT) :]
        return super().send(request, *args, **kwargs)


class GraphEmulator(WorldEdits, Served):
    """Many people's Exchange Online mailboxes behind one loopback HTTP server.

    The socket is bound at construction, so every URL and the app registration
    are valid before ``start``; requests are served between ``start`` and ``stop``.
    ``app_roles`` are the application permissions an admin consented to for the
    app registration: ``Calendars.ReadWrite`` alone unless given (listing users
    needs ``User.Read.All`` too).
    """

    _thread_name = "graph-emulator"
    _push: PushHub

    def __init__(
        self,
        users: Iterable[str] = (),
        *,
        tenant: str = DEFAULT_TENANT,
        page_size: int = 50,
        host: str = "127.0.0.1",
        port: int = 0,
        app_roles: Iterable[str] | None = None,
        resource: str = GRAPH_RESOURCE,
        tls_names: Iterable[str] = (),
    ) -> None:
        """``resource``: the Graph the tenant's tokens are for (the cloud's own, see
        ``Authority``). ``tls_names``: host names a test resolves to this emulator
        (``login.microsoftonline.us``), which its https certificate then covers.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.tenant = tenant
        self._store: MailboxStore = MailboxStore(tenant)
        self._authority = Authority(tenant, directory=self._person, resource=resource)
        if app_roles is not None:
            self.set_app_roles(app_roles)
        self.client_id = self._authority.client_id
        self.client_secret = self._authority.client_secret
        self.authority = f"https://{LOGIN_HOST}/{tenant}"
        self._views = Views(self._store, page_size=page_size)
        self._push = PushHub(
            tenant=tenant,
            application_id=self.client_id,
            creator_id=self._authority.service_principal_id,
            find=self._store.mailbox,
        )
        self._store.listener = self._changed
        self.faults = GraphFaults(self._store, self._push)
        self._directory = Directory(self._store, tenant, self.faults)
        self._app = GraphApp(
            store=self._store,
            views=self._views,
            authority=self._authority,
            push=self._push,
            faults=self.faults,
            directory=self._directory,
        )
        self.requests: list[Recorded] = self._app.requests
        tls = make_authority(tls_names)
        secure = serve(self._app, host, 0, tls.server_context)
        self._init_served(serve(self._app, host, port), secure)
        #: The PEM of the CA that signed the https listener's certificate.
        self.ca_file = str(tls.ca_file)
        #: The https listener (the same emulator): what ``authority`` in a
        #: config names, since msal refuses plain-http authorities.
        self.https_url = url_of(secure, "https")
        self.login_root = self.https_url.rstrip("/")
        #: ``<login_root>/<tenant>``: an authority msal reaches as any cloud's, over https.
        self.https_authority = f"{self.login_root}/{tenant}"
        self.tls_port = int(secure.server_address[1])
        self.graph_root = self.base_url + "v1.0/"
        self._app.base_url = self.base_url
        self._views.context_root = self.graph_root
        self._push.context_root = self.graph_root
        for user in users:
            self.add_user(user)

    # ---------------------------------------------------------------- identity

    def http_client(self) -> requests.Session:
        """The session to give msal as ``http_client``: the login host, rewritten to here.

        ``trust_env`` is off so REQUESTS_CA_BUNDLE and proxy variables cannot
        reroute or re-verify the loopback connection.
        """
        session = requests.Session()
        session.trust_env = False
        session.mount(_LOGIN_ROOT, _ToEmulator(self.base_url))
        return session

    def revoke_consent(self) -> None:
        """The tenant's admin consent is withdrawn: the token endpoint answers AADSTS700016."""
        self._authority.revoke_consent()

    def grant_consent(self) -> None:
        self._authority.grant_consent()

    def set_app_roles(self, roles: Iterable[str]) -> None:
        """The application permissions an admin consented to; tokens issued later carry them."""
        self._authority.roles = frozenset(roles)

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (401 on use)."""
        self._authority.expire_tokens()

    def approve_device_code(self, user_code: str | None, user: str) -> None:
        """``user`` signs in at the verification page and approves the code (newest if None)."""
        self._authority.approve_device_code(user_code, user, self.user_id(user))

    def add_redirect_uri(self, uri: str) -> None:
        """Register a web app's sign-in redirect URI with the app registration."""
        self._authority.add_redirect_uri(uri)

    def sign_in_as(self, user: str) -> None:
        """``user`` is the person signed in at the sign-in page (``/authorize``)."""
        self._authority.sign_in_as(user, self.user_id(user))

    def tamper_next_id_token(self, **claims: Any) -> None:
        """The next sign-in ID token carries these claims instead (None removes one)."""
        self._authority.tamper_next_id_token(**claims)

    def _person(self, identifier: str) -> tuple[str, str] | None:
        mailbox = self._store.mailbox(identifier)
        return None if mailbox is None else (mailbox.address, mailbox.user_id)

    def revoke_user_grant(self, user: str) -> None:
        """The person's refresh tokens are revoked: later refreshes answer invalid_grant."""
        self._authority.revoke_user_grant(user)

    # ------------------------------------------------------------ mailboxes

    def add_user(self, address: str) -> None:
        """A licensed user with a mailbox, and copies of what they were already invited to."""
        self._store.add_mailbox(address)

    add_calendar = add_user  # the memory provider's name for the same thing

    def users(self) -> list[str]:
        return self._store.addresses()

    def user_id(self, address: str) -> str:
        """The user's directory object id (``/users/{id}`` accepts it like the address)."""
        mailbox = self._store.mailbox(address)
        if mailbox is None:
            raise KeyError(f"no user {address!r}")
        return mailbox.user_id

    def add_user_without_mailbox(self, principal: str, *, enabled: bool = True) -> None:
        """A directory user without a mailbox (no Exchange licence): listed without ``mail``."""
        self._directory.add_user_without_mailbox(principal, enabled=enabled)

    def set_manager(self, user: str, manager: str | None) -> None:
        """Who ``user`` reports to in the directory (``$expand=manager``); None: nobody."""
        self._directory.set_manager(user, manager)

    def disable_user(self, user: str) -> None:
        """The account is disabled (or this app barred from it): 403 on its mailbox."""
        self._store.set_disabled(user, True)

    def enable_user(self, user: str) -> None:
        self._store.set_disabled(user, False)

    @property
    def notifications(self) -> list[Sent]:
        return self._push.sent

    # ----------------------------------------------------------------- internals

    def _changed(self, changes: list[Change]) -> None:
        """Called inside the store's lock, so the etags are the ones right after the change."""
        notices: list[Notice] = []
        for change in changes:
            mailbox = self._store.mailbox(change.mailbox)
            if mailbox is None:
                continue
            hit = self._store.resolve(change.mailbox, change.event_id)
            notices.append(
                Notice(
                    mailbox=change.mailbox,
                    user_id=mailbox.user_id,
                    event_id=change.event_id,
                    change_type=change.change_type,
                    etag=None if hit is None else etag_of(hit),
                )
            )
        self._push.changed(notices)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m providers.emulators.graph --port N --users a@x,b@y``."""
    parser = _cli.parser(
        "python -m providers.emulators.graph",
        "Serve an emulated Microsoft Graph v1.0 and login endpoint on loopback.",
    )
    parser.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant id")
    parser.add_argument(
        "--credentials",
        type=Path,
        help="write the app registration (tenant, client id and secret) as JSON to this file",
    )
    args = parser.parse_args(argv)
    users, events = _cli.seeded(parser, args)
    emulator = GraphEmulator(users, tenant=args.tenant, port=args.port)
    _cli.seed(emulator, events)
    if args.credentials is not None:
        registration = {
            "tenant": emulator.tenant,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            # what a microsoft account's config takes to reach this emulator
            "authority": emulator.login_root,
            "graph_root": emulator.graph_root,
            "ca_file": emulator.ca_file,
        }
        _cli.write_private_json(args.credentials, registration)
    return _cli.serve_until_interrupted(emulator)


if __name__ == "__main__":
    raise SystemExit(main())
