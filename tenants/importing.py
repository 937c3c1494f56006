"""Importing customer tenants from a CSV file: parse and validate every row first, then import all or none.

Shared by `manage.py import_tenants` and the console's import page. The file has a header row naming
the columns (any order) and one tenant per row:

    tenant_id,domain,display_name,notes,break_glass_accounts,break_glass_minimum

`break_glass_accounts` lists UPNs or object ids separated by `;` (may be empty); `break_glass_minimum`
is a positive integer, 1 when empty. Rows are numbered as a spreadsheet shows them: the header is row 1,
the first tenant row 2. Any bad row means nothing is imported; the report names every bad row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower

from staff.actors import Actor, actor_label
from tenants.access import NOT_YOURS, visible_tenants
from tenants.models import CustomerTenant, TenantGrant
from tenants.services import add_tenant, set_break_glass
from tenants.validators import parse_tenant_id, validate_domain, validate_upn

logger = logging.getLogger(__name__)

COLUMNS = ("tenant_id", "domain", "display_name", "notes", "break_glass_accounts", "break_glass_minimum")
MAX_FILE_BYTES = 20 * 1024 * 1024  # 10,000 tenants with notes fit many times over
MAX_ERRORS = 1000  # a file that is wrong throughout: the first thousand say enough


@dataclass(frozen=True)
class TenantRow:
    """One valid row of an import file."""

    row: int
    tenant_id: uuid.UUID
    domain: str
    display_name: str
    notes: str
    break_glass_accounts: tuple[str, ...]
    break_glass_minimum: int


@dataclass(frozen=True)
class RowError:
    """Why one row (0 = the file as a whole, 1 = the header) cannot be imported."""

    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row else self.message


@dataclass
class ImportPlan:
    """What a file holds: the valid rows, and the errors that stop the whole import when any."""

    rows: list[TenantRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    def error(self, row: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(row, message))


class ImportRefused(Exception):
    """The file cannot be imported; `errors` names every reason (row-numbered)."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} problems; nothing was imported")


def _decode(data: bytes | str, plan: ImportPlan) -> str | None:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if len(data) > MAX_FILE_BYTES:
        plan.error(0, f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        return None
    try:
        return data.decode("utf-8-sig")  # with or without a byte-order mark (Excel writes one)
    except UnicodeDecodeError as exc:
        plan.error(0, f"The file is not UTF-8 text (byte {exc.start} cannot be read). Save it as CSV UTF-8.")
        return None


def _header(names: list[str], plan: ImportPlan) -> list[str] | None:
    header = [name.strip().lower() for name in names]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if unknown:
        plan.error(1, "unknown column(s) " + ", ".join(repr(n) for n in unknown))
    if missing:
        plan.error(1, "missing column(s) " + ", ".join(missing) + f"; the header must be {','.join(COLUMNS)}")
    if repeated:
        plan.error(1, "repeated column(s) " + ", ".join(repeated))
    return None if unknown or missing or repeated else header


def _messages(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _accounts(raw: str) -> tuple[list[str], list[str]]:
    """(accounts, problems) of a `;`-separated break-glass list."""
    accounts = [a.strip() for a in raw.split(";") if a.strip()]
    problems = []
    seen: set[str] = set()
    for account in accounts:
        if account.lower() in seen:
            problems.append(f"break-glass account {account!r} is listed twice")
        seen.add(account.lower())
        try:
            uuid.UUID(account)
        except ValueError:
            try:
                validate_upn(account)
            except ValidationError as exc:
                problems.append("break-glass account: " + _messages(exc))
    return accounts, problems


def _minimum(raw: str, accounts: list[str]) -> tuple[int, list[str]]:
    raw = raw.strip()
    if not raw:
        return 1, []
    if not raw.isdigit() or int(raw) < 1:  # isdigit: no sign, no decimals, no spaces inside
        return 1, [f"break_glass_minimum {raw!r} is not a positive whole number"]
    minimum = int(raw)
    if not accounts:
        return minimum, ["break_glass_minimum is set but no break_glass_accounts are listed"]
    if minimum > len(accounts):
        return minimum, [
            f"break_glass_minimum {minimum} is more than the {len(accounts)} accounts listed: "
            "no run could ever pass the break-glass guard"
        ]
    if minimum > 32767:
        return minimum, [f"break_glass_minimum {minimum} is too large"]
    return minimum, []


def _customers(user) -> tuple[dict[uuid.UUID, bool], dict[str, bool]]:
    """Every customer's tenant id and lowercased domain, each mapped to whether `user` may see that tenant
    (None: the operator at the command line, who may see all)."""
    mine = None if user is None else set(visible_tenants(user).values_list("pk", flat=True))
    ids, domains = {}, {}
    for pk, tenant_id, domain in CustomerTenant.objects.annotate(d=Lower("primary_domain")).values_list(
        "pk", "tenant_id", "d"
    ):
        ids[tenant_id] = domains[domain] = mine is None or pk in mine
    return ids, domains


def parse_tenant_csv(data: bytes | str, *, user=None) -> ImportPlan:
    """Read and validate a whole import file without changing anything. Every bad row is reported.

    `user` is the staff member importing: a row that clashes with a customer they may not see is told
    so without naming it (see `tenants.access.NOT_YOURS`)."""
    plan = ImportPlan()
    plan.sha256 = hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()
    text = _decode(data, plan)
    if text is None:
        return plan
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        names = next(reader, None)
    except csv.Error as exc:
        plan.error(1, f"the header cannot be read as CSV: {exc}")
        return plan
    if not names or not any(n.strip() for n in names):
        plan.error(0, "The file is empty: it needs a header row (" + ",".join(COLUMNS) + ") and tenant rows.")
        return plan
    header = _header(names, plan)
    if header is None:
        return plan

    existing_ids, existing_domains = _customers(user)
    seen_ids: dict[uuid.UUID, int] = {}
    seen_domains: dict[str, int] = {}
    row_number = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            plan.error(row_number + 1, f"cannot be read as CSV: {exc}; nothing after it was checked")
            break
        row_number += 1
        if not record or not any(cell.strip() for cell in record):
            continue  # blank lines (a trailing newline in a spreadsheet export) are not rows
        if len(record) != len(header):
            plan.error(row_number, f"has {len(record)} columns, the header has {len(header)}")
            continue
        values = dict(zip(header, record, strict=True))
        problems: list[str] = []

        tenant_id = None
        try:
            tenant_id = parse_tenant_id(values["tenant_id"])
        except ValidationError as exc:
            problems.append(_messages(exc))
        domain = values["domain"].strip().lower()
        try:
            validate_domain(domain)
        except ValidationError as exc:
            problems.append(_messages(exc))
            domain = ""
        display_name = values["display_name"].strip()
        if not display_name:
            problems.append("display_name is empty")
        elif len(display_name) > 200:
            problems.append("display_name is longer than 200 characters")
        accounts, account_problems = _accounts(values["break_glass_accounts"])
        minimum, minimum_problems = _minimum(values["break_glass_minimum"], accounts)
        problems += account_problems + minimum_problems

        if tenant_id is not None:
            if tenant_id in existing_ids:
                problems.append(
                    f"tenant {tenant_id} is already a customer" if existing_ids[tenant_id] else NOT_YOURS
                )
            elif tenant_id in seen_ids:
                problems.append(f"tenant {tenant_id} is also on row {seen_ids[tenant_id]}")
            else:
                seen_ids[tenant_id] = row_number
        if domain:
            if domain in existing_domains:
                if existing_domains[domain]:
                    problems.append(f"{domain} is already a customer's domain")
                elif NOT_YOURS not in problems:
                    problems.append(NOT_YOURS)
            elif domain in seen_domains:
                problems.append(f"{domain} is also on row {seen_domains[domain]}")
            else:
                seen_domains[domain] = row_number

        if problems:
            plan.error(row_number, "; ".join(problems))
            continue
        plan.rows.append(
            TenantRow(
                row=row_number,
                tenant_id=tenant_id,
                domain=domain,
                display_name=display_name,
                notes=values["notes"].strip(),
                break_glass_accounts=tuple(accounts),
                break_glass_minimum=minimum,
            )
        )
    if not plan.rows and not plan.errors:
        plan.error(0, "The file has a header but no tenant rows.")
    return plan


def import_tenants(plan: ImportPlan, *, actor: Actor, grant_to=None) -> list[CustomerTenant]:
    """Import every row of a valid plan in one transaction (all or nothing); raises ImportRefused.

    `grant_to`, a staff user who is not a superuser, is granted every imported tenant (as onboarding
    does), so the tenants they import do not vanish from their own fleet list.
    """
    if plan.errors:
        raise ImportRefused(plan.errors)
    if not plan.rows:
        raise ImportRefused([RowError(0, "The file has no tenant rows.")])
    tenants: list[CustomerTenant] = []
    with transaction.atomic():
        for row in plan.rows:
            try:
                tenant = add_tenant(
                    tenant_id=str(row.tenant_id),
                    domain=row.domain,
                    display_name=row.display_name,
                    notes=row.notes,
                    actor=actor,
                )
                if row.break_glass_accounts:
                    set_break_glass(
                        tenant,
                        accounts=list(row.break_glass_accounts),
                        minimum_count=row.break_glass_minimum,
                        actor=actor,
                    )
            except ValidationError as exc:  # e.g. another staff member added it since validation
                raise ImportRefused([RowError(row.row, _messages(exc))]) from exc
            except IntegrityError as exc:
                raise ImportRefused(
                    [RowError(row.row, f"{row.domain} was added by someone else meanwhile")]
                ) from exc
            tenants.append(tenant)
        if grant_to is not None and not grant_to.is_superuser:
            TenantGrant.objects.bulk_create(
                [TenantGrant(tenant=t, user=grant_to) for t in tenants], batch_size=1000
            )
    from migrations_engine.audit.writer import record_staff_action

    # One row for the import (its own durable transaction, once the tenants are committed).
    record_staff_action(
        actor=actor,
        action="tenants.imported",
        detail={"tenants": len(tenants), "file_sha256": plan.sha256},
    )
    logger.info("%d tenants imported by %s", len(tenants), actor_label(actor))
    return tenants
