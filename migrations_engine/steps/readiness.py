"""The readiness gate, before any write: who will be asked to register, who may lose an app password or a
legacy client, and which Conditional Access policies already cover MFA or get in the way.

It reads the users the registration report lists as not MFA-registered onto the snapshot's user rows
(Graph filters them, `isMfaRegistered eq false`, page by page so memory stays flat; the whole report when
Graph refuses the filter), the last 30 days of sign-ins by legacy clients, the legacy MFA service settings
(undocumented; absent is fine) and the census's policy list. "Not MFA-registered" is what the report says:
a user it does not list (it leaves disabled accounts out) is not counted. In scope: the snapshot's enabled
users, break-glass accounts excluded, pilot members only in pilot mode. Disabled accounts (shared and room
mailboxes are created with sign-in blocked) are counted apart: they never sign in, so they never register.

A full run stops here when more than the threshold of in-scope users are not MFA-registered (run option
`readiness_max_unregistered_pct`, else READINESS_MAX_UNREGISTERED_PCT), unless it was started with a
`readiness_override` reason, which is recorded in the audit log. Plan and pilot runs only report.
The report is kept in the item's state (`readiness`) for the run page.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.graph.resources.audit_logs import microsoft_managed_ids
from migrations_engine.graph.resources.policy_kinds import describe_policies
from migrations_engine.models import TenantSnapshot, UserSnapshot
from migrations_engine.steps.base import Step, StepContext, StepFailed
from migrations_engine.steps.readiness_reads import NOT_READ, ReadinessReads, read_reports

SIGN_IN_DAYS = 30
LISTED = 50  # users named per list in the report (counts are exact)


def threshold(ctx: StepContext) -> float:
    value = ctx.settings.get("readiness_max_unregistered_pct")
    return float(settings.READINESS_MAX_UNREGISTERED_PCT if value in (None, "") else value)


class Readiness(Step):
    key = "readiness"
    title = "Readiness gate"
    prefetch_after = "check_licence"

    def run(self, ctx: StepContext) -> str:

        snapshot = TenantSnapshot.objects.get(item=ctx.item)
        in_scope = self._in_scope(ctx, snapshot)
        found: ReadinessReads = ctx.early(self)
        notes = list(found.notes)
        registration_read = self._mark_registration(snapshot, found)
        enabled = in_scope.filter(account_enabled=True)
        total = enabled.count()
        unregistered = enabled.filter(mfa_registered=False) if registration_read else enabled.none()
        unregistered_count = unregistered.count()
        pct = round(100.0 * unregistered_count / total, 1) if total else 0.0
        enforced = enabled.filter(per_user_state="enforced")
        if found.legacy is None:
            ctx.warn(f"Legacy clients not checked: {found.sign_ins_unreadable}.")
        legacy = found.legacy or {}
        ids = list(legacy)
        scoped: set[str] = set()
        for at in range(0, len(ids), 1000):
            scoped.update(in_scope.filter(user_id__in=ids[at : at + 1000]).values_list("user_id", flat=True))
        legacy_in_scope = {uid: info for uid, info in legacy.items() if uid in scoped}
        enforced_legacy = list(
            enforced.filter(user_id__in=list(legacy_in_scope)).values_list("upn", flat=True)[:LISTED]
        )
        app_passwords = None
        if found.legacy_settings is not None:
            app_passwords = (found.legacy_settings.get("appPasswords") or {}).get("isAllowed")
        managed_ids = found.managed_ids
        if not snapshot.policies:
            managed_ids = set()
        elif managed_ids is NOT_READ:  # the tenant had no policies when the reads began
            managed_ids = ctx.wait(microsoft_managed_ids(ctx.graph))
        if managed_ids is None:
            notes.append("directory audit log unreadable: Microsoft-managed policies recognised by name only")
        policies = describe_policies(snapshot.policies or [], managed_ids)
        report: dict[str, Any] = {
            "in_scope_enabled": total,
            "disabled_accounts": in_scope.filter(account_enabled=False).count(),
            "registration_read": registration_read,
            "unregistered": unregistered_count,
            "unregistered_pct": pct,
            "unregistered_users": list(unregistered.order_by("upn").values_list("upn", flat=True)[:LISTED]),
            "threshold_pct": threshold(ctx),
            "enforced": enforced.count(),
            "app_passwords_allowed": app_passwords,
            "legacy_sign_in_users": len(legacy_in_scope),
            "legacy_sign_ins": [
                {"upn": info["upn"], "clients": sorted(info["clients"])}
                for info in sorted(legacy_in_scope.values(), key=lambda i: i["upn"])[:LISTED]
            ],
            "enforced_with_legacy_clients": enforced_legacy,
            "policies": policies,
            "notes": notes,
        }
        warnings = self._warnings(report)
        report["warnings"] = warnings
        blocked = ctx.mode == "full" and registration_read and total and pct > report["threshold_pct"]
        override = str(ctx.settings.get("readiness_override") or "").strip()
        report["blocked"] = bool(blocked and not override)
        report["override"] = override if blocked else ""
        ctx.save_state(readiness=report)
        ctx.set_counters(
            readiness_unregistered=unregistered_count,
            readiness_legacy_clients=len(legacy_in_scope),
        )
        summary = (
            f"{unregistered_count} of {total} in-scope users not MFA-registered ({pct}%, threshold "
            f"{report['threshold_pct']:g}%); {len(legacy_in_scope)} use legacy clients "
            f"({len(enforced_legacy)} of them enforced); {len(policies['covering'])} policies already "
            f"require MFA, {len(policies['managed'])} Microsoft-managed"
        )
        if not registration_read:
            summary = "registration report unreadable: " + summary
        if warnings:
            summary += ". Warnings: " + " ".join(warnings)
        if blocked and not override:
            raise StepFailed(
                f"Readiness: {pct}% of in-scope users ({unregistered_count} of {total}) are not "
                f"MFA-registered, above the {report['threshold_pct']:g}% threshold: each would be asked to "
                "register at the next sign-in. Run a plan to list them, or start the run again with a "
                "higher threshold or an override reason. Nothing was changed."
            )
        if blocked and override:
            record_staff_action(
                actor=ctx.run.actor,
                action="readiness.overridden",
                tenant_id=ctx.tenant.pk,
                run_id=ctx.run.pk,
                detail={
                    "reason": override,
                    "unregistered_pct": pct,
                    "unregistered": unregistered_count,
                    "in_scope": total,
                    "threshold_pct": report["threshold_pct"],
                },
            )
            summary += f". Gate overridden: {override}"
        if ctx.plan and pct > report["threshold_pct"] and registration_read:
            ctx.diff(
                self.key,
                "a full run would stop at the readiness gate",
                unregistered_pct=pct,
                threshold_pct=report["threshold_pct"],
            )
        return summary

    def _in_scope(self, ctx: StepContext, snapshot):
        rows = snapshot.users.exclude(user_id__in=ctx.state.get("break_glass_ids") or [])
        if ctx.mode == "pilot":
            rows = rows.filter(user_id__in=ctx.state.get("pilot_member_ids") or [])
        return rows

    def reads(self, ctx: StepContext) -> Coroutine[Any, Any, ReadinessReads]:
        """The reports this gate reads (readiness_reads.py), started as soon as the licence is checked, so
        that they overlap the census. The directory audits are asked only when the tenant's last census
        saw policies (or none was taken); otherwise the step asks them itself if its snapshot has any."""
        since = (datetime.now(UTC) - timedelta(days=SIGN_IN_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return read_reports(ctx.graph, since, with_audits=ctx.tenant.ca_policy_count != 0)

    @staticmethod
    def _mark_registration(snapshot, found: ReadinessReads) -> bool:
        """Mark the snapshot rows the report listed (False: not MFA-registered; True: registered, known
        only when Graph refused the filter and the whole report was read); False when it was unreadable."""
        snapshot.users.update(mfa_registered=None)
        if found.unregistered is None or found.registered is None:
            return False
        for flag, ids in ((True, found.registered), (False, found.unregistered)):
            for at in range(0, len(ids), 1000):
                UserSnapshot.objects.filter(snapshot=snapshot, user_id__in=ids[at : at + 1000]).update(
                    mfa_registered=flag
                )
        return True

    @staticmethod
    def _warnings(report: dict[str, Any]) -> list[str]:
        warnings = []
        if report["enforced_with_legacy_clients"]:
            warnings.append(
                f"{len(report['enforced_with_legacy_clients'])} enforced users sign in with legacy clients "
                "(app passwords or basic auth): those clients stop working once per-user MFA is off."
            )
        if report["app_passwords_allowed"]:
            warnings.append(
                "App passwords are allowed in the MFA service settings: they only work with per-user MFA "
                "and stop working after the move."
            )
        for policy in report["policies"]["trusted_location_exclusions"]:
            warnings.append(
                f"Policy '{policy['displayName']}' excludes trusted locations from MFA: users there are "
                "never asked to register. Prefer MFA everywhere and use the location for sign-in frequency."
            )
        for policy in report["policies"]["blocking"]:
            warnings.append(
                f"Policy '{policy['displayName']}' blocks access for all users ({policy['state']})."
            )
        return warnings
