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
