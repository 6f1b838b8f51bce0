"""The ``[[accounts]]`` keys of ``provider = "google"``."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from providers.google.calendar import DEFAULT_API_ROOT
from providers.options import (
    AccountOptions,
    Address,
    Domain,
    OptionProblem,
    SecretSource,
    Url,
    show,
    single_user_file,
    where,
)


class GoogleOptions(AccountOptions):
    """Organization mode: a service account with domain-wide delegation acts as each person.

    Single-user mode: one person's own grant (``syncd auth``), sealed in
    ``token_file``. The credential files stay unresolved strings (a path or
    ``credential:NAME``): ``$CREDENTIALS_DIRECTORY`` exists only in the
    service's environment, and ``syncd doctor`` run from a shell must still
    load the config.
    """

    mode: Literal["organization", "single-user"] = Field(
        "organization", description="whose authority the account acts with"
    )
    service_account_file: SecretSource = Field(
        "", description="organization mode: the service account's JSON key"
    )
    client_secrets_file: SecretSource = Field(
        "", description="single-user mode: the OAuth client JSON (Desktop app)"
    )
    token_file: str = Field(
        "",
        validate_default=True,
        description="single-user mode: the sealed grant; default <account name>.google-grant",
    )
    api_root: Url = Field(DEFAULT_API_ROOT, description="the Calendar API's root URL")
    send_updates: Literal["none", "all", "externalOnly"] = Field(
        "none", description="Calendar API sendUpdates for syncd's writes: who Google mails"
    )
    webhook_url: Url = Field("", description="https address Google pushes changes to")
    directory_admin: Address = Field(
        "", description="with directory = true: an administrator the Admin SDK is called as"
    )
    directory_domain: Domain = Field(
        "", description="with directory = true: one domain's users; empty: the whole customer"
    )

    @field_validator("token_file")
    @classmethod
    def _token_file(cls, value: str, info: ValidationInfo) -> str:
        return single_user_file(value, info, ".google-grant")

    @field_validator("api_root")
    @classmethod
    def _api_root(cls, value: str) -> str:
        # Bearer tokens travel to api_root, so it gets the same https rule.
        if not urlsplit(value).path.endswith("/calendar/v3/"):
            raise OptionProblem(
                None,
                "must end in '/calendar/v3/' (it replaces the API's root URL and service "
                f"path), got {show(value)}",
            )
        return value

    @model_validator(mode="after")
    def _modes(self, info: ValidationInfo) -> Self:
        account = where(info)
        organization = self.mode == "organization"
        other = "single-user" if organization else "organization"
        misplaced = (
            {"client_secrets_file": self.client_secrets_file}
            if organization
            else {"service_account_file": self.service_account_file}
        )
        for key, value in misplaced.items():
            if value:
                raise OptionProblem(
                    key, f"only {other} mode uses this key (this account is {self.mode})"
                )
        if organization:
            if not self.service_account_file:
                raise OptionProblem(
                    "service_account_file",
                    "required for provider 'google' in organization mode: the service account "
                    "key file (a path or credential:NAME)",
                )
            if not account.calendars and not account.directory:
                raise OptionProblem(
                    "calendars",
                    "required for provider 'google' in organization mode: list the addresses "
                    "of the calendars to watch (or set directory = true)",
                )
        elif account.directory:
            raise OptionProblem(
                "directory", f"organization mode only (this account is {self.mode})"
            )
        elif not self.client_secrets_file:
            raise OptionProblem(
                "client_secrets_file",
                "required for provider 'google' in single-user mode: the OAuth client JSON "
                "(a path or credential:NAME)",
            )
        if account.directory and not self.directory_admin:
            raise OptionProblem(
                "directory_admin",
                "required with directory = true: an administrator's address the service "
                "account may act as (the Directory API answers administrators only)",
            )
        if not account.directory:
            for key in ("directory_admin", "directory_domain"):
                if getattr(self, key):
                    raise OptionProblem(key, "only used with directory = true")
        return self

    def secret_files(self) -> dict[str, str]:
        files = {
            "service_account_file": self.service_account_file,
            "client_secrets_file": self.client_secrets_file,
        }
        return {key: value for key, value in files.items() if value}

    def grant(self) -> str | None:
        return self.token_file or None

    def webhook(self) -> str:
        return self.webhook_url
