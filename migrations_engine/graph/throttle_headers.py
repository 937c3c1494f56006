"""What Graph's identity-and-access throttling headers say about our pacing buckets.

https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits ("Other headers"):
a regular response carries `x-ms-resource-unit` (what it cost) and, only once the app has used more than
0.8 of a limit, `x-ms-throttle-limit-percentage`; a 429 carries `x-ms-throttle-scope`,
`<Scope>/<Limit>/<ApplicationId>/<TenantId>`, naming the limit it hit.

`feedback` turns one answer (or a `$batch`'s item answers) into two lists of the request's buckets:

- to slow down: on a limit percentage, the tenant's RU bucket the request counted against, and its write
  bucket if it wrote and the percentage is 0.95 or more (SLOW_ABOVE; the header does not say which
  limit, only that one of the request's is that full); on a 429, the one bucket its scope names
  (Tenant_Application or Tenant + Write: the tenant's writes; + Read/ReadWrite: the tenant's RU;
  Application: the app's shared bucket of that kind);
- fine again: a regular response that reports its cost with no limit percentage clears the tenant
  identity buckets it counted against, and one with a percentage under 0.95 the write bucket.

A slow mark is kept only under its own key; pacing.py applies it (see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

RESOURCE_UNIT = "x-ms-resource-unit"
LIMIT_PERCENTAGE = "x-ms-throttle-limit-percentage"
THROTTLE_SCOPE = "x-ms-throttle-scope"
IDENTITY_KINDS = ("ru", "writes")  # the bucket kinds (key suffixes) of identity-and-access limits
# Our own writes alone fill their 150 s window to 0.96 of its limit (pacing.py: 20 + 19/s x 150 s of
# 3,000), so a long run of one tenant reaches 0.8 by itself after two minutes: for writes, a percentage
# from 0.8 to 0.95 is our own load, nothing to slow for. From 0.95 something else adds to the limit
# (another console with the same app, Graph counting differently, a lower limit than documented): slow
# down. Resource units slow from 0.8 (our reads fill at most 0.9 of their 10 s window, and a tenant's
# reads come in bursts a lower limit would throttle at once).
SLOW_ABOVE = 0.95


class _Bucket(Protocol):
    key: str
    shared: bool


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name (batch items keep the case Graph sent)."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def kind(bucket: _Bucket) -> str:
    return bucket.key.rsplit(":", 1)[-1]


def over_own_pace(percentage: str) -> bool:
    """Whether a limit percentage is more than our own writes fill their window (SLOW_ABOVE); a value
    that is not a number counts as over."""
    try:
        return float(percentage) >= SLOW_ABOVE
    except ValueError:
        return True


def scope_target(scope: str) -> tuple[bool, str] | None:
    """(shared, kind) of the bucket an `x-ms-throttle-scope` names; None if it is not of that format."""
    parts = scope.split("/")
    if len(parts) != 4 or parts[1] not in ("Read", "Write", "ReadWrite"):
        return None
    if parts[0] not in ("Tenant_Application", "Tenant", "Application"):
        return None
    return parts[0] == "Application", "writes" if parts[1] == "Write" else "ru"


def feedback(
    claims: Sequence[tuple[_Bucket, float]], answers: Iterable[tuple[int, Mapping[str, str]]]
) -> tuple[list, list]:
    """(buckets to slow down, buckets fine again) of one request's `claims`, from its answers' headers."""
    own = {b.key: b for b, _ in claims if not b.shared and kind(b) in IDENTITY_KINDS}
    slow: dict[str, _Bucket] = {}
    fine: dict[str, _Bucket] = {}
    for status, headers in answers:
        scope = header(headers, THROTTLE_SCOPE)
        if status == 429 and scope:
            target = scope_target(scope)
            slow.update((b.key, b) for b, _ in claims if (b.shared, kind(b)) == target)
        elif (percentage := header(headers, LIMIT_PERCENTAGE)) is not None:
            # Resource units: from 0.8. Writes: only once it is more than our own pace reaches alone.
            full = over_own_pace(percentage)
            slow.update((k, b) for k, b in own.items() if full or kind(b) == "ru")
            fine.update((k, b) for k, b in own.items() if not full and kind(b) == "writes")
        elif header(headers, RESOURCE_UNIT) is not None:
            fine.update(own)
    return list(slow.values()), [b for key, b in fine.items() if key not in slow]
