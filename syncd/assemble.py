"""Build the running parts (store, policy, providers) from validated settings.

Kept apart from the CLI so that ``sync-once``, ``run`` and the tests assemble
syncd the same way, and apart from the engine so that the engine never learns
which provider it talks to.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import msal  # type: ignore[import-untyped]
from google.auth.credentials import Credentials
from google.oauth2 import service_account
from sqlalchemy import Engine

from providers.base import AuthRevoked, Provider, ProviderError, Transient
from providers.google import DIRECTORY_SCOPE, GoogleDirectory, GoogleProvider, directory_root
from providers.memory import MemoryProvider
from providers.microsoft import MicrosoftProvider, app_token_source, error_for
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


class UnsupportedProvider(Exception):
    """The account names a provider this build does not have yet."""


def google(account: config.Account, settings: config.Settings) -> GoogleProvider:
    """A Google account's provider: delegated per person, or one person's own grant."""
    options = account.google
    assert options is not None, "the config parser sets google options on google accounts"
    index = settings.accounts.index(account)
    key = f"accounts[{index}]"
    directory: GoogleDirectory | None = None
    if options.mode is config.GoogleMode.ORGANIZATION:
        where = f"{settings.path}: {key}.service_account_file"
        content = secrets.read_secret(
            options.service_account_file, settings.directory, where, "service-account key"
        )
        try:
            delegating = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                json.loads(content), scopes=list(secrets.GOOGLE_SCOPES)
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise secrets.SecretError(f"{where}: not a service-account key") from None

        def credentials_for(person: str) -> Credentials:
            return cast(Credentials, delegating.with_subject(person))

        calendars: Sequence[str] = account.calendars
        if account.directory:
            # Only the admin's credential asks for the directory scope, so that
            # everyone else's tokens stay calendar-only.
            admin = delegating.with_scopes([DIRECTORY_SCOPE]).with_subject(options.directory_admin)
            directory = GoogleDirectory(
                cast(Credentials, admin),
                domain=options.directory_domain,
                root=directory_root(options.api_root),
            )
    else:
        assert options.token_file is not None
        grant = secrets.load_google_grant(
            secrets.SealedFile(options.token_file, secrets.load_key(settings))
        )
        if grant is None:
            raise secrets.SecretError(
                f"{settings.path}: {key}: no grant yet; run "
                f"`syncd auth google --account {account.name}` first"
            )
        own: Credentials = grant

        def credentials_for(person: str) -> Credentials:
            return own

        calendars = account.calendars or ("primary",)
    return GoogleProvider(
        calendars,
        credentials_for,
        api_root=options.api_root,
        send_updates=options.send_updates.value,
        page_size=settings.sync.page_size,
        directory=directory,
        directory_exclude=account.directory_exclude,
    )


class DelegatedTokenSource:
    """One person's Graph tokens from their sealed msal cache (single-user mode).

    msal answers from the cache while the access token lasts and otherwise
    redeems the refresh token; the cache is sealed again whenever that changed
    it (refresh tokens rotate). A cache without an account, or a refresh the
    identity platform refuses (``invalid_grant``: revoked, password reset),
    is ``AuthRevoked``: the person has to run ``syncd auth microsoft`` again.
    """

    def __init__(
        self,
        sealed: secrets.SealedFile,
        authority: str,
        client_id: str,
        *,
        account_name: str,
        http_client: Any = None,
    ) -> None:
        self._sealed = sealed
        self._authority = authority
        self._client_id = client_id
        self._account_name = account_name
        self._http_client = http_client
        self._cache = secrets.msal_cache(sealed)
        self._app: Any = None
        self._lock = threading.Lock()

    def _again(self) -> str:
        return f"run `syncd auth microsoft --account {self._account_name}` again"

    def _application(self) -> Any:
        if self._app is None:
            try:
                self._app = msal.PublicClientApplication(
                    self._client_id,
                    authority=self._authority,
                    http_client=self._http_client,
                    token_cache=self._cache,
                )
            except ValueError as error:
                raise AuthRevoked(f"authority {self._authority}: {error}") from error
            except Exception as error:
                raise error_for(error) from error
        return self._app

    def _acquire(self, force: bool) -> str:
        with self._lock:
            app = self._application()
            accounts = app.get_accounts()
            if not accounts:
                raise AuthRevoked(f"{self._sealed.path}: no signed-in account; {self._again()}")
            try:
                result = app.acquire_token_silent_with_error(
                    list(secrets.MICROSOFT_SCOPES), account=accounts[0], force_refresh=force
                )
            except ValueError as error:  # a non-JSON token response
                raise Transient(f"token endpoint: {error}") from error
            except Exception as error:
                raise error_for(error) from error
            finally:
                secrets.save_msal_cache(self._sealed, self._cache)
        if result is None:
            raise AuthRevoked(f"{self._sealed.path}: no usable grant in the cache; {self._again()}")
        if not isinstance(result, dict) or "access_token" not in result:
            failure: ProviderError = error_for(
                result if isinstance(result, dict) else {"error": "no_token"}
            )
            if isinstance(failure, AuthRevoked):
                raise AuthRevoked(f"{failure}; {self._again()}")
            raise failure
        return str(result["access_token"])

    def __call__(self) -> str:
        return self._acquire(False)

    def refresh(self) -> str:
        """Graph refused the cached access token: redeem the refresh token now."""
        return self._acquire(True)


def microsoft(
    account: config.Account, settings: config.Settings, *, http_client: Any = None
) -> MicrosoftProvider:
    """A Microsoft 365 provider: one app-only token for a tenant, or one person's own grant.

    ``http_client`` goes to msal unchanged (tests route the login host to an
    emulator with it); the authority is always the production one.
    """
    options = account.microsoft
    assert options is not None, "the config parser sets microsoft options on microsoft accounts"
    index = settings.accounts.index(account)
    authority = f"https://login.microsoftonline.com/{options.tenant}"
    tokens: Callable[[], str]
    if options.mode is config.AccountMode.SINGLE_USER:
        assert options.token_file is not None, "the parser sets token_file in single-user mode"
        sealed = secrets.SealedFile(options.token_file, secrets.load_key(settings))
        if not options.token_file.exists():
            raise secrets.SecretError(
                f"{settings.path}: accounts[{index}]: no grant yet; run "
                f"`syncd auth microsoft --account {account.name}` first"
            )
        tokens = DelegatedTokenSource(
            sealed,
            authority,
            options.client_id,
            account_name=account.name,
            http_client=http_client,
        )
        return MicrosoftProvider(
            account.calendars,
            tokens,
            graph_root=options.graph_root,
            page_size=min(settings.sync.page_size, 1000),
            subscription_lifetime=timedelta(minutes=options.subscription_minutes),
        )
    key = f"accounts[{index}].client_secret_file"
    where = f"{settings.path}: {key}"
    raw = secrets.read_secret(options.client_secret_file, settings.directory, where)
    client_secret = raw.decode("utf-8", "replace").strip()
    if not client_secret:
        raise secrets.SecretError(f"{where}: the file is empty")
    tokens = app_token_source(authority, options.client_id, client_secret, http_client=http_client)
    return MicrosoftProvider(
        account.calendars,
        tokens,
        graph_root=options.graph_root,
        page_size=min(settings.sync.page_size, 1000),
        subscription_lifetime=timedelta(minutes=options.subscription_minutes),
        directory=account.directory,
        directory_exclude=account.directory_exclude,
    )


@contextmanager
def connected(
    account: config.Account, settings: config.Settings, *, microsoft_http_client: Any = None
) -> Iterator[Connected]:
    """The account's provider for the duration of a block; state saved on the way out.

    ``microsoft_http_client`` reaches msal for Microsoft accounts: the demo
    routes the login host to its Graph emulator with it.
    """
    if account.provider is config.ProviderName.GOOGLE:
        provider: Provider = google(account, settings)
        yield _listed(account, provider)
        return
    if account.provider is config.ProviderName.MICROSOFT:
        graph = microsoft(account, settings, http_client=microsoft_http_client)
        try:
            yield _listed(account, graph)
        finally:
            graph.close()
        return
    if account.provider is not config.ProviderName.MEMORY:
        raise UnsupportedProvider(
            f"account {account.name!r}: provider {account.provider.value!r} is not available yet"
        )
    state = account.state_file
    if state is not None and state.exists():
        memory = MemoryProvider.load(state)
    else:
        memory = MemoryProvider(account.calendars, page_size=settings.sync.page_size)
    for address in account.calendars:
        if address not in memory.calendars():
            memory.add_calendar(address)
    try:
        yield Connected(account, memory, list(account.calendars) or memory.calendars())
    finally:
        if state is not None:
            memory.save(state)


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
