"""Progress of a long sync: a bar on a terminal, periodic log lines elsewhere.

The first sync of an organization reads every calendar in full and can take
minutes; without a sign of life an operator cannot tell slow from stuck. On
a terminal one line is redrawn in place on stderr::

    calendars 12/40 ▕██████░░░░░░░░░░░░░░▏ events 1,234 writes 56

Anywhere else a redrawn line is noise in a journal, so a log line (with the
figures as ``extra`` fields, for JSON logs) goes out at most every
``interval`` seconds, and a summary always at the end.

The caller tells it how many calendars to expect (``expect``, as each
account connects and lists them) and hands it each calendar's ``Report``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from syncd.engine import Report

log = logging.getLogger(__name__)

BAR_WIDTH = 20
REDRAW_SECONDS = 0.1  # a terminal redraw costs little, but thousands a second is pointless


def _count(value: int) -> str:
    return f"{value:,}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


class Progress:
    """Calendars done of total, events seen, writes; thread-safe."""

    def __init__(
        self,
        total: int = 0,
        *,
        stream: TextIO | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self.events = 0
        self.writes = 0
        self.errors = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.terminal = _is_terminal(self.stream)
        self.started = clock()
        self._shown = self.started  # last redraw or log line
        self._drawn = False
        self._finished = False
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        """Every calendar expected so far has reported."""
        return self.done >= self.total

    def expect(self, calendars: int) -> None:
        """``calendars`` more to come (an account connected and listed its calendars)."""
        with self._lock:
            self.total += calendars
            if self.terminal:
                self._draw()

    def update(self, report: Report) -> None:
        """One calendar (or several, for a merged report) has been synced."""
        with self._lock:
            self.done += max(report.calendars, 1)
            self.total = max(self.total, self.done)
            self.events += report.events_seen
            self.writes += report.writes
            self.errors += len(report.errors)
            now = self.clock()
            if self.terminal:
                if not self._drawn or now - self._shown >= REDRAW_SECONDS or self.complete:
                    self._draw()
                    self._shown = now
            elif now - self._shown >= self.interval:
                self._log("synced %s of %s calendars: %s events, %s writes, %s errors")
                self._shown = now

    def finish(self) -> None:
        """The final state: the bar completed with the elapsed time, or a summary log line."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            elapsed = _duration(self.clock() - self.started)
            if self.terminal:
                self._draw(suffix=f" in {elapsed}")
                self.stream.write("\n")
                self.stream.flush()
            else:
                self._log(
                    f"done in {elapsed}: synced %s of %s calendars: %s events, %s writes, %s errors"
                )

    def close(self) -> None:
        """Stop without a summary (the work failed): end the bar's line, say nothing else."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if self.terminal and self._drawn:
                self.stream.write("\n")
                self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """A summary after success; after an error only the error is worth reading."""
        if kind is None:
            self.finish()
        else:
            self.close()

    def line(self) -> str:
        """The bar as it would be drawn now, without terminal control characters."""
        filled = BAR_WIDTH * self.done // self.total if self.total else 0
        bar = "█" * filled + "░" * (BAR_WIDTH - filled)
        text = (
            f"calendars {self.done}/{self.total} ▕{bar}▏ "
            f"events {_count(self.events)} writes {_count(self.writes)}"
        )
        return text + (f" errors {_count(self.errors)}" if self.errors else "")

    def _draw(self, suffix: str = "") -> None:
        # carriage return, the line, then erase what a longer earlier line left
        self.stream.write(f"\r{self.line()}{suffix}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _log(self, message: str) -> None:
        log.info(
            message,
            _count(self.done),
            _count(self.total),
            _count(self.events),
            _count(self.writes),
            _count(self.errors),
            extra={
                "calendars_done": self.done,
                "calendars_total": self.total,
                "events": self.events,
                "writes": self.writes,
                "errors": self.errors,
            },
        )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
