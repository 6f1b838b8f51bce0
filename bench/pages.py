"""The agenda page under load: requests per second and p95 at 1 and 16 connections.

The page a person opens from an invite (``/m/{token}``), served as ``syncd run``
serves it (uvicorn in a thread, the SQLite database a sync filled), with a
dozen talking points and action items on it. Each connection is one client
thread with its own keep-alive connection, asking again as soon as answered;
the clients run in a process of their own, so they take a core, not the
server's interpreter lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.org import organization
from bench.push import free_port
from syncd import detect
from syncd.engine import CalendarSync, Policy
from syncd.runtime import WebServer
from syncd.store import connect, migrate, sessions
from syncd.store.models import Meeting
from syncd.web.app import create_app
from syncd.web.settings import WebSettings

SECONDS = 4.0


def _load(url: str, connections: int, seconds: float) -> tuple[float, float]:
    """(requests per second, p95 seconds) of ``connections`` clients asking for ``url``."""
    times: list[list[float]] = [[] for _ in range(connections)]
    failures: list[int] = []
    start = threading.Barrier(connections + 1)
    deadline: list[float] = [0.0]

    def client(mine: list[float]) -> None:
        with httpx.Client(timeout=30) as http:
            http.get(url)  # the connection, opened before the clock runs
            start.wait()
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                status = http.get(url).status_code
                mine.append(time.perf_counter() - began)
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=client, args=(mine,)) for mine in times]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds + 0.5
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"the page answered {sorted(set(failures))} under load")
    every = sorted(t for mine in times for t in mine)
    return len(every) / elapsed, every[max(0, round(0.95 * len(every)) - 1)]


def _load_elsewhere(url: str, connections: int, seconds: float) -> tuple[float, float]:
    """``_load`` in a process of its own: the clients must not share the server's GIL."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.pages", "--load", url, str(connections), str(seconds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pages bench: the load failed:\n{done.stderr[-2000:]}")
    rps, p95 = json.loads(done.stdout)
    return float(rps), float(p95)


def run() -> dict[int, tuple[float, float]]:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'pages.db'}")
        migrate(engine)
        factory = sessions(engine)
        world = organization(16, now)
        policy = Policy(
            base_url="https://agenda.example.org",
            zone=UTC,
            rules=detect.Rules(),
            template=("What is top of mind?",),
        )
        syncer = CalendarSync(world, factory, policy, account="bench")
        for calendar in world.calendars():
            syncer.sync(calendar, now)
        with factory() as session:
            token = session.scalars(select(Meeting.token).order_by(Meeting.start)).first()
        if token is None:
            raise RuntimeError("pages bench: the organization has no 1:1")
        port = free_port()
        app = create_app(factory, web=WebSettings(secure_cookies=False))  # plain-http loopback
        server = WebServer(app, "127.0.0.1", port)
        if not server.start():
            raise RuntimeError("pages bench: the web server did not start")
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base) as http:
                csrf = http.get(f"/api/v1/meetings/{token}").headers["X-CSRF-Token"]
                for n in range(12):
                    kind = "talking-points" if n % 2 else "action-items"
                    fields = {"text": f"Item {n}: the quarterly numbers and who follows up"}
                    if kind == "action-items":
                        fields["owner"] = "p0000@example.org"
                    http.post(
                        f"/api/v1/meetings/{token}/{kind}",
                        json=fields,
                        headers={"X-CSRF-Token": csrf},
                    ).raise_for_status()
            url = f"{base}/m/{token}"
            return {n: _load_elsewhere(url, n, SECONDS) for n in (1, 16)}
        finally:
            server.stop()
            engine.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        print(json.dumps(_load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
        raise SystemExit(0)
    for connections, (rps, p95) in run().items():
        print(f"{connections:>2} connections: {rps:6.0f} requests/s, p95 {1000 * p95:6.1f} ms")
