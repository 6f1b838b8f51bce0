"""Build the running parts (store, policy, providers) from validated settings.

Kept apart from the CLI so that ``sync-once``, ``run`` and the tests assemble
syncd the same way, and apart from the engine so that the engine never learns
which provider it talks to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

import providers
from providers.base import Provider, ProviderError, Setup
from syncd import budget, config, detect, installation, secrets
from syncd.engine import Policy
from syncd.store import connect, migrate
from syncd.web.settings import (
    MIN_SESSION_SECRET,
    GoogleSignIn,
    MicrosoftSignIn,
    OidcSettings,
    SignIn,
    WebSettings,
)


def policy(settings: config.Settings) -> Policy:
    return Policy(
        base_url=settings.syncd.base_url,
        installation=installation.identity(
            secrets.installation_key(settings), settings.syncd.base_url
        ),
        zone=ZoneInfo(settings.syncd.timezone),
        rules=detect.Rules.from_settings(settings),
        template=tuple(config.load_template(settings)),
        carry_talking_points=settings.syncd.carry_talking_points,
        window_days=settings.sync.window_days,
        past_days=settings.sync.past_days,
        horizon_occurrences=settings.sync.horizon_occurrences,
        horizon_days=settings.sync.horizon_days,
        max_write_attempts=settings.sync.max_write_attempts,
        mail_budget=budget.Budget(
            lead=timedelta(minutes=settings.sync.invite_refresh_lead_minutes),
            gap=timedelta(minutes=settings.sync.invite_refresh_gap_minutes),
        ),
        dry_run=settings.syncd.dry_run,
    )


def store(settings: config.Settings) -> Engine:
    """The database, migrated to the newest schema."""
    engine = connect(settings.syncd.database)
    migrate(engine)
    return engine


log = logging.getLogger(__name__)


@dataclass
class Connected:
    """One account's provider and the calendars it watches."""

    account: config.Account
    provider: Provider
    calendars: list[str]
    #: Why the account's directory could not be listed last time it was asked
    #: (``calendars`` then kept what it had); None once a listing succeeds.
    directory_error: ProviderError | None = None


def refresh_calendars(conn: Connected) -> list[str]:
    """List a directory account's calendars again; the whole list, now in ``conn.calendars``.

    People join and leave an organization while the daemon runs, so the
    runtime calls this now and then (hourly is plenty) and enrolls what it
    returns. Accounts without a directory keep their configured list without
    any request. A failed listing (a revoked permission, an outage) keeps the
    previous list, is logged as one line and kept in ``conn.directory_error``:
    one account's directory never stops the daemon.
    """
    if not conn.account.directory:
        return list(conn.calendars)
    try:
        listed = conn.provider.calendars()
    except ProviderError as error:
        conn.directory_error = error
        log.warning(
            "account %s: cannot list the directory (%s: %s); still watching %d calendars",
            conn.account.name,
            type(error).__name__,
            error,
            len(conn.calendars),
        )
        return list(conn.calendars)
    conn.directory_error = None
    conn.calendars = listed
    return list(listed)


def setup(account: config.Account, settings: config.Settings) -> Setup:
    """What the account's plugin gets to connect: where it is, its secrets, the page size."""
    where = f"{settings.path}: accounts[{settings.accounts.index(account)}]"
    return Setup(
        where=where,
        secrets=secrets.AccountSecrets(settings, where),
        page_size=settings.sync.page_size,
    )


@contextmanager
def connected(account: config.Account, settings: config.Settings) -> Iterator[Connected]:
    """The account's provider for the duration of a block; its plugin saves state on the way out."""
    plugin = providers.plugin(account.provider)
    with plugin.connect(account, setup(account, settings)) as provider:
        yield _listed(account, provider)


def _listed(account: config.Account, provider: Provider) -> Connected:
    """The connection with its calendars; a directory that cannot be listed yet is logged.

    Until a listing succeeds, a directory account watches what the config
    names (perhaps nothing); ``refresh_calendars`` tries again later.
    """
    if not account.directory:
        return Connected(account, provider, provider.calendars())
    conn = Connected(account, provider, list(account.calendars))
    refresh_calendars(conn)
    return conn


def web_settings(settings: config.Settings) -> WebSettings:
    """The web app's settings from ``[web]`` (and the agenda links' base URL).

    With ``sign_in = "oidc"`` the secrets it names are read here, when the
    web app starts; a missing or unusable one is a ``SecretError`` line.
    """
    web = settings.web
    sign_ins: dict[config.SignIn, SignIn] = {
        config.SignIn.LINK: "link",
        config.SignIn.PROXY_HEADER: "proxy-header",
        config.SignIn.OIDC: "oidc",
    }
    return WebSettings(
        sign_in=sign_ins[web.sign_in],
        proxy_header=web.proxy_header,
        trusted_proxies=web.trusted_proxies,
        admins=web.admins,
        base_url=settings.syncd.base_url,
        secure_cookies=web.secure_cookies,
        zone=web.timezone or settings.syncd.timezone,
        oidc=_oidc_settings(settings) if web.sign_in is config.SignIn.OIDC else None,
        carry_talking_points=settings.syncd.carry_talking_points,
    )


def _oidc_settings(settings: config.Settings) -> OidcSettings:
    oidc = settings.web.oidc
    google = microsoft = None
    if "google" in oidc.providers:
        google = _google_sign_in(settings)
    if "microsoft" in oidc.providers:
        secret = _secret_file(settings, "microsoft_client_secret_file")
        microsoft = MicrosoftSignIn(
            tenant=oidc.microsoft_tenant,
            client_id=oidc.microsoft_client_id,
            client_secret=secret.decode("utf-8", "replace"),
            cloud=oidc.microsoft_cloud,
            authority=oidc.microsoft_authority,
            ca_file=oidc.microsoft_ca_file,
        )
    session_secret = _secret_file(settings, "session_secret_file")
    if len(session_secret) < MIN_SESSION_SECRET:
        raise secrets.SecretError(
            f"{settings.path}: web.oidc.session_secret_file: holds fewer than "
            f"{MIN_SESSION_SECRET} bytes; write a long random value into it, e.g. "
            "`head -c 48 /dev/urandom | base64`"
        )
    return OidcSettings(
        session_secret=session_secret,
        session_hours=oidc.session_hours,
        google=google,
        microsoft=microsoft,
    )


def _google_sign_in(settings: config.Settings) -> GoogleSignIn:
    """The "Web application" client from the JSON the Google Cloud console hands out."""
    where = f"{settings.path}: web.oidc.google_client_file"
    try:
        client = json.loads(_secret_file(settings, "google_client_file"))["web"]
        fields = {
            name: client[name] for name in ("client_id", "client_secret", "auth_uri", "token_uri")
        }
    except (ValueError, KeyError, TypeError):
        raise secrets.SecretError(
            f'{where}: not the JSON of a Google OAuth client of type "Web application"'
        ) from None
    if not all(isinstance(value, str) and value for value in fields.values()):
        raise secrets.SecretError(f"{where}: the client JSON lacks an id, secret or endpoint")
    callback = f"{settings.syncd.base_url}/auth/callback/google"
    registered = client.get("redirect_uris")
    if isinstance(registered, list) and registered and callback not in registered:
        raise secrets.SecretError(
            f"{where}: the client does not list {callback} among its redirect URIs; add it "
            'under "Authorized redirect URIs" and download the JSON again'
        )
    return GoogleSignIn(**fields, certs_url=settings.web.oidc.google_certs_url)


def _secret_file(settings: config.Settings, key: str) -> bytes:
    """The stripped content of the file ``web.oidc.<key>`` names; never shown in an error."""
    where = f"{settings.path}: web.oidc.{key}"
    content = secrets.read_secret(getattr(settings.web.oidc, key), settings.directory, where)
    if not content.strip():
        raise secrets.SecretError(f"{where}: the file is empty")
    return content.strip()
