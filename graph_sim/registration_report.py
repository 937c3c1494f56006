"""The query options of ``GET /reports/authenticationMethods/userRegistrationDetails``, as documented.

"List userRegistrationDetails"
(https://learn.microsoft.com/graph/api/authenticationmethodsroot-list-userregistrationdetails) supports the
``$filter`` OData query parameter on the properties its table lists, and the userRegistrationDetails
resource page (https://learn.microsoft.com/graph/api/resources/userregistrationdetails) marks, per property,
``Supports $filter (eq)``, ``(any with eq)``, ``(eq, startsWith)`` and ``$orderby`` (userDisplayName and
userPrincipalName only). Nothing else is documented for the list: ``$select``, ``$top``, ``$count``,
``$search``, ``$expand`` and ``$skip`` are refused with 400, as is a property or operator the pages do not
list (``isAdmin``, ``ne``, ``or``); ``userType`` takes ``eq`` (see STRING_FILTERS). ``$skiptoken`` is the
server's own paging (nextLink).

The string clauses reuse the sign-in logs' ``compile_filter``; the Boolean and ``any`` clauses it has no
kind for are parsed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from graph_sim.audit_logs import FilterError, _split_and, compile_filter

# Boolean properties the resource page marks "Supports $filter (eq)".
BOOLEAN_FILTERS = {
    name.lower(): name
    for name in (
        "isMfaCapable",
        "isMfaRegistered",
        "isPasswordlessCapable",
        "isSsprCapable",
        "isSsprEnabled",
        "isSsprRegistered",
        "isSystemPreferredAuthenticationMethodEnabled",
    )
}
# String collections marked "Supports $filter (any with eq)".
COLLECTION_FILTERS = {
    name.lower(): name for name in ("methodsRegistered", "systemPreferredAuthenticationMethods")
}
# Strings: "(eq, startsWith)"; userPreferredMethodForSecondaryAuthentication is one value ("any with eq"
# on the page cannot apply to a single value, so eq is what it takes here).
STRING_FILTERS = {
    "userdisplayname": ("string", lambda r: r["userDisplayName"], {"eq", "startswith"}),
    "userprincipalname": ("string", lambda r: r["userPrincipalName"], {"eq", "startswith"}),
    "userpreferredmethodforsecondaryauthentication": (
        "string",
        lambda r: r["userPreferredMethodForSecondaryAuthentication"],
        {"eq"},
    ),
    # userType carries no "Supports $filter" note on the resource page, but `userType eq 'member'` is the
    # report's usual members-only read (the Entra admin centre's "User type" filter); eq only, one value.
    "usertype": ("string", lambda r: r["userType"], {"eq"}),
}
ORDERBY = {name.lower(): name for name in ("userDisplayName", "userPrincipalName")}
OPTIONS = ("$filter", "$orderby", "$skiptoken")
V1_ABSENT = ("defaultMfaMethod",)  # a beta property: the v1.0 resource page has no such property

_BOOLEAN = re.compile(r"^\s*(?P<field>[A-Za-z]\w*)\s+(?P<op>[a-z]+)\s+(?P<value>\S+)\s*$", re.IGNORECASE)
_ANY = re.compile(
    r"^\s*(?P<field>[A-Za-z]\w*)/any\(\s*(?P<var>[A-Za-z]\w*)\s*:\s*(?P<var2>[A-Za-z]\w*)\s+(?P<op>[a-z]+)\s+"
    r"(?P<value>'(?:[^']|'')*')\s*\)\s*$",
    re.IGNORECASE,
)
_OR_NOT = re.compile(r"(?:^|\s)(or|not)\s", re.IGNORECASE)


@dataclass
class ReportQuery:
    """A parsed request: which rows to keep and how to order them (``(property, descending)`` pairs)."""

    keep: Callable[[dict], bool] | None = None
    order: list[tuple[str, bool]] = field(default_factory=list)

    def rows(self, users: list, to_json: Callable[[object], dict]) -> tuple[list, Callable]:
        """(items to page through, how to show one): the users themselves, shown a page at a time, when
        nothing is filtered or ordered (a large tenant's pages stay cheap); else the kept rows."""
        if self.keep is None and not self.order:
            return users, to_json
        return self.apply([to_json(u) for u in users]), lambda row: row

    def apply(self, rows: list[dict]) -> list[dict]:
        kept = [row for row in rows if self.keep is None or self.keep(row)]
        for name, descending in reversed(self.order):  # stable sorts, last key first
            kept.sort(key=lambda row, n=name: (row.get(n) or "").lower(), reverse=descending)
        return kept


def parse(query: dict[str, str]) -> ReportQuery:
    """The request's query options; anything the pages do not document raises ``FilterError`` (400)."""
    options = {key.lower(): value for key, value in query.items()}
    for key in options:
        if key.startswith("$") and key not in OPTIONS:
            raise FilterError(
                "Request_UnsupportedQuery",
                f"Unsupported Query. The query option '{key}' is not supported on userRegistrationDetails: "
                "only $filter and $orderby are.",
            )
    parsed = ReportQuery()
    if options.get("$filter") is not None:
        parsed.keep = _compile(options["$filter"])
    if options.get("$orderby") is not None:
        parsed.order = _order(options["$orderby"])
    return parsed


def for_version(row: dict, version: str) -> dict:
    """A row as the version's resource page lists its properties."""
    if version == "v1.0":
        return {k: v for k, v in row.items() if k not in V1_ABSENT}
    return row


def _compile(raw: str) -> Callable[[dict], bool]:
    if _OR_NOT.search(re.sub(r"'(?:[^']|'')*'", "''", raw)):
        raise FilterError(
            "Request_UnsupportedQuery", "Unsupported Query. Only clauses joined by 'and' are supported."
        )
    tests = [_clause(clause) for clause in _split_and(raw)]
    return lambda row: all(test(row) for test in tests)


def _clause(clause: str) -> Callable[[dict], bool]:
    lam = _ANY.match(clause)
    if lam:
        return _any_clause(lam)
    m = _BOOLEAN.match(clause)
    name = (m.group("field") if m else clause.strip().split(" ", 1)[0]).lower()
    if name in COLLECTION_FILTERS:
        raise FilterError(
            "BadRequest",
            f"Invalid filter clause: '{COLLECTION_FILTERS[name]}' is a collection; use "
            f"{COLLECTION_FILTERS[name]}/any(m: m eq '…').",
        )
    if m and name in BOOLEAN_FILTERS:
        return _boolean_clause(BOOLEAN_FILTERS[name], m.group("op").lower(), m.group("value").lower())
    return compile_filter(clause, STRING_FILTERS)  # strings, unknown properties, malformed clauses


def _boolean_clause(name: str, op: str, value: str) -> Callable[[dict], bool]:
    if op != "eq":
        raise FilterError(
            "Request_UnsupportedQuery",
            f"Unsupported Query. The '{op}' operator is not supported on the '{name}' property.",
        )
    if value not in ("true", "false"):
        raise FilterError("BadRequest", f"Invalid filter clause: bad value {value} for '{name}'.")
    wanted = value == "true"
    return lambda row: row.get(name) is wanted


def _any_clause(m: re.Match) -> Callable[[dict], bool]:
    name = COLLECTION_FILTERS.get(m.group("field").lower())
    if name is None:
        raise FilterError(
            "Request_UnsupportedQuery",
            f"Unsupported Query. 'any' is not supported on the '{m.group('field')}' property.",
        )
    if m.group("var") != m.group("var2"):
        raise FilterError("BadRequest", f"Invalid filter clause: unknown variable '{m.group('var2')}'.")
    if m.group("op").lower() != "eq":
        raise FilterError(
            "Request_UnsupportedQuery",
            f"Unsupported Query. The '{m.group('op')}' operator is not supported inside any() on '{name}'.",
        )
    wanted = m.group("value")[1:-1].replace("''", "'").lower()
    return lambda row: any(str(v).lower() == wanted for v in row.get(name) or [])


def _order(raw: str) -> list[tuple[str, bool]]:
    order = []
    for part in (p.strip() for p in raw.split(",")):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise FilterError("BadRequest", f"Invalid $orderby clause: '{part}'.")
        name = ORDERBY.get(words[0].lower())
        if name is None:
            raise FilterError(
                "Request_UnsupportedQuery",
                f"Unsupported Query. Sorting by '{words[0]}' is not supported: only userDisplayName and "
                "userPrincipalName.",
            )
        order.append((name, len(words) == 2 and words[1].lower() == "desc"))
    return order
