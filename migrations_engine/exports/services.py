"""Scheduled audit exports: every completed period of every enabled schedule, written once, with a manifest.

A schedule (`ExportSchedule`) exports one tenant's chain, or every chain (fleet), per day, per week (Monday
to Monday) or per month, cut at midnight in the console's time zone. `export_due` (hourly through
rq-scheduler, or `manage.py audit_export_schedule run-due`) writes every completed period since the last
one, oldest first, as `<AUDIT_EXPORT_DIR>/<name slug>/<start>_<end>.<csv|jsonl>` plus
`<start>_<end>.manifest.json`: row count, time range, the data file's sha256 and size, and per chain the
first and last seq, the first row's prev_hash and the head (last row_hash); a CSV's manifest also names
how its cells were escaped against spreadsheet formulas (`csv_cell_escaping`, see `msp_console.csv_safe`).
`export_verify.verify_export` checks a manifest against its file and the database.

Exactly once, and a crash never blocks a period. A period is claimed by inserting its `ExportFile` row
(unique per schedule and period start) in a transaction that stays open while the files are written and
commits only after both were renamed into place. A second scheduler inserting the same row waits for
that transaction: after a commit it gets an IntegrityError and moves on; if the writer fails, or its
process dies (the database rolls back a dead connection's transaction), the claim vanishes with the
rollback and the next run writes the period. No lease to expire and no timeout to guess. Files are
written under a temporary name in the same folder and renamed (atomic), so nobody sees half a file; a
crash after the renames but before the commit leaves files the next run replaces (same rows, new
manifest); temporary files of dead processes are removed on the next run.

The export's own "audit.exported" row is appended after the commit (audit rows are written outside other
transactions); if the process dies in between, the next run records it late (`detail.recorded_late`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from migrations_engine.audit.export import COLUMNS, VALUES, write_rows
from migrations_engine.audit.models import GENESIS_HASH
from migrations_engine.audit.writer import record_staff_action
from migrations_engine.choices import ExportFrequency
from migrations_engine.faults import crash_point
from migrations_engine.models import AuditChainHead, AuditEvent, ExportFile, ExportSchedule
from migrations_engine.runs.sweeper import claimer_alive
from msp_console.csv_safe import ESCAPING
from msp_console.words import counted
from staff import roles
from staff.actors import Actor, actor_label
from tenants.access import can_access

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = "msp-mfa-console/audit-export-manifest"
MANIFEST_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
ROW_HASH_RULE = (
    "row_hash = sha256(canonical JSON of the evidence columns chain..detail (sorted keys, no spaces, "
    "created_at in UTC with microseconds) followed by prev_hash); a chain starts from 64 zeros"
)
# How long a scheduler waits for another one holding the same period before leaving it to that one.
CLAIM_WAIT_SECONDS = 10
# An export whose "audit.exported" row is still missing this long after it was committed lost its writer.
LATE_RECORD_AFTER = datetime.timedelta(minutes=5)
_CHAIN, _SEQ, _PREV, _HASH = (COLUMNS.index(c) for c in ("chain", "seq", "prev_hash", "row_hash"))


class ExportError(Exception):
    """A period could not be exported (the folder holds another schedule's files, the disk is full…)."""


class ExportBusy(Exception):
    """Another scheduler holds the period: it writes it (or, if it dies, a later run does)."""


# --- periods ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with the same moments on the console's wall clock (for names and people)."""

    start: datetime.datetime
    end: datetime.datetime
    local_start: datetime.datetime
    local_end: datetime.datetime

    @property
    def stem(self) -> str:
        """The file name stem: both bounds in ISO 8601 basic format with their UTC offset (no colons)."""
        return f"{self.local_start:%Y%m%dT%H%M%z}_{self.local_end:%Y%m%dT%H%M%z}"


def _first_day(day: datetime.date, frequency: str) -> datetime.date:
    if frequency == ExportFrequency.DAILY:
        return day
    if frequency == ExportFrequency.WEEKLY:
        return day - datetime.timedelta(days=day.weekday())
    if frequency == ExportFrequency.MONTHLY:
        return day.replace(day=1)
    raise ValueError(f"unknown export frequency {frequency!r}")


def _next_first_day(first: datetime.date, frequency: str) -> datetime.date:
    if frequency == ExportFrequency.MONTHLY:
        return (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return first + datetime.timedelta(days=7 if frequency == ExportFrequency.WEEKLY else 1)


def _midnight(day: datetime.date, tz) -> datetime.datetime:
    # Wall-clock midnight, then converted: never "previous boundary + 24 h", which drifts across DST.
    # zoneinfo reads a midnight skipped by a DST jump with the offset before the jump (the instant the
    # day starts) and a midnight that happens twice as the first one.
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz).astimezone(datetime.UTC)


def period_from(start: datetime.datetime, frequency: str) -> Period:
    """The period that starts at `start` and ends at the next daily, weekly or monthly boundary after it.

    `start` is normally a boundary (the previous period's end); when the time zone or the frequency
    changed it is not, and this period runs to the next boundary, so periods never overlap or leave gaps.
    """
    tz = timezone.get_default_timezone()
    first = _first_day(start.astimezone(tz).date(), frequency)
    end = _midnight(_next_first_day(first, frequency), tz)
    start = start.astimezone(datetime.UTC)
    return Period(start, end, start.astimezone(tz), end.astimezone(tz))


def period_containing(moment: datetime.datetime, frequency: str) -> Period:
    """The daily, weekly (Monday to Monday) or monthly period holding `moment`, in the console's zone."""
    tz = timezone.get_default_timezone()
    return period_from(_midnight(_first_day(moment.astimezone(tz).date(), frequency), tz), frequency)


def first_pending_period(schedule: ExportSchedule) -> Period:
    """The next period the schedule has to export: after its last one, or the one it was created in."""
    if schedule.last_period_end is not None:
        return period_from(schedule.last_period_end, schedule.frequency)
    return period_containing(schedule.created_at, schedule.frequency)


def due_periods(schedule: ExportSchedule, now: datetime.datetime) -> Iterator[Period]:
    """Every completed period not yet exported, oldest first (after downtime there may be many)."""
    period = first_pending_period(schedule)
    while period.end <= now:
        yield period
        period = period_from(period.end, schedule.frequency)


# --- schedules -------------------------------------------------------------------------------------


def scheduler_actor(schedule: ExportSchedule) -> str:
    """Who a schedule's exports are recorded as."""
    return f"scheduler:export-{schedule.pk}"


def export_folder(schedule: ExportSchedule) -> Path:
    return Path(settings.AUDIT_EXPORT_DIR) / slugify(schedule.name)


def scope_of(schedule: ExportSchedule) -> dict[str, str]:
    """The schedule's scope as a manifest states it."""
    if schedule.tenant_id is None:
        return {"kind": "fleet"}
    tenant = schedule.tenant
    return {"kind": "tenant", "tenant_id": str(tenant.tenant_id), "domain": tenant.primary_domain}


def check_folder_name(name: str, *, exclude_pk: int | None = None) -> None:
    """Refuse (ValidationError) a name without a folder slug, or whose folder another schedule uses."""
    slug = slugify(name)
    if not slug:
        raise ValidationError("The name needs letters or digits: it names the export folder.")
    others = ExportSchedule.objects.exclude(pk=exclude_pk).values_list("name", flat=True)
    clash = next((other for other in others if slugify(other) == slug), None)
    if clash is not None:
        raise ValidationError(f"Schedule {clash!r} already writes to the folder {slug!r}.")


def check_schedule(schedule: ExportSchedule) -> None:
    """Refuse (ValidationError) a schedule whose fields are invalid or whose folder another one uses."""
    schedule.full_clean(exclude=["created_by", "last_period_end"])
    try:
        check_folder_name(schedule.name, exclude_pk=schedule.pk)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc


def _record_schedule_change(schedule: ExportSchedule, action: str, actor: Actor, changed=()) -> None:
    detail = {
        "schedule": schedule.pk,
        "name": schedule.name,
        "scope": scope_of(schedule),
        "frequency": schedule.frequency,
        "format": schedule.format,
        "enabled": schedule.enabled,
    }
    if changed:
        detail["changed"] = sorted(changed)
    name = actor_label(actor)
    # After the commit: audit rows are appended outside other transactions (the admin saves in one).
    transaction.on_commit(
        lambda: record_staff_action(actor=name, action=action, tenant_id=schedule.tenant_id, detail=detail)
    )


def save_schedule(schedule: ExportSchedule, *, actor: Actor, changed=()) -> ExportSchedule:
    """Create (no pk yet) or change a schedule after `check_schedule`, recorded as a staff action.

    Its scope cannot change once it has written a file: those files would then cover two scopes.
    """
    roles.require(actor, roles.EXPORTS)
    _require_scope(actor, schedule.tenant)
    created = schedule.pk is None
    if created and schedule.created_by_id is None and hasattr(actor, "username"):
        schedule.created_by = actor
    if not created and "tenant" in changed and schedule.files.exists():
        raise ValidationError({"tenant": "This schedule has written exports: its scope cannot change."})
    check_schedule(schedule)
    schedule.save()
    action = "export_schedule.created" if created else "export_schedule.changed"
    _record_schedule_change(schedule, action, actor, () if created else changed)
    return schedule


def _require_scope(actor: Actor, tenant) -> None:
    """A staff member schedules exports of their own tenants only; the whole fleet is superusers'."""
    if not roles.is_person(actor) or actor.is_superuser:
        return
    if tenant is None:
        raise PermissionDenied("Only a superuser may export the whole fleet: choose a tenant.")
    if not can_access(actor, tenant):
        raise PermissionDenied("This touches a tenant you may not act on.")


def create_schedule(
    *, name: str, tenant, frequency: str, fmt: str, actor: Actor, enabled: bool = True
) -> ExportSchedule:
    """A new schedule for `tenant` (None: the whole fleet). ValidationError when a field is wrong."""
    schedule = ExportSchedule(
        name=name.strip(), tenant=tenant, frequency=frequency, format=fmt, enabled=enabled
    )
    return save_schedule(schedule, actor=actor)


def disable_schedule(schedule: ExportSchedule, *, actor: Actor) -> bool:
    """Stop exporting (files written so far stay). False when it was already disabled."""
    roles.require(actor, roles.EXPORTS)
    if not ExportSchedule.objects.filter(pk=schedule.pk, enabled=True).update(enabled=False):
        return False
    schedule.enabled = False
    _record_schedule_change(schedule, "export_schedule.disabled", actor, ["enabled"])
    return True


# --- writing ---------------------------------------------------------------------------------------


@dataclass
class ChainSummary:
    """What an export holds of one chain, as its manifest states it."""

    chain: str
    rows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_prev_hash: str | None = None
    head_seq: int = 0
    head: str = GENESIS_HASH

    def manifest_entry(self, current: tuple[int, str] | None) -> dict[str, Any]:
        seq, row_hash = current or (0, GENESIS_HASH)
        return {
            "chain": self.chain,
            "rows": self.rows,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "first_prev_hash": self.first_prev_hash,
            "head_seq": self.head_seq,
            "head": self.head,
            "current_head": {"seq": seq, "row_hash": row_hash},
        }


def _observe(rows: Iterator[tuple], chains: dict[str, ChainSummary]) -> Iterator[tuple]:
    """Pass rows through, summing up each chain on the way (memory: one summary per chain)."""
    for row in rows:
        summary = chains.get(row[_CHAIN])
        if summary is None:
            summary = chains[row[_CHAIN]] = ChainSummary(row[_CHAIN])
            summary.first_seq, summary.first_prev_hash = row[_SEQ], row[_PREV]
        summary.rows += 1
        summary.last_seq = summary.head_seq = row[_SEQ]
        summary.head = row[_HASH]
        yield row


class _HashingFile:
    """Text in, UTF-8 bytes out to a binary file, hashed and counted on the way."""

    def __init__(self, fh) -> None:
        self.fh, self.sha256, self.size = fh, hashlib.sha256(), 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.sha256.update(data)
        self.size += len(data)
        self.fh.write(data)


def _utc_iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _temp_path(final: Path) -> Path:
    # Host and pid in the name: the next run removes the leftovers of a process that died.
    tag = f"{socket.gethostname()}~{os.getpid()}~{secrets.token_hex(4)}"
    return final.with_name(f".{final.name}~{tag}.tmp")


def _remove_dead_temps(folder: Path) -> None:
    for temp in folder.glob(".*.tmp"):
        parts = temp.name[:-4].split("~")
        if len(parts) == 4 and claimer_alive(f"{parts[1]}:{parts[2]}") is False:
            temp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse_foreign_files(schedule: ExportSchedule, manifest_path: Path) -> None:
    """Never replace evidence another schedule wrote (say, one deleted and re-created under its name)."""
    if not manifest_path.exists():
        return
    try:
        owner = json.loads(manifest_path.read_text(encoding="utf-8"))["schedule"]["id"]
    except (OSError, ValueError, KeyError, TypeError):
        owner = None
    if owner != schedule.pk:
        raise ExportError(
            f"{manifest_path} exists and is not schedule {schedule.pk}'s: refusing to replace it"
        )


def _scope_chain(schedule: ExportSchedule) -> str | None:
    return None if schedule.tenant_id is None else str(schedule.tenant.tenant_id)


def _wait_for_appends(chain: str | None) -> None:
    """Let appends that took their time stamp before now commit first: they hold their chain head's lock
    between reading the clock and committing, so taking (and releasing) those locks waits them out."""
    heads = AuditChainHead.objects.select_for_update().order_by("chain")
    if chain is not None:
        heads = heads.filter(chain=chain)
    with transaction.atomic():
        list(heads.values_list("pk", flat=True))


def _claim(
    schedule: ExportSchedule, period: Period, data_path: Path, manifest_path: Path
) -> ExportFile | None:
    """Insert the period's row (the claim) inside the caller's transaction; None if it was exported."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{CLAIM_WAIT_SECONDS}s'")
    try:
        with transaction.atomic():
            return ExportFile.objects.create(
                schedule=schedule,
                period_start=period.start,
                period_end=period.end,
                path=str(data_path),
                manifest_path=str(manifest_path),
            )
    except IntegrityError:
        return None  # another scheduler wrote it and committed while we waited


def _rows(schedule: ExportSchedule, period: Period, chain: str | None) -> Iterator[tuple]:
    events = AuditEvent.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    if chain is not None:
        events = events.filter(chain=chain)
    return events.order_by("chain", "seq").values_list(*VALUES).iterator(chunk_size=2000)


def _current_heads(names: list[str]) -> dict[str, tuple[int, str]]:
    heads: dict[str, tuple[int, str]] = {}
    for at in range(0, len(names), 500):
        rows = AuditChainHead.objects.filter(chain__in=names[at : at + 500])
        heads.update(
            {chain: (seq, row_hash) for chain, seq, row_hash in rows.values_list("chain", "seq", "row_hash")}
        )
    return heads


def _chain_summaries(chains: dict[str, ChainSummary], chain: str | None, period: Period) -> list[dict]:
    if chain is not None and chain not in chains:
        # A tenant's quiet period still states where its chain stood when the period ended.
        empty = chains[chain] = ChainSummary(chain)
        last = (
            AuditEvent.objects.filter(chain=chain, created_at__lt=period.end)
            .order_by("-seq")
            .values_list("seq", "row_hash")
            .first()
        )
        if last is not None:
            empty.head_seq, empty.head = last
    current = _current_heads(list(chains))
    return [summary.manifest_entry(current.get(name)) for name, summary in chains.items()]


def _manifest(schedule, period, data_path: Path, out: _HashingFile, rows: int, chains: list[dict]) -> dict:
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "schedule": {"id": schedule.pk, "name": schedule.name, "frequency": schedule.frequency},
        "scope": scope_of(schedule),
        "format": schedule.format,
        "time_zone": str(timezone.get_default_timezone()),
        "period": {
            "start": _utc_iso(period.start),
            "end": _utc_iso(period.end),
            "local_start": period.local_start.isoformat(),
            "local_end": period.local_end.isoformat(),
        },
        "created_at": _utc_iso(timezone.now()),
        "rows": rows,
        "file": {"name": data_path.name, "sha256": out.sha256.hexdigest(), "size": out.size},
        "columns": list(COLUMNS),
        "row_hash": ROW_HASH_RULE,
        "chains": chains,
    }
    if schedule.format == "csv":
        # The verifier undoes exactly this before recomputing row hashes; manifests without it predate it.
        manifest["csv_cell_escaping"] = ESCAPING
    return manifest


def _export_period(schedule: ExportSchedule, period: Period, *, run_by: str) -> ExportFile | None:
    """Write one period's data file and manifest, exactly once (see the module docstring)."""
    if ExportFile.objects.filter(schedule=schedule, period_start=period.start).exists():
        return None
    folder = export_folder(schedule)
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / f"{period.stem}.{schedule.format}"
    manifest_path = folder / f"{period.stem}{MANIFEST_SUFFIX}"
    _refuse_foreign_files(schedule, manifest_path)
    chain = _scope_chain(schedule)
    temps: list[Path] = []
    export = None
    try:
        _wait_for_appends(chain)
        with transaction.atomic():
            export = _claim(schedule, period, data_path, manifest_path)
            if export is None:
                return None
            crash_point("export:claimed")
            chains: dict[str, ChainSummary] = {}
            temps.append(_temp_path(data_path))
            with open(temps[-1], "xb") as fh:
                out = _HashingFile(fh)
                rows = write_rows(out, schedule.format, _observe(_rows(schedule, period, chain), chains))
                fh.flush()
                os.fsync(fh.fileno())
            manifest = _manifest(
                schedule, period, data_path, out, rows, _chain_summaries(chains, chain, period)
            )
            temps.append(_temp_path(manifest_path))
            with open(temps[-1], "x", encoding="utf-8") as fh:
                json.dump(manifest, fh, indent=2, ensure_ascii=False)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temps[0], data_path)
            crash_point("export:renamed")
            os.replace(temps[1], manifest_path)
            _fsync_dir(folder)
            # created_at becomes the moment the export is complete: `_record_missed_export` counts from it.
            export.rows, export.sha256, export.created_at = rows, manifest["file"]["sha256"], timezone.now()
            export.save(update_fields=["rows", "sha256", "created_at"])
            ExportSchedule.objects.filter(pk=schedule.pk).filter(
                Q(last_period_end__isnull=True) | Q(last_period_end__lt=period.end)
            ).update(last_period_end=period.end)
    except OperationalError as exc:
        if export is None:  # waiting for a chain lock or the claim timed out, or SQLite stayed locked
            busy = f"{schedule.name}: period {period.stem} is being exported elsewhere ({exc})"
            raise ExportBusy(busy) from exc
        raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    crash_point("export:committed")
    _record_export(schedule, export, run_by=run_by)
    return export


def _record_export(schedule: ExportSchedule, export: ExportFile, *, run_by: str, late: bool = False) -> None:
    detail = {
        "schedule": schedule.pk,
        "schedule_name": schedule.name,
        "period_start": _utc_iso(export.period_start),
        "period_end": _utc_iso(export.period_end),
        "rows": export.rows,
        "sha256": export.sha256,
        "file": Path(export.path).name,
        "manifest": Path(export.manifest_path).name,
        "format": Path(export.path).suffix.lstrip("."),
        "run_by": run_by,
    }
    if late:
        detail["recorded_late"] = True
    record_staff_action(
        actor=scheduler_actor(schedule), action="audit.exported", tenant_id=schedule.tenant_id, detail=detail
    )


def _record_missed_export(schedule: ExportSchedule, *, run_by: str, now: datetime.datetime) -> None:
    """Append the "audit.exported" row of the latest export if its writer died before appending it.

    A live writer appends it right after its commit: waiting `LATE_RECORD_AFTER` keeps a second scheduler
    from appending it too in between."""
    latest = schedule.files.order_by("-period_start").first()
    if latest is None or latest.created_at > now - LATE_RECORD_AFTER:
        return
    recorded = AuditEvent.objects.filter(
        tenant_id=schedule.tenant_id,
        created_at__gte=latest.created_at,
        actor=scheduler_actor(schedule),
        action="audit.exported",
        detail__file=Path(latest.path).name,
    )
    if not recorded.exists():
        _record_export(schedule, latest, run_by=run_by, late=True)


@dataclass
class ExportReport:
    """What one `export_due` pass did."""

    written: list[ExportFile] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{counted(len(self.written), 'export')} written"
        if self.busy:
            text += f", {counted(len(self.busy), 'schedule')} busy elsewhere"
        if self.errors:
            text += f", {len(self.errors)} failed: " + "; ".join(self.errors)
        return text


def export_due(now: datetime.datetime | None = None, *, actor: str = "scheduler") -> ExportReport:
    """Export every completed period of every enabled schedule that has not been exported, oldest first.

    `actor` (who ran this pass: "scheduler", "cli") goes into each export's audit row as `run_by`; the
    row's actor is the schedule ("scheduler:export-<id>"). `now` can only move the clock back: a period
    that has not ended is never exported. One schedule's failure is reported and does not stop the
    others; a failed period stops its schedule (periods are written in order) until the next pass.
    """
    real_now = timezone.now()
    now = min(now, real_now) if now is not None else real_now
    report = ExportReport()
    for schedule in ExportSchedule.objects.filter(enabled=True).select_related("tenant").order_by("pk"):
        try:
            folder = export_folder(schedule)
            if folder.is_dir():
                _remove_dead_temps(folder)
            _record_missed_export(schedule, run_by=actor, now=now)
            for period in due_periods(schedule, now):
                export = _export_period(schedule, period, run_by=actor)
                if export is not None:
                    report.written.append(export)
        except ExportBusy as exc:
            logger.info("scheduled export: %s", exc)
            report.busy.append(schedule.name)
        except Exception as exc:  # one schedule (a full disk, a bad folder) must not stop the rest
            logger.exception("scheduled export %r failed", schedule.name)
            report.errors.append(f"{schedule.name}: {exc}")
    return report
