"""Sign-in with Google and Microsoft, against the emulators' real endpoints.

Each test drives a browser (Starlette's TestClient, cookies and all) through
the whole flow by hand: the app sends it to the provider's sign-in page (the
emulator, over loopback HTTP), the provider sends it back to the app's
callback, and the app exchanges the code with google-auth-oauthlib or msal.
Nothing on the app's side is replaced: msal reaches the Graph emulator's
https sign-in through the configured authority and CA file, as it reaches a
national cloud; Google's endpoints and certificates come from the client
JSON and the configured certs URL.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from providers.emulators.google import GoogleEmulator
from providers.emulators.graph import GraphEmulator
from syncd.assemble import web_settings
from syncd.config import load
from syncd.web.app import create_app
from syncd.web.oidc import OidcAuthenticator
from syncd.web.settings import GoogleSignIn, MicrosoftSignIn, OidcSettings, WebSettings
from tests.unit.web.conftest import ADMIN, Org
from tests.unit.world import ANA, BO, CY

BASE = "https://testserver"
LOGIN = "https://login.microsoftonline.com/"
PRIVATE = "Ana only: I want to switch teams"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_ACTION = re.compile(r'<form method="POST" name="hiddenform" action="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[GoogleEmulator]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the emulator speaks plain http
    with GoogleEmulator([ANA, BO, CY, ADMIN]) as running:
        yield running


@pytest.fixture
def microsoft() -> Iterator[GraphEmulator]:
    with GraphEmulator([ANA, BO, CY, ADMIN]) as running:
        running.add_redirect_uri(f"{BASE}/auth/callback/microsoft")
        yield running


def google_sign_in(emulator: GoogleEmulator) -> GoogleSignIn:
    web = emulator.web_client_config([f"{BASE}/auth/callback/google"])["web"]
    return GoogleSignIn(
        client_id=web["client_id"],
        client_secret=web["client_secret"],
        auth_uri=web["auth_uri"],
        token_uri=web["token_uri"],
        certs_url=emulator.certs_url,
    )


def microsoft_sign_in(emulator: GraphEmulator) -> MicrosoftSignIn:
    return MicrosoftSignIn(
        emulator.tenant,
        emulator.client_id,
        emulator.client_secret,
        authority=emulator.login_root,
        ca_file=emulator.ca_file,
    )


def oidc_web(
    google: GoogleEmulator | None = None,
    microsoft: GraphEmulator | None = None,
    secret: bytes | None = None,
) -> WebSettings:
    return WebSettings(
        sign_in="oidc",
        base_url=BASE,
        admins=(ADMIN,),
        oidc=OidcSettings(
            session_secret=secret or secrets.token_bytes(32),
            google=google_sign_in(google) if google else None,
            microsoft=microsoft_sign_in(microsoft) if microsoft else None,
        ),
    )


@dataclass
class Answer:
    """The provider's answer on its way to the app's callback (a redirect or a form post)."""

    method: str
    url: str
    fields: dict[str, str]


class Browser:
    """One person's browser: cookies kept, redirects followed by hand."""

    def __init__(
        self,
        org: Org,
        web: WebSettings,
        microsoft: GraphEmulator | None = None,
        now: Callable[[], float] = time.time,
    ):
        authenticator = OidcAuthenticator(web, now=now)
        app = create_app(org.factory, clock=lambda: org.now, web=web, authenticator=authenticator)
        self.client = TestClient(app, base_url=web.base_url, follow_redirects=False)
        # to the provider: Microsoft's sign-in is the emulator's https listener
        verify = ssl.create_default_context(cafile=microsoft.ca_file) if microsoft else True
        self.outside = httpx.Client(trust_env=False, follow_redirects=False, verify=verify)
        self.codes: list[str] = []  # every authorization code the provider handed out

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def to_provider(self, path: str) -> str:
        """Open ``path`` on the app and answer the provider URL it redirects to."""
        answer = self.client.get(path)
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]

    def google(self, start: str, *, login_hint: str | None = None) -> httpx.Response:
        """Consent on Google's page; answer the app's response to the callback."""
        return self.deliver(self.google_answer(start, login_hint))

    def microsoft(
        self, emulator: GraphEmulator, start: str, *, login_hint: str | None = None
    ) -> httpx.Response:
        """Sign in on Microsoft's page; post its form back to the app, as its script does."""
        return self.deliver(self.microsoft_answer(emulator, start, login_hint))

    def google_answer(self, start: str, login_hint: str | None) -> Answer:
        """The provider's answer for the app's callback, not delivered yet."""
        url = self.to_provider(start)
        if login_hint:
            url += "&login_hint=" + quote(login_hint)
        consent = self.outside.get(url)
        assert consent.status_code == 302, consent.text
        callback = consent.headers["location"]
        fields = {k: v[-1] for k, v in parse_qs(urlsplit(callback).query).items()}
        self.codes += [fields["code"]] if "code" in fields else []
        return Answer("GET", callback.split("?", 1)[0], fields)

    def microsoft_answer(
        self, emulator: GraphEmulator, start: str, login_hint: str | None
    ) -> Answer:
        url = self.to_provider(start)
        # the configured authority (the tenant's), as a national cloud's would be
        assert url.startswith(f"{emulator.login_root}/{emulator.tenant}/oauth2/v2.0/authorize?")
        if login_hint:
            url += "&login_hint=" + quote(login_hint)
        page = self.outside.get(url)
        if page.status_code == 302:  # response_mode=query: a redirect, as Google's
            callback = page.headers["location"]
            fields = {k: v[-1] for k, v in parse_qs(urlsplit(callback).query).items()}
            self.codes += [fields["code"]] if "code" in fields else []
            return Answer("GET", callback.split("?", 1)[0], fields)
        assert page.status_code == 200, page.text
        action = _ACTION.search(page.text)
        assert action is not None, page.text
        fields = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(page.text)}
        self.codes += [fields["code"]] if "code" in fields else []
        return Answer("POST", html.unescape(action.group(1)), fields)

    def deliver(self, answer: Answer) -> httpx.Response:
        if answer.method == "GET":
            return self.client.get(answer.url, params=answer.fields)
        return self.client.post(answer.url, data=answer.fields)

    def session_cookie(self) -> str | None:
        return self.client.cookies.get("__Host-syncd-session")

    def csrf(self) -> str:
        found = _CSRF.search(self.get("/signin").text)
        assert found, "no form on the sign-in page"
        return found.group(1)


def answer_of(
    browser: Browser, provider: str, emulators: dict[str, Any], start: str, person: str
) -> Answer:
    if provider == "google":
        return browser.google_answer(start, person)
    return browser.microsoft_answer(emulators["microsoft"], start, person)


def sign_in(
    browser: Browser, provider: str, emulators: dict[str, Any], start: str, person: str
) -> httpx.Response:
    return browser.deliver(answer_of(browser, provider, emulators, start, person))


@pytest.fixture
def both(google: GoogleEmulator, microsoft: GraphEmulator) -> dict[str, Any]:
    return {"google": google, "microsoft": microsoft}


PROVIDERS = ["google", "microsoft"]


def browser_for(org: Org, provider: str, emulators: dict[str, Any], **kw: Any) -> Browser:
    if provider == "google":
        return Browser(org, oidc_web(google=emulators["google"], **kw))
    emulator = emulators["microsoft"]
    return Browser(org, oidc_web(microsoft=emulator, **kw), microsoft=emulator)


# --------------------------------------------------------------------- the whole flow


def test_google_sign_in_brings_ana_back_to_her_page_with_her_private_note(
    org: Org, google: GoogleEmulator
) -> None:
    meeting, _ = org.tokens(0)
    ana = Browser(org, oidc_web(google=google))

    first = ana.get(f"/m/{meeting}")
    assert first.status_code == 303
    assert first.headers["location"] == f"/signin?next=/m/{meeting}"
    # One provider: the sign-in page goes straight to it.
    start = ana.get(first.headers["location"]).headers["location"]
    assert start == f"/signin/google?next=/m/{meeting}"
    back = ana.google(start, login_hint=ANA)

    assert back.status_code == 303 and back.headers["location"] == f"/m/{meeting}"
    cookie = back.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=lax" in cookie
    page = ana.get(f"/m/{meeting}")
    assert page.status_code == 200 and "Ana / Bo 1:1" in page.text
    assert "Signed in as ana@example.org" in page.text and 'action="/signout"' in page.text
    csrf = _CSRF.search(page.text)
    assert csrf is not None
    saved = ana.client.post(
        f"/m/{meeting}/notes/private", data={"body": PRIVATE, "csrf": csrf.group(1)}
    )
    assert saved.status_code == 303
    assert PRIVATE in ana.get(f"/m/{meeting}").text
    api = ana.get(f"/api/v1/meetings/{meeting}").json()
    assert api["viewer"] == {
        "address": ANA,
        "sign_in": "oidc",
        "can_edit": True,
        "private_notes": True,
    }

    bo = Browser(org, oidc_web(google=google))
    assert bo.google(f"/signin/google?next=/m/{meeting}", login_hint=BO).status_code == 303
    bo_page = bo.get(f"/m/{meeting}")
    assert bo_page.status_code == 200 and PRIVATE not in bo_page.text


def test_microsoft_sign_in_brings_bo_back_to_his_page_with_his_private_note(
    org: Org, microsoft: GraphEmulator
) -> None:
    meeting, pair = org.tokens(0)
    microsoft.sign_in_as(BO)  # the person signed in at Microsoft's page
    bo = Browser(org, oidc_web(microsoft=microsoft), microsoft=microsoft)

    start = bo.get(bo.get(f"/p/{pair}").headers["location"]).headers["location"]
    assert start == f"/signin/microsoft?next=/p/{pair}"
    back = bo.microsoft(microsoft, start)

    assert back.status_code == 303 and back.headers["location"] == f"/p/{pair}"
    assert bo.get(f"/p/{pair}").status_code == 200
    token = bo.get(f"/api/v1/meetings/{meeting}").headers["x-csrf-token"]
    note = bo.client.put(
        f"/api/v1/meetings/{meeting}/notes/private",
        json={"body": "Bo only: ask about the budget"},
        headers={"X-CSRF-Token": token},
    )
    assert note.status_code == 200
    assert "Bo only: ask about the budget" in bo.get(f"/m/{meeting}").text
    ana = Browser(org, oidc_web(microsoft=microsoft), microsoft=microsoft)
    ana.microsoft(microsoft, f"/signin/microsoft?next=/m/{meeting}", login_hint=ANA)
    assert "ask about the budget" not in ana.get(f"/m/{meeting}").text


def test_with_both_providers_the_sign_in_page_offers_a_choice(
    org: Org, both: dict[str, Any]
) -> None:
    web = oidc_web(google=both["google"], microsoft=both["microsoft"])
    browser = Browser(org, web, microsoft=both["microsoft"])
    meeting, _ = org.tokens(0)

    page = browser.get(f"/signin?next=/m/{meeting}")

    assert page.status_code == 200
    assert f'href="/signin/google?next=/m/{meeting}"' in page.text
    assert f'href="/signin/microsoft?next=/m/{meeting}"' in page.text
    back = browser.microsoft(
        both["microsoft"], f"/signin/microsoft?next=/m/{meeting}", login_hint=CY
    )
    assert back.headers["location"] == f"/m/{meeting}"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_in_stranger_gets_the_same_404_as_an_unknown_token(
    org: Org, both: dict[str, Any], provider: str
) -> None:
    meeting, pair = org.tokens(0)
    stranger = browser_for(org, provider, both)
    sign_in(stranger, provider, both, f"/signin/{provider}", CY)
    ana = browser_for(org, provider, both)
    sign_in(ana, provider, both, f"/signin/{provider}", ANA)

    for path, unknown in [
        (f"/m/{meeting}", f"/m/{'A' * 32}"),
        (f"/p/{pair}", f"/p/{'A' * 32}"),
        (f"/api/v1/meetings/{meeting}", f"/api/v1/meetings/{'A' * 32}"),
    ]:
        refused, missing = stranger.get(path), stranger.get(unknown)
        assert refused.status_code == missing.status_code == ana.get(unknown).status_code == 404
        assert refused.text == missing.text and "Ana / Bo" not in refused.text


def test_an_admin_signed_in_reads_but_does_not_edit(org: Org, google: GoogleEmulator) -> None:
    meeting, _ = org.tokens(0)
    admin = Browser(org, oidc_web(google=google))
    admin.google("/signin/google", login_hint=ADMIN)
    viewer = admin.get(f"/api/v1/meetings/{meeting}").json()["viewer"]
    assert viewer["address"] == ADMIN and viewer["can_edit"] is False


def test_microsoft_posts_its_answer_so_its_flow_cookie_travels_cross_site(
    org: Org, both: dict[str, Any]
) -> None:
    web = oidc_web(google=both["google"], microsoft=both["microsoft"])
    browser = Browser(org, web, microsoft=both["microsoft"])
    microsoft = browser.client.get("/signin/microsoft").headers["set-cookie"].lower()
    google = browser.client.get("/signin/google").headers["set-cookie"].lower()
    assert "__host-syncd-signin=" in microsoft and "samesite=none" in microsoft
    assert "secure" in microsoft and "httponly" in microsoft
    assert "samesite=lax" in google and "secure" in google and "httponly" in google


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_on_plain_http_microsoft_answers_by_redirect_and_cookies_lose_their_prefix(
    org: Org, microsoft: GraphEmulator
) -> None:
    """Development without TLS: no Secure cookie can be SameSite=None, so no form post."""
    web = dataclasses.replace(
        oidc_web(microsoft=microsoft), base_url="http://testserver", secure_cookies=False
    )
    microsoft.add_redirect_uri("http://testserver/auth/callback/microsoft")
    meeting, _ = org.tokens(0)
    ana = Browser(org, web, microsoft=microsoft)

    answer = ana.microsoft_answer(microsoft, f"/signin/microsoft?next=/m/{meeting}", ANA)
    assert answer.method == "GET"
    back = ana.deliver(answer)

    assert back.status_code == 303 and back.headers["location"] == f"/m/{meeting}"
    assert "syncd-session" in ana.client.cookies and "secure" not in back.headers["set-cookie"]
    assert ana.get(f"/m/{meeting}").status_code == 200


# ----------------------------------------------------------------- without a session


def test_without_a_session_pages_go_to_sign_in_and_the_api_answers_401(
    org: Org, google: GoogleEmulator
) -> None:
    meeting, pair = org.tokens(0)
    nobody = Browser(org, oidc_web(google=google))

    page = nobody.get(f"/p/{pair}?q=goals")
    assert page.status_code == 303
    assert page.headers["location"] == f"/signin?next=/p/{pair}%3Fq%3Dgoals"
    # An unknown token is sent to sign in the same way: the redirect tells nothing.
    assert nobody.get(f"/m/{'A' * 32}").headers["location"] == f"/signin?next=/m/{'A' * 32}"
    api = nobody.get(f"/api/v1/meetings/{meeting}")
    assert api.status_code == 401 and api.json() == {"error": "sign in first"}
    nobody.get("/no-such-page")  # any page hands out a CSRF cookie
    csrf = nobody.client.cookies["__Host-syncd-csrf"]
    form = nobody.client.post(f"/m/{meeting}/talking-points", data={"text": "x", "csrf": csrf})
    # A form posted without a session: sign in, then back to the page it was on.
    assert form.status_code == 303
    assert form.headers["location"] == f"/signin?next=/m/{meeting}"


def test_a_session_ends_after_session_hours(org: Org, google: GoogleEmulator) -> None:
    meeting, _ = org.tokens(0)
    clock = [time.time()]
    browser = Browser(org, oidc_web(google=google), now=lambda: clock[0])
    browser.google(f"/signin/google?next=/m/{meeting}", login_hint=ANA)
    assert browser.get(f"/m/{meeting}").status_code == 200

    clock[0] += 12 * 3600 - 60
    assert browser.get(f"/m/{meeting}").status_code == 200
    clock[0] += 61

    assert browser.get(f"/m/{meeting}").status_code == 303


# ------------------------------------------------------------------ refused answers


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("state", ["wrong", None])
def test_an_answer_with_a_wrong_or_missing_state_is_refused(
    org: Org, both: dict[str, Any], provider: str, state: str | None
) -> None:
    browser = browser_for(org, provider, both)
    answer = answer_of(browser, provider, both, f"/signin/{provider}", ANA)
    assert "code" in answer.fields and "state" in answer.fields
    if state is None:
        del answer.fields["state"]
    else:
        answer.fields["state"] = state

    refused = browser.deliver(answer)

    assert refused.status_code == 400 and "Sign-in did not work" in refused.text
    assert browser.session_cookie() is None
    assert browser.get("/api/v1/meetings/" + org.tokens(0)[0]).status_code == 401


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_from_another_browser_is_refused(
    org: Org, both: dict[str, Any], provider: str
) -> None:
    """Login CSRF: the attacker's own code, planted in the victim's browser."""
    attacker, victim = browser_for(org, provider, both), browser_for(org, provider, both)
    planted = answer_of(attacker, provider, both, f"/signin/{provider}", CY)

    answer = victim.deliver(planted)

    assert answer.status_code == 400 and victim.session_cookie() is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_code_is_refused(org: Org, both: dict[str, Any], provider: str) -> None:
    browser = browser_for(org, provider, both)
    answer = answer_of(browser, provider, both, f"/signin/{provider}", ANA)
    flow_cookie = browser.client.cookies["__Host-syncd-signin"]
    assert browser.deliver(answer).status_code == 303 and browser.session_cookie()
    assert "__Host-syncd-signin" not in browser.client.cookies  # used up

    # The same answer again, in a browser holding the flow cookie it was issued for.
    replay = TestClient(browser.client.app, base_url=BASE, follow_redirects=False)
    replay.cookies.set("__Host-syncd-signin", flow_cookie)
    if answer.method == "GET":
        again = replay.get(answer.url, params=answer.fields)
    else:
        again = replay.post(answer.url, data=answer.fields)

    assert again.status_code == 400 and "refused the code" in again.text
    assert "__Host-syncd-session" not in replay.cookies


@pytest.mark.parametrize(
    ("provider", "claims", "reason"),
    [
        ("google", {"aud": "someone-else.apps.googleusercontent.com"}, "did not verify"),
        ("google", {"nonce": "a-nonce-of-another-sign-in"}, "another nonce"),
        ("google", {"nonce": None}, "no nonce"),
        ("google", {"iss": "https://evil.example"}, "another issuer"),
        ("google", {"email_verified": False}, "not verified"),
        ("google", {"exp": 1_000_000_000, "iat": 999_999_000}, "did not verify"),
        ("microsoft", {"aud": "00000000-0000-0000-0000-000000000000"}, "another app"),
        ("microsoft", {"nonce": "a-nonce-of-another-sign-in"}, "another nonce"),
        ("microsoft", {"tid": "99999999-9999-9999-9999-999999999999"}, "another tenant"),
        (
            "microsoft",
            {"iss": "https://login.microsoftonline.com/99999999-9999-9999-9999-999999999999/v2.0"},
            "another issuer",
        ),
        ("microsoft", {"exp": 1_000_000_000}, "expired"),
    ],
)
def test_an_id_token_that_fails_a_check_is_refused(
    org: Org, both: dict[str, Any], provider: str, claims: dict[str, Any], reason: str
) -> None:
    meeting, _ = org.tokens(0)
    browser = browser_for(org, provider, both)
    both[provider].tamper_next_id_token(**claims)

    answer = sign_in(browser, provider, both, f"/signin/{provider}?next=/m/{meeting}", ANA)

    assert answer.status_code == 400 and reason in answer.text
    assert browser.session_cookie() is None
    assert browser.get(f"/m/{meeting}").status_code == 303  # still nobody


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_forged_or_tampered_session_cookie_is_nobody(
    org: Org, both: dict[str, Any], provider: str
) -> None:
    meeting, _ = org.tokens(0)
    secret = secrets.token_bytes(32)
    ana = browser_for(org, provider, both, secret=secret)
    sign_in(ana, provider, both, f"/signin/{provider}", ANA)
    cookie = ana.session_cookie()
    assert cookie is not None and ana.get(f"/m/{meeting}").status_code == 200

    middle = len(cookie) // 2
    flipped = cookie[:middle] + ("A" if cookie[middle] != "A" else "B") + cookie[middle + 1 :]
    other_key = browser_for(org, provider, both)  # another session secret
    sign_in(other_key, provider, both, f"/signin/{provider}", ANA)
    foreign = other_key.session_cookie()
    assert foreign is not None
    for forged in (flipped, cookie[:-4], foreign, "ana@example.org", ""):
        mallory = browser_for(org, provider, both, secret=secret)
        mallory.client.cookies.set("__Host-syncd-session", forged)
        assert mallory.get(f"/m/{meeting}").status_code == 303, forged
        assert mallory.get(f"/api/v1/meetings/{meeting}").status_code == 401, forged


# --------------------------------------------------------------------------- next=


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/\r\nSet-Cookie: x=y", "/"),
        ("/\t/evil.example", "/"),
        ("", "/"),
        ("/m/abc", "/m/abc"),
    ],
)
def test_next_never_leaves_the_site(
    org: Org, google: GoogleEmulator, target: str, landing: str
) -> None:
    browser = Browser(org, oidc_web(google=google))
    answer = browser.google(f"/signin/google?next={quote(target, safe='')}", login_hint=ANA)
    assert answer.status_code == 303
    assert answer.headers["location"] == landing


def test_next_keeps_a_path_of_this_site_with_its_query(org: Org, google: GoogleEmulator) -> None:
    _, pair = org.tokens(0)
    browser = Browser(org, oidc_web(google=google))
    start = browser.get(f"/p/{pair}?q=goals").headers["location"]
    answer = browser.google(browser.get(start).headers["location"], login_hint=BO)
    assert answer.headers["location"] == f"/p/{pair}?q=goals"


def test_home_signs_in_first_and_then_lists_my_1on1s(org: Org, google: GoogleEmulator) -> None:
    ana = Browser(org, oidc_web(google=google))
    start = ana.get("/").headers["location"]
    assert start == "/signin?next=/"
    answer = ana.google(ana.get(start).headers["location"], login_hint=ANA)
    assert answer.headers["location"] == "/"
    home = ana.get("/")
    assert home.status_code == 200 and "My 1:1s" in home.text and ">bo</a>" in home.text


# ------------------------------------------------------------------------ sign-out


def test_sign_out_needs_the_csrf_token_and_then_forgets_the_session(
    org: Org, google: GoogleEmulator
) -> None:
    meeting, _ = org.tokens(0)
    ana = Browser(org, oidc_web(google=google))
    ana.google("/signin/google", login_hint=ANA)
    assert "Signed in as ana@example.org" in ana.get("/signin").text

    refused = ana.client.post("/signout", data={"csrf": "A" * 43})
    assert refused.status_code == 403
    assert ana.get(f"/m/{meeting}").status_code == 200

    done = ana.client.post("/signout", data={"csrf": ana.csrf()})
    assert done.status_code == 200 and "You are signed out" in done.text
    assert ana.session_cookie() is None
    assert ana.get(f"/m/{meeting}").status_code == 303


# ------------------------------------------------------------------------- the logs


def test_codes_tokens_and_secrets_never_reach_the_log(
    org: Org, both: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    meeting, _ = org.tokens(0)
    web = oidc_web(google=both["google"], microsoft=both["microsoft"])
    google_browser = Browser(org, web)
    google_browser.google(f"/signin/google?next=/m/{meeting}", login_hint=ANA)
    microsoft_browser = Browser(org, web, microsoft=both["microsoft"])
    microsoft_browser.microsoft(
        both["microsoft"], f"/signin/microsoft?next=/m/{meeting}", login_hint=BO
    )
    # A refused one too: its reason is logged, its code is not.
    both["google"].tamper_next_id_token(nonce="x")
    Browser(org, web).google("/signin/google", login_hint=CY)

    # The test's own HTTP client (the "browser") logs the URLs it fetches; syncd's do not.
    browser_side = ("httpx", "httpcore")
    text = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith(browser_side)
    )
    assert "signed in with Google as ana@example.org" in text
    assert "signed in with Microsoft as bo@example.org" in text
    assert "refused" in text
    codes = google_browser.codes + microsoft_browser.codes
    assert len(codes) == 2
    secrets_seen = [
        *codes,
        google_browser.session_cookie(),
        microsoft_browser.session_cookie(),
        web.oidc.google.client_secret if web.oidc and web.oidc.google else None,
        both["microsoft"].client_secret,
        meeting,
    ]
    for secret in secrets_seen:
        assert secret and secret not in text
    assert "eyJ" not in text  # no JWT (ID or access token)
    assert "ya29." not in text  # no Google access token


# ------------------------------------------------------------------- from the config


def test_the_config_file_sets_up_google_sign_in(
    tmp_path: Path, org: Org, google: GoogleEmulator
) -> None:
    import json

    (tmp_path / "session.secret").write_text(secrets.token_urlsafe(48), encoding="utf-8")
    (tmp_path / "session.secret").chmod(0o600)
    client = google.web_client_config([f"{BASE}/auth/callback/google"])
    (tmp_path / "google-client.json").write_text(json.dumps(client), encoding="utf-8")
    (tmp_path / "google-client.json").chmod(0o600)  # it holds the client secret
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[syncd]\nbase_url = "{BASE}"\n\n[web]\nsign_in = "oidc"\n\n[web.oidc]\n'
        'providers = ["google"]\nsession_secret_file = "session.secret"\n'
        f'google_client_file = "google-client.json"\ngoogle_certs_url = "{google.certs_url}"\n',
        encoding="utf-8",
    )

    web = web_settings(load(path))

    assert web.oidc is not None and web.oidc.google is not None
    assert "client_secret" not in repr(web) and client["web"]["client_secret"] not in repr(web)
    meeting, _ = org.tokens(0)
    ana = Browser(org, web)
    assert ana.google(f"/signin/google?next=/m/{meeting}", login_hint=ANA).status_code == 303
    assert ana.get(f"/m/{meeting}").status_code == 200
