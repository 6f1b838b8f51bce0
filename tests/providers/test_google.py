"""The Google provider, through the real google-api-python-client, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.oauth2 import service_account

from providers.emulators.google import GoogleEmulator
from providers.google import GoogleProvider
from syncd.secrets import GOOGLE_SCOPES
from tests.providers.contract import CALENDARS, PAGE_SIZE, ProviderContract


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(CALENDARS) as running:
        yield running


def google_provider(emulator: GoogleEmulator, **kw: object) -> GoogleProvider:
    delegating = service_account.Credentials.from_service_account_info(
        emulator.service_account_info(), scopes=list(GOOGLE_SCOPES)
    )
    return GoogleProvider(
        CALENDARS,
        lambda person: delegating.with_subject(person),
        api_root=emulator.api_root,
        page_size=PAGE_SIZE,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(emulator: GoogleEmulator) -> GoogleProvider:
    return google_provider(emulator)


@pytest.fixture
def world(emulator: GoogleEmulator) -> GoogleEmulator:
    return emulator


class TestGoogle(ProviderContract):
    """Every provider's contract, over HTTP."""
