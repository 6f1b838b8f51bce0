"""The body of ``PATCH /users/{id}/events/{id}``, checked before anything is written.

The emulator models writing ``body`` (``contentType`` ``text`` or ``html``,
``text`` when absent, as Graph defaults) and ``singleValueExtendedProperties``
(each ``{"id", "value"}`` with an id in Exchange's ``{Type} {GUID} Name
{name}`` / ``{Type} {GUID} Id 0x..`` / ``{Type} 0x....`` forms). OData
annotations (``@odata.type``) are ignored. Anything else is refused with 400
and nothing is written: a property Graph does not know is
``RequestBodyRead`` with OData's message; a known one the emulator does not
model is ``ErrorInvalidRequest`` naming it, so a test never passes because a
write was silently dropped. Malformed JSON is ``BadRequest`` with Graph's
message; a malformed extended property id is ``ErrorInvalidProperty``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import graph_body
from ._recording import Unparsed
from .graph_errors import GraphError
from .graph_query import EVENT_PROPERTIES, property_key

__all__ = ["EventPatch", "parse_patch"]

_WRITABLE = frozenset({"body", "singleValueExtendedProperties"})
_TYPES = "Binary|Boolean|CLSID|Currency|Double|Float|Integer|Long|Object|Short|String|SystemTime"
_PROPERTY_ID = re.compile(
    rf"^(?:{_TYPES})(?:Array)?\s+(?:"
    r"\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}\s+"
    r"(?:Name\s+\S.*|Id\s+0x[0-9a-f]{1,8})"
    r"|0x[0-9a-f]{1,4})$",
    re.IGNORECASE,
)
_BAD_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload "
    "is of valid JSON format."
)


@dataclass(frozen=True)
class EventPatch:
    """What a PATCH writes: the body as Exchange keeps it (None: untouched), and properties."""

    body: str | None = None
    props: dict[str, tuple[str, str]] = field(default_factory=dict)


def parse_patch(raw: Any) -> EventPatch:
    if raw is None or isinstance(raw, Unparsed) or not isinstance(raw, dict):
        raise GraphError(400, "BadRequest", _BAD_JSON)
    for name in raw:
        if name.startswith("@odata."):
            continue
        if name not in EVENT_PROPERTIES:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make sure "
                "to only use property names that are defined by the type or mark the type as "
                "open type.",
            )
        if name not in _WRITABLE:
            raise GraphError(
                400,
                "ErrorInvalidRequest",
                f"The emulator does not model writing '{name}'; PATCH accepts body and "
                "singleValueExtendedProperties.",
            )
    body = _body(raw["body"]) if "body" in raw else None
    props = _props(raw.get("singleValueExtendedProperties"))
    return EventPatch(body, props)


def _body(value: Any) -> str:
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "Invalid value for property 'body'.")
    kind = value.get("contentType", "text")
    content = value.get("content")
    if not isinstance(kind, str) or kind.lower() not in ("text", "html"):
        raise GraphError(
            400, "BadRequest", f"Invalid value '{kind}' for property 'body.contentType'."
        )
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise GraphError(400, "BadRequest", "Invalid value for property 'body.content'.")
    return graph_body.from_api(content, kind.lower())


def _props(value: Any) -> dict[str, tuple[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise GraphError(
            400, "BadRequest", "Invalid value for property 'singleValueExtendedProperties'."
        )
    props: dict[str, tuple[str, str]] = {}
    for entry in value:
        if not isinstance(entry, dict):
            raise GraphError(400, "ErrorInvalidProperty", "An extended property must be an object.")
        property_id, content = entry.get("id"), entry.get("value")
        if not isinstance(property_id, str) or not _PROPERTY_ID.match(property_id.strip()):
            raise GraphError(
                400, "ErrorInvalidProperty", f"The extended property id '{property_id}' is invalid."
            )
        if not isinstance(content, str):
            raise GraphError(
                400, "ErrorInvalidProperty", "An extended property value must be a string."
            )
        props[property_key(property_id)] = (property_id.strip(), content)
    return props
