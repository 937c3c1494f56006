"""Graph request/response value objects, path parsing and the error envelope.

Both the HTTP front door and ``$batch`` items are turned into a ``GraphRequest`` and answered with a
``GraphResponse`` by the same dispatcher, so auth, permissions, throttling and faults apply per item.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from graph_sim import clock

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_KEY_SEGMENT = re.compile(r"^([A-Za-z$][\w.$]*)\('(.*)'\)$", re.S)


def new_guid() -> str:
    """A random version-4 GUID string, the form ``str(uuid.uuid4())`` gives, without building a UUID
    object (every request and every batch item gets one)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


@dataclass
class GraphRequest:
    method: str
    version: str  # "v1.0" | "beta"
    segments: list[str]
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: object = None  # parsed JSON, or None when there was no body
    has_body: bool = False
    raw_path: str = ""
    request_id: str = field(default_factory=new_guid)
    client_request_id: str = ""
    batch_parent: str | None = None

    def __post_init__(self):
        if not self.client_request_id:
            self.client_request_id = self.headers.get("client-request-id") or new_guid()


@dataclass
class GraphResponse:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    write_effective: bool = False
    drop: bool = False  # commit happened; abort the connection instead of answering
    throttled: str = ""  # the limit that refused the request
    fault: str = ""  # the injected fault, if any ("rule" when a fault rule fired)
    fault_rule: int | None = None  # id of the fault rule that fired


def split_path(path: str) -> list[str]:
    """Percent-decode each segment (so %2F inside a key stays inside it) and expand ``users('key')``."""
    if "%" not in path and "(" not in path:  # nothing to decode or expand: the common case
        return [seg for seg in path.strip("/").split("/") if seg]
    out: list[str] = []
    for raw in path.strip("/").split("/"):
        if raw == "":
            continue
        seg = unquote(raw)
        m = _KEY_SEGMENT.match(seg)
        if m:
            out.extend([m.group(1), m.group(2).replace("''", "'")])
        else:
            out.append(seg)
    return out


# Path segments OData itself starts with '$' (/users/$count, /$batch, .../$ref, .../$value).
ODATA_SEGMENTS = frozenset({"$count", "$ref", "$value", "$batch", "$metadata", "$entity", "$each"})


def dollar_key_segment(raw_path: str) -> str | None:
    """A key written as a plain segment that starts with '$' (``/users/$x@y.com``, or ``%24``-encoded):
    Graph answers 400, because only system query options may start with '$'; such a key goes in
    ``users('$x@y.com')`` (Get user, https://learn.microsoft.com/graph/api/user-get, HTTP request tip)."""
    raws = [seg for seg in raw_path.strip("/").split("/") if seg]
    if raws and raws[0] in ("v1.0", "beta"):
        raws = raws[1:]
    for raw in raws[1:]:
        seg = unquote(raw)
        if seg.startswith("$") and seg not in ODATA_SEGMENTS and not _KEY_SEGMENT.match(seg):
            return seg
    return None


def parse_query(raw_query: str) -> dict[str, str]:
    if not raw_query:
        return {}
    return {k: v for k, v in parse_qsl(raw_query, keep_blank_values=True)}


def error(
    req: GraphRequest, status: int, code: str, message: str, headers: dict | None = None
) -> GraphResponse:
    """The Graph error envelope, with innerError carrying the request ids and date."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": clock.iso_seconds(),
                "request-id": req.request_id,
                "client-request-id": req.client_request_id,
            },
        }
    }
    return GraphResponse(status, body, dict(headers or {}))


def parse_body(raw: bytes) -> tuple[object, bool, str | None]:
    """(parsed, has_body, error message)."""
    if not raw or not raw.strip():
        return None, False, None
    try:
        return json.loads(raw), True, None
    except (ValueError, UnicodeDecodeError):
        return (
            None,
            True,
            (
                "Unable to read JSON request payload. Please ensure Content-Type header is set and "
                "payload is of valid JSON format."
            ),
        )
