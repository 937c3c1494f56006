"""What Graph's identity-and-access throttling headers say about our pacing buckets.

https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits ("Other headers"):
a regular response carries `x-ms-resource-unit` (what it cost) and, only once the app has used more than
0.8 of a limit, `x-ms-throttle-limit-percentage`; a 429 carries `x-ms-throttle-scope`,
`<Scope>/<Limit>/<ApplicationId>/<TenantId>`, naming the limit it hit.

`feedback` turns one answer (or a `$batch`'s item answers) into two lists of the request's buckets:

- to slow down: on a limit percentage, the tenant's identity buckets the request counted against (its
  RU bucket, and its write bucket if it wrote; the header does not say which limit, only that one of the
  request's is over 0.8); on a 429, the one bucket its scope names (Tenant_Application or Tenant + Write:
  the tenant's writes; + Read/ReadWrite: the tenant's RU; Application: the app's shared bucket of that
  kind);
- fine again: a regular response that reports its cost without a limit percentage clears the tenant
  identity buckets it counted against (it says none of its limits is over 0.8 any more).

A slow mark is kept only under its own key; pacing.py applies it (see there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

RESOURCE_UNIT = "x-ms-resource-unit"
LIMIT_PERCENTAGE = "x-ms-throttle-limit-percentage"
THROTTLE_SCOPE = "x-ms-throttle-scope"
IDENTITY_KINDS = ("ru", "writes")  # the bucket kinds (key suffixes) of identity-and-access limits


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
        elif header(headers, LIMIT_PERCENTAGE) is not None:
            slow.update(own)
        elif header(headers, RESOURCE_UNIT) is not None:
            fine.update(own)
    return list(slow.values()), [b for key, b in fine.items() if key not in slow]
