"""`manage.py wave`: create, list, show, pause, resume and cancel scheduled waves; `tick` moves them now.

    manage.py wave create --name "Ring A" --mode full --tenants a.com,b.com --time-zone Europe/London \
        --start 2026-12-01T22:00 --window-minutes 240 --concurrency 5 --rings 2 --ring-delay-days 2
    manage.py wave create --name "All P2" --mode plan --licence p2 --tag smb --min-users 10 ...
    manage.py wave list | show NAME_OR_ID | pause NAME_OR_ID | resume NAME_OR_ID | cancel NAME_OR_ID
"""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import dateparse, timezone

from migrations_engine.models import Wave
from migrations_engine.runs.options_form import add_cli_arguments, cli_options
from migrations_engine.waves import services as waves
from msp_console.words import counted
from staff.commands import acting
from tenants.choices import LicenceTier
from tenants.lookup import find_tenant
from tenants.models import CustomerTenant, Tag


def find_wave(wanted: str) -> Wave:
    wanted = (wanted or "").strip()
    wave = Wave.objects.filter(pk=int(wanted)).first() if wanted.isdigit() else None
    wave = wave or Wave.objects.filter(name=wanted).first()
    if wave is None:
        raise CommandError(f"No wave with id or name {wanted!r}")
    return wave


def _tenants(names: str) -> list[CustomerTenant]:
    tenants = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        tenant = find_tenant(name)
        if tenant is None:
            raise CommandError(f"No customer tenant with id or domain {name!r}; nothing was created")
        tenants.append(tenant)
    return tenants


def _local(value: str) -> datetime.datetime:
    try:
        moment = dateparse.parse_datetime(value)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--start {value!r} is not an ISO date and time (e.g. 2026-12-01T22:00)")
    return moment


def describe(wave: Wave, now: datetime.datetime) -> str:
    fire = wave.next_fire_at
    when = "—" if fire is None else ("now" if fire <= now else fire.astimezone(waves.zone(wave.time_zone)))
    return (
        f"#{wave.pk} {wave.name!r}: {wave.get_mode_display()}, {wave.get_status_display()}, "
        f"ring {wave.current_ring + 1} of {waves.ring_count(wave)}, next fire {when}"
    )


class Command(BaseCommand):
    help = "Scheduled waves: create, list, show, pause, resume, cancel, tick."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a wave")
        create.add_argument("--name", required=True)
        create.add_argument("--mode", required=True, choices=["plan", "pilot", "full"])
        create.add_argument("--pilot-group", help="pilot mode: the pilot group's object id")
        create.add_argument("--tenants", help="comma-separated tenant ids or domains")
        create.add_argument("--licence", choices=[c for c in LicenceTier.values if c != LicenceTier.UNKNOWN])
        create.add_argument("--tag", help="tenants carrying this tag")
        create.add_argument("--min-users", type=int)
        create.add_argument("--max-users", type=int)
        create.add_argument("--time-zone", required=True, help="IANA name, e.g. Europe/London")
        create.add_argument("--start", required=True, help="first window's start, local wall-clock time")
        create.add_argument("--window-minutes", type=int, default=240)
        create.add_argument("--repeat-days", type=int, default=1)
        create.add_argument("--concurrency", type=int, default=10)
        create.add_argument("--rings", type=int, default=1, help="how many rings (ring 1 is the pilot ring)")
        create.add_argument("--pilot", help="comma-separated tenants forming the pilot ring")
        create.add_argument("--ring-delay-days", type=int, default=1)
        create.add_argument("--actor", default="cli")
        add_cli_arguments(create)
        sub.add_parser("list", help="every wave with its next fire time")
        for name in ("show", "pause", "cancel"):
            sub.add_parser(name).add_argument("wave", help="id or name")
        resume = sub.add_parser("resume")
        resume.add_argument("wave", help="id or name")
        resume.add_argument(
            "--accept-failures", metavar="REASON", help="go on to the next ring despite failures"
        )
        tick = sub.add_parser("tick", help="move every live wave (or one) now, as the scheduler would")
        tick.add_argument("wave", nargs="?")
        for name in ("pause", "cancel", "resume"):
            sub.choices[name].add_argument("--actor", default="cli")

    @acting
    def handle(self, *args, **options):
        action = options["action"]
        try:
            getattr(self, f"_{action}")(options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

    def _create(self, options):
        filters = {
            k: options[k] for k in ("licence", "tag", "min_users", "max_users") if options[k] is not None
        }
        if options["tenants"] and filters:
            raise CommandError(
                "Name the tenants or give filters (--licence/--tag/--min-users/--max-users), not both"
            )
        if options["tenants"]:
            tenants = _tenants(options["tenants"])
            selection = {"tenants": [t.primary_domain for t in tenants]}
        elif filters:
            tag = filters.get("tag")
            if tag and not Tag.objects.filter(name=tag).exists():
                raise CommandError(f"No tag named {tag!r}; nothing was created")
            # The command line acts for the operator, who may act on every tenant (like `start_run --all`).
            tenants = list(waves.tenants_by_filter(None, **filters))
            selection = {"filter": filters, "matched": [t.primary_domain for t in tenants]}
        else:
            raise CommandError(
                "Choose tenants with --tenants, or filters (--licence/--tag/--min-users/--max-users)"
            )
        wave = waves.create_wave(
            name=options["name"],
            mode=options["mode"],
            tenants=tenants,
            time_zone=options["time_zone"],
            starts_at=_local(options["start"]),
            window_minutes=options["window_minutes"],
            repeat_days=options["repeat_days"],
            concurrency=options["concurrency"],
            rings=options["rings"],
            pilot_tenants=_tenants(options["pilot"]) if options["pilot"] else (),
            ring_delay_days=options["ring_delay_days"],
            pilot_group_id=options["pilot_group"],
            selection=selection,
            options=cli_options(options),
            actor=options["actor"],
        )
        self.stdout.write(f"Created {describe(wave, timezone.now())}, {counted(len(tenants), 'tenant')}")

    def _list(self, options):
        now = timezone.now()
        for wave in Wave.objects.order_by("pk"):
            self.stdout.write(describe(wave, now))

    def _show(self, options):
        wave = find_wave(options["wave"])
        now = timezone.now()
        self.stdout.write(describe(wave, now))
        if wave.status_message:
            self.stdout.write(f"  {wave.status_message}")
        tz = waves.zone(wave.time_zone)
        win = waves.window(wave, 0)
        self.stdout.write(
            f"  windows: from {win.start.astimezone(tz):%Y-%m-%d %H:%M %Z}, {wave.window_minutes} min, "
            f"every {wave.repeat_days} day(s); concurrency {wave.concurrency}; "
            f"rings {wave.ring_delay_days} day(s) apart"
        )
        for member in wave.members.select_related("tenant"):
            note = f" ({member.skipped_reason})" if member.skipped_reason else ""
            self.stdout.write(f"  ring {member.ring + 1}: {member.tenant.primary_domain}{note}")
        for slot in wave.slots.all():
            self.stdout.write(
                f"  slot {slot.slot} fired {slot.fired_at:%Y-%m-%d %H:%M:%S} by {slot.fired_by}: "
                f"run {slot.run_id}, released {slot.released}"
            )

    def _pause(self, options):
        wave = waves.pause_wave(find_wave(options["wave"]), actor=options["actor"])
        self.stdout.write(describe(wave, timezone.now()))

    def _resume(self, options):
        reason = options["accept_failures"]
        wave = waves.resume_wave(
            find_wave(options["wave"]),
            actor=options["actor"],
            accept_failures=reason is not None,
            reason=reason or "",
        )
        self.stdout.write(describe(wave, timezone.now()))

    def _cancel(self, options):
        wave = waves.cancel_wave(find_wave(options["wave"]), actor=options["actor"])
        self.stdout.write(describe(wave, timezone.now()))

    def _tick(self, options):
        results = [waves.tick(find_wave(options["wave"]).pk)] if options["wave"] else waves.tick_all()
        for result in results:
            self.stdout.write(str(result))
        if not results:
            self.stdout.write("No live wave")
