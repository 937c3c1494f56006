"""Fill every tenant's stored migration state from its history, as the console decides it from now on
(tenants.migration_state.decide; migrations_engine.tenant_state gathers the same facts at run time)."""

from django.db import migrations

from tenants.migration_state import Readiness, RealRun, decide

REAL_MODES = ("pilot", "full", "rollback")
ENDED_UNFINISHED = ("failed", "errored", "cancelled")


def fill(apps, schema_editor):
    CustomerTenant = apps.get_model("tenants", "CustomerTenant")
    TenantConsent = apps.get_model("tenants", "TenantConsent")
    BreakGlassConfig = apps.get_model("tenants", "BreakGlassConfig")
    RunItem = apps.get_model("migrations_engine", "RunItem")
    AuditEvent = apps.get_model("migrations_engine", "AuditEvent")
    DriftFinding = apps.get_model("migrations_engine", "DriftFinding")
    for tenant in CustomerTenant.objects.all().iterator():
        rows = list(
            RunItem.objects.filter(tenant_id=tenant.pk, run__mode__in=REAL_MODES, started_at__isnull=False)
            .order_by("started_at", "pk")
            .values("pk", "run_id", "run__mode", "status", "failure_reason")
        )
        history = [
            RealRun(
                run_id=r["run_id"],
                mode=r["run__mode"],
                status=r["status"],
                wrote=r["status"] in ENDED_UNFINISHED
                and AuditEvent.objects.filter(
                    run_id=r["run_id"],
                    item_id=r["pk"],
                    kind="graph_write",
                    outcome__in=("succeeded", "unknown"),
                ).exists(),
                reason=r["failure_reason"] or "",
            )
            for r in rows
        ]
        consent = TenantConsent.objects.filter(tenant_id=tenant.pk).first()
        glass = BreakGlassConfig.objects.filter(tenant_id=tenant.pk).first()
        readiness = Readiness(
            census_status=tenant.census_status,
            census_message=tenant.census_message,
            licence=tenant.licence,
            consent_status=consent.status if consent else None,
            missing_roles=list(consent.missing_roles or []) if consent else [],
            break_glass=bool(glass and (glass.accounts or glass.group_id)),
        )
        drift_open = DriftFinding.objects.filter(tenant_id=tenant.pk, resolved_at__isnull=True).exists()
        decision = decide(history, readiness, drift_open)
        plan = (
            RunItem.objects.filter(tenant_id=tenant.pk, run__mode="plan", status="succeeded")
            .order_by("-finished_at", "-pk")
            .values("run_id", "finished_at", "plan_diff")
            .first()
        )
        CustomerTenant.objects.filter(pk=tenant.pk).update(
            migration_state=decision.state,
            migration_state_reason=decision.reason,
            migration_state_run_id=decision.run_id,
            last_plan_run_id=plan["run_id"] if plan else None,
            last_plan_at=plan["finished_at"] if plan else None,
            last_plan_changes=len(plan["plan_diff"] or []) if plan else None,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("migrations_engine", "0006_readiness_and_wave_options"),
        ("tenants", "0007_migration_state"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
