"""The per-user census report as CSV, streamed: what MSPs build today with PowerShell.

UPNs and display names are the customer tenant's to choose: cells go through `msp_console.csv_safe`, so
a spreadsheet never runs one as a formula.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from msp_console.csv_safe import SafeWriter
from tenants.models import CensusUser, CustomerTenant

COLUMNS = [
    "tenant",
    "user_id",
    "upn",
    "display_name",
    "user_type",
    "account_enabled",
    "per_user_mfa_state",
    "mfa_registered",
    "methods",
]


def census_csv_rows(tenants: Iterable[CustomerTenant]) -> Iterator[str]:
    """CSV lines (header first) for every user of each tenant's current census, in constant memory."""
    writer = SafeWriter()
    yield writer.writeheader(COLUMNS)
    for tenant in tenants:
        rows = CensusUser.objects.filter(tenant=tenant, generation=tenant.census_generation).order_by("upn")
        for user in rows.iterator(chunk_size=2000):
            registered = "" if user.mfa_registered is None else ("yes" if user.mfa_registered else "no")
            yield writer.writerow(
                [
                    tenant.primary_domain,
                    user.user_id,
                    user.upn,
                    user.display_name,
                    user.user_type,
                    "yes" if user.account_enabled else "no",
                    user.per_user_state,
                    registered,
                    ";".join(user.methods),
                ]
            )
