"""The append-only, hash-chained audit log: one row per Graph write intent, outcome and staff action.

Rows are evidence: the ORM refuses to update or delete them, and on PostgreSQL a trigger (migration
0001) refuses raw `UPDATE` and `DELETE` too. Each row's `row_hash` covers its evidence fields and the
previous row's hash in the same chain (one chain per tenant, plus "fleet" for rows without a tenant),
so a changed, removed or reordered row shows up in `verify_chain` / `manage.py verify_audit`.

Write rows only through `migrations_engine.audit.writer`; it takes the chain lock and computes the hashes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

from django.db import models

from migrations_engine.choices import AuditKind, AuditOutcome

FLEET_CHAIN = "fleet"
GENESIS_HASH = "0" * 64

# Every field the hash covers, in the order exports list them. `id` is left out on purpose: it is
# assigned by the database after the hash is computed; `seq` orders a chain.
EVIDENCE_FIELDS = (
    "chain",
    "seq",
    "created_at",
    "tenant_id",
    "kind",
    "actor",
    "run_id",
    "item_id",
    "step",
    "action",
    "method",
    "path",
    "target",
    "request_body",
    "before",
    "after",
    "outcome",
    "intent_id",
    "http_status",
    "request_id",
    "client_request_id",
    "error",
    "detail",
)


class AuditImmutable(Exception):
    """Raised when code tries to change or remove an audit row: the log is append-only."""


def canonical_json(value: Any) -> str:
    """The one JSON spelling the hash is computed over (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _hash_value(name: str, value: Any) -> Any:
    if name == "created_at" and isinstance(value, datetime.datetime):
        # Databases hand datetimes back in UTC; spell them the same way when writing and verifying.
        return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")
    return value


def compute_row_hash(evidence: dict[str, Any], prev_hash: str) -> str:
    """sha256 over the canonical JSON of a row's evidence fields followed by the previous row's hash.

    The writer (`migrations_engine.audit.writer`) and the verifier both call this, so they cannot disagree.
    """
    fields = {name: _hash_value(name, evidence.get(name)) for name in EVIDENCE_FIELDS}
    return hashlib.sha256((canonical_json(fields) + prev_hash).encode("utf-8")).hexdigest()


class AuditEventQuerySet(models.QuerySet):
    """Audit rows: readable and appendable, never updated or deleted in bulk."""

    def update(self, **kwargs: Any) -> int:
        raise AuditImmutable("Audit rows are append-only: QuerySet.update() is refused.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditImmutable("Audit rows are append-only: QuerySet.delete() is refused.")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AuditImmutable("Audit rows are append-only: bulk_update() is refused.")

    update.queryset_only = True
    delete.queryset_only = True


class AuditEvent(models.Model):
    """One audit row: a Graph write intent or its outcome, a staff action, or a later reconciliation.

    A Graph write is recorded twice: an `intent` row before the request is sent and an outcome row
    (`succeeded`, `failed`, `unknown`) pointing at it through `intent` afterwards; a dry run is a single
    `dry_run` row. An `unknown` outcome is resolved later by a `reconciled` row pointing at the intent.
    `request_body`, `before`, `after` and `detail` are stored redacted.
    """

    created_at = models.DateTimeField(help_text="Set by the audit service when the row is appended")
    tenant = models.ForeignKey(
        "tenants.CustomerTenant",
        null=True,
        blank=True,
        # Evidence outlives the things it is about: a tenant with audit rows cannot be deleted.
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    chain = models.CharField(max_length=64, help_text='The tenant\'s Entra id, or "fleet"')
    seq = models.PositiveBigIntegerField(help_text="1, 2, 3… within the chain")
    prev_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64)

    kind = models.CharField(max_length=20, choices=AuditKind)
    actor = models.CharField(max_length=150, help_text='A username, or a process such as "scheduler:wave-3"')
    run_id = models.BigIntegerField(null=True, blank=True)
    item_id = models.BigIntegerField(null=True, blank=True)
    step = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=100, blank=True, help_text='e.g. "run.started", "policy.create"')

    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=2000, blank=True)
    target = models.CharField(max_length=400, blank=True, help_text="Object id or UPN the write is about")
    request_body = models.JSONField(null=True, blank=True, help_text="Redacted")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    outcome = models.CharField(max_length=20, choices=AuditOutcome)
    intent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="outcomes"
    )
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True, help_text="Graph's request-id header")
    client_request_id = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = "audit event"
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "seq"],
                name="%(app_label)s_%(class)s_unique_chain_seq",
                violation_error_message="This chain already has a row with this sequence number.",
            ),
            models.CheckConstraint(
                condition=models.Q(seq__gte=1),
                name="%(app_label)s_%(class)s_seq_from_one",
                violation_error_message="Sequence numbers start at 1.",
            ),
        ]
        indexes = [
            # export_audit --tenant with --since/--until, and a tenant's audit page newest first.
            models.Index(fields=["tenant", "created_at"], name="me_audit_tenant_time_idx"),
            # The run page lists a run's writes; export_audit --run; the audit list by run, newest first.
            models.Index(fields=["run_id", "created_at"], name="me_audit_run_time_idx"),
            # The audit list's other filters, each newest first (audit/list_scale.py).
            models.Index(fields=["actor", "created_at"], name="me_audit_actor_time_idx"),
            models.Index(fields=["kind", "created_at"], name="me_audit_kind_time_idx"),
            models.Index(fields=["outcome", "created_at"], name="me_audit_outcome_time_idx"),
            # Matching rows one to one against Graph's (or the simulator's) request log; the list's search.
            models.Index(fields=["client_request_id"], name="me_audit_client_req_idx"),
            models.Index(fields=["request_id"], name="me_audit_request_id_idx"),
            # A scheduled export reads one chain's period, or every chain's (fleet), by time.
            models.Index(fields=["chain", "created_at"], name="me_audit_chain_time_idx"),
            models.Index(fields=["created_at"], name="me_audit_time_idx"),
        ]
        # verify_chain walks (chain, seq): the unique constraint's index serves it. The search's "target
        # begins with" has an UPPER(target) text_pattern_ops index on PostgreSQL (migration 0009).

    def __str__(self) -> str:
        what = self.action or f"{self.method} {self.path}".strip()
        return f"#{self.seq} {self.chain} {self.kind} {what} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert a new row; an existing row is never saved again."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AuditImmutable(f"Audit row {self.pk} is append-only: it cannot be saved again.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Refused: audit rows are never deleted."""
        raise AuditImmutable(f"Audit row {self.pk} is append-only: it cannot be deleted.")

    def evidence(self) -> dict[str, Any]:
        """The hashed fields of this row, by name."""
        return {name: getattr(self, name) for name in EVIDENCE_FIELDS}

    def compute_hash(self) -> str:
        """What `row_hash` should be, given this row's fields and `prev_hash`."""
        return compute_row_hash(self.evidence(), self.prev_hash)


class AuditChainHead(models.Model):
    """The last row of one audit chain: the lock appenders take, and a check against lost tail rows.

    The audit service locks this row (`select_for_update`) before appending, so concurrent writers on
    PostgreSQL serialize per chain and `seq` has no gaps. Unlike `AuditEvent` it is updated in place:
    it is bookkeeping, not evidence.
    """

    chain = models.CharField(max_length=64, unique=True)
    seq = models.PositiveBigIntegerField(default=0)
    row_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"{self.chain} at #{self.seq}"


class ChainVerification(models.Model):
    """The last check of one audit chain (`migrations_engine.audit.verification.check_chain`).

    `verified_seq` / `verified_hash` are the last row proven good: the next check starts after it, once
    it has shown that row still carries that hash. Bookkeeping, updated in place like the head.
    """

    head = models.OneToOneField(AuditChainHead, on_delete=models.CASCADE, related_name="verification")
    verified_seq = models.PositiveBigIntegerField(default=0, help_text="Rows 1 to this one were proven good")
    verified_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    last_id = models.BigIntegerField(null=True, blank=True, help_text="The audit row at verified_seq")
    checked_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True, help_text="A fresh check was queued then")
    rows_checked = models.PositiveBigIntegerField(default=0, help_text="Rows hashed by the last check")
    from_start = models.BooleanField(default=False, help_text="The last check walked the chain from row 1")
    seconds = models.FloatField(default=0)
    problem_event_id = models.BigIntegerField(null=True, blank=True)
    problem_seq = models.PositiveBigIntegerField(null=True, blank=True)
    problem_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "audit chain check"

    def __str__(self) -> str:
        return f"{self.head.chain}: {'broken' if self.problem_reason else 'ok'} to #{self.verified_seq}"

    @property
    def queued(self) -> bool:
        return self.requested_at is not None and (
            self.checked_at is None or self.requested_at > self.checked_at
        )
