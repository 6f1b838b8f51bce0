"""The ``[[accounts]]`` keys of ``provider = "caldav"``."""

from __future__ import annotations

from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator, model_validator

from providers.options import AccountOptions, OptionProblem, SecretSource, Url, show, where


class CalDavOptions(AccountOptions):
    """One CalDAV server and one set of credentials.

    A person's own app password reads that person's calendar; a service
    account the server lets read everyone's calendars (an organization mode,
    where the server has one) reads all of ``calendars``. Either way each
    address is one calendar collection, found by ``calendar_url``.
    """

    url: Url = Field("", description="the server's https root, such as https://dav.example.org/")
    username: str = Field("", description="who syncd signs in as (a person, or a service account)")
    password_file: SecretSource = Field(
        "", description="the app password, a path or credential:NAME"
    )
    calendar_url: str = Field(
        "{address}/calendar/",
        description="each person's calendar collection, relative to url; {address} and {user} "
        "(the part before '@') are filled in",
    )
    timezone: str = Field("UTC", description="the zone floating times are read in")
    ca_file: str = Field(
        "", description="a PEM file of CAs to trust for the server instead of the system's"
    )

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return value.strip()

    @field_validator("calendar_url")
    @classmethod
    def _calendar_url(cls, value: str) -> str:
        if "{address}" not in value and "{user}" not in value:
            raise OptionProblem(
                None, f"must name the calendar by {{address}} or {{user}}, got {show(value)}"
            )
        try:
            value.format(address="a@b", user="a")
        except (KeyError, IndexError, ValueError):
            raise OptionProblem(
                None, f"only {{address}} and {{user}} may be filled in, got {show(value)}"
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise OptionProblem(None, f"unknown time zone {show(value)}") from None
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str, info: ValidationInfo) -> str:
        return str(where(info).folder / value.strip()) if value.strip() else ""

    @model_validator(mode="after")
    def _required(self, info: ValidationInfo) -> Self:
        for key, what in (
            ("url", "the server's address"),
            ("username", "the user syncd signs in as"),
            ("password_file", "the app password (a path or credential:NAME)"),
        ):
            if not getattr(self, key):
                raise OptionProblem(key, f"required for provider 'caldav': {what}")
        if not where(info).calendars:
            raise OptionProblem(
                "calendars",
                "required for provider 'caldav': the addresses whose calendars to watch",
            )
        return self

    def secret_files(self) -> dict[str, str]:
        return {"password_file": self.password_file}
