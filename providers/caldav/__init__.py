"""CalDAV (Fastmail, Nextcloud, iCloud, SOGo, Radicale, Xandikos): the plugin; see dav.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import caldav

from providers.base import (
    Account,
    Prompt,
    Setup,
    SetupError,
    WebhookAnswer,
    WebhookRequest,
    options_of,
)
from providers.caldav.dav import CalDavProvider
from providers.caldav.options import CalDavOptions

__all__ = ["CalDavOptions", "CalDavPlugin", "plugin"]

#: Seconds a request may take before the calendar's sync is retried later.
TIMEOUT = 30


def _options(account: Account) -> CalDavOptions:
    return options_of(account, CalDavOptions)


def _schedules(client: caldav.DAVClient, root: str) -> bool:
    """Whether the server does implicit scheduling (RFC 6638 advertises it in ``DAV:``).

    Unknown (the server does not answer now) counts as yes: then syncd
    writes as if every write mailed the attendees, which costs latency at
    worst, never a surprise mail.
    """
    try:
        answer = client.request(root, "OPTIONS")
    except Exception:  # any failure here is "unknown", and unknown is the careful answer
        return True
    return "calendar-auto-schedule" in str(answer.headers.get("DAV", "")).lower()


class CalDavPlugin:
    name = "caldav"
    options = CalDavOptions
    directory = False
    #: CalDAV has no push syncd can subscribe to (WebDAV-Push is a draft): it polls.
    webhook_limit = 0
    #: Small servers (Radicale, Xandikos) serve one request at a time per collection.
    concurrency = 2

    @contextmanager
    def connect(self, account: Account, setup: Setup) -> Iterator[CalDavProvider]:
        options = _options(account)
        raw = setup.secrets.read("password_file", options.password_file, "app password")
        password = raw.decode("utf-8", "replace").strip()
        if not password:
            raise SetupError(f"{setup.where}.password_file: the file is empty")
        root = options.url if options.url.endswith("/") else options.url + "/"
        client = caldav.DAVClient(
            url=root,
            username=options.username,
            password=password,
            ssl_verify_cert=options.ca_file or True,
            timeout=TIMEOUT,
        )

        def calendar_url(address: str) -> str:
            local = address.split("@", 1)[0]
            return urljoin(root, options.calendar_url.format(address=address, user=local))

        try:
            yield CalDavProvider(
                account.calendars,
                client,
                calendar_url,
                zone=ZoneInfo(options.timezone),
                page_size=setup.page_size,
                schedules=_schedules(client, root),
            )
        finally:
            client.close()

    def authorize(self, account: Account, setup: Setup, say: Prompt) -> str:
        raise SetupError(
            f"{setup.where}.provider: caldav accounts sign in with an app password "
            "(password_file); there is no consent to give"
        )

    def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        return WebhookAnswer(status=404)


plugin = CalDavPlugin()
