"""Google Calendar: the plugin (connect, consent, webhook); the wire mapping is in calendar.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from google.auth.credentials import Credentials
from google.oauth2 import service_account

from providers.base import (
    Account,
    Prompt,
    Setup,
    SetupError,
    WebhookAnswer,
    WebhookRequest,
    options_of,
)
from providers.google import grant
from providers.google.calendar import (
    DIRECTORY_SCOPE,
    GoogleDirectory,
    GoogleProvider,
    directory_root,
    parse_notification,
)
from providers.google.options import GoogleOptions
from providers.google.signin import GoogleSignInFlow

__all__ = ["GoogleOptions", "GooglePlugin", "plugin"]


def _options(account: Account) -> GoogleOptions:
    return options_of(account, GoogleOptions)


class GooglePlugin:
    name = "google"
    options = GoogleOptions
    directory = True
    #: A Google push message is all headers; its body is empty.
    webhook_limit = 4 * 1024
    concurrency = 8

    @contextmanager
    def connect(self, account: Account, setup: Setup) -> Iterator[GoogleProvider]:
        yield self.provider(account, setup)

    def provider(self, account: Account, setup: Setup) -> GoogleProvider:
        """Delegated per person (organization mode), or one person's own grant."""
        options = _options(account)
        directory: GoogleDirectory | None = None
        calendars: Sequence[str] = account.calendars
        if options.mode == "organization":
            content = setup.secrets.read(
                "service_account_file", options.service_account_file, "service-account key"
            )
            try:
                delegating = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    json.loads(content), scopes=list(grant.SCOPES)
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SetupError(
                    f"{setup.where}.service_account_file: not a service-account key"
                ) from None

            def credentials_for(person: str) -> Credentials:
                return cast(Credentials, delegating.with_subject(person))

            if account.directory:
                # Only the admin's credential asks for the directory scope, so that
                # everyone else's tokens stay calendar-only.
                admin = delegating.with_scopes([DIRECTORY_SCOPE]).with_subject(
                    options.directory_admin
                )
                directory = GoogleDirectory(
                    cast(Credentials, admin),
                    domain=options.directory_domain,
                    root=directory_root(options.api_root),
                )
        else:
            own = grant.load(setup.secrets.sealed(options.token_file))
            if own is None:
                raise SetupError(
                    f"{setup.where}: no grant yet; run `syncd auth --account {account.name}` first"
                )
            mine: Credentials = own

            def credentials_for(person: str) -> Credentials:
                return mine

            calendars = account.calendars or ("primary",)
        return GoogleProvider(
            calendars,
            credentials_for,
            api_root=options.api_root,
            send_updates=options.send_updates,
            page_size=setup.page_size,
            directory=directory,
            directory_exclude=account.directory_exclude,
        )

    def authorize(self, account: Account, setup: Setup, say: Prompt) -> str:
        """A browser consent, redirected to a one-shot server on localhost."""
        options = _options(account)
        if options.mode == "organization":
            raise SetupError(
                f"{setup.where}.mode: account {account.name!r} is in organization mode: its "
                "service account acts for every person, so no per-person auth is needed"
            )
        # The key first: a missing key should fail before anyone clicks through consent.
        sealed = setup.secrets.sealed(options.token_file)
        # read once to refuse a file others can read, before anyone clicks through consent
        setup.secrets.read("client_secrets_file", options.client_secrets_file, "OAuth client")
        client_secrets = setup.secrets.path("client_secrets_file", options.client_secrets_file)

        def open_url(url: str) -> None:
            say(
                "Open this address in a browser that can reach localhost on this machine "
                f"(ssh -L from a remote one) and allow calendar access:\n\n    {url}\n",
                url,
            )

        grant.save(sealed, grant.authorize(client_secrets, open_url))
        return f"authorized google account {account.name!r}; grant sealed in {options.token_file}"

    def sign_in(
        self,
        client: Any,
        redirect_uri: str,
        *,
        form_post: bool,
        now: Callable[[], float],
    ) -> GoogleSignInFlow:
        """Sign-in with Google for the pages (google-auth-oauthlib, ID token verified here)."""
        return GoogleSignInFlow(client, redirect_uri)

    def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        """204 for a channel of ours; 404 otherwise: Google does not retry it, it says nothing."""
        notification = parse_notification(request.headers)
        found = (notification,) if notification is not None else ()
        return WebhookAnswer(status=204, notifications=found, unknown_status=404)


plugin = GooglePlugin()
