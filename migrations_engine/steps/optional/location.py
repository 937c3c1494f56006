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

from typing import Any

from django.core.exceptions import ValidationError

from migrations_engine.graph.resources import named_locations as locations
from migrations_engine.graph.resources import policies
from migrations_engine.graph.resources.named_locations import (
    IP_LOCATION,
    canonical,
    get_location,
    location_path,
    location_snapshot,
    range_item,
    range_items_of,
    ranges_of,
    same_ranges,
)
from migrations_engine.graph.resources.policy_kinds import referencing_policies, trusted_exclusions
from migrations_engine.runs.options import NAMED_LOCATION_NAME, parse_cidr
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.shared.legacy_settings import read_legacy
from migrations_engine.steps.shared.reconcile import create_ours, delete_ours, find_ours, reconcile

BETTER_PATTERN = (
    "Better: keep MFA required everywhere and use the trusted location for sign-in frequency instead "
    "(users there are re-asked less often, but every user registers and is asked)."
)


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
        return ctx.wait(locations.named(ctx.graph, name))

    def _create(self, ctx: StepContext, name: str, wanted: list[str], wait: float) -> dict[str, Any] | None:
        body = locations.new_location(name, wanted)
        if ctx.plan:
            ctx.diff(self.key, "create named location", location=name, trusted=True, ranges=wanted)
            ctx.wait(
                ctx.graph.write("POST", locations.NAMED_LOCATIONS, body=body, action="named_location.create")
            )
            return None
        ctx.save_state(named_location_before=None, named_location_create_attempted=True)
        location, answered = create_ours(
            ctx,
            locations.NAMED_LOCATIONS,
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
        body = {"isTrusted": True, "ipRanges": range_items_of(location) + [range_item(c) for c in missing]}
        if ctx.plan:
            ctx.diff(self.key, "update named location", location=name, add_ranges=missing, trust=untrusted)
        ctx.wait(
            locations.patch(
                ctx.graph,
                location["id"],
                body,
                action="named_location.update",
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
        excluding = trusted_exclusions(ctx.wait(policies.list_policies(ctx.graph)), location_id)
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
            users = referencing_policies(ctx.wait(policies.list_policies(ctx.graph)), location_id)
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
                    locations.patch(
                        ctx.graph,
                        location_id,
                        {"isTrusted": False},
                        action="named_location.untrust",
                        before={"isTrusted": True},
                    )
                )
            else:
                reconcile(ctx, "named_location.untrust", applied=True, evidence={"isTrusted": False})
            delete_ours(
                ctx,
                location_path(location_id),
                action="named_location.delete",
                target=location_id,
                before=location_snapshot(location),
            )
            return f"deleted the named location '{location.get('displayName')}' this run created"
        before = ctx.state.get("named_location_before") or {}
        if location is None:
            return "the named location no longer exists (deleted by someone): nothing to put back"
        same = same_ranges(before, location) and location.get("isTrusted") == before.get("isTrusted")
        reconcile(ctx, "named_location.restore", applied=same, evidence=location_snapshot(location))
        if same:
            return "the named location already has its previous ranges"
        body: dict[str, Any] = {"ipRanges": before.get("ipRanges") or []}
        if isinstance(before.get("isTrusted"), bool):
            body["isTrusted"] = before["isTrusted"]
        ctx.wait(
            locations.patch(
                ctx.graph,
                location_id,
                body,
                action="named_location.restore",
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
    if not same_ranges(before, location):
        return ["the named location's ranges differ from before the run"], ""
    if isinstance(before.get("isTrusted"), bool) and location.get("isTrusted") != before["isTrusted"]:
        return ["the named location's trust differs from before the run"], ""
    return [], "named location as before the run"
