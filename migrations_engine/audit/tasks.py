"""RQ entry point of audit chain checks (queued from the verify page, `queueing.AUDIT_VERIFY_TASK`)."""

from __future__ import annotations

from migrations_engine.audit.verification import check_chain
from migrations_engine.models import AuditChainHead


def verify_chain_job(head_pk: int, full: bool = False) -> str:
    """RQ job: check one chain (from its last good check, or from row 1 when `full`) and store the
    result on its head. A chain found broken is a result, not a job failure."""
    chain = AuditChainHead.objects.values_list("chain", flat=True).get(pk=head_pk)
    result = check_chain(chain, full=full)
    state = f"broken at seq {result.problem_seq}" if result.problem_reason else "ok"
    return f"{chain}: {state}, {result.rows_checked} rows hashed in {result.seconds:.2f} s"
