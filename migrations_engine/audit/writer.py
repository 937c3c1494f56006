"""Appending to the audit log: the only code that writes `AuditEvent` rows (checking the chains is
`migrations_engine.audit.verification`).

The Graph client records an intent before every write and the outcome after; the runner and views
record staff actions. Every function here runs in its own durable transaction
(`transaction.atomic(durable=True)`): an audit row must never be rolled back with some outer business
transaction while the remote change it describes stands. Calling one from inside an `atomic` block
therefore raises RuntimeError, on purpose; call it outside, or from `transaction.on_commit`. (Django's
TestCase wrapping is exempt, so plain `django_db` tests work.)

Async code calls these through `sync_to_async(..., thread_sensitive=True)`.

Appending locks the chain's `AuditChainHead` row (`select_for_update`), so concurrent writers to one
chain serialize on PostgreSQL and `seq` stays gap-free; a batch costs one lock and one `bulk_create`.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from migrations_engine.audit.models import (
    FLEET_CHAIN,
    AuditChainHead,
    AuditEvent,
    canonical_json,
)
from migrations_engine.choices import AuditKind, AuditOutcome
from staff.actors import Actor, actor_label

REDACTED = "[redacted]"
MAX_STRING = 4000
# A key is secret when its name, lower-cased without "_" and "-", contains one of these.
SECRET_KEY_PARTS = (
    "password",
    "secret",
    "token",
    "assertion",
    "authorization",
    "clientsecret",
    "key",
    "certificate",
    "credential",
)
# Bearer tokens and JWTs are secret wherever they turn up, whatever the key (or error text) is called.
_TOKEN_RE = re.compile(r"(?i)\bbearer\s+[\w\-.~+/]+=*|\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")

OUTCOMES_AFTER_SEND = (AuditOutcome.SUCCEEDED, AuditOutcome.FAILED, AuditOutcome.UNKNOWN)
# What a reconciliation found out about a write whose outcome was unknown.
RECONCILED_RESULTS = ("succeeded", "not_applied", "failed")


@dataclass
class AuditContext:
    """Who is writing and where: passed down by the runner into the Graph client."""

    actor: str
    tenant_id: int | None  # CustomerTenant pk; None for fleet-wide rows
    run_id: int | None = None
    item_id: int | None = None
    step: str = ""


@dataclass
class WriteIntent:
    """A Graph write about to be sent. `body` is raw: the service redacts it before storing."""

    method: str
    path: str
    body: Any
    client_request_id: str
    target: str = ""
    action: str = ""
    before: Any = None
    dry_run: bool = False  # record a single `dry_run` row; no outcome follows


@dataclass
class WriteOutcome:
    """How a recorded write ended: `succeeded`, `failed` or `unknown` (no answer, e.g. a timeout)."""

    intent: AuditEvent
    outcome: str
    http_status: int | None = None
    request_id: str = ""
    error: str = ""
    after: Any = None


# --- redaction -------------------------------------------------------------------------------------


def _is_secret_key(key: Any) -> bool:
    name = str(key).lower().replace("_", "").replace("-", "")
    return any(part in name for part in SECRET_KEY_PARTS)


def _scrub_text(text: str) -> str:
    text = _TOKEN_RE.sub(REDACTED, text)
    if len(text) > MAX_STRING:
        text = f"{text[:MAX_STRING]}…[truncated {len(text) - MAX_STRING} chars]"
    return text


def redact(body: Any) -> Any:
    """A deep copy of `body` with secrets replaced by "[redacted]" and long strings truncated.

    Values under keys naming a secret (password, secret, token, assertion, authorization, key,
    certificate, credential; case-insensitive, anywhere in the key) are replaced whatever their type;
    bearer tokens and JWTs are replaced wherever they appear; strings over 4,000 characters are cut.
    The input is never changed.
    """
    if isinstance(body, dict):
        return {k: REDACTED if _is_secret_key(k) else redact(v) for k, v in body.items()}
    if isinstance(body, list | tuple):
        return [redact(v) for v in body]
    if isinstance(body, str):
        return _scrub_text(body)
    if body is None or isinstance(body, bool | int | float):
        return body
    return copy.deepcopy(body)


def _stored_json(value: Any) -> Any:
    """Redacted and reduced to plain JSON, so what is hashed is exactly what the database gives back."""
    if value is None:
        return None
    return json.loads(canonical_json(redact(value)))


def _clip(value: Any, limit: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit]


# --- appending -------------------------------------------------------------------------------------


def _chain_for(tenant_id: int | None) -> str:
    if tenant_id is None:
        return FLEET_CHAIN
    from tenants.models import CustomerTenant

    return str(CustomerTenant.objects.values_list("tenant_id", flat=True).get(pk=tenant_id))


def _actor_text(actor: Actor) -> str:
    return _clip(actor_label(actor), 150)


def _append(tenant_id: int | None, rows: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append rows (field dicts, in order) to the tenant's chain in one durable transaction."""
    if not rows:
        return []
    with transaction.atomic(durable=True):
        chain = _chain_for(tenant_id)
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(chain=chain)
        now = timezone.now()
        seq, prev_hash = head.seq, head.row_hash
        events = []
        for fields in rows:
            seq += 1
            event = AuditEvent(
                chain=chain, seq=seq, created_at=now, tenant_id=tenant_id, prev_hash=prev_hash, **fields
            )
            event.row_hash = event.compute_hash()
            prev_hash = event.row_hash
            events.append(event)
        created = AuditEvent.objects.bulk_create(events)
        AuditChainHead.objects.filter(pk=head.pk).update(seq=seq, row_hash=prev_hash, updated_at=now)
    return created


def _context_fields(ctx: AuditContext) -> dict[str, Any]:
    return {
        "actor": _actor_text(ctx.actor),
        "run_id": ctx.run_id,
        "item_id": ctx.item_id,
        "step": _clip(ctx.step, 100),
    }


def record_intents(ctx: AuditContext, writes: list[WriteIntent]) -> list[AuditEvent]:
    """Record Graph writes about to be sent, in order: one `intent` (or `dry_run`) row each.

    One transaction, one chain lock and one insert for the whole batch. Send the requests only after
    this returns; pass each returned row to `WriteOutcome.intent`.
    """
    rows = []
    for write in writes:
        if not write.client_request_id:
            raise ValueError("A Graph write needs a client_request_id to be audited.")
        rows.append(
            {
                **_context_fields(ctx),
                "kind": AuditKind.GRAPH_WRITE,
                "outcome": AuditOutcome.DRY_RUN if write.dry_run else AuditOutcome.INTENT,
                "action": _clip(write.action, 100),
                "method": _clip(write.method.upper(), 10),
                "path": _clip(write.path, 2000),
                "target": _clip(write.target, 400),
                "request_body": _stored_json(write.body),
                "before": _stored_json(write.before),
                "client_request_id": _clip(write.client_request_id, 100),
                "detail": {},
            }
        )
    return _append(ctx.tenant_id, rows)


def record_outcomes(ctx: AuditContext, outcomes: list[WriteOutcome]) -> list[AuditEvent]:
    """Record how recorded writes ended, in order: one row each, pointing at its intent row.

    The outcome row repeats the intent's method, path, target, action and client_request_id so an
    export row can be read alone (match intents to a request log with `outcome="intent"`).
    """
    rows = []
    for result in outcomes:
        intent = result.intent
        if result.outcome not in OUTCOMES_AFTER_SEND:
            allowed = ", ".join(OUTCOMES_AFTER_SEND)
            raise ValueError(f"Outcome must be one of {allowed}, not {result.outcome!r}.")
        if intent.pk is None or intent.outcome != AuditOutcome.INTENT:
            raise ValueError("An outcome must point at a recorded intent row.")
        if intent.tenant_id != ctx.tenant_id:
            raise ValueError("An outcome belongs to the same tenant as its intent.")
        rows.append(
            {
                **_context_fields(ctx),
                "kind": AuditKind.GRAPH_WRITE,
                "outcome": result.outcome,
                "intent_id": intent.pk,
                "action": intent.action,
                "method": intent.method,
                "path": intent.path,
                "target": intent.target,
                "client_request_id": intent.client_request_id,
                "http_status": result.http_status,
                "request_id": _clip(result.request_id, 100),
                "error": _scrub_text(result.error or ""),
                "after": _stored_json(result.after),
                "detail": {},
            }
        )
    return _append(ctx.tenant_id, rows)


def record_intent(ctx: AuditContext, write: WriteIntent) -> AuditEvent:
    """Record one Graph write about to be sent (see `record_intents`)."""
    return record_intents(ctx, [write])[0]


def record_outcome(ctx: AuditContext, outcome: WriteOutcome) -> AuditEvent:
    """Record how one write ended (see `record_outcomes`)."""
    return record_outcomes(ctx, [outcome])[0]


def record_staff_action(
    *,
    actor: str,
    action: str,
    tenant_id: int | None = None,
    run_id: int | None = None,
    detail: dict | None = None,
) -> AuditEvent:
    """Record a staff action such as "consent.recorded", "run.started", "run.cancelled", "audit.exported"."""
    if not action:
        raise ValueError("A staff action needs a name.")
    row = {
        "actor": _actor_text(actor),
        "run_id": run_id,
        "kind": AuditKind.STAFF_ACTION,
        "outcome": AuditOutcome.RECORDED,
        "action": _clip(action, 100),
        "detail": _stored_json(detail or {}),
    }
    return _append(tenant_id, [row])[0]


def record_reconciliation(ctx: AuditContext, *, intent: AuditEvent, outcome: str, detail: dict) -> AuditEvent:
    """Record what a later check found about a write whose outcome was unknown.

    Appends a `reconciled` row pointing at the intent; `outcome` is what was found ("succeeded",
    "not_applied" or "failed") and is stored in `detail["result"]` next to the evidence in `detail`.
    """
    if outcome not in RECONCILED_RESULTS:
        raise ValueError(f"Reconciliation result must be one of {', '.join(RECONCILED_RESULTS)}.")
    if intent.pk is None or intent.outcome != AuditOutcome.INTENT:
        raise ValueError("A reconciliation must point at a recorded intent row.")
    row = {
        **_context_fields(ctx),
        "kind": AuditKind.RECONCILIATION,
        "outcome": AuditOutcome.RECONCILED,
        "intent_id": intent.pk,
        "action": intent.action,
        "method": intent.method,
        "path": intent.path,
        "target": intent.target,
        "client_request_id": intent.client_request_id,
        "detail": _stored_json({**(detail or {}), "result": outcome}),
    }
    return _append(ctx.tenant_id, [row])[0]
