"""The socket side shared by the emulators, kept apart from their request handling.

Each emulator's app turns one request into one answer without knowing about
sockets, so tests can drive it directly; this module is the only place that
speaks HTTP/1.1 on a real port. Clients keep connections alive, so closing a
server also shuts the connections it still holds, or handler threads would
outlive the emulator and keep a test's port busy.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self, cast

__all__ = ["App", "Answer", "RequestHandler", "Response", "serve"]


class Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass
class Response:
    """An answer as the emulators build it; each service adds its own headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class App(Protocol):
    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer: ...


class RequestHandler(BaseHTTPRequestHandler):
    """Subclasses set ``server_version`` so answers carry the real service's ``Server`` header."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests``, not stderr."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        if isinstance(self.connection, ssl.SSLSocket):
            # A pseudo-header (':' cannot start a real one): the app may build
            # https links back to the host the client addressed.
            headers[":scheme"] = "https"
        response = cast(_Server, self.server).app.handle(self.command, self.path, headers, raw)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)


class _Server(ThreadingHTTPServer):
    """Also closes kept-alive client connections on close, so no handler thread outlives it."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: App, handler: type[RequestHandler]) -> None:
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def serve(
    app: App,
    handler: type[RequestHandler],
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
) -> ThreadingHTTPServer:
    """A bound, not yet serving, threaded server for ``app``; https with ``tls``."""
    server = _Server((host, port), app, handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def url_of(server: ThreadingHTTPServer, scheme: str = "http") -> str:
    host, port = server.server_address[:2]
    host_text = host.decode() if isinstance(host, bytes) else str(host)
    shown = f"[{host_text}]" if ":" in host_text else host_text  # an IPv6 address
    return f"{scheme}://{shown}:{port}/"


class _Worker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait_idle(self, timeout: float) -> bool: ...


class Served:
    """The life of an emulator: its server thread and its notification worker.

    Both emulators bind their socket when constructed (so their URLs are valid
    at once), serve from ``start`` until ``stop``, and cannot be restarted.
    A subclass sets ``_push`` and ``_thread_name`` and calls ``_init_served``
    with its bound server before using ``base_url`` or adding anything that
    needs the server running.
    """

    _server: ThreadingHTTPServer
    _push: _Worker
    _thread_name = "emulator"
    base_url: str

    def _init_served(self, server: ThreadingHTTPServer, *more: ThreadingHTTPServer) -> None:
        """``more``: further listeners of the same app (an https one), served alongside."""
        self._server = server
        self._more = more
        self.base_url = url_of(server)
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("a stopped emulator cannot be started again")
        if self._thread is None:
            self._push.start()
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
                name=self._thread_name,
                daemon=True,
            )
            self._thread.start()
            for extra in self._more:
                thread = threading.Thread(
                    target=extra.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"{self._thread_name}-more",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            for server in (self._server, *self._more):
                server.shutdown()
            for thread in (self._thread, *self._threads):
                thread.join(timeout=5)
            self._thread = None
        for server in (self._server, *self._more):
            server.server_close()
        self._push.stop()

    def wait_for_notifications(self, timeout: float = 5.0) -> bool:
        """Block until every notification queued so far was delivered (or given up)."""
        return self._push.wait_idle(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
