"""Importing tenants from CSV: every row checked first, row-numbered errors, all or nothing, fast."""

from __future__ import annotations

import time
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from migrations_engine.models import AuditEvent
from tenants.access import visible_tenants
from tenants.importing import COLUMNS, parse_tenant_csv
from tenants.models import BreakGlassConfig, CustomerTenant, TenantGrant
from tenants.services import add_tenant
from tests.migrations_engine.console_helpers import client_for, staff_user

pytestmark = pytest.mark.django_db

HEADER = ",".join(COLUMNS)
T1, T2, T3 = (str(uuid.UUID(int=n)) for n in (0xA1, 0xA2, 0xA3))
GOOD = (
    f"{HEADER}\n"
    f"{T1},contoso.com,Contoso,first customer,bg1@contoso.com;bg2@contoso.com,2\n"
    f"{T2},fabrikam.onmicrosoft.com,Fabrikam,,o'brien@fabrikam.onmicrosoft.com,\n"
    f'{T3},woodgrove.com,"Woodgrove, Bank",,,\n'
)


def write(tmp_path, text: str, *, encoding: str = "utf-8"):
    path = tmp_path / "tenants.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_it_imports_a_good_file_with_break_glass(tmp_path, capsys):
    call_command("import_tenants", str(write(tmp_path, GOOD)))
    assert "3 tenants imported" in capsys.readouterr().out
    contoso = CustomerTenant.objects.get(tenant_id=T1)
    assert (contoso.primary_domain, contoso.display_name, contoso.notes) == (
        "contoso.com",
        "Contoso",
        "first customer",
    )
    assert contoso.break_glass.accounts == ["bg1@contoso.com", "bg2@contoso.com"]
    assert contoso.break_glass.minimum_count == 2
    fabrikam = CustomerTenant.objects.get(tenant_id=T2)
    assert fabrikam.break_glass.accounts == ["o'brien@fabrikam.onmicrosoft.com"]
    assert fabrikam.break_glass.minimum_count == 1
    assert CustomerTenant.objects.get(tenant_id=T3).display_name == "Woodgrove, Bank"
    assert not BreakGlassConfig.objects.filter(tenant__tenant_id=T3).exists()
    assert all(t.consent.status == "pending" for t in CustomerTenant.objects.all())
    assert AuditEvent.objects.filter(action="tenants.imported", detail__tenants=3).count() == 1


def test_a_dry_run_checks_and_imports_nothing(tmp_path, capsys):
    call_command("import_tenants", str(write(tmp_path, GOOD)), "--dry-run")
    assert "3 tenants would be imported" in capsys.readouterr().out
    assert CustomerTenant.objects.count() == 0


def test_it_reads_a_byte_order_mark_and_unicode_names(tmp_path):
    text = f"{HEADER}\n{T1},zurich.example.ch,Zürich Versicherung — Ærø 東京 ✓,Ünïcödé notes,,\n"
    call_command("import_tenants", str(write(tmp_path, text, encoding="utf-8-sig")))
    tenant = CustomerTenant.objects.get()
    assert tenant.display_name == "Zürich Versicherung — Ærø 東京 ✓"
    assert tenant.notes == "Ünïcödé notes"


def test_it_accepts_columns_in_any_order_and_crlf_line_ends():
    text = "display_name,domain,tenant_id,notes,break_glass_minimum,break_glass_accounts\r\n"
    text += f"Contoso,contoso.com,{T1},,,\r\n\r\n"
    plan = parse_tenant_csv(text.encode())
    assert plan.ok and plan.rows[0].display_name == "Contoso"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("not-a-guid,x.com,X,,,", "not a tenant id"),
        (f"{T2},not_a_domain,X,,,", "not a domain"),
        (f"{T2},x..com,X,,,", "not a domain"),
        (f"{T2},x.com,   ,,,", "display_name is empty"),
        (f"{T1},x.com,X,,,", f"tenant {T1} is also on row 2"),
        (f"{T2},CONTOSO.com,X,,,", "contoso.com is also on row 2"),
        (f"{T2},existing.com,X,,,", "existing.com is already a customer's domain"),
        (f"{uuid.UUID(int=0xEE)},x.com,X,,,", "is already a customer"),
        (f"{T2},x.com,X,,not a upn,", "break-glass account"),
        (f"{T2},x.com,X,,nobody@,", "break-glass account"),
        (f"{T2},x.com,X,,a@x.com;A@x.com,", "listed twice"),
        (f"{T2},x.com,X,,a@x.com,0", "not a positive whole number"),
        (f"{T2},x.com,X,,a@x.com,-1", "not a positive whole number"),
        (f"{T2},x.com,X,,a@x.com,1.5", "not a positive whole number"),
        (f"{T2},x.com,X,,a@x.com,two", "not a positive whole number"),
        (f"{T2},x.com,X,,a@x.com,3", "more than the 1 accounts"),
        (f"{T2},x.com,X,,,2", "no break_glass_accounts"),
        (f"{T2},x.com,X,,", "has 5 columns, the header has 6"),
        (f"{T2},x.com,X,,,,extra", "has 7 columns"),
        (f'{T2},x.com,"X,,,', "cannot be read as CSV"),
    ],
)
def test_it_names_the_bad_row_and_imports_nothing(tmp_path, capsys, row, message):
    add_tenant(tenant_id=str(uuid.UUID(int=0xEE)), domain="existing.com", display_name="Old", actor="t")
    text = f"{HEADER}\n{T1},contoso.com,Contoso,,,\n{row}\n{T3},woodgrove.com,Woodgrove,,,\n"
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_tenants", str(write(tmp_path, text)))
    err = capsys.readouterr().err
    assert "row 3:" in err and message in err, err
    assert "row 2:" not in err and "row 4:" not in err
    assert CustomerTenant.objects.count() == 1


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("tenant_id,domain,display_name,notes,break_glass_accounts,break_glass_minimum,colour", "unknown"),
        ("tenant_id,domain,display_name,notes,break_glass_accounts", "missing column(s) break_glass_minimum"),
        ("tenant_id,domain,domain,notes,break_glass_accounts,break_glass_minimum", "repeated"),
        (f"{T1},contoso.com,Contoso,,,", "unknown column"),  # no header at all
    ],
)
def test_it_refuses_a_bad_header(header, message):
    plan = parse_tenant_csv(f"{header}\n{T2},x.com,X,,,\n".encode())
    assert not plan.rows and {e.row for e in plan.errors} == {1}
    assert any(message in e.message for e in plan.errors), plan.errors


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (HEADER.encode() + b"\n", "no tenant rows"), (b"\xff\xfe\x00t", "not UTF-8")],
)
def test_it_refuses_files_without_rows_or_not_utf8(data, message):
    assert message in str(parse_tenant_csv(data).errors[0])


def test_a_mixed_file_imports_nothing_and_lists_every_bad_row(tmp_path, capsys):
    lines = [HEADER]
    for n in range(1, 21):
        tid = str(uuid.UUID(int=0x1000 + n)) if n % 5 else "bad-guid"
        lines.append(f"{tid},t{n}.example.com,Tenant {n},,,")
    with pytest.raises(CommandError, match="4 problems"):
        call_command("import_tenants", str(write(tmp_path, "\n".join(lines))))
    err = capsys.readouterr().err
    assert [f"row {n + 1}:" in err for n in (5, 10, 15, 20)] == [True] * 4
    assert CustomerTenant.objects.count() == 0


def test_a_huge_file_is_checked_quickly_and_a_large_one_imported(tmp_path):
    lines = [HEADER] + [
        f"{uuid.UUID(int=0x10000 + n)},t{n}.example.com,Tenant {n},,bg@t{n}.example.com,1"
        for n in range(10_000)
    ]
    bad = "\n".join([*lines, "bad-guid,last.example.com,Last,,,"]).encode()
    start = time.monotonic()
    plan = parse_tenant_csv(bad)
    assert time.monotonic() - start < 5
    assert [e.row for e in plan.errors] == [10_002] and len(plan.rows) == 10_000

    # Importing goes through the add_tenant / set_break_glass services, about a dozen queries a row
    # (10,000 rows: 24 s on SQLite): 1,000 rows keep the suite quick and still catch a quadratic check.
    start = time.monotonic()
    call_command("import_tenants", str(write(tmp_path, "\n".join(lines[:1001]))))
    elapsed = time.monotonic() - start
    assert CustomerTenant.objects.count() == 1_000
    assert BreakGlassConfig.objects.count() == 1_000
    assert elapsed < 60, f"1,000 tenants took {elapsed:.1f} s"
    print(f"1,000 tenants imported in {elapsed:.1f} s")


# --- the console page ----------------------------------------------------------------------------


def importer(username="importer"):
    user = staff_user(username, role="Administrator")
    user.user_permissions.add(Permission.objects.get(codename="add_customertenant"))
    return user


def upload(client, text: str, **extra):
    page = reverse("admin:tenants_import")
    assert client.get(page).status_code == 200
    token = client.cookies["csrftoken"].value
    data = {"file": SimpleUploadedFile("t.csv", text.encode(), "text/csv"), "csrfmiddlewaretoken": token}
    return client.post(page, {**data, **extra})


def test_the_page_imports_and_grants_the_tenants_to_the_importer():
    user = importer()
    client = client_for(user, csrf=True)
    response = upload(client, GOOD)
    assert response.status_code == 302
    assert CustomerTenant.objects.count() == 3
    assert TenantGrant.objects.filter(user=user).count() == 3
    changelist = client.get(response["Location"])
    assert b"3 customer tenants imported" in changelist.content
    assert b"Woodgrove, Bank" in changelist.content


def test_the_page_shows_row_errors_and_imports_nothing():
    response = upload(client_for(importer(), csrf=True), GOOD + "nope,x.com,X,,,\n")
    assert response.status_code == 400
    assert b"row 5: &#x27;nope&#x27; is not a tenant id" in response.content
    assert CustomerTenant.objects.count() == 0


def test_the_page_can_only_check():
    response = upload(client_for(importer(), csrf=True), GOOD, dry_run="on")
    assert response.status_code == 200 and b"All 3 rows are valid" in response.content
    assert CustomerTenant.objects.count() == 0


def test_a_superuser_import_makes_no_grants(django_user_model):
    admin = staff_user("root", superuser=True)
    assert upload(client_for(admin, csrf=True), GOOD).status_code == 302
    assert CustomerTenant.objects.count() == 3 and not TenantGrant.objects.exists()


def test_the_page_needs_the_add_permission_and_csrf():
    page = reverse("admin:tenants_import")
    assert client_for(staff_user("viewer", role="Viewer")).get(page).status_code == 403
    no_csrf = client_for(importer(), csrf=True).post(
        page, {"file": SimpleUploadedFile("t.csv", GOOD.encode(), "text/csv")}
    )
    assert no_csrf.status_code == 403
    assert CustomerTenant.objects.count() == 0


def test_the_fleet_list_links_to_the_import_page():
    response = client_for(importer()).get(reverse("admin:tenants_customertenant_changelist"))
    assert reverse("admin:tenants_import").encode() in response.content


def test_a_staff_member_importing_by_command_gets_the_tenants_granted(tmp_path):
    admin = staff_user("importer", role="Administrator")
    call_command("import_tenants", str(write(tmp_path, GOOD)), "--actor", admin.username)
    imported = set(CustomerTenant.objects.values_list("pk", flat=True))
    assert len(imported) == 3 and set(visible_tenants(admin).values_list("pk", flat=True)) == imported
