"""Per-tenant fault knobs and the seeded dice that decide when they fire."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields


@dataclass
class Faults:
    """What can go wrong for one tenant's Graph calls. Rates are probabilities per request."""

    latency_ms: float = 0.0  # added to every Graph request
    rate_429: float = 0.0  # random 429 with Retry-After
    retry_after_s: float = 1.0  # the Retry-After those random 429s carry
    rate_429_no_retry_after: float = 0.0  # random 429 without Retry-After
    rate_5xx: float = 0.0  # random 503/504 with the Graph error envelope
    drop_after_commit_rate: float = 0.0  # apply a write, then abort the connection without a response
    replication_lag_s: float = 0.0  # a created object is invisible to GET/list for this long
    timeout_rate: float = 0.0  # hold the request for timeout_hold_s before answering
    timeout_hold_s: float = 120.0
    # PATCH enabled for an MFA-registered user: Graph moves them to enforced by itself, at a time its
    # docs leave open; 0 = at once, else after this many seconds
    enforce_after_s: float = 0.0

    def update(self, changes: dict) -> None:
        """Partial update from JSON; unknown names or non-numbers raise ValueError."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault knob {name!r}; known: {sorted(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"fault knob {name!r} needs a non-negative number")
            if name.endswith("rate") or name.startswith("rate_"):
                if value > 1:
                    raise ValueError(f"fault knob {name!r} is a probability (0..1)")
            setattr(self, name, float(value))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FaultRoll:
    """The faults chosen for one request (decided before the handler runs)."""

    timeout: bool = False
    status_5xx: int | None = None
    throttle_429: bool = False
    throttle_retry_after: bool = True
    drop_after_commit: bool = False

    @property
    def short_circuit(self) -> bool:
        return self.status_5xx is not None or self.throttle_429


class FaultDice:
    """Deterministic randomness per tenant: the same seed and request order give the same faults."""

    def __init__(self, seed: int, tenant_id: str):
        self._rng = random.Random(f"{seed}:{tenant_id}")

    def roll(self, faults: Faults, is_write: bool) -> FaultRoll:
        r = FaultRoll()
        if faults.timeout_rate and self._rng.random() < faults.timeout_rate:
            r.timeout = True
        if faults.rate_5xx and self._rng.random() < faults.rate_5xx:
            r.status_5xx = self._rng.choice((503, 504))
            return r
        if faults.rate_429 and self._rng.random() < faults.rate_429:
            r.throttle_429 = True
            return r
        if faults.rate_429_no_retry_after and self._rng.random() < faults.rate_429_no_retry_after:
            r.throttle_429, r.throttle_retry_after = True, False
            return r
        if is_write and faults.drop_after_commit_rate and self._rng.random() < faults.drop_after_commit_rate:
            r.drop_after_commit = True
        return r


# -- fault rules: deterministic, targeted faults ---------------------------------------------------
RULE_STATUSES = (400, 401, 403, 404, 409, 429, 500, 503, 504)
RULE_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
RULE_KEYS = (
    "method",
    "path_contains",
    "body_contains",
    "status",
    "retry_after",
    "drop_after_commit",
    "times",
)
# The Graph error envelope a rule answers with, per status: (code, message).
RULE_ERRORS: dict[int, tuple[str, str]] = {
    # how Graph refuses a query option or a $filter it does not support (the simulator's own refusals)
    400: ("Request_UnsupportedQuery", "Unsupported Query."),
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    403: ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    404: (
        "Request_ResourceNotFound",
        "Resource does not exist or one of its queried reference-property objects are not present.",
    ),
    409: ("Request_Conflict", "The request conflicts with the current state of the resource."),
    429: ("TooManyRequests", "Too many requests."),
    500: ("InternalServerError", "An unexpected error occurred on the server."),
    503: ("ServiceUnavailable", "Service unavailable. Please retry later."),
    504: ("GatewayTimeout", "The gateway did not receive a timely response."),
}


def _json_equal(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, containers compare recursively."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclass
class FaultRule:
    """One targeted fault: which requests it matches, what it does, and how often it may still fire."""

    id: int
    method: str | None = None
    path_contains: str | None = None
    body_contains: dict | None = None
    status: int | None = None
    retry_after: float | None = None
    drop_after_commit: bool = False
    times: int = 1  # 0 = unlimited
    fired: int = 0

    @property
    def remaining(self) -> int | None:
        """Firings left; ``None`` when unlimited."""
        return None if self.times == 0 else max(self.times - self.fired, 0)

    def matches(self, method: str, path: str, body: object, is_write: bool) -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method != method.upper():
            return False
        if self.path_contains is not None and self.path_contains.lower() not in path.lower():
            return False
        if self.body_contains is not None:
            if not isinstance(body, dict):
                return False
            if not all(k in body and _json_equal(body[k], v) for k, v in self.body_contains.items()):
                return False
        if self.drop_after_commit and not is_write:
            return False  # like the random knob: reads are never dropped
        return True

    def fire(self) -> None:
        self.fired += 1

    def as_dict(self) -> dict:
        out = {
            "id": self.id,
            "method": self.method,
            "path_contains": self.path_contains,
            "body_contains": self.body_contains,
            "status": self.status,
            "retry_after": self.retry_after,
            "drop_after_commit": self.drop_after_commit,
            "times": self.times,
            "fired": self.fired,
            "remaining": self.remaining,
        }
        return out


def parse_rule(data: object, rule_id: int) -> FaultRule:
    """A rule from its JSON form; anything malformed raises ``ValueError`` with a readable reason."""
    if not isinstance(data, dict):
        raise ValueError("a fault rule must be a JSON object")
    unknown = sorted(set(data) - set(RULE_KEYS))
    if unknown:
        raise ValueError(f"unknown fault rule field(s) {unknown}; known: {list(RULE_KEYS)}")
    rule = FaultRule(id=rule_id)
    method = data.get("method")
    if method is not None:
        if not isinstance(method, str) or method.upper() not in RULE_METHODS:
            raise ValueError(f"method must be one of {list(RULE_METHODS)}, got {method!r}")
        rule.method = method.upper()
    path = data.get("path_contains")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ValueError("path_contains must be a non-empty string")
        rule.path_contains = path
    body = data.get("body_contains")
    if body is not None:
        if not isinstance(body, dict) or not body:
            raise ValueError("body_contains must be a non-empty JSON object of top-level body fields")
        rule.body_contains = body
    drop = data.get("drop_after_commit", False)
    if not isinstance(drop, bool):
        raise ValueError("drop_after_commit must be a boolean")
    rule.drop_after_commit = drop
    status = data.get("status")
    if drop:
        if status is not None:
            raise ValueError("a drop_after_commit rule takes no status (the client gets no response)")
    else:
        if status is None:
            raise ValueError(f"status is required (one of {list(RULE_STATUSES)}) unless drop_after_commit")
        if isinstance(status, bool) or status not in RULE_STATUSES:
            raise ValueError(f"status must be one of {list(RULE_STATUSES)}, got {status!r}")
        rule.status = status
    retry_after = data.get("retry_after")
    if retry_after is not None:
        if rule.status != 429:
            raise ValueError("retry_after is only allowed on a status 429 rule")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0:
            raise ValueError("retry_after must be a non-negative number of seconds")
        rule.retry_after = float(retry_after)
    times = data.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise ValueError("times must be a non-negative integer (0 = unlimited)")
    rule.times = times
    return rule


class FaultRules:
    """A tenant's ordered fault rules; the first matching rule with firings left wins."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, rules: list, replace: bool = False) -> None:
        """Validate every rule first (all or nothing), then append or replace."""
        if not isinstance(rules, list):
            raise ValueError("rules must be a JSON array of rule objects")
        parsed = []
        for i, data in enumerate(rules):
            try:
                parsed.append(parse_rule(data, self._next_id + i))
            except ValueError as exc:
                raise ValueError(f"rules[{i}]: {exc}") from None
        self._next_id += len(parsed)
        self.rules = parsed if replace else [*self.rules, *parsed]

    def clear(self) -> int:
        n, self.rules = len(self.rules), []
        return n

    def match(self, method: str, path: str, body: object, is_write: bool) -> FaultRule | None:
        """The first rule that would fire (not yet counted: the caller calls ``fire``)."""
        return next((r for r in self.rules if r.matches(method, path, body, is_write)), None)

    def as_list(self) -> list[dict]:
        return [r.as_dict() for r in self.rules]
