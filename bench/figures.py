"""The figures one `make bench` run measured: one table on stdout, bench/results/latest.json.

Each benchmark records what it measured with ``record``; ``report`` prints
the table (figure, value, the bound issue #11 sets where it sets one, and
whether the value is within it) and writes the JSON, so a run can be
compared with the last one committed.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "latest.json"


@dataclass(frozen=True)
class Figure:
    area: str
    name: str
    value: float
    unit: str
    #: the most (or, with ``at_least``, the least) the value may be; None: no bound
    bound: float | None = None
    at_least: bool = False

    @property
    def within(self) -> bool | None:
        if self.bound is None:
            return None
        return self.value >= self.bound if self.at_least else self.value <= self.bound


_figures: list[Figure] = []


def record(
    area: str,
    name: str,
    value: float,
    unit: str,
    bound: float | None = None,
    *,
    at_least: bool = False,
) -> None:
    _figures.append(Figure(area, name, value, unit, bound, at_least))


def recorded() -> list[Figure]:
    return list(_figures)


def _shown(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def table() -> str:
    rows = [("area", "figure", "value", "bound", "")]
    for f in _figures:
        bound = "" if f.bound is None else ("≥ " if f.at_least else "≤ ") + _shown(f.bound)
        verdict = {None: "", True: "ok", False: "OVER"}[f.within]
        rows.append((f.area, f.name, f"{_shown(f.value)} {f.unit}", bound, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def report(path: Path = RESULTS) -> None:
    print()
    print(table())
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "figures": [{**asdict(f), "within": f.within} for f in _figures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")
