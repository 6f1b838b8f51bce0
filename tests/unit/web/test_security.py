"""CSRF, security headers, cookies, redirects and tokens kept out of logs."""

from __future__ import annotations

import logging
import re

import pytest

from syncd.web import security
from syncd.web.settings import WebSettings
from tests.unit.web.conftest import BEHIND_PROXY, Browser, Org
from tests.unit.world import ANA, BO

EXPECTED_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
SCRIPT_TAG = '<script src="/static/app.js" defer></script>'


def form_posts(meeting: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/m/{meeting}/talking-points", {"text": "forged"}),
        (f"/m/{meeting}/talking-points/1/done", {"done": "true"}),
        (f"/m/{meeting}/action-items", {"text": "forged", "owner": ANA}),
        (f"/m/{meeting}/action-items/1/done", {"done": "true"}),
        (f"/m/{meeting}/notes/shared", {"body": "forged"}),
        (f"/m/{meeting}/notes/private", {"body": "forged"}),
    ]


def api_calls(meeting: str) -> list[tuple[str, str, dict[str, object]]]:
    base = f"/api/v1/meetings/{meeting}"
    return [
        ("POST", f"{base}/talking-points", {"text": "forged"}),
        ("POST", f"{base}/talking-points/1/done", {"done": True}),
        ("POST", f"{base}/action-items", {"text": "forged", "owner": ANA}),
        ("POST", f"{base}/action-items/1/done", {"done": True}),
        ("PUT", f"{base}/notes/shared", {"body": "forged"}),
        ("PUT", f"{base}/notes/private", {"body": "forged"}),
    ]


@pytest.mark.parametrize("settings", [BEHIND_PROXY, WebSettings(sign_in="link")])
def test_posts_without_the_csrf_token_are_refused(org: Org, settings: WebSettings) -> None:
    ana = Browser(org.app(settings), ANA)
    meeting, _ = org.tokens(0)
    ana.get(f"/m/{meeting}")  # the browser has its cookie; the forger cannot send it
    cookie = ana.client.cookies.get("__Host-syncd-csrf")
    for path, data in form_posts(meeting):
        for forged in ({}, {"csrf": "x" * 43}):
            answer = ana.client.post(path, data={**data, **forged}, follow_redirects=False)
            assert answer.status_code == 403, path
            assert "Reload the agenda" in answer.text
    for method, path, body in api_calls(meeting):
        for headers in ({}, {"X-CSRF-Token": "x" * 43}):
            answer = ana.client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 403 and "X-CSRF-Token" in answer.json()["error"], path
    # A form that reaches the API is refused before anything else.
    answer = ana.client.post(
        f"/api/v1/meetings/{meeting}/talking-points",
        data={"text": "forged", "csrf": cookie or ""},
        headers={"X-CSRF-Token": cookie or ""},
    )
    assert answer.status_code == 415
    assert "forged" not in ana.get(f"/api/v1/meetings/{meeting}").text


def test_a_token_without_its_cookie_is_refused(org: Org) -> None:
    ana, bo = Browser(org.app(), ANA), Browser(org.app(), BO)
    meeting, _ = org.tokens(0)
    stolen = ana.csrf(f"/m/{meeting}")
    bo.client.cookies.clear()
    answer = bo.client.post(
        f"/m/{meeting}/talking-points", data={"text": "x", "csrf": stolen}, follow_redirects=False
    )
    assert answer.status_code == 403


def test_with_the_token_every_form_and_call_is_accepted(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    for path, data in form_posts(meeting):
        answer = ana.post(path, data)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith(f"/m/{meeting}#")
    expected = {"talking-points": 201, "action-items": 201}
    for method, path, body in api_calls(meeting):
        answer = ana.api(method, path, body)
        assert answer.status_code == expected.get(path.rsplit("/", 1)[1], 200), path


def test_the_csrf_cookie_is_host_prefixed_strict_httponly_and_secure(org: Org) -> None:
    meeting, _ = org.tokens(0)
    answer = Browser(org.app(), ANA).get(f"/m/{meeting}")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-syncd-csrf=")
    for part in ("HttpOnly", "Secure", "Path=/", "SameSite=strict"):
        assert part in cookie
    assert "Domain" not in cookie
    plain = WebSettings(sign_in="link", secure_cookies=False)
    cookie = Browser(org.app(plain)).get(f"/m/{meeting}").headers["set-cookie"]
    assert cookie.startswith("syncd-csrf=") and "Secure" not in cookie
    assert "SameSite=strict" in cookie and "HttpOnly" in cookie


def test_plain_http_development_mode_works_end_to_end(org: Org) -> None:
    from starlette.testclient import TestClient

    meeting, _ = org.tokens(0)
    client = TestClient(org.app(WebSettings(sign_in="link", secure_cookies=False)))
    token = client.get(f"/m/{meeting}").text.split('name="csrf" value="')[1].split('"')[0]
    answer = client.post(
        f"/m/{meeting}/talking-points", data={"text": "ok", "csrf": token}, follow_redirects=False
    )
    assert answer.status_code == 303


def test_security_headers_on_pages_api_errors_and_static(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, pair = org.tokens(0)
    for path in (
        f"/m/{meeting}",
        f"/p/{pair}",
        f"/p/{pair}/export.md",
        f"/p/{pair}/export.json",
        f"/api/v1/meetings/{meeting}",
        "/api/v1/openapi.json",
        "/m/unknown",
        "/api/v1/meetings/unknown",
        "/nowhere",
        "/static/app.css",
    ):
        answer = ana.get(path)
        for name, value in EXPECTED_HEADERS.items():
            assert answer.headers.get(name) == value, (path, name)
    assert ana.get(f"/m/{meeting}").headers["cache-control"] == "no-store"
    refused = ana.client.post(f"/m/{meeting}/talking-points", data={"text": "x"})
    assert refused.status_code == 403
    assert refused.headers["content-security-policy"] == EXPECTED_HEADERS["content-security-policy"]


def test_pages_have_no_inline_script_or_style(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, pair = org.tokens(0)
    for path in (f"/m/{meeting}", f"/p/{pair}", "/m/unknown"):
        page = ana.get(path).text.lower()
        # The one script is our own file, loaded deferred; nothing inline.
        assert re.findall(r"<script[^>]*>.*?</script>", page, re.S) == [SCRIPT_TAG], path
        assert page.count("<script") == 1
        assert "<style" not in page and " style=" not in page
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)  # no event-handler attributes
    assert ana.get("/static/app.css").headers["content-type"].startswith("text/css")


def test_the_csp_allows_our_own_script_and_nothing_inline(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    answer = ana.get(f"/m/{meeting}")
    policy = {
        part.split()[0]: part.split()[1:]
        for part in answer.headers["content-security-policy"].split(";")
    }
    assert policy["script-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]  # the script's fetch of our own forms
    assert policy["default-src"] == ["'none'"]
    csp = answer.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "nonce-" not in csp
    assert SCRIPT_TAG in answer.text


def test_the_script_is_served_as_javascript_and_uses_no_eval(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    script = ana.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    for name, value in EXPECTED_HEADERS.items():
        assert script.headers.get(name) == value, name
    source = script.text
    for forbidden in ("eval(", "new Function", "innerHTML", "document.write"):
        assert forbidden not in source, forbidden
    # The page is only ever updated from our own pages' HTML, posted to our own paths.
    assert 'credentials: "same-origin"' in source and 'redirect: "follow"' in source


def test_redirects_after_a_post_stay_on_our_own_paths(org: Org) -> None:
    ana = Browser(org.app(), ANA)
    meeting, _ = org.tokens(0)
    answer = ana.client.post(
        f"/m/{meeting}/talking-points?next=https://evil.example/",
        data={"text": "x", "next": "https://evil.example/", "csrf": ana.csrf(f"/m/{meeting}")},
        headers={"Referer": "https://evil.example/"},
        follow_redirects=False,
    )
    assert (
        answer.status_code == 303 and answer.headers["location"] == f"/m/{meeting}#talking-points"
    )


def test_tokens_are_redacted_from_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    security.redact_logs("uvicorn.access")
    logger = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/m/SECRETTOKEN123/talking-points?x=1",
            "1.1",
            200,
        )
        logger.info("GET /p/PAIRSECRET/export.md and /api/v1/meetings/APISECRET/notes/shared")
    text = caplog.text
    assert "SECRETTOKEN123" not in text and "PAIRSECRET" not in text and "APISECRET" not in text
    assert "/m/…/talking-points" in text and "/p/…/export.md" in text
    assert "/api/v1/meetings/…/notes/shared" in text
