"""The command line both emulators share: ``python -m providers.emulators.<service>``.

Run as a process, an emulator serves until interrupted and prints its base URL
first, so a script can wait for that line before pointing a client at it. The
credentials a client needs are written to a file created private (mode 0600),
because they hold a private key or a client secret.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from pathlib import Path
from typing import Any

from ._server import Served

__all__ = ["parser", "serve_until_interrupted", "users", "write_private_json"]


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every emulator takes (``--port``, ``--users``); a service adds its own."""
    made = argparse.ArgumentParser(prog=prog, description=description)
    made.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    made.add_argument("--users", default="", help="comma-separated user addresses")
    return made


def users(raw: str) -> list[str]:
    return [user.strip() for user in raw.split(",") if user.strip()]


def write_private_json(path: Path, payload: Any) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)


def serve_until_interrupted(emulator: Served) -> int:
    emulator.start()
    try:  # an interrupt at any point from here stops the server cleanly
        print(emulator.base_url, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
