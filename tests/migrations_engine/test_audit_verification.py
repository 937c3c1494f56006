"""Stored, incremental chain checks: a second check hashes only the rows added since the first (after
proving the first check's last row unchanged), a broken chain or a changed boundary row is walked from
row 1 so the *first* bad row is named, and `verify_audit --stored` prints the results with their age."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from migrations_engine.audit import writer as audit
from migrations_engine.audit.models import GENESIS_HASH, compute_row_hash
from migrations_engine.audit.verification import check_chain
from migrations_engine.models import AuditEvent, ChainVerification
from tests.migrations_engine.test_audit import TABLE, ctx_for, make_tenant, tamper, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(db):
    tenant = make_tenant("contoso")
    audit.record_intents(ctx_for(tenant), [write(n) for n in range(6)])
    return tenant, str(tenant.tenant_id)


def test_a_second_check_hashes_only_the_new_rows(chain):
    tenant, name = chain
    first = check_chain(name)
    assert (first.verified_seq, first.rows_checked, first.from_start, first.problem_reason) == (
        6,
        6,
        True,
        "",
    )
    audit.record_intents(ctx_for(tenant), [write(n) for n in range(6, 9)])

    second = check_chain(name)
    assert (second.verified_seq, second.rows_checked, second.from_start) == (9, 3, False)
    assert second.verified_hash == AuditEvent.objects.get(chain=name, seq=9).row_hash
    again = check_chain(name, full=True)
    assert (again.verified_seq, again.rows_checked, again.from_start) == (9, 9, True)


def test_a_tampered_new_row_is_named(chain):
    tenant, name = chain
    check_chain(name)
    audit.record_intents(ctx_for(tenant), [write(n) for n in range(6, 9)])
    victim = AuditEvent.objects.get(chain=name, seq=8)
    tamper(f"UPDATE {TABLE} SET target = %s WHERE id = %s", ["someone-else", victim.pk])

    result = check_chain(name)
    assert (result.problem_event_id, result.problem_seq, result.verified_seq) == (victim.pk, 8, 7)
    assert "hash mismatch" in result.problem_reason


def test_a_rewritten_history_is_caught_by_the_last_check(chain):
    """Someone changes row 2 and recomputes every later hash (and the head) so the chain links up from
    row 1 again: only the stored check still knows row 6's old hash. The chain is broken at row 6, and
    stays broken: the stored anchor is not moved to the forged hashes."""
    _, name = chain
    check_chain(name)
    rows = list(AuditEvent.objects.filter(chain=name).order_by("seq"))
    prev = rows[0].row_hash
    for row in rows[1:]:
        evidence = row.evidence()
        if row.seq == 2:
            evidence["target"] = "forged@contoso.onmicrosoft.com"
            tamper(f"UPDATE {TABLE} SET target = %s WHERE id = %s", [evidence["target"], row.pk])
        new_hash = compute_row_hash(evidence, prev)
        tamper(f"UPDATE {TABLE} SET prev_hash = %s, row_hash = %s WHERE id = %s", [prev, new_hash, row.pk])
        prev = new_hash
    tamper("UPDATE migrations_engine_auditchainhead SET row_hash = %s WHERE chain = %s", [prev, name])

    for full in (False, True, False):
        result = check_chain(name, full=full)
        assert result.from_start and result.problem_seq == 6 and "rewritten" in result.problem_reason
        assert (result.problem_event_id, result.verified_seq) == (rows[5].pk, 6)


def test_a_broken_chain_stays_broken_until_it_is_whole_again(chain):
    _, name = chain
    victim = AuditEvent.objects.get(chain=name, seq=3)
    tamper(f"UPDATE {TABLE} SET prev_hash = %s WHERE id = %s", [GENESIS_HASH, victim.pk])
    assert check_chain(name).problem_seq == 3
    assert check_chain(name).problem_seq == 3  # not "nothing new since the last check"
    assert check_chain(name).from_start


def test_verify_audit_stores_and_prints_stored_results(chain):
    tenant, name = chain
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue().strip() == "6 rows in 1 chain verified"
    audit.record_intent(ctx_for(tenant), write(7))
    out = io.StringIO()
    call_command("verify_audit", "--stored", stdout=out)
    assert out.getvalue().splitlines() == [
        f"{name}: ok to #6, checked just now, 1 newer row not checked",
        "6 rows in 1 chain verified",
    ]
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert (
        out.getvalue().strip() == "7 rows in 1 chain verified (1 row hashed now, the rest at earlier checks)"
    )
    assert ChainVerification.objects.get(head__chain=name).verified_seq == 7

    victim = AuditEvent.objects.get(chain=name, seq=7)
    tamper(f"UPDATE {TABLE} SET target = %s WHERE id = %s", ["someone-else", victim.pk])
    with pytest.raises(CommandError, match=f"row id {victim.pk}, chain {name}, seq 7: hash mismatch"):
        call_command("verify_audit", stdout=io.StringIO())
    with pytest.raises(CommandError, match=f"row id {victim.pk}, chain {name}, seq 7"):
        call_command("verify_audit", "--stored", stdout=io.StringIO())
