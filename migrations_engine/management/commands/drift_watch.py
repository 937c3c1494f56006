"""`manage.py drift_watch [--tenant ID_OR_DOMAIN] [--wait]`: check migrated tenants for drift now.

Without --wait the checks run here, one tenant after another (no worker needed: cron-friendly). With
--wait they are queued as RQ jobs, as the scheduled watch queues them, and the command waits for the
workers to finish them. Either way it prints each tenant's findings and exits 0 when every checked
tenant is clean, 1 when drift was found, 2 when a check failed (or the tenant named cannot be checked).
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.choices import DriftCheckStatus
from migrations_engine.drift.services import NotCheckable, check_tenant, enqueue_drift_check
from migrations_engine.models import DriftCheck, DriftFinding
from migrations_engine.runs.migrated import migrated_item, migrated_tenants
from staff import roles
from staff.actors import actor_label
from staff.commands import acting, require_for_command
from tenants.access import can_access
from tenants.lookup import find_tenant


class Command(BaseCommand):
    help = "Check migrated tenants for drift now (per-user MFA, security defaults, the policy, break-glass)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="one tenant (id or domain); default: every migrated tenant")
        parser.add_argument("--wait", action="store_true", help="queue the checks for the workers and wait")
        parser.add_argument("--timeout", type=float, default=3600, help="--wait: give up after S seconds")
        parser.add_argument("--actor", default="cli", help="who to record as having run the checks")

    @acting
    def handle(self, *args, **options):
        actor = options["actor"]
        require_for_command(actor, roles.CENSUS)  # a drift check is a census of a migrated tenant
        options["actor"] = actor_label(actor)
        if options["tenant"]:
            tenant = find_tenant(options["tenant"])
            if tenant is None:
                raise CommandError(
                    f"No customer tenant with id or domain {options['tenant']!r}", returncode=2
                )
            if migrated_item(tenant) is None:
                raise CommandError(
                    f"{tenant.primary_domain} is not migrated: there is nothing to compare it with",
                    returncode=2,
                )
            tenants = [tenant]
        else:
            tenants = list(migrated_tenants().order_by("display_name"))
        if roles.is_person(actor):
            tenants = [tenant for tenant in tenants if can_access(actor, tenant)]
        if not tenants:
            self.stdout.write("No migrated tenants to check.")
            return
        if options["wait"]:
            checks = self._queued(tenants, options["actor"], options["timeout"])
        else:
            checks = {}
            for tenant in tenants:
                try:
                    checks[tenant.pk] = check_tenant(tenant, actor=options["actor"])
                except NotCheckable as exc:
                    self.stdout.write(f"{tenant.primary_domain}: skipped ({exc})")
        code = 0
        for tenant in tenants:
            check = checks.get(tenant.pk)
            if check is not None:
                code = max(code, self._report(tenant, check))
        sys.exit(code)

    def _queued(self, tenants, actor: str, timeout: float) -> dict[int, DriftCheck]:
        """Queue one check job per tenant and wait for them; the checks they recorded, by tenant."""
        from rq.job import JobStatus

        started = time.time()
        jobs = {tenant.pk: enqueue_drift_check(tenant.pk, actor=actor)[0] for tenant in tenants}
        done = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
        while any(job is not None and job.get_status(refresh=True) not in done for job in jobs.values()):
            if time.time() - started > timeout:
                raise CommandError(f"The checks did not finish within {timeout:.0f} s", returncode=2)
            time.sleep(1)
        checks = {}
        for tenant in tenants:
            job = jobs[tenant.pk]
            result = job.return_value() if job is not None else None
            if result and str(result).startswith(("skipped", "refused")):
                self.stdout.write(f"{tenant.primary_domain}: {result}")
            elif job is not None and job.get_status() == JobStatus.FAILED:
                self.stdout.write(
                    f"{tenant.primary_domain}: the check job failed (see the failed job registry)"
                )
                checks[tenant.pk] = DriftCheck(
                    tenant=tenant, status=DriftCheckStatus.ERROR, error="job failed"
                )
            else:
                check = DriftCheck.objects.filter(tenant=tenant).order_by("-started_at").first()
                if check is not None:
                    checks[tenant.pk] = check
        return checks

    def _report(self, tenant, check: DriftCheck) -> int:
        if check.status == DriftCheckStatus.ERROR:
            self.stdout.write(f"{tenant.primary_domain}: could not check: {check.error}")
            return 2
        findings = DriftFinding.objects.filter(tenant=tenant, resolved_at__isnull=True).order_by("kind")
        if check.status == DriftCheckStatus.CLEAN and not findings:
            self.stdout.write(f"{tenant.primary_domain}: no drift ({check.users_checked} users checked)")
            return 0
        self.stdout.write(f"{tenant.primary_domain}: drift ({check.users_checked} users checked)")
        for finding in findings:
            self.stdout.write(f"  - {finding.get_kind_display()}: {finding.summary}")
        return 1
