"""Step 5: fail closed. Without the configured emergency accounts resolved and enabled, nothing is written."""

from __future__ import annotations

from typing import Any

from migrations_engine.graph.resources.users import group_members, resolve_break_glass
from migrations_engine.steps.base import Step, StepContext, StepFailed
from tenants.validators import break_glass_problems, describe_problems


class GuardBreakGlass(Step):
    """Fail closed: without the configured emergency accounts resolved and enabled, nothing is written."""

    key = "guard_break_glass"
    title = "Break-glass guard"

    def run(self, ctx: StepContext) -> str:
        config = getattr(ctx.tenant, "break_glass", None)
        if config is not None and (problems := break_glass_problems(config.accounts, config.minimum_count)):
            # A row written around the model's checks: say what is wrong, rather than guess what it meant.
            raise StepFailed(
                f"The break-glass configuration cannot be used ({describe_problems(problems)}): correct it "
                "on the tenant's page. No change was made."
            )
        if config is None or (not config.accounts and not config.group_id):
            raise StepFailed(
                "No break-glass accounts are configured for this tenant: add them first. No change was made."
            )
        found, missing = ctx.wait(
            resolve_break_glass(
                ctx.graph, list(config.accounts), str(config.group_id) if config.group_id else None
            )
        )
        enabled = [u for u in found.values() if u.get("accountEnabled", True)]
        disabled = [u.get("userPrincipalName") for u in found.values() if not u.get("accountEnabled", True)]
        if len(enabled) < config.minimum_count:
            detail = []
            if missing:
                detail.append("not found: " + ", ".join(missing))
            if disabled:
                detail.append("disabled: " + ", ".join(disabled))
            raise StepFailed(
                f"Only {len(enabled)} break-glass accounts resolve and are enabled; {config.minimum_count} "
                f"required ({'; '.join(detail) or 'none configured resolve'}). No change was made."
            )
        changes: dict[str, Any] = {
            "break_glass_ids": sorted(found),
            "break_glass_upns": sorted(u.get("userPrincipalName", "") for u in found.values()),
            "break_glass_group": str(config.group_id) if config.group_id else None,
        }
        if ctx.mode == "pilot":
            members = ctx.wait(group_members(ctx.graph, str(ctx.run.pilot_group_id)))
            if members is None:
                raise StepFailed(f"The pilot group {ctx.run.pilot_group_id} does not exist in this tenant")
            changes["pilot_member_ids"] = sorted(m["id"] for m in members if m["id"] not in found)
        ctx.save_state(**changes)
        note = f"; {len(missing)} configured entries not found" if missing else ""
        return f"{len(enabled)} break-glass accounts resolved and excluded{note}"
