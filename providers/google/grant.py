"""One person's Google grant: the consent flow (``syncd auth``) and its sealed form.

A refresh token is as good as the person's password for their calendar, so
it is kept only in a ``Sealed`` file that syncd lends the plugin; the access
token (an hour's worth) is never kept at all.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import InstalledAppFlow, WSGITimeoutError
from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]

from providers.base import Sealed, SetupError

#: ``calendar.events`` reads, writes and watches events, which is all syncd
#: does. The broader ``calendar`` scope would also let a leaked token delete
#: whole calendars, change their sharing (ACLs) and settings, none of which
#: syncd needs; least privilege keeps the damage of a leak to events.
SCOPES = ("https://www.googleapis.com/auth/calendar.events",)

#: Bumped if the sealed grant's JSON changes shape, so an old file is refused
#: with a clear line rather than misread.
_GRANT_VERSION = 1


def save(sealed: Sealed, credentials: Credentials) -> None:
    """Keep what refreshes a single-user grant; the access token is not kept."""
    if not credentials.refresh_token:
        raise SetupError(
            f"{sealed.path}: Google returned no refresh token, so the grant would stop "
            "working within an hour; remove syncd's access at "
            "https://myaccount.google.com/permissions and authorize again"
        )
    grant = {
        "version": _GRANT_VERSION,
        "refresh_token": credentials.refresh_token,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "token_uri": credentials.token_uri,
        "scopes": list(credentials.scopes or SCOPES),
    }
    sealed.save(json.dumps(grant).encode("utf-8"))


def load(sealed: Sealed) -> Credentials | None:
    """The saved grant as credentials that refresh themselves, or ``None``."""
    raw = sealed.load()
    if raw is None:
        return None
    try:
        grant = json.loads(raw)
    except ValueError:
        grant = None
    if not isinstance(grant, dict) or grant.get("version") != _GRANT_VERSION:
        raise SetupError(f"{sealed.path}: not a Google grant saved by this version of syncd")
    fields = ("refresh_token", "client_id", "client_secret", "token_uri")
    if not all(isinstance(grant.get(name), str) and grant[name] for name in fields):
        raise SetupError(f"{sealed.path}: the Google grant is incomplete; authorize again")
    scopes = grant.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise SetupError(f"{sealed.path}: the Google grant is incomplete; authorize again")
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=grant["refresh_token"],
        client_id=grant["client_id"],
        client_secret=grant["client_secret"],
        token_uri=grant["token_uri"],
        scopes=scopes,
    )


def authorize(
    client_secrets: Path,
    open_url: Callable[[str], None],
    *,
    timeout_seconds: float | None = 600,
) -> Credentials:
    """One person's consent, through a browser and a one-shot local server.

    ``open_url`` gets the authorization URL and must return at once (a
    browser launch, a printed line, or a test's background request): the
    local server that receives Google's redirect only starts listening for
    it after ``open_url`` returns. ``access_type=offline`` and
    ``prompt=consent`` make Google send a refresh token even to a person who
    has granted access before.
    """
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=list(SCOPES))
    except FileNotFoundError:
        raise SetupError(f"{client_secrets}: OAuth client file not found") from None
    except OSError as exc:
        raise SetupError(f"{client_secrets}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, KeyError):
        raise SetupError(
            f"{client_secrets}: not an OAuth client JSON for an installed (Desktop) or web app"
        ) from None

    authorization_url = flow.authorization_url

    def announce(**kwargs: object) -> tuple[str, str]:
        url, state = authorization_url(**kwargs)
        open_url(url)
        return url, state

    flow.authorization_url = announce
    try:
        with _relaxed_token_scope():
            credentials = flow.run_local_server(
                host="localhost",
                port=0,
                open_browser=False,
                authorization_prompt_message="",
                timeout_seconds=timeout_seconds,
                access_type="offline",
                prompt="consent",
            )
    except OAuth2Error as exc:
        # The error code and Google's description only; never the request.
        reason = exc.error + (f" ({exc.description})" if exc.description else "")
        raise SetupError(f"Google authorization failed: {reason}") from None
    except WSGITimeoutError:
        raise SetupError("Google authorization timed out: no answer from the browser") from None
    if not isinstance(credentials, Credentials):
        raise SetupError("Google authorization returned no user credentials")
    granted = credentials.granted_scopes
    if granted is not None and not set(SCOPES) <= set(granted):
        raise SetupError(
            "Google authorization did not grant calendar event access; authorize again "
            "and leave the calendar permission checked"
        )
    return credentials


@contextlib.contextmanager
def _relaxed_token_scope() -> Iterator[None]:
    """Let oauthlib accept a grant whose scopes differ from the request.

    Google adds scopes granted earlier and lets people uncheck ones asked
    for; oauthlib would raise a bare ``Warning`` and drop the token either
    way. ``authorize`` checks the granted scopes itself instead, and can say
    what is missing.
    """
    name = "OAUTHLIB_RELAX_TOKEN_SCOPE"
    before = os.environ.get(name)
    os.environ[name] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
