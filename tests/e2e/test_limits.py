"""Request bodies are bounded while they are read, on every route of the running daemon.

Anyone can post to the webhooks, and anyone with a link to the API and the
forms, so a 64 MiB body must be refused (413) without the process growing
by more than a few MiB, whether it declares its length or streams it in
chunks; malformed and deeply nested JSON is a 400, never a 500 and never a
traceback in the log. The daemon is the real ``syncd run`` subprocess, and
the routes are every route of its app that takes a body.
"""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

import providers
from providers.emulators.google import GoogleEmulator
from syncd import block
from syncd.store import connect, sessions
from syncd.web.app import create_app
from tests.e2e.daemon import Daemon, free_port, google_config, wait_until

ANA, BO = "ana@example.org", "bo@example.org"
HUGE = 64 * 1024 * 1024
CHUNK = 64 * 1024
#: How much the daemon may grow over all the huge posts together.
GROWTH_ALLOWED = 8 * 1024 * 1024


def body_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route of the app that takes a request body."""
    app = create_app(sessions(connect("sqlite://")))
    found = []

    def visit(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):  # the JSON API, FastAPI mounted at /api/v1
                visit(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                for method in sorted((route.methods or set()) - {"GET", "HEAD", "DELETE"}):
                    found.append((method, prefix + route.path))

    visit(list(app.routes), "")
    return found


def concrete(path: str, token: str) -> str:
    return re.sub(r"\{id(:int)?\}", "1", path.replace("{token}", token))


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match[1]) * 1024


def media(path: str) -> str:
    """What each route reads: JSON for the API and the webhooks, forms for the pages."""
    json_routes = path.startswith(("/api/", "/hooks/"))
    return "application/json" if json_routes else "application/x-www-form-urlencoded"


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match is not None, answer[:200]
    return int(match[1])


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def _csrf(token: str) -> str:
    """A valid CSRF pair, so that the API goes on to read the body (anyone with a link can)."""
    return f"Cookie: syncd-csrf={token}\r\nX-CSRF-Token: {token}\r\n"


def post_declared(port: int, method: str, path: str, csrf: str) -> int:
    """Declare 64 MiB and send none of it: the answer must come without the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media(path)}\r\n"
            f"{_csrf(csrf)}Content-Length: {HUGE}\r\n\r\n".encode()
        )
        return status_of(read_answer(sock))


def post_chunked(port: int, method: str, path: str, csrf: str) -> tuple[int, int]:
    """Stream up to 64 MiB in chunks, looking for the answer after each; (status, bytes sent)."""
    chunk = b"[" * CHUNK
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media(path)}\r\n"
            f"{_csrf(csrf)}Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        while sent < HUGE:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                return status_of(read_answer(sock)), sent
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        sock.sendall(b"0\r\n\r\n")
        return status_of(read_answer(sock)), sent


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int, str]]:
    """The daemon, its port, and the agenda token of a 1:1 it wrote into an invite."""
    with GoogleEmulator((ANA, BO)) as emulator:
        start = datetime.now(UTC) + timedelta(days=1)
        uid = emulator.create_event(ANA, [ANA, BO], "Ana / Bo", start, start + timedelta(hours=1))
        port = free_port()
        database = f"sqlite:///{tmp_path / 'syncd.db'}"
        config = google_config(tmp_path, emulator, (ANA, BO), database=database, port=port)
        running = Daemon(config)
        try:
            running.wait_ready()

            def token() -> str | None:
                text = block.extract(emulator.description(ANA, emulator.copy_id(ANA, uid)))
                found = re.search(r"/m/([A-Za-z0-9_-]+)", text or "")
                return found[1] if found else None

            yield running, port, wait_until(token, 60, "a block", running)
        finally:
            running.close()


def test_a_64_mib_body_is_refused_on_every_route_without_the_daemon_growing(
    daemon: tuple[Daemon, int, str],
) -> None:
    running, port, token = daemon
    routes = [
        (method, concrete(path, token).replace("{provider}", name))
        for method, path in body_routes()
        for name in (providers.NAMES if "{provider}" in path else ("",))
    ]
    assert ("POST", "/hooks/google") in routes and ("POST", "/hooks/microsoft") in routes
    assert any(path.startswith("/api/") for _, path in routes)
    # warm up: every route once with a small body, so imports and caches are in place
    for method, path in routes:
        url = f"http://127.0.0.1:{port}{path}"
        httpx.request(method, url, content=b"{}", headers={"content-type": media(path)})
    csrf = httpx.get(f"http://127.0.0.1:{port}/api/v1/meetings/{token}").cookies["syncd-csrf"]
    before = rss(running.pid)

    for method, path in routes:
        assert post_declared(port, method, path, csrf) == 413, path
        status, sent = post_chunked(port, method, path, csrf)
        assert status == 413, path
        assert sent < 8 * 1024 * 1024, f"{path}: read {sent} bytes before refusing"

    grown = rss(running.pid) - before
    assert grown < GROWTH_ALLOWED, f"grew by {grown / 2**20:.1f} MiB"
    assert "Traceback" not in running.log()


def test_nested_and_malformed_json_is_a_400_never_a_500(daemon: tuple[Daemon, int, str]) -> None:
    running, port, token = daemon
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=10)
    api.get(f"/api/v1/meetings/{token}")  # the CSRF cookie, as an API client gets it
    csrf = api.cookies.get("syncd-csrf")
    assert csrf
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    nested = b"[" * 200_000 + b"]" * 200_000  # under the 1 MiB limit, far deeper than the parser
    broken = (
        nested,
        b'{"text": ',
        b"\xff\xfe",
        b'{"text": "\xed\xa0\x80"}',
        b'{"text": "\\ud800"}',
    )
    for body in broken:
        answer = api.post(f"/api/v1/meetings/{token}/talking-points", content=body, headers=headers)
        assert answer.status_code == 400, (body[:20], answer.text)
        assert answer.json()["error"]

    graph = httpx.post(f"{base}/hooks/microsoft", content=b'{"value": ' + nested + b"}")
    assert graph.status_code == 202  # Graph's answer for anything: nothing revealed, nothing done
    assert "Traceback" not in running.log()
    assert "RecursionError" not in running.log()
