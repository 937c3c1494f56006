"""Graph request/response value objects, path parsing and the error envelope.

Both the HTTP front door and ``$batch`` items are turned into a ``GraphRequest`` and answered with a
``GraphResponse`` by the same dispatcher, so auth, permissions, throttling and faults apply per item.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from graph_sim import clock

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
_KEY_SEGMENT = re.compile(r"^([A-Za-z$][\w.$]*)\('(.*)'\)$", re.S)


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
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_request_id: str = ""
    batch_parent: str | None = None

    def __post_init__(self):
        if not self.client_request_id:
            self.client_request_id = self.headers.get("client-request-id") or str(uuid.uuid4())


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


def parse_query(raw_query: str) -> dict[str, str]:
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
                "date": clock.utcnow().strftime("%Y-%m-%dT%H:%M:%S"),
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
