"""The ``[[accounts]]`` keys of ``provider = "microsoft"``."""

from __future__ import annotations

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from providers.microsoft.clouds import CloudName, Endpoints, endpoints
from providers.options import (
    AccountOptions,
    OptionProblem,
    SecretSource,
    Url,
    fold_address,
    show,
    single_user_file,
    where,
)


class MicrosoftOptions(AccountOptions):
    """Organization mode: app-only access (client credentials) for the whole tenant.

    The app holds the application permission Calendars.ReadWrite, granted by
    an admin. Single-user mode: one person's delegated grant to a public
    client app (no secret), made with ``syncd auth`` (device code) and kept
    as a sealed msal token cache in ``token_file``.
    """

    mode: Literal["organization", "single-user"] = Field(
        "organization", description="whose authority the account acts with"
    )
    tenant: str = Field("", description="the directory (tenant) id of the organization")
    client_id: str = Field("", description="the application (client) id of the app registration")
    client_secret_file: SecretSource = Field(
        "", description="organization mode: the client secret (a path or credential:NAME)"
    )
    token_file: str = Field(
        "",
        validate_default=True,
        description="single-user mode: the sealed msal cache; default <account name>.msal-cache",
    )
    cloud: CloudName = Field(
        "global", description="which Microsoft cloud the tenant lives in (sign-in, Graph, scopes)"
    )
    authority: Url = Field(
        "", description="the sign-in (Entra ID) root instead of the cloud's; the tenant is appended"
    )
    graph_root: Url = Field("", description="Graph's root URL (…/v1.0/) instead of the cloud's")
    ca_file: str = Field(
        "", description="a PEM file of CAs to trust for sign-in and Graph instead of the system's"
    )
    webhook_url: Url = Field("", description="https address Graph posts notifications to")
    subscription_minutes: int = Field(
        4230, ge=45, le=10080, description="lifetime asked for each Graph subscription"
    )

    @field_validator("tenant", "client_id")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("authority")
    @classmethod
    def _authority(cls, value: str) -> str:
        if value and urlsplit(value).path.strip("/"):
            raise OptionProblem(
                None,
                f"the login root only, without a tenant or path (such as "
                f"'https://login.microsoftonline.us'), got {show(value)}",
            )
        return value.rstrip("/")

    @field_validator("graph_root")
    @classmethod
    def _graph_root(cls, value: str) -> str:
        if value and not urlsplit(value).path.endswith("/v1.0/"):
            raise OptionProblem(None, f"must end in '/v1.0/', got {show(value)}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str, info: ValidationInfo) -> str:
        return str(where(info).folder / value.strip()) if value.strip() else ""

    @field_validator("token_file")
    @classmethod
    def _token_file(cls, value: str, info: ValidationInfo) -> str:
        return single_user_file(value, info, ".msal-cache")

    @model_validator(mode="after")
    def _modes(self, info: ValidationInfo) -> Self:
        account = where(info)
        organization = self.mode == "organization"
        required = {
            "tenant": "the directory (tenant) id of the organization",
            "client_id": "the application (client) id of the app registration",
        }
        if organization:
            required["client_secret_file"] = "the client secret (a path or credential:NAME)"
        else:
            required["tenant"] += " (or 'organizations')"
            required["client_id"] += " (a public client)"
            if self.client_secret_file:
                raise OptionProblem(
                    "client_secret_file",
                    f"only organization mode uses this key (this account is {self.mode})",
                )
        for key, what in required.items():
            if not getattr(self, key):
                raise OptionProblem(
                    key, f"required for provider 'microsoft' in {self.mode} mode: {what}"
                )
        if account.directory and not organization:
            raise OptionProblem(
                "directory", f"organization mode only (this account is {self.mode})"
            )
        if organization:
            if not account.calendars and not account.directory:
                raise OptionProblem(
                    "calendars",
                    "required for provider 'microsoft': list the mailboxes whose calendars "
                    "to watch (or set directory = true)",
                )
        elif len(account.calendars) != 1:
            raise OptionProblem(
                "calendars",
                "single-user mode needs exactly one address: the signed-in person's own "
                f"mailbox (got {len(account.calendars)})",
            )
        elif "@" not in fold_address(account.calendars[0]):
            raise OptionProblem(
                "calendars[0]", f"expected an email address, got {show(account.calendars[0])}"
            )
        return self

    @property
    def endpoints(self) -> Endpoints:
        return endpoints(self.cloud, self.tenant, self.authority, self.graph_root)

    def secret_files(self) -> dict[str, str]:
        return {"client_secret_file": self.client_secret_file} if self.client_secret_file else {}

    def grant(self) -> str | None:
        return self.token_file or None

    def webhook(self) -> str:
        return self.webhook_url
