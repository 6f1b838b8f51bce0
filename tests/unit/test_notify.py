"""The systemd notify protocol as the service manager receives it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.notify import Notifier


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.settimeout(0.1)
    try:
        sock.recv(4096)
    except TimeoutError:
        return True
    return False


def test_ready_status_and_stopping_reach_the_manager(
    manager: socket.socket, tmp_path: Path
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    notifier.ready("serving (all)")
    assert _received(manager) == {
        "READY": "1",
        "STATUS": "serving (all)",
        "MAINPID": str(os.getpid()),
    }
    notifier.status("3 syncs\n0 errors")
    assert _received(manager) == {"STATUS": "3 syncs 0 errors"}  # one line, always
    notifier.stopping("stopping")
    assert _received(manager) == {"STOPPING": "1", "STATUS": "stopping"}


def test_an_abstract_socket_address_is_understood() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert _received(sock)["READY"] == "1"


def test_watchdog_pings_at_most_twice_per_interval(manager: socket.socket, tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "60000000"})
    notifier.watchdog()
    notifier.watchdog()
    assert _received(manager) == {"WATCHDOG": "1"}
    assert _nothing_waiting(manager)


def test_a_watchdog_meant_for_another_process_is_ignored(
    manager: socket.socket, tmp_path: Path
) -> None:
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": str(os.getpid() + 1),
    }
    Notifier(env).watchdog()
    assert _nothing_waiting(manager)


def test_outside_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    quiet = Notifier({})
    assert not quiet.enabled
    assert quiet.send(READY="1") is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "no-such-socket")})
    assert gone.send(READY="1") is False  # a manager that went away is not our failure
