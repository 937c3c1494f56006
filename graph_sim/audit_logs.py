"""``auditLogs``: sign-in log entries (``signIn``), directory audit entries (``directoryAudit``) and the small
``$filter`` subset the simulator evaluates on them.

Shapes follow the signIn and directoryAudit resources (v1.0). Only the properties a readiness check needs
carry meaningful values; the rest are present with the documented types so that clients parse them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from graph_sim import clock

EXCHANGE_ONLINE_APP = ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online")
MODERN_CLIENT_APPS = ("Browser", "Mobile Apps and Desktop clients")
MODERN_APPS = {
    "OfficeHome": "4765445b-32c6-49b0-83e6-1d93765276ca",
    "Microsoft Teams": "1fec8e78-bce4-4aaf-ab1b-5451cc387264",
    "Office 365 Exchange Online": EXCHANGE_ONLINE_APP[0],
    "Office 365 SharePoint Online": "00000003-0000-0ff1-ce00-000000000000",
    "Microsoft Office": "d3590ed6-52b3-4102-aeff-aad2292ab01c",
}
MFA_REQUIRED_ERROR = (
    50076,
    "Due to a configuration change made by your administrator, or because you moved to a new location, you "
    "must use multi-factor authentication to access the resource.",
)
MANAGED_POLICY_MANAGER = "Microsoft Managed Policy Manager"


def iso7(dt: datetime) -> str:
    """Graph's timestamp form with seven fractional digits."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def sign_in(
    *,
    user_id: str,
    upn: str,
    display_name: str,
    client_app: str,
    created: datetime,
    app_display_name: str | None = None,
    ip: str = "198.51.100.23",
    error: tuple[int, str] | None = None,
    entry_id: str | None = None,
) -> dict:
    """One signIn entry. Legacy clients default to Exchange Online as the app; ``error`` = (code, reason)."""
    legacy = client_app not in MODERN_CLIENT_APPS
    app_name = app_display_name or (EXCHANGE_ONLINE_APP[1] if legacy else "OfficeHome")
    app_id = MODERN_APPS.get(app_name, EXCHANGE_ONLINE_APP[0])
    code, reason = error or (0, None)
    entry_id = entry_id or str(uuid.uuid4())
    return {
        "id": entry_id,
        "createdDateTime": iso7(created),
        "userDisplayName": display_name,
        "userPrincipalName": upn,
        "userId": user_id,
        "appId": app_id,
        "appDisplayName": app_name,
        "ipAddress": ip,
        "clientAppUsed": client_app,
        "correlationId": str(uuid.uuid5(uuid.NAMESPACE_URL, entry_id)),
        "conditionalAccessStatus": "notApplied",
        "isInteractive": not legacy,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes": [],
        "riskEventTypes_v2": [],
        "resourceDisplayName": EXCHANGE_ONLINE_APP[1] if legacy else "Microsoft Graph",
        "resourceId": EXCHANGE_ONLINE_APP[0] if legacy else "00000003-0000-0000-c000-000000000000",
        "status": {"errorCode": code, "failureReason": reason, "additionalDetails": None},
        "deviceDetail": {
            "deviceId": "",
            "displayName": "",
            "operatingSystem": "" if legacy else "Windows10",
            "browser": "" if client_app != "Browser" else "Edge 120.0.0",
            "isCompliant": False,
            "isManaged": False,
            "trustType": "",
        },
        "location": {
            "city": "London",
            "state": "England",
            "countryOrRegion": "GB",
            "geoCoordinates": {"altitude": None, "latitude": 51.5, "longitude": -0.12},
        },
        "appliedConditionalAccessPolicies": [],  # filled from the tenant's policies (sign_in_policies)
    }


def directory_audit(
    *,
    activity: str,
    operation: str,
    target_id: str,
    target_name: str,
    target_type: str = "Policy",
    app: dict | None = None,
    user: dict | None = None,
    when: datetime | None = None,
    entry_id: str | None = None,
) -> dict:
    """One directoryAudit entry in the Conditional Access ``Policy`` category."""
    return {
        "id": entry_id or f"IPCGraph_{uuid.uuid4()}",
        "category": "Policy",
        "correlationId": str(uuid.uuid4()),
        "result": "success",
        "resultReason": "",
        "activityDisplayName": activity,
        "activityDateTime": iso7(when or clock.utcnow()),
        "loggedByService": "Conditional Access",
        "operationType": operation,
        "initiatedBy": {"app": app, "user": user},
        "targetResources": [
            {
                "id": target_id,
                "displayName": target_name,
                "type": target_type,
                "userPrincipalName": None,
                "groupType": None,
                "modifiedProperties": [],
            }
        ],
        "additionalDetails": [],
    }


def managed_policy_manager() -> dict:
    """``initiatedBy.app`` of the entries Microsoft writes for Microsoft-managed policies (the documented
    way to find them: initiatedBy/app/displayName eq 'Microsoft Managed Policy Manager')."""
    return {
        "appId": None,
        "displayName": MANAGED_POLICY_MANAGER,
        "servicePrincipalId": None,
        "servicePrincipalName": None,
    }


# -- $filter ---------------------------------------------------------------------------------------------
class FilterError(ValueError):
    """A ``$filter`` the simulator refuses: ``code`` is the Graph error code to answer with."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_CLAUSE = re.compile(
    r"^\s*(?P<field>[A-Za-z][\w/]*)\s+(?P<op>eq|ne|ge|gt|le|lt)\s+(?P<value>'(?:[^']|'')*'|[^\s']+)\s*$",
    re.IGNORECASE,
)
_COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


def parse_datetime(text: str) -> datetime:
    """An OData DateTimeOffset literal (``2024-05-01T00:00:00Z``, any fraction) as an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2})?(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})", text.strip())
    if not m:
        raise ValueError(text)
    micro = ((m.group(3) or "") + "000000")[:6]
    tz = "+00:00" if m.group(4) == "Z" else m.group(4)
    return datetime.fromisoformat(f"{m.group(1)}{m.group(2) or ':00'}.{micro}{tz}")


def _split_and(raw: str) -> list[str]:
    """The ``and``-joined clauses of a filter, leaving ``and`` inside quoted strings alone
    (``clientAppUsed ne 'Mobile Apps and Desktop clients'`` is one clause)."""
    clauses, current, quoted, i = [], [], False, 0
    text = raw.strip()
    while i < len(text):
        if text[i] == "'":
            quoted = not quoted  # a doubled '' flips twice and stays inside
        if not quoted:
            m = re.match(r"\s+and\s+", text[i:], flags=re.IGNORECASE)
            if m:
                clauses.append("".join(current))
                current, i = [], i + m.end()
                continue
        current.append(text[i])
        i += 1
    clauses.append("".join(current))
    return clauses


_STARTS_WITH = re.compile(
    r"^\s*startswith\(\s*(?P<field>[A-Za-z][\w/]*)\s*,\s*(?P<value>'(?:[^']|'')*')\s*\)\s*$", re.IGNORECASE
)


def compile_filter(raw: str, fields: dict[str, tuple]) -> Callable[[dict], bool]:
    """Clauses joined by ``and``; ``fields`` maps a lower-case property path to (kind, getter) or (kind,
    getter, the operators its docs page lists: "eq", "ne", "ge", … and "startswith" for the function),
    with kind ``datetime`` (ge/gt/le/lt/eq unless listed), ``string`` (eq/ne unless listed;
    case-insensitive) or ``int`` (eq/ne unless listed). An operator a property does not support is
    refused with 400, as Graph refuses it."""
    tests = []
    for clause in _split_and(raw):
        starts = _STARTS_WITH.match(clause)
        m = starts or _CLAUSE.match(clause)
        if not m:
            raise FilterError("BadRequest", f"Invalid filter clause: '{clause.strip()}'.")
        name, value = m.group("field"), m.group("value")
        op = "startswith" if starts else m.group("op").lower()
        known = fields.get(name.lower())
        if known is None:
            raise FilterError(
                "Request_UnsupportedQuery", f"The simulator does not support filtering on '{name}' here."
            )
        kind, getter = known[0], known[1]
        allowed = known[2] if len(known) > 2 else None
        if allowed is not None and op not in allowed:
            raise FilterError(
                "Request_UnsupportedQuery",
                f"Unsupported Query. The '{op}' operator is not supported on the '{name}' property.",
            )
        if starts:
            prefix = value[1:-1].replace("''", "'").lower()
            tests.append(_starts_with(getter, prefix))
            continue
        try:
            if kind == "datetime":
                wanted: object = parse_datetime(value.strip("'"))
            elif kind == "int":
                wanted = int(value)
            else:
                if not (value.startswith("'") and value.endswith("'")):
                    raise ValueError(value)
                wanted = value[1:-1].replace("''", "'").lower()
        except ValueError as exc:
            raise FilterError(
                "BadRequest", f"Invalid filter clause: bad value {value} for '{name}'."
            ) from exc
        if allowed is None and kind != "datetime" and op not in ("eq", "ne"):
            raise FilterError("Request_UnsupportedQuery", f"Operator '{op}' is not supported on '{name}'.")
        tests.append(_clause_test(kind, getter, _COMPARE[op], wanted))
    return lambda entry: all(test(entry) for test in tests)


def _starts_with(getter, prefix: str) -> Callable[[dict], bool]:
    def test(entry: dict) -> bool:
        got = getter(entry)
        return got is not None and str(got).lower().startswith(prefix)

    return test


def _clause_test(kind: str, getter, compare, wanted) -> Callable[[dict], bool]:
    def test(entry: dict) -> bool:
        got = getter(entry)
        if got is None:
            return False
        if kind == "datetime":
            got = parse_datetime(got)
        elif kind == "string":
            got = str(got).lower()
        return compare(got, wanted)

    return test


# The operators each property supports, as the signIn resource page lists them
# (https://learn.microsoft.com/graph/api/resources/signin): clientAppUsed takes eq only.
SIGN_IN_FILTERS = {
    "createddatetime": ("datetime", lambda e: e["createdDateTime"]),
    "userid": ("string", lambda e: e["userId"], {"eq"}),
    "userprincipalname": ("string", lambda e: e["userPrincipalName"], {"eq", "startswith"}),
    "clientappused": ("string", lambda e: e["clientAppUsed"], {"eq"}),
    "appdisplayname": ("string", lambda e: e["appDisplayName"], {"eq", "startswith"}),
    "appid": ("string", lambda e: e["appId"], {"eq"}),
    "status/errorcode": ("int", lambda e: e["status"]["errorCode"], {"eq"}),
}
AUDIT_FILTERS = {
    "activitydatetime": ("datetime", lambda e: e["activityDateTime"]),
    "category": ("string", lambda e: e["category"]),
    "activitydisplayname": ("string", lambda e: e["activityDisplayName"]),
    "loggedbyservice": ("string", lambda e: e["loggedByService"]),
    "operationtype": ("string", lambda e: e["operationType"]),
    "initiatedby/app/displayname": (
        "string",
        lambda e: (e["initiatedBy"].get("app") or {}).get("displayName"),
    ),
    "initiatedby/user/userprincipalname": (
        "string",
        lambda e: (e["initiatedBy"].get("user") or {}).get("userPrincipalName"),
    ),
}


def newest_first(entries: list[dict], key: str) -> list[dict]:
    """Both logs are listed in descending order of their timestamp."""
    return sorted(entries, key=lambda e: parse_datetime(e[key]), reverse=True)


def hours_ago(now: datetime, hours: float) -> datetime:
    return now - timedelta(hours=hours)
