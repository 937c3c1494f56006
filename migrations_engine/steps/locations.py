"""Trusted IPs → a Conditional Access named location (the article series' part 2; optional, run option
`named_location`), and its rollback.

The legacy MFA service settings (`GET /beta/policies/mfaServicePolicy`) are undocumented: when Graph does
not serve them, or answers in a shape we do not know, the step uses the ranges staff typed and says so.
Every range read there is validated like a typed one; bad ones are skipped and named.

Ownership: the location is ours by display name (one `ipNamedLocation`; two of that name stop for a
human). Created here → `named_location_created`, and a rollback deletes it (unless a policy refers to
it). Found → adopted, its previous ranges and trust are snapshotted in `named_location_before` before any
write, and a rollback puts them back. Ranges are merged as a union: ranges already in the location stay,
the run's ranges are added, nothing is ever dropped (removing a range is a human's decision).

A policy that excludes trusted locations from an MFA grant lets users there sign in without ever being
asked to register MFA: the step warns about every such policy (and never puts such an exclusion in ours).
The better pattern: MFA everywhere, the trusted location for sign-in frequency instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ValidationError

from migrations_engine.graph import GraphClient
from migrations_engine.runs.options import NAMED_LOCATION_NAME, parse_cidr
from migrations_engine.steps import graph_reads as reads
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.policy_kinds import asks_mfa
from migrations_engine.steps.reconcile import create_ours, delete_ours, find_ours, reconcile

NAMED_LOCATIONS = "/identity/conditionalAccess/namedLocations"
IP_LOCATION = "#microsoft.graph.ipNamedLocation"
IPV4_RANGE, IPV6_RANGE = "#microsoft.graph.iPv4CidrRange", "#microsoft.graph.iPv6CidrRange"
BETTER_PATTERN = (
    "Better: keep MFA required everywhere and use the trusted location for sign-in frequency instead "
    "(users there are re-asked less often, but every user registers and is asked)."
)


# --- the legacy MFA service settings -------------------------------------------------------------


@dataclass
class LegacySettings:
    """What the undocumented `mfaServicePolicy` said (or why it said nothing usable)."""

    read: bool = False
    reason: str = ""  # why nothing was read, when `read` is False
    trusted_ips_enabled: bool | None = None
    trusted_ips: list[str] = field(default_factory=list)  # validated CIDRs
    bad_ranges: list[str] = field(default_factory=list)  # why each unusable entry was skipped
    remember_enabled: bool | None = None
    remember_days: int | None = None
    skip_federated: bool | None = None
    app_passwords_allowed: bool | None = None

    def summary(self) -> dict[str, Any]:
        """For the item's state (the run page shows it)."""
        return {
            "read": self.read,
            "reason": self.reason,
            "trusted_ips_enabled": self.trusted_ips_enabled,
            "trusted_ips": self.trusted_ips,
            "bad_ranges": self.bad_ranges,
            "remember_mfa_enabled": self.remember_enabled,
            "remember_mfa_days": self.remember_days,
            "skip_mfa_for_federated_users": self.skip_federated,
            "app_passwords_allowed": self.app_passwords_allowed,
        }


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_legacy(body: Any) -> LegacySettings:
    """Parse the answer defensively: every field may be missing or of another shape."""
    if body is None:
        return LegacySettings(
            reason="Graph does not serve /beta/policies/mfaServicePolicy for this tenant (it is "
            "undocumented; 400/403/404)"
        )
    known = ("trustedIps", "rememberMfaOnTrustedDevices", "appPasswords", "skipMfaForFederatedUsers")
    if not isinstance(body, dict) or not any(key in body for key in known):
        return LegacySettings(reason="its answer has none of the fields we know (an unknown shape)")
    out = LegacySettings(read=True, skip_federated=_flag(body.get("skipMfaForFederatedUsers")))
    trusted = body.get("trustedIps")
    if isinstance(trusted, dict):
        out.trusted_ips_enabled = _flag(trusted.get("isEnabled"))
        ranges = trusted.get("ipRanges")
        if ranges is not None and not isinstance(ranges, list):
            out.bad_ranges.append("trustedIps.ipRanges is not a list: ignored")
            ranges = []
        for entry in ranges or []:
            raw = entry.get("cidrAddress") if isinstance(entry, dict) else entry
            if not isinstance(raw, str):
                out.bad_ranges.append(f"{str(entry)[:80]!r} is not a CIDR range")
                continue
            try:
                cidr = parse_cidr(raw)
            except ValidationError as exc:
                out.bad_ranges.append(" ".join(exc.messages))
                continue
            if cidr not in out.trusted_ips:
                out.trusted_ips.append(cidr)
    elif trusted is not None:
        out.bad_ranges.append("trustedIps has an unknown shape: ignored")
    remember = body.get("rememberMfaOnTrustedDevices")
    if isinstance(remember, dict):
        out.remember_enabled = _flag(remember.get("isEnabled"))
        days = remember.get("days")
        if isinstance(days, str) and days.strip().isdigit():
            days = int(days)
        out.remember_days = days if isinstance(days, int) and not isinstance(days, bool) else None
    app_passwords = body.get("appPasswords")
    if isinstance(app_passwords, dict):
        out.app_passwords_allowed = _flag(app_passwords.get("isAllowed"))
    return out


def read_legacy(ctx: StepContext) -> LegacySettings:
    """Read and parse the legacy settings and keep the summary in the item's state."""
    legacy = parse_legacy(ctx.wait(reads.legacy_mfa_settings(ctx.graph)))
    ctx.save_state(legacy_mfa_settings=legacy.summary())
    return legacy


# --- named location reads and shapes --------------------------------------------------------------


def canonical(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(str(cidr).strip(), strict=False))
    except ValueError:
        return str(cidr).strip().lower()


def range_item(cidr: str) -> dict[str, str]:
    version = ipaddress.ip_network(cidr, strict=False).version
    return {"@odata.type": IPV4_RANGE if version == 4 else IPV6_RANGE, "cidrAddress": cidr}


def ranges_of(location: dict[str, Any] | None) -> list[str]:
    return [
        str(r.get("cidrAddress"))
        for r in (location or {}).get("ipRanges") or []
        if isinstance(r, dict) and r.get("cidrAddress")
    ]


def range_items_of(location: dict[str, Any]) -> list[dict[str, Any]]:
    """The location's ranges as Graph wants them back (each with its @odata.type)."""
    items = []
    for entry in location.get("ipRanges") or []:
        if not isinstance(entry, dict) or not entry.get("cidrAddress"):
            continue
        item = {k: v for k, v in entry.items() if k in ("@odata.type", "cidrAddress")}
        if "@odata.type" not in item:
            try:
                item["@odata.type"] = range_item(item["cidrAddress"])["@odata.type"]
            except ValueError:
                continue
        items.append(item)
    return items


def location_snapshot(location: dict[str, Any]) -> dict[str, Any]:
    """What a rollback puts back (and the drift watch compares)."""
    return {
        "id": location.get("id"),
        "displayName": location.get("displayName"),
        "isTrusted": location.get("isTrusted"),
        "ipRanges": range_items_of(location),
    }


async def list_locations(graph: GraphClient) -> list[dict[str, Any]]:
    return await reads.list_all(graph, NAMED_LOCATIONS)


async def get_location(graph: GraphClient, location_id: str, *, wait_seconds: float = 0) -> dict | None:
    """A named location by id (see `graph_reads.get_after_create`)."""
    path = f"{NAMED_LOCATIONS}/{quote(location_id)}"
    return await reads.get_after_create(graph, path, wait_seconds=wait_seconds)


def referencing_policies(policies: list[dict[str, Any]], location_id: str) -> list[dict[str, Any]]:
    """Policies whose location condition names the location (included or excluded)."""
    found = []
    for policy in policies:
        locations = (policy.get("conditions") or {}).get("locations") or {}
        if location_id in (locations.get("includeLocations") or []) + (
            locations.get("excludeLocations") or []
        ):
            found.append(policy)
    return found


def trusted_exclusions(policies: list[dict[str, Any]], location_id: str | None) -> list[dict[str, Any]]:
    """MFA policies that exclude trusted locations ("AllTrusted", or this location by id)."""
    hits = []
    for policy in policies:
        excluded = set(
            ((policy.get("conditions") or {}).get("locations") or {}).get("excludeLocations") or []
        )
        if asks_mfa(policy) and ("AllTrusted" in excluded or (location_id and location_id in excluded)):
            hits.append(policy)
    return hits


def exclusion_warning(policy: dict[str, Any], main_policy_id: str | None) -> str:
    which = "the MFA policy this run adopted" if policy.get("id") == main_policy_id else "policy"
    return (
        f"WARNING: {which} '{policy.get('displayName')}' ({policy.get('state')}) excludes trusted "
        "locations from its MFA grant: users signing in from the trusted IP ranges are never asked for "
        "MFA, so they never register it. " + BETTER_PATTERN
    )


# --- the forward step -----------------------------------------------------------------------------


class NamedLocation(Step):
    """Create or update one trusted `ipNamedLocation` from the typed ranges and/or the legacy trusted IPs."""

    writes = True
    key = "named_location"
    title = "Trusted IPs → named location"

    def run(self, ctx: StepContext) -> str:
        option = ctx.settings.get("named_location")
        if not option:
            return "off (no named location asked for)"
        wait = float(ctx.settings.get("replication_wait_seconds", 60))
        name = str(option.get("display_name") or NAMED_LOCATION_NAME)
        notes: list[str] = []
        wanted = self._wanted_ranges(ctx, option, notes)
        location = self._ours(ctx, name, wait)
        if location is None:
            location = self._create(ctx, name, wanted, wait)
            if location is None:  # plan mode
                done = f"would create the trusted named location '{name}' with {self._count(wanted)}"
                return self._finish(ctx, None, done, notes)
            done = f"created the trusted named location '{name}' with {self._count(wanted)}"
        else:
            done = self._update(ctx, location, wanted)
        if ctx.plan:
            return self._finish(ctx, location.get("id"), done, notes)
        readback = ctx.wait(get_location(ctx.graph, location["id"], wait_seconds=wait))
        if readback is None:
            raise StepFailed(f"The named location {location['id']} cannot be read back yet", retryable=True)
        have = {canonical(c) for c in ranges_of(readback)}
        lacking = [c for c in wanted if canonical(c) not in have]
        if lacking or readback.get("isTrusted") is not True:
            raise StepFailed(
                f"The named location does not read back as trusted with every range yet (missing: "
                f"{', '.join(lacking) or 'none'}; isTrusted {readback.get('isTrusted')})",
                retryable=True,
            )
        ctx.save_state(named_location_ranges=ranges_of(readback))
        ctx.set_counters(named_location_ranges=len(ranges_of(readback)))
        return self._finish(ctx, readback["id"], done, notes)

    @staticmethod
    def _count(cidrs: list[str]) -> str:
        v6 = sum(1 for c in cidrs if ":" in c)
        return f"{len(cidrs)} ranges ({len(cidrs) - v6} IPv4, {v6} IPv6)"

    def _wanted_ranges(self, ctx: StepContext, option: dict[str, Any], notes: list[str]) -> list[str]:
        wanted: list[str] = []
        for raw in option.get("cidrs") or []:  # validated when the run was started; checked again
            try:
                cidr = parse_cidr(str(raw))
            except ValidationError as exc:
                raise StepFailed("Bad IP range in the run's options: " + " ".join(exc.messages)) from exc
            if cidr not in wanted:
                wanted.append(cidr)
        if option.get("from_legacy"):
            legacy = read_legacy(ctx)
            if not legacy.read:
                notes.append(
                    f"MFA service settings not read ({legacy.reason}): using the {len(wanted)} typed ranges "
                    "only"
                )
            elif legacy.trusted_ips and legacy.trusted_ips_enabled is False:
                notes.append(
                    f"trusted IPs are switched off in the MFA service settings: their "
                    f"{len(legacy.trusted_ips)} ranges were not imported"
                )
            else:
                added = [c for c in legacy.trusted_ips if c not in wanted]
                wanted.extend(added)
                notes.append(f"{len(added)} ranges from the MFA service settings' trusted IPs")
            if legacy.bad_ranges:
                skipped = (
                    f"skipped {len(legacy.bad_ranges)} unusable trusted-IP entries of the MFA service "
                    "settings: " + "; ".join(legacy.bad_ranges[:10])
                )
                notes.append(skipped)
                ctx.warn(skipped)
        if not wanted:
            raise StepFailed(
                "No IP range for the named location: the MFA service settings gave none "
                + (f"({notes[-1]})" if notes else "")
                + ". Give the trusted ranges (CIDR) in the run's options."
            )
        return wanted

    def _ours(self, ctx: StepContext, name: str, wait: float) -> dict[str, Any] | None:
        """The location this run made or adopted (by id), or the one of our name (adopted), or None."""
        by_id = bool(ctx.state.get("named_location_id"))
        location = find_ours(
            ctx,
            what="named location",
            name=name,
            id_key="named_location_id",
            attempted_key="named_location_create_attempted",
            action="named_location.create",
            get=lambda lid: ctx.wait(get_location(ctx.graph, lid, wait_seconds=wait)),
            named=lambda: self._named(ctx, name),
            wait=wait,
        )
        if by_id or location is None:
            return location
        if location.get("@odata.type") != IP_LOCATION:
            raise StepFailed(
                f"The named location '{name}' ({location.get('id')}) is not an IP range location "
                f"({location.get('@odata.type')}): rename it or choose another name. Nothing was changed."
            )
        if not ctx.plan:
            made_here = ctx.state.get("named_location_create_attempted") and (
                ctx.state.get("named_location_before", "") is None
            )
            changes: dict[str, Any] = {
                "named_location_id": location["id"],
                "named_location_created": made_here,
            }
            if "named_location_before" not in ctx.state:
                changes["named_location_before"] = location_snapshot(location)
            ctx.save_state(**changes)
        else:
            ctx.diff(self.key, "adopt named location", location=name, id=location.get("id"))
        return location

    def _named(self, ctx: StepContext, name: str) -> list[dict[str, Any]]:
        return [loc for loc in ctx.wait(list_locations(ctx.graph)) if loc.get("displayName") == name]

    def _create(self, ctx: StepContext, name: str, wanted: list[str], wait: float) -> dict[str, Any] | None:
        body = {
            "@odata.type": IP_LOCATION,
            "displayName": name,
            "isTrusted": True,
            "ipRanges": [range_item(c) for c in wanted],
        }
        if ctx.plan:
            ctx.diff(self.key, "create named location", location=name, trusted=True, ranges=wanted)
            ctx.wait(ctx.graph.write("POST", NAMED_LOCATIONS, body=body, action="named_location.create"))
            return None
        ctx.save_state(named_location_before=None, named_location_create_attempted=True)
        location, answered = create_ours(
            ctx,
            NAMED_LOCATIONS,
            body,
            action="named_location.create",
            target=name,
            what="the named location",
            find=lambda: self._ours(ctx, name, wait),  # lists (waiting out the lag) and reconciles
            wait=wait,
        )
        if not answered:
            return location
        ctx.save_state(named_location_id=location["id"], named_location_created=True)
        return location

    def _update(self, ctx: StepContext, location: dict[str, Any], wanted: list[str]) -> str:
        """Add the missing ranges (a union: none removed) and trust the location; check-then-act."""
        have = {canonical(c) for c in ranges_of(location)}
        missing = [c for c in wanted if canonical(c) not in have]
        untrusted = location.get("isTrusted") is not True
        name = location.get("displayName")
        if not ctx.plan:
            reconcile(
                ctx,
                "named_location.update",
                applied=not (missing or untrusted),
                evidence={"ipRanges": ranges_of(location), "isTrusted": location.get("isTrusted")},
            )
        if not missing and not untrusted:
            return f"the named location '{name}' is trusted and has every range ({len(have)} in all)"
        body = {
            "@odata.type": IP_LOCATION,
            "isTrusted": True,
            "ipRanges": range_items_of(location) + [range_item(c) for c in missing],
        }
        if ctx.plan:
            ctx.diff(self.key, "update named location", location=name, add_ranges=missing, trust=untrusted)
        ctx.wait(
            ctx.graph.write(
                "PATCH",
                f"{NAMED_LOCATIONS}/{location['id']}",
                body=body,
                action="named_location.update",
                target=location["id"],
                before=location_snapshot(location),
            )
        )
        verb = "would update" if ctx.plan else "updated"
        return (
            f"{verb} the named location '{name}': "
            + (f"{len(missing)} ranges added to its {len(have)} (none removed)" if missing else "")
            + ("; " if missing and untrusted else "")
            + ("marked trusted (policies that use 'AllTrusted' now include it)" if untrusted else "")
        )

    def _finish(self, ctx: StepContext, location_id: str | None, done: str, notes: list[str]) -> str:
        policies = ctx.wait(reads.list_policies(ctx.graph))
        excluding = trusted_exclusions(policies, location_id)
        for policy in excluding:
            ctx.warn(exclusion_warning(policy, ctx.state.get("policy_id")))
        if not ctx.plan:
            ctx.set_counters(trusted_location_exclusions=len(excluding))
        parts = [done, *notes]
        if excluding:
            parts.append(
                f"WARNING: {len(excluding)} MFA policies exclude trusted locations ("
                + ", ".join(f"'{p.get('displayName')}'" for p in excluding)
                + "): users there never get asked to register MFA. "
                + BETTER_PATTERN
            )
        return "; ".join(parts)


# --- verify and rollback --------------------------------------------------------------------------


def location_check(ctx: StepContext) -> tuple[list[str], str, dict[str, Any]]:
    """For Verify: (pending, verdict part, what to remember for the drift watch)."""
    option = ctx.settings.get("named_location")
    location_id = ctx.state.get("named_location_id")
    if not option or not location_id:
        return [], "", {}
    location = ctx.wait(get_location(ctx.graph, location_id))
    if location is None:
        return ["named location: gone"], "", {}
    wanted = ctx.state.get("named_location_ranges") or []
    have = {canonical(c) for c in ranges_of(location)}
    pending = []
    if location.get("isTrusted") is not True:
        pending.append("named location: not trusted")
    lacking = [c for c in wanted if canonical(c) not in have]
    if lacking:
        pending.append(f"named location: {len(lacking)} ranges missing")
    verdict = f"named location '{location.get('displayName')}' trusted with {len(have)} ranges"
    return pending, verdict, {"named_location_baseline": location_snapshot(location)}


class RestoreNamedLocation(Step):
    """Put the named location back: deleted if this run created it (once no policy refers to it), its
    previous ranges and trust restored if it was adopted."""

    key = "restore_named_location"
    title = "Named location back"

    def run(self, ctx: StepContext) -> str:
        location_id = ctx.state.get("named_location_id")
        if not location_id:
            return "the run made or adopted no named location"
        location = ctx.wait(get_location(ctx.graph, location_id))
        if ctx.state.get("named_location_created"):
            reconcile(
                ctx, "named_location.delete", applied=location is None, evidence={"found": bool(location)}
            )
            if location is None:
                return "the named location is already gone"
            users = referencing_policies(ctx.wait(reads.list_policies(ctx.graph)), location_id)
            if users:
                names = ", ".join(f"'{p.get('displayName')}'" for p in users)
                ctx.warn(
                    f"The named location '{location.get('displayName')}' this run created was left in place: "
                    f"{names} refer to it. Delete it by hand once they no longer do."
                )
                ctx.save_state(named_location_left=[p.get("id") for p in users])
                return f"left in place: {names} refer to it"
            if location.get("isTrusted"):
                # Documented: a trusted location can't be deleted before its trusted mark is removed.
                reconcile(ctx, "named_location.untrust", applied=False, evidence={"isTrusted": True})
                ctx.wait(
                    ctx.graph.write(
                        "PATCH",
                        f"{NAMED_LOCATIONS}/{location_id}",
                        body={"@odata.type": IP_LOCATION, "isTrusted": False},
                        action="named_location.untrust",
                        target=location_id,
                        before={"isTrusted": True},
                    )
                )
            else:
                reconcile(ctx, "named_location.untrust", applied=True, evidence={"isTrusted": False})
            delete_ours(
                ctx,
                f"{NAMED_LOCATIONS}/{location_id}",
                action="named_location.delete",
                target=location_id,
                before=location_snapshot(location),
            )
            return f"deleted the named location '{location.get('displayName')}' this run created"
        before = ctx.state.get("named_location_before") or {}
        if location is None:
            return "the named location no longer exists (deleted by someone): nothing to put back"
        same = {canonical(c) for c in ranges_of(before)} == {canonical(c) for c in ranges_of(location)} and (
            location.get("isTrusted") == before.get("isTrusted")
        )
        reconcile(ctx, "named_location.restore", applied=same, evidence=location_snapshot(location))
        if same:
            return "the named location already has its previous ranges"
        body: dict[str, Any] = {"@odata.type": IP_LOCATION, "ipRanges": before.get("ipRanges") or []}
        if isinstance(before.get("isTrusted"), bool):
            body["isTrusted"] = before["isTrusted"]
        ctx.wait(
            ctx.graph.write(
                "PATCH",
                f"{NAMED_LOCATIONS}/{location_id}",
                body=body,
                action="named_location.restore",
                target=location_id,
                before=location_snapshot(location),
            )
        )
        return f"the named location's previous {len(ranges_of(before))} ranges put back"


def location_rollback_pending(ctx: StepContext) -> tuple[list[str], str]:
    """For VerifyRollback: (pending, verdict part)."""
    location_id = ctx.state.get("named_location_id")
    if not location_id:
        return [], ""
    location = ctx.wait(get_location(ctx.graph, location_id))
    if ctx.state.get("named_location_created"):
        if location is None:
            return [], "named location deleted"
        if ctx.state.get("named_location_left"):
            return [], "named location left in place (policies refer to it)"
        return ["the named location this run created still exists"], ""
    if location is None:
        return [], "named location gone (deleted by someone)"
    before = ctx.state.get("named_location_before") or {}
    if {canonical(c) for c in ranges_of(before)} != {canonical(c) for c in ranges_of(location)}:
        return ["the named location's ranges differ from before the run"], ""
    if isinstance(before.get("isTrusted"), bool) and location.get("isTrusted") != before["isTrusted"]:
        return ["the named location's trust differs from before the run"], ""
    return [], "named location as before the run"
