"""Checking the audit log's hash chains, and keeping each chain's last result.

`verify_chain` recomputes chains from their first row (what `export_audit`'s manifests and the tests
rely on). `check_chain` is what the console and `verify_audit` run: it starts where the chain's last
good check ended (`ChainVerification.verified_seq`, the anchor), after re-hashing that row and proving
it still carries the hash it had then, so a 10-million-row log is not re-hashed on every look (a change
to a row before the anchor that leaves its hash alone is found by a check from row 1, `full`). A chain
whose anchor changed, or that was broken last time, or a `full` check, is walked from row 1 again, so a
broken chain names its *first* bad row (a chain rewritten wholesale is named at its anchor). Results
are stored per chain head; the verify page shows them with their age and queues fresh checks as RQ
jobs (`migrations_engine.audit.tasks`).

Rows are read as tuples in chunks (constant memory) and hashed with the writer's `compute_row_hash`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from migrations_engine.audit.models import (
    EVIDENCE_FIELDS,
    GENESIS_HASH,
    AuditChainHead,
    AuditEvent,
    ChainVerification,
    compute_row_hash,
)

CHUNK = 5000
# What each row is read as: its evidence, then the bookkeeping the walk needs.
_COLUMNS = (*EVIDENCE_FIELDS, "id", "prev_hash", "row_hash")
_ID, _PREV, _HASH = len(EVIDENCE_FIELDS), len(EVIDENCE_FIELDS) + 1, len(EVIDENCE_FIELDS) + 2
_SEQ = EVIDENCE_FIELDS.index("seq")


@dataclass(frozen=True)
class ChainProblem:
    """The first broken row of a chain, and why it is broken."""

    event_id: int | None
    chain: str
    seq: int | None
    reason: str

    def __str__(self) -> str:
        return f"row {self.event_id} (chain {self.chain}, seq {self.seq}): {self.reason}"


@dataclass(frozen=True)
class _Walked:
    problem: ChainProblem | None
    last_seq: int  # the last good row's seq (the start's when no row was read)
    last_hash: str
    last_id: int | None
    rows: int


def _rows(chain: str, after_seq: int, up_to_seq: int | None = None) -> Iterator[tuple]:
    rows = AuditEvent.objects.filter(chain=chain, seq__gt=after_seq)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    return rows.order_by("seq").values_list(*_COLUMNS).iterator(chunk_size=CHUNK)


def _walk(chain: str, rows: Iterable[tuple], *, after_seq: int = 0, prev_hash: str = GENESIS_HASH) -> _Walked:
    """Walk one chain's rows in seq order from `after_seq` + 1: the first broken row, if any."""
    expected, last_id, count = after_seq + 1, None, 0
    for row in rows:
        count += 1
        seq = row[_SEQ]
        reason = ""
        if seq != expected:
            reason = f"seq gap: expected {expected}, found {seq}"
        elif row[_PREV] != prev_hash:
            reason = "prev_hash mismatch: does not match the previous row's row_hash"
        elif compute_row_hash(dict(zip(EVIDENCE_FIELDS, row, strict=False)), row[_PREV]) != row[_HASH]:
            reason = "hash mismatch: the row's fields were changed after it was written"
        if reason:
            return _Walked(
                ChainProblem(row[_ID], chain, seq, reason), expected - 1, prev_hash, last_id, count
            )
        expected, prev_hash, last_id = seq + 1, row[_HASH], row[_ID]
    return _Walked(None, expected - 1, prev_hash, last_id, count)


def _tail_problem(chain: str, walked: _Walked, head: AuditChainHead | None) -> ChainProblem | None:
    # Rows cut from the end of a chain leave no gap; the head still remembers where the chain ended.
    if head is None or (head.seq == walked.last_seq and head.row_hash == walked.last_hash):
        return None
    if walked.last_seq == 0:
        return ChainProblem(None, chain, None, f"chain head says seq {head.seq} but no rows remain")
    reason = f"chain head says seq {head.seq}: rows after this one are missing"
    return ChainProblem(walked.last_id, chain, walked.last_seq, reason)


def _check_from_start(chain: str, head: AuditChainHead | None) -> tuple[ChainProblem | None, _Walked]:
    walked = _walk(chain, _rows(chain, 0))
    return walked.problem or _tail_problem(chain, walked, head), walked


def verify_chain(chain: str | None = None, *, up_to_seq: int | None = None) -> list[ChainProblem]:
    """Recompute every chain (or one) from its first row and return the first broken row of each broken
    chain; nothing is stored.

    A row is broken when its `seq` leaves a gap, its `prev_hash` is not the previous row's `row_hash`,
    or its `row_hash` does not match its fields; a chain whose rows stop before its head's `seq` has
    lost its tail. An empty list means every checked chain is intact. Reads in constant memory.

    With `up_to_seq` (and one `chain`) only rows 1 to `up_to_seq` are checked, and they must all be
    there: what an export's manifest vouches for, whatever happened to the chain after it.
    """
    if up_to_seq is not None:
        if chain is None:
            raise ValueError("up_to_seq checks one chain: name it")
        walked = _walk(chain, _rows(chain, 0, up_to_seq))
        problem = walked.problem
        if problem is None and walked.last_seq < up_to_seq:
            where = (walked.last_id, walked.last_seq or None)
            problem = ChainProblem(where[0], chain, where[1], f"rows up to seq {up_to_seq} are missing")
        return [problem] if problem else []
    heads = {head.chain: head for head in AuditChainHead.objects.all()}
    if chain is not None:
        heads = {chain: heads.get(chain)}
    # Chains with rows but no head (a head is written with a chain's first row) are checked as well.
    names = set(heads) | set(chain_names()) if chain is None else set(heads)
    problems = []
    for name in sorted(names):
        problem, _ = _check_from_start(name, heads.get(name))
        if problem:
            problems.append(problem)
    return problems


def chain_names() -> Iterator[str]:
    """Every chain with rows, from the (chain, seq) index: one probe per chain, not a scan of the log."""
    name = AuditEvent.objects.order_by("chain").values_list("chain", flat=True).first()
    while name is not None:
        yield name
        name = (
            AuditEvent.objects.filter(chain__gt=name)
            .order_by("chain")
            .values_list("chain", flat=True)
            .first()
        )


def _anchor_holds(chain: str, stored: ChainVerification | None) -> bool:
    """Whether the last row a check proved good still carries the hash it had then, and its fields
    still hash to it."""
    if stored is None or stored.verified_seq == 0:
        return True
    row = AuditEvent.objects.filter(chain=chain, seq=stored.verified_seq).values_list(*_COLUMNS).first()
    if row is None or row[_HASH] != stored.verified_hash:
        return False
    return compute_row_hash(dict(zip(EVIDENCE_FIELDS, row, strict=False)), row[_PREV]) == row[_HASH]


def check_chain(chain: str, *, full: bool = False) -> ChainVerification:
    """Check one chain and store the result on its head; returns the stored result.

    From the last good check on, once that check's last row (the anchor) is shown unchanged; from row 1
    when `full`, when the chain was broken last time, or when the anchor changed. A chain rewritten
    wholesale (a row changed and every later hash recomputed) links up again from row 1, so a changed
    anchor is itself a problem, named at the anchor unless the walk finds an earlier one; the anchor
    then stays where it was, so the chain stays broken until its rows are restored.
    """
    started = time.monotonic()
    head = AuditChainHead.objects.filter(chain=chain).first()
    if head is None:
        raise ValueError(f"No audit chain {chain!r}")
    stored = ChainVerification.objects.filter(head=head).first()
    anchor_ok = _anchor_holds(chain, stored)
    if stored is not None and anchor_ok and not full and not stored.problem_reason:
        after, prev = stored.verified_seq, stored.verified_hash
    else:
        after, prev = 0, GENESIS_HASH
    walked = _walk(chain, _rows(chain, after), after_seq=after, prev_hash=prev)
    if walked.last_id is None and after:
        walked = _Walked(walked.problem, walked.last_seq, walked.last_hash, stored.last_id, walked.rows)
    problem = walked.problem or _tail_problem(chain, walked, head)
    keep_anchor = (
        stored is not None
        and stored.verified_seq > 0
        and (not anchor_ok or (problem is not None and (problem.seq or 0) <= stored.verified_seq))
    )
    if not anchor_ok and (problem is None or (problem.seq or 0) > stored.verified_seq):
        when = stored.checked_at.isoformat(timespec="seconds") if stored.checked_at else "an earlier check"
        reason = f"rewritten: this row's hash is not the one the check of {when} proved"
        problem = ChainProblem(stored.last_id, chain, stored.verified_seq, reason)
    values: dict[str, Any] = {
        "checked_at": timezone.now(),
        "rows_checked": walked.rows,
        "from_start": after == 0,
        "seconds": round(time.monotonic() - started, 3),
        "problem_event_id": problem.event_id if problem else None,
        "problem_seq": problem.seq if problem else None,
        "problem_reason": problem.reason[:300] if problem else "",
    }
    if not keep_anchor:
        values.update(verified_seq=walked.last_seq, verified_hash=walked.last_hash, last_id=walked.last_id)
    result, _ = ChainVerification.objects.update_or_create(head=head, defaults=values)
    return result


def request_checks(heads: Iterable[AuditChainHead]) -> list[int]:
    """Mark these chains' results as asked for again (the page shows "check queued"); their pks."""
    now = timezone.now()
    pks = [head.pk for head in heads]
    ChainVerification.objects.bulk_create(
        [ChainVerification(head_id=pk, requested_at=now) for pk in pks],
        update_conflicts=True,
        unique_fields=["head"],
        update_fields=["requested_at"],
    )
    return pks


def stored_problem(result: ChainVerification) -> ChainProblem | None:
    """A stored result's problem as `verify_chain` would name it."""
    if not result.problem_reason:
        return None
    return ChainProblem(result.problem_event_id, result.head.chain, result.problem_seq, result.problem_reason)
