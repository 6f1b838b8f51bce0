"""The systemd notify protocol, spoken directly over its datagram socket.

``Type=notify`` lets systemd hold back units that depend on syncd until it
is really serving, restart it when the watchdog stops hearing from the
scheduler loop, and show a one-line ``STATUS`` in ``systemctl status``. The
protocol is a few newline-separated ``KEY=VALUE`` lines in one datagram to
``$NOTIFY_SOCKET``; outside systemd (no variable) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    """Messages to the service manager; silent when there is none."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # an abstract socket: a leading NUL byte
            address = "\0" + address[1:]
        self._address = address
        self._watchdog = _watchdog_interval(env)
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> bool:
        """Send one message; a service manager gone away is not our failure."""
        if not self._address:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status, MAINPID=str(os.getpid()))

    def status(self, line: str) -> None:
        self.send(STATUS=line.replace("\n", " "))

    def stopping(self, status: str) -> None:
        self.send(STOPPING="1", STATUS=status)

    def watchdog(self) -> None:
        """Ping at half the configured interval at most, however often called."""
        if self._watchdog is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self._watchdog / 2:
            self._last_ping = now
            self.send(WATCHDOG="1")


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """``WATCHDOG_USEC`` in seconds, if it is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000
