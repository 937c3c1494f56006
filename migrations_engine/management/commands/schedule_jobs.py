"""`manage.py schedule_jobs`: register every repeating job in rq-scheduler (migrations_engine.schedules)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from migrations_engine.schedules import ensure_all


class Command(BaseCommand):
    help = "Register the sweeper, wave tick, drift watch, audit exports and live waves in rq-scheduler."

    def handle(self, *args, **options):
        registered = ensure_all()
        self.stdout.write(f"Scheduled: {', '.join(registered)}")
