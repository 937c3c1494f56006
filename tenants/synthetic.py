"""A synthetic fleet for the console's scale checks: hundreds of tenants in every migration state, with
consent, census figures, a plan run for half of them and drift on the drifted ones. Used by the page
benchmark (bench/console_pages.py) and the browser tests of the fleet list; never by the product.
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from django.utils import timezone

from migrations_engine.models import DriftFinding, MigrationRun, RunItem
from tenants.models import CustomerTenant, TenantConsent

STATES = (
    ("not_started", 0.25), ("ready", 0.2), ("blocked", 0.15), ("migrating", 0.03), ("pilot_verified", 0.05),
    ("migrated", 0.22), ("migrated_drift", 0.04), ("rolled_back", 0.02), ("partly_rolled_back", 0.01),
    ("needs_attention", 0.03),
)  # fmt: skip
NAMES = (
    "Alpine", "Bluewater", "Cedar", "Delta", "Evergreen", "Falcon", "Granite", "Harbor", "Ironwood",
    "Juniper", "Keystone", "Lakeside", "Meridian", "Northstar", "Oakridge", "Pinnacle", "Quarry", "Redwood",
    "Summit", "Tidewater", "Upland", "Valley", "Westfield", "Yellowstone", "Zenith",
)  # fmt: skip
KINDS = ("Dental", "Legal", "Logistics", "Clinic", "Accounting", "Builders", "Foods", "Schools", "Realty")


def add_fleet(count: int, *, seed: int = 7) -> int:
    """Add `count` synthetic tenants with consent, census figures, a run each for half of them and drift
    on the drifted ones; returns how many were added. Bulk inserts: no signal recomputes their state."""
    rng = random.Random(seed)
    now = timezone.now()
    states, weights = zip(*STATES, strict=True)
    tenants = []
    for n in range(count):
        name = f"{rng.choice(NAMES)} {rng.choice(KINDS)} {n + 1}"
        users = rng.choice((8, 25, 60, 140, 400, 1200, 3500))
        state = rng.choices(states, weights)[0]
        migrated = state in ("migrated", "migrated_drift", "pilot_verified")
        on = 0 if migrated else rng.randint(0, users)
        known = users if rng.random() > 0.1 else 0
        tenants.append(
            CustomerTenant(
                tenant_id=uuid.UUID(int=rng.getrandbits(128)),
                primary_domain=f"{name.lower().replace(' ', '')}.onmicrosoft.com",
                display_name=name,
                census_status="ok" if state != "blocked" or rng.random() > 0.5 else "free",
                census_at=now - timedelta(minutes=rng.randint(1, 60 * 24 * 20)),
                licence=rng.choice(("p1", "p1", "p2", "free"))
                if state == "blocked"
                else rng.choice(("p1", "p2")),
                security_defaults=rng.random() < 0.3 and not migrated,
                ca_policy_count=rng.randint(0, 12),
                mfa_policy_state="enabled" if migrated else rng.choice(("none", "none", "disabled")),
                users_total=users,
                per_user_enabled=on // 2,
                per_user_enforced=on - on // 2,
                per_user_disabled=users - on,
                mfa_registered=rng.randint(known // 3, known) if known else None,
                registration_known=known,
                drift_detected=state == "migrated_drift",
                migration_state=state,
                migration_state_reason=f"synthetic: {state.replace('_', ' ')}",
                migration_state_at=now,
            )
        )
    CustomerTenant.objects.bulk_create(tenants, batch_size=500)
    tenants = list(CustomerTenant.objects.filter(display_name__in=[t.display_name for t in tenants]))
    TenantConsent.objects.bulk_create(
        [
            TenantConsent(
                tenant=t,
                status=rng.choice(("granted", "granted", "granted", "partial", "pending")),
                missing_roles=[],
            )
            for t in tenants
        ],
        batch_size=500,
    )
    run = MigrationRun.objects.create(mode="plan", status="succeeded", actor="bench", finished_at=now)
    RunItem.objects.bulk_create(
        [RunItem(run=run, tenant=t, status="succeeded") for t in tenants if rng.random() < 0.5],
        batch_size=500,
    )
    DriftFinding.objects.bulk_create(
        [
            DriftFinding(
                tenant=t,
                kind="security_defaults",
                summary="Security defaults are on again",
                first_seen_at=now,
                last_seen_at=now,
            )
            for t in tenants
            if t.drift_detected
        ]
    )
    return len(tenants)
