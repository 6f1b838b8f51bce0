"""Microsoft 365 over Graph: the plugin (connect, consent, webhook); the wire is in graph.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from providers.base import (
    Account,
    Prompt,
    Setup,
    SetupError,
    WebhookAnswer,
    WebhookRequest,
    options_of,
)
from providers.microsoft import tokens
from providers.microsoft.graph import MicrosoftProvider, app_token_source, parse_notifications
from providers.microsoft.options import MicrosoftOptions
from providers.microsoft.signin import MicrosoftSignInFlow

__all__ = ["MicrosoftOptions", "MicrosoftPlugin", "plugin"]

#: Graph's most per page of calendarView.
_MAX_PAGE = 1000


def _options(account: Account) -> MicrosoftOptions:
    return options_of(account, MicrosoftOptions)


class MicrosoftPlugin:
    name = "microsoft"
    options = MicrosoftOptions
    directory = True
    #: Graph batches notifications; a few hundred of them fit well within this.
    webhook_limit = 1024 * 1024
    #: Graph allows four concurrent requests per mailbox and throttles apps that push harder.
    concurrency = 4

    @contextmanager
    def connect(self, account: Account, setup: Setup) -> Iterator[MicrosoftProvider]:
        graph = self.provider(account, setup)
        try:
            yield graph
        finally:
            graph.close()

    def provider(self, account: Account, setup: Setup) -> MicrosoftProvider:
        """One app-only token for a tenant, or one person's own grant."""
        options = _options(account)
        where = options.endpoints
        login = tokens.login_session(options.ca_file)

        def graph(token: Callable[[], str], *, directory: bool = False) -> MicrosoftProvider:
            return MicrosoftProvider(
                account.calendars,
                token,
                graph_root=where.graph_root,
                page_size=min(setup.page_size, _MAX_PAGE),
                subscription_lifetime=timedelta(minutes=options.subscription_minutes),
                verify=tokens.tls_context(options.ca_file),
                directory=directory,
                directory_exclude=account.directory_exclude,
            )

        if options.mode == "single-user":
            sealed = setup.secrets.sealed(options.token_file)
            # the file's presence says it; DelegatedTokenSource unseals it once, below
            if not Path(options.token_file).exists():
                raise SetupError(
                    f"{setup.where}: no grant yet; run `syncd auth --account {account.name}` first"
                )
            delegated = tokens.DelegatedTokenSource(
                sealed,
                where.authority,
                options.client_id,
                account_name=account.name,
                scopes=where.delegated_scopes,
                http_client=login,
            )
            return graph(delegated)
        raw = setup.secrets.read("client_secret_file", options.client_secret_file)
        client_secret = raw.decode("utf-8", "replace").strip()
        if not client_secret:
            raise SetupError(f"{setup.where}.client_secret_file: the file is empty")
        app_only = app_token_source(
            where.authority,
            options.client_id,
            client_secret,
            http_client=login,
            scopes=where.app_scopes,
        )
        return graph(app_only, directory=account.directory)

    def authorize(self, account: Account, setup: Setup, say: Prompt) -> str:
        """The device authorization grant: a code to enter on any device with a browser."""
        options = _options(account)
        if options.mode == "organization":
            raise SetupError(
                f"{setup.where}.mode: account {account.name!r} is in organization mode: its "
                "app-only token acts for every mailbox, so no per-person auth is needed"
            )
        # The key first: a missing key should fail before anyone signs in.
        sealed = setup.secrets.sealed(options.token_file)
        cache = tokens.msal_cache(sealed)
        where = options.endpoints
        username = tokens.authorize(
            where.authority,
            options.client_id,
            where.delegated_scopes,
            say,
            http_client=tokens.login_session(options.ca_file),
            cache=cache,
        )
        cache.has_state_changed = True  # other accounts dropped or not: seal what is there now
        tokens.save_msal_cache(sealed, cache)
        return (
            f"authorized microsoft account {account.name!r} as {username}; "
            f"grant sealed in {options.token_file}"
        )

    def sign_in(
        self,
        client: Any,
        redirect_uri: str,
        *,
        form_post: bool,
        now: Callable[[], float],
    ) -> MicrosoftSignInFlow:
        """Sign-in with Microsoft for the pages (msal; issuer, tenant, audience checked here)."""
        return MicrosoftSignInFlow(client, redirect_uri, form_post=form_post, now=now)

    def webhook(self, request: WebhookRequest) -> WebhookAnswer:
        """Graph's validation echo, or 202 at once with the notifications judged afterwards."""
        token = request.query.get("validationToken")
        if token is not None:
            # Graph checks a new subscription's address: echo the token, as plain text.
            return WebhookAnswer(
                status=200, text=token, headers={"X-Content-Type-Options": "nosniff"}
            )
        found = tuple(parse_notifications(request.body))
        return WebhookAnswer(status=202, notifications=found, later=True)


plugin = MicrosoftPlugin()
