"""Logs: one JSON object per line off a terminal, readable lines on one, no secrets in either."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from syncd import logs

MEETING_TOKEN = "Qm9vX3NlY3JldF9tZWV0aW5n"
PAIR_TOKEN = "UGFpcl9zZWNyZXRfdG9rZW4"
ACCESS_TOKEN = "ya29.a0AfH6SMBsecretaccess"
REFRESH_TOKEN = "1//0gSECRETrefresh"
CLIENT_SECRET = "GOCSPX-clientsecretvalue"
DB_PASSWORD = "hunter2db"
CHANNEL_TOKEN = "chan-tok-3f9a1c"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbmEifQ.c2lnbmF0dXJl"
SECRETS = (
    MEETING_TOKEN,
    PAIR_TOKEN,
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    CLIENT_SECRET,
    DB_PASSWORD,
    CHANNEL_TOKEN,
    JWT,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("syncd")
    handlers, levels = list(root.handlers), (root.level, ours.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def leaky_records(log: logging.Logger) -> None:
    """What careless code might log: tokens in messages, arguments, extras, tracebacks."""
    log.warning(
        "GET https://agenda.example.org/m/%s/talking-points and /p/%s/export.md",
        MEETING_TOKEN,
        PAIR_TOKEN,
    )
    log.warning(
        "token endpoint answered %s",
        {"access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN, "id_token": JWT},
    )
    log.warning("request headers: Authorization: Bearer %s", ACCESS_TOKEN)
    log.warning("client_secret=%s&grant_type=client_credentials", CLIENT_SECRET)
    log.warning("database postgresql+psycopg://syncd:%s@db.internal/syncd", DB_PASSWORD)
    log.warning("webhook", extra={"headers": f"X-Goog-Channel-Token: {CHANNEL_TOKEN}", "writes": 2})
    try:
        raise RuntimeError(f"write failed for /api/v1/meetings/{MEETING_TOKEN}/notes/shared")
    except RuntimeError:
        log.exception("sync of %s failed", "ana@example.org")


def test_off_a_terminal_each_record_is_one_json_object_with_its_extra_fields() -> None:
    out = io.StringIO()
    logs.configure(False, stream=out)

    logging.getLogger("syncd.engine").info(
        "synced %s", "ana@example.org", extra={"account": "acme", "calendar": "ana@x", "writes": 3}
    )
    logging.getLogger("syncd.engine").debug("not shown without --verbose")

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "INFO" and record["logger"] == "syncd.engine"
    assert record["message"] == "synced ana@example.org"
    assert record["account"] == "acme" and record["calendar"] == "ana@x"
    assert record["writes"] == 3  # numbers stay numbers, for queries
    assert record["ts"].endswith("Z") and record["ts"][:4].isdigit()


def test_a_traceback_stays_inside_its_json_object() -> None:
    out = io.StringIO()
    logs.configure(False, stream=out)
    try:
        raise ValueError("bad recurrence")
    except ValueError:
        logging.getLogger("syncd.engine").exception("skipping event")

    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert "ValueError: bad recurrence" in record["exc"]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "human"])
def test_no_token_or_secret_reaches_the_output(as_json: bool) -> None:
    out = io.StringIO()
    logs.configure(False, json=as_json, stream=out)

    leaky_records(logging.getLogger("syncd.web"))

    text = out.getvalue()
    assert text.count("\n") >= 7
    for secret in SECRETS:
        assert secret not in text
    # what is redacted is still recognisable, so the line stays useful
    assert "/m/…/talking-points" in text and "/p/…/export.md" in text
    assert "Bearer …" in text and "postgresql+psycopg://syncd:…@db.internal" in text


def test_what_is_not_a_secret_stays_readable() -> None:
    out = io.StringIO()
    logs.configure(False, stream=out)

    logging.getLogger("syncd.engine").warning(
        "ana@example.org: status code: 404 on /calendar/v3/calendars; syncToken=CURSOR42"
    )

    message = json.loads(out.getvalue())["message"]
    assert message == (
        "ana@example.org: status code: 404 on /calendar/v3/calendars; syncToken=CURSOR42"
    )


def test_on_a_terminal_lines_are_for_people() -> None:
    out = Terminal()
    logs.configure(False, stream=out)

    logging.getLogger("syncd.engine").warning(
        "calendar %s needs re-authorisation", "eve@example.org", extra={"account": "acme"}
    )
    logging.getLogger("httpx").info("HTTP Request: GET … 200 OK")  # libraries: warnings only

    (line,) = out.getvalue().splitlines()
    assert line.endswith(
        " WARNING syncd.engine: calendar eve@example.org needs re-authorisation account=acme"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_verbose_shows_debug_and_configuring_again_does_not_double_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(False, stream=first)
    logs.configure(True, stream=second)

    logging.getLogger("syncd.engine").debug("detail")
    logging.getLogger("httpx").debug("library detail")

    assert first.getvalue() == ""
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == [
        "detail",
        "library detail",
    ]


def test_uvicorns_own_handlers_get_the_same_redaction() -> None:
    access = logging.getLogger("uvicorn.access.test")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    access.addHandler(handler)
    access.propagate = False
    try:
        logs.redact_logs("uvicorn.access.test")
        access.warning(
            '%s - "%s %s HTTP/1.1" %d', "10.0.0.1:5000", "GET", f"/m/{MEETING_TOKEN}", 200
        )
    finally:
        access.removeHandler(handler)
    assert MEETING_TOKEN not in out.getvalue() and "/m/…" in out.getvalue()
