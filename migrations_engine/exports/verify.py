"""Checking a scheduled export against its manifest, and (online) against the audit log it came from.

Offline, from the two files alone: the data file's size and sha256 are the manifest's; every row reads back
(`audit_export.read_rows`: it undoes the CSV cell escaping the manifest names, `csv_cell_escaping`, and
refuses a cell that lost its quote; a manifest without it predates escaping) and its row_hash recomputes
(`compute_row_hash`, as the writer did); each chain's rows are together, in seq order without gaps, linked
by prev_hash from the manifest's first_prev_hash to its head; rows lie in the period and in the scope;
counts, first/last seq and heads match the manifest.

Online, against the database: the period's rows per chain (count, first and last seq) are the manifest's,
the row at each head's seq still has that row_hash, no row after it was written before the period ended,
and `verify_chain` finds every row from 1 up to the head intact. The data file's rows hash into the head,
so a database chain that is intact up to the same head holds exactly these rows.

Checking stops at the first problem, which the verdict names. Memory stays flat (one entry per chain).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import Count, Max, Min

from migrations_engine.audit.export import FORMATS, ExportFormatError, read_rows
from migrations_engine.audit.models import GENESIS_HASH, compute_row_hash
from migrations_engine.audit.verification import verify_chain
from migrations_engine.exports.services import MANIFEST_SCHEMA, MANIFEST_VERSION
from migrations_engine.models import AuditEvent
from msp_console.csv_safe import ESCAPING


class _Problem(Exception):
    """The first thing wrong with an export; its message is the verdict."""


@dataclass
class ExportVerdict:
    """The outcome of `verify_export`: `problem` is None when everything checked holds."""

    manifest: Path
    problem: str | None = None
    rows: int = 0
    chains: int = 0
    database_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self) -> str:
        if not self.ok:
            return f"FAILED: {self.manifest.name}: {self.problem}"
        against = "its file and the audit log" if self.database_checked else "its file (offline)"
        counted = f"{self.rows} rows in {self.chains} chain(s)"
        return f"OK: {self.manifest.name}: {counted} verified against {against}"


@dataclass
class _ChainState:
    entry: dict[str, Any]
    next_seq: int
    prev_hash: str
    rows: int = 0
    last_seq: int | None = None


@dataclass
class _Manifest:
    raw: dict[str, Any]
    fmt: str
    start: datetime.datetime
    end: datetime.datetime
    scope_chain: str | None
    chains: list[dict[str, Any]] = field(default_factory=list)
    # None: a CSV written before cells were escaped against formulas, read back as it was then.
    csv_escaping: str | None = None


def _get(mapping: Any, key: str, kind: type | tuple[type, ...], where: str = "manifest") -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise _Problem(f"the {where} has no {key!r}")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Problem(f"the {where}'s {key!r} is not what it should be: {value!r}")
    return value


def _moment(text: str, what: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Problem(f"the manifest's {what} {text!r} is not an ISO datetime with a time zone")
    return moment


def _load_manifest(path: Path) -> _Manifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Problem(f"cannot read the manifest: {exc}") from exc
    except ValueError as exc:
        raise _Problem(f"the manifest is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("schema") != MANIFEST_SCHEMA:
        raise _Problem("this is not an audit export manifest")
    if raw.get("schema_version") != MANIFEST_VERSION:
        raise _Problem(f"unknown manifest schema_version {raw.get('schema_version')!r}")
    fmt = _get(raw, "format", str)
    if fmt not in FORMATS:
        raise _Problem(f"unknown export format {fmt!r}")
    csv_escaping = None
    if "csv_cell_escaping" in raw:
        csv_escaping = _get(raw, "csv_cell_escaping", str)
        if fmt != "csv" or csv_escaping != ESCAPING:
            raise _Problem(f"unknown csv_cell_escaping {csv_escaping!r} for a {fmt} export")
    period = _get(raw, "period", dict)
    start = _moment(_get(period, "start", str, "period"), "period start")
    end = _moment(_get(period, "end", str, "period"), "period end")
    if end <= start:
        raise _Problem("the manifest's period ends before it starts")
    scope = _get(raw, "scope", dict)
    kind = _get(scope, "kind", str, "scope")
    if kind not in ("tenant", "fleet"):
        raise _Problem(f"unknown scope {kind!r}")
    scope_chain = _get(scope, "tenant_id", str, "scope") if kind == "tenant" else None
    _get(raw, "rows", int)
    chains = _get(raw, "chains", list)
    seen = set()
    for entry in chains:
        name = _get(entry, "chain", str, "chain entry")
        where = f"entry of chain {name}"
        if name in seen:
            raise _Problem(f"the manifest lists chain {name} twice")
        seen.add(name)
        if scope_chain is not None and name != scope_chain:
            raise _Problem(f"the manifest lists chain {name} outside its scope (tenant {scope_chain})")
        rows = _get(entry, "rows", int, where)
        _get(entry, "head_seq", int, where)
        _get(entry, "head", str, where)
        if rows:
            _get(entry, "first_seq", int, where)
            _get(entry, "last_seq", int, where)
            _get(entry, "first_prev_hash", str, where)
    return _Manifest(raw, fmt, start, end, scope_chain, chains, csv_escaping)


def _data_path(manifest_path: Path, manifest: _Manifest) -> Path:
    info = _get(manifest.raw, "file", dict)
    name = _get(info, "name", str, "file entry")
    # The data file sits next to its manifest: a name with a folder in it is not ours to open.
    if not name or name != Path(name).name or name.startswith("."):
        raise _Problem(f"the manifest's file name {name!r} is not a plain file name")
    return manifest_path.parent / name


def _check_file(path: Path, info: dict[str, Any]) -> None:
    sha256 = _get(info, "sha256", str, "file entry")
    size = _get(info, "size", int, "file entry")
    digest, actual = hashlib.sha256(), 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                actual += len(chunk)
    except OSError as exc:
        raise _Problem(f"cannot read the data file: {exc}") from exc
    if actual != size:
        raise _Problem(f"the data file is {actual} bytes, the manifest says {size}")
    if digest.hexdigest() != sha256:
        raise _Problem(f"the data file's sha256 is {digest.hexdigest()}, the manifest says {sha256}")


def _finish(state: _ChainState) -> None:
    entry, name = state.entry, state.entry["chain"]
    if state.rows != entry["rows"]:
        raise _Problem(f"chain {name}: the file has {state.rows} rows, the manifest says {entry['rows']}")
    if state.last_seq != entry["last_seq"] or state.last_seq != entry["head_seq"]:
        raise _Problem(
            f"chain {name}: the file's last seq is {state.last_seq}, the manifest says {entry['last_seq']}"
        )
    if state.prev_hash != entry["head"]:
        raise _Problem(f"chain {name}: the last row's row_hash is not the manifest's head {entry['head']}")


def _check_rows(path: Path, manifest: _Manifest) -> tuple[int, int]:
    """Walk the data file once; (rows, chains with rows)."""
    entries = {entry["chain"]: entry for entry in manifest.chains}
    done: set[str] = set()
    state: _ChainState | None = None
    total = 0
    newline = "" if manifest.fmt == "csv" else "\n"
    try:
        with path.open(encoding="utf-8", newline=newline) as fh:
            rows = read_rows(fh, manifest.fmt, csv_escaping=manifest.csv_escaping)
            for total, row in enumerate(rows, start=1):
                chain, seq = row["chain"], row["seq"]
                where = f"row {total} (chain {chain}, seq {seq})"
                if state is None or chain != state.entry["chain"]:
                    if state is not None:
                        _finish(state)
                        done.add(state.entry["chain"])
                    if chain in done:
                        raise _Problem(f"{where}: this chain's rows are not together (rows reordered?)")
                    entry = entries.get(chain)
                    if entry is None or not entry["rows"]:
                        raise _Problem(f"{where}: the manifest lists no rows of this chain")
                    first_prev = entry["first_prev_hash"]
                    if entry["first_seq"] == 1 and first_prev != GENESIS_HASH:
                        raise _Problem(f"chain {chain}: seq 1 must follow the genesis hash, not {first_prev}")
                    state = _ChainState(entry, entry["first_seq"], first_prev)
                if seq != state.next_seq:
                    raise _Problem(f"{where}: expected seq {state.next_seq} (a row missing or reordered)")
                if row["prev_hash"] != state.prev_hash:
                    previous = "the previous row's hash" if state.rows else "the manifest's first_prev_hash"
                    raise _Problem(f"{where}: prev_hash does not match {previous}")
                if compute_row_hash(row, row["prev_hash"]) != row["row_hash"]:
                    raise _Problem(f"{where}: hash mismatch: the row's fields differ from what was hashed")
                created = row["created_at"]
                if created is None or not manifest.start <= created < manifest.end:
                    raise _Problem(f"{where}: written at {created}, outside the period")
                state.rows, state.last_seq = state.rows + 1, seq
                state.next_seq, state.prev_hash = seq + 1, row["row_hash"]
    except ExportFormatError as exc:
        raise _Problem(f"the data file does not read back: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _Problem(f"cannot read the data file: {exc}") from exc
    if state is not None:
        _finish(state)
        done.add(state.entry["chain"])
    missing = [entry["chain"] for entry in manifest.chains if entry["rows"] and entry["chain"] not in done]
    if missing:
        raise _Problem(f"chain {missing[0]}: the manifest lists rows the file does not have")
    if total != manifest.raw["rows"]:
        raise _Problem(f"the file has {total} rows, the manifest says {manifest.raw['rows']}")
    return total, len(done)


def _check_database(manifest: _Manifest) -> None:
    period = AuditEvent.objects.filter(created_at__gte=manifest.start, created_at__lt=manifest.end)
    if manifest.scope_chain is not None:
        period = period.filter(chain=manifest.scope_chain)
    in_db = {
        row["chain"]: (row["rows"], row["first"], row["last"])
        for row in period.order_by()
        .values("chain")
        .annotate(rows=Count("id"), first=Min("seq"), last=Max("seq"))
    }
    for entry in manifest.chains:
        name = entry["chain"]
        stated = (entry["rows"], entry["first_seq"], entry["last_seq"]) if entry["rows"] else (0, None, None)
        found = in_db.pop(name, (0, None, None))
        if found != stated:
            raise _Problem(
                f"chain {name}: the audit log has {found[0]} rows in the period "
                f"(seq {found[1]}..{found[2]}), the manifest {stated[0]} (seq {stated[1]}..{stated[2]})"
            )
    if in_db:
        name, (rows, _, _) = next(iter(sorted(in_db.items())))
        raise _Problem(f"chain {name}: the audit log has {rows} rows in the period that the export lacks")
    for entry in manifest.chains:
        name, head_seq = entry["chain"], entry["head_seq"]
        if head_seq:
            row_hash = (
                AuditEvent.objects.filter(chain=name, seq=head_seq).values_list("row_hash", flat=True).first()
            )
            if row_hash is None:
                raise _Problem(f"chain {name}: the audit log has no row at the head's seq {head_seq}")
            if row_hash != entry["head"]:
                raise _Problem(
                    f"chain {name}: the audit log's row at seq {head_seq} has row_hash {row_hash}, "
                    f"not the manifest's head {entry['head']}"
                )
        elif entry["head"] != GENESIS_HASH:
            raise _Problem(f"chain {name}: an empty chain's head must be the genesis hash")
        if AuditEvent.objects.filter(chain=name, seq=head_seq + 1, created_at__lt=manifest.end).exists():
            later = head_seq + 1
            raise _Problem(f"chain {name}: seq {later} was written in the period, after the manifest's head")
        problems = verify_chain(name, up_to_seq=head_seq)
        if problems:
            raise _Problem(f"the audit log's chain is broken up to the head: {problems[0]}")


def verify_export(manifest_path: str | Path, *, offline: bool = False) -> ExportVerdict:
    """Check a scheduled export (its manifest, the data file next to it and, unless `offline`, the
    database): the verdict names the first problem found, or none."""
    path = Path(manifest_path)
    verdict = ExportVerdict(manifest=path)
    try:
        manifest = _load_manifest(path)
        data = _data_path(path, manifest)
        _check_file(data, manifest.raw["file"])
        verdict.rows, verdict.chains = _check_rows(data, manifest)
        if not offline:
            _check_database(manifest)
            verdict.database_checked = True
    except _Problem as exc:
        verdict.problem = str(exc)
    return verdict
