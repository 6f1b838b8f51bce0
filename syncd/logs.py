"""Logging for people and for log collectors, with secrets kept out of both.

On a terminal a log line is short and readable; anywhere else (a journal, a
container runtime, a pipe) each record is one JSON object, so a collector can
index ``account``, ``calendar`` or ``writes`` without parsing prose. Fields
passed with ``extra=`` appear in both forms.

Redaction is one function, ``redact``, used by both formatters and by the
``RedactTokens`` filter that guards loggers with handlers of their own
(uvicorn's access log). It works on the finished text, so a secret is caught
whether it came in the message, its arguments, an ``extra`` field or a
traceback. It removes what would let a reader act as someone: agenda tokens
in agenda paths (a token in a log is a leaked agenda), bearer and other
authorization values, OAuth fields (access, refresh and id tokens, client
secrets and assertions, authorization codes), webhook channel tokens,
JWTs, and passwords in URLs. Cursors (sync tokens) are not secrets and stay.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_HIDDEN = "…"

# /m/<token>, /p/<token>, /api/v1/meetings/<token>: the token is the capability.
_AGENDA_PATH = re.compile(r"/(m|p|api/v1/meetings|api/v1/pairs)/[^/?#\s\"'<>]+")
_AUTHORIZATION = re.compile(
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic)\s+)?[^\s\"',;]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s\"',;]+")
_SECRET_FIELD = re.compile(
    r"(?i)(?<![\w-])(access_token|refresh_token|id_token|client_secret|client_assertion"
    r"|assertion|password|passwd|secret|client_?state|token|x-goog-channel-token)"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}<>]+"
)
_QUERY_CODE = re.compile(r"([?&](?:code|key)=)[^\s&#\"']+")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)")


def redact(text: str) -> str:
    """``text`` with agenda tokens, credentials and other secrets replaced by ``…``."""
    text = _AGENDA_PATH.sub(lambda m: f"/{m.group(1)}/{_HIDDEN}", text)
    text = _AUTHORIZATION.sub(
        lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{_HIDDEN}", text
    )
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{_HIDDEN}", text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}{_HIDDEN}", text)
    text = _QUERY_CODE.sub(lambda m: f"{m.group(1)}{_HIDDEN}", text)
    text = _JWT.sub(_HIDDEN, text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{_HIDDEN}{m.group(2)}", text)


class RedactTokens(logging.Filter):
    """Redacts a record in place, for loggers whose handlers are not ours (uvicorn's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_logs(*names: str) -> None:
    """Install ``RedactTokens`` on the named loggers, once each."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
    # uvicorn's copy of the message with terminal colour codes: noise in both forms
    | {"color_message"}
)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _plain(value: Any) -> Any:
    """A JSON value for an ``extra`` field; anything but a scalar becomes redacted text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        payload: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in extra_fields(record).items():
            payload.setdefault(key, _plain(value))
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        return jsonlib.dumps(payload, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """``12:04:05 WARNING syncd.engine: message key=value``, redacted like the JSON."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = extra_fields(record)
        if extras:
            head, newline, rest = text.partition("\n")  # fields before any traceback
            fields = " ".join(f"{key}={value}" for key, value in extras.items())
            text = f"{head} {fields}{newline}{rest}"
        return redact(text)


class _LiveStderr:
    """Whatever ``sys.stderr`` is at the moment of writing.

    A handler that kept the object it was configured with would keep writing
    to a replaced (and perhaps closed) stream after someone swaps
    ``sys.stderr``, as test runners do.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_OURS = "_syncd_handler"


def configure(verbose: bool, *, json: bool | None = None, stream: TextIO | None = None) -> None:
    """Send logs to ``stream`` (default: stderr), JSON unless it is a terminal.

    syncd's own loggers speak at INFO (each sync, progress), libraries only
    from WARNING: httpx alone would log every request. ``verbose`` opens
    everything at DEBUG. Calling it again replaces the handler it installed.
    """
    target: TextIO | _LiveStderr = stream if stream is not None else _LiveStderr()
    as_json = not _is_terminal(target) if json is None else json
    handler: logging.StreamHandler[Any] = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if as_json else HumanFormatter())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("syncd").setLevel(logging.DEBUG if verbose else logging.INFO)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
