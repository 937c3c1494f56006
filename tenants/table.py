"""The census as a plain-text table for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tenants.models import CustomerTenant

HEADERS = (
    "Tenant",
    "Census",
    "Licence",
    "SD",
    "CA",
    "MFA policy",
    "Users",
    "Enab",
    "Enf",
    "Dis",
    "Reg %",
    "Notes",
)


def _n(value: object) -> str:
    return "-" if value is None else str(value)


def census_rows(tenants: Iterable[CustomerTenant]) -> list[tuple[str, ...]]:
    """One row per tenant from its stored census."""
    rows = []
    for t in tenants:
        sd = "-" if t.security_defaults is None else ("on" if t.security_defaults else "off")
        pct = t.mfa_registered_pct
        rows.append(
            (
                t.primary_domain,
                t.get_census_status_display(),
                t.get_licence_display(),
                sd,
                _n(t.ca_policy_count),
                t.get_mfa_policy_state_display(),
                _n(t.users_total),
                _n(t.per_user_enabled),
                _n(t.per_user_enforced),
                _n(t.per_user_disabled),
                "-" if pct is None else f"{pct:.0f}",
                "" if t.census_status == "ok" else t.census_message,
            )
        )
    return rows


def render_table(rows: Sequence[Sequence[str]], headers: Sequence[str] = HEADERS) -> str:
    """Left-aligned columns; the last column is not padded so long notes wrap naturally."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]))
    lines.insert(1, "-" * min(160, len(lines[0])))
    return "\n".join(lines) + "\n"
