"""A copy of the checkout as a clone would hold it, and a child process's output.

The copy holds what ``git ls-files --cached --others --exclude-standard``
lists, read from the working tree: exactly what a clone would hold once the
work in progress is committed (a ``git clone`` would test the last commit
instead, and the ignored files, the virtualenv, caches and databases, are
left out as a clone leaves them out).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN = 60.0


def fresh_copy(target: Path, *, link_venv: bool = True) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if link_venv:
        (target / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return target


@dataclass
class Output:
    """The demo's output, read on a thread so that every wait is bounded."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout:.0f}s:\n{self.text}") from None
            if line is None:
                raise AssertionError(f"the demo ended before {text!r}:\n{self.text}")
            self.lines.append(line)

    def rest(self) -> None:
        while (line := self._queue.get(timeout=STOP_WITHIN)) is not None:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
