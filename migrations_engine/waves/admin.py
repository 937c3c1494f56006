"""Scheduled waves in the console: the list (with each wave's next fire time in its own time zone), a
create form (tenants chosen, or by licence / tag / size), and a wave page with its rings, slots and runs
and the pause / resume / cancel buttons (POST, one service call each).

A staff user sees a wave only when every one of its tenants is visible to them, so a wave never shows a
tenant they may not see; acting on it re-checks the same in the service.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import dateparse, timezone
from django.views.decorators.http import require_POST

from migrations_engine.choices import ItemStatus, WaveStatus
from migrations_engine.models import RunItem, Wave, WaveTenant
from migrations_engine.runs import confirm as run_confirm
from migrations_engine.runs.options_form import RunOptionsForm
from migrations_engine.waves import services as waves
from migrations_engine.waves.models import WAVE_MODES
from migrations_engine.waves.services import visible_waves
from msp_console.admin_base import COMPACT_LIST, search_visible_tenants
from msp_console.admin_site import site
from msp_console.time_zone import known_zones
from msp_console.words import counted
from staff import roles
from tenants.access import visible_tenants
from tenants.choices import LicenceTier
from tenants.models import CustomerTenant, Tag


def _local(wave: Wave, moment):
    return moment.astimezone(waves.zone(wave.time_zone)) if moment else None


class WaveForm(RunOptionsForm):
    field_order = [
        "name",
        "mode",
        "pilot_group_id",
        "tenants",
        "licence",
        "tag",
        "min_users",
        "max_users",
        "time_zone",
        "start",
        "window_minutes",
        "repeat_days",
        "concurrency",
        "rings",
        "pilot_tenants",
        "ring_delay_days",
    ]  # then the run options (grant, optional steps, readiness)

    name = forms.CharField(max_length=200)
    mode = forms.ChoiceField(choices=WAVE_MODES, initial="plan")
    pilot_group_id = forms.CharField(
        required=False, label="Pilot group object id", help_text="Pilot mode only: the group in scope."
    )
    # Typed to search (the fleet list's search: name, domain, tenant id), never a list of every tenant.
    tenants = forms.ModelMultipleChoiceField(
        queryset=CustomerTenant.objects.none(),
        required=False,
        widget=AutocompleteSelectMultiple(WaveTenant._meta.get_field("tenant"), site),
        help_text="Type a name or domain to add tenants, or leave empty and use the filters below.",
    )
    licence = forms.ChoiceField(
        required=False,
        choices=[("", "any")] + [c for c in LicenceTier.choices if c[0] != LicenceTier.UNKNOWN],
    )
    tag = forms.ModelChoiceField(queryset=Tag.objects.all(), required=False, empty_label="any")
    min_users = forms.IntegerField(required=False, min_value=0, label="At least this many users")
    max_users = forms.IntegerField(required=False, min_value=0, label="At most this many users")
    time_zone = forms.CharField(
        initial=settings.TIME_ZONE,
        help_text="IANA name, e.g. Europe/London; your browser's is filled in.",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off", "data-browser-zone": "1"}),
    )
    # An ISO date and 24-hour time typed as text: a browser's date box shows its own locale's format.
    start = forms.CharField(
        label="First window opens",
        widget=forms.TextInput(attrs={"placeholder": "2026-12-01 22:00", "inputmode": "numeric"}),
        help_text="YYYY-MM-DD HH:MM, wall-clock time in the time zone above.",
    )
    window_minutes = forms.IntegerField(initial=240, min_value=5, label="Window length (minutes)")
    repeat_days = forms.IntegerField(initial=1, min_value=1, label="Window repeats every (days)")
    concurrency = forms.IntegerField(initial=10, min_value=1, help_text="Tenants running at once, at most.")
    rings = forms.IntegerField(initial=1, min_value=1, help_text="Ring 1 is the pilot ring.")
    pilot_tenants = forms.ModelMultipleChoiceField(
        queryset=CustomerTenant.objects.none(),
        required=False,
        widget=AutocompleteSelectMultiple(WaveTenant._meta.get_field("tenant"), site),
        label="Pilot ring",
        help_text="Optional: these tenants form ring 1; the rest are split over the other rings.",
    )
    ring_delay_days = forms.IntegerField(
        initial=1, min_value=0, help_text="Days after a ring verified without failures before the next."
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        mine = visible_tenants(user).order_by("display_name")
        self.fields["tenants"].queryset = mine
        self.fields["pilot_tenants"].queryset = mine

    def clean_start(self):
        value = self.cleaned_data["start"]
        try:
            moment = dateparse.parse_datetime(value)
        except ValueError:
            moment = None
        if moment is None:
            raise ValidationError("Give a date and time as YYYY-MM-DD HH:MM, e.g. 2026-12-01 22:00.")
        return moment.replace(tzinfo=None)

    def filters(self) -> dict:
        data = self.cleaned_data
        found = {
            "licence": data.get("licence") or None,
            "tag": data["tag"].name if data.get("tag") else None,
            "min_users": data.get("min_users"),
            "max_users": data.get("max_users"),
        }
        return {k: v for k, v in found.items() if v is not None}

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data.get("tenants") and self.filters():
            raise ValidationError("Choose tenants or filter them, not both.")
        if not data.get("tenants") and not self.filters() and not self.errors:
            raise ValidationError("Choose tenants, or give at least one filter (licence, tag, users).")
        return data

    def chosen(self) -> tuple[list[CustomerTenant], dict]:
        if self.cleaned_data.get("tenants"):
            tenants = list(self.cleaned_data["tenants"])
            return tenants, {"tenants": [t.primary_domain for t in tenants]}
        filters = self.filters()
        tenants = list(waves.tenants_by_filter(self.user, **filters))
        return tenants, {"filter": filters, "matched": [t.primary_domain for t in tenants]}


@admin.register(Wave, site=site)
class WaveAdmin(admin.ModelAdmin):
    list_display = ("name", "mode", "status", "ring_progress", "tenant_count", "next_fire", "actor")
    change_list_template = COMPACT_LIST
    list_filter = ("status", "mode")
    search_fields = ("name", "members__tenant__primary_domain")
    add_template = "admin/migrations_engine/wave/add.html"
    page_template = "admin/migrations_engine/wave/wave_page.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_waves(request.user).values("pk"))

    def get_search_results(self, request, queryset, search_term):
        # A tenant's domain matches only among the user's tenants, as on the runs list: today a listed wave
        # holds none other, but the search must not be what tells if that ever changes.
        return search_visible_tenants(
            request, queryset, search_term, own=("name",), members=WaveTenant, link="wave_id"
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a wave's runs and audit rows outlive it: cancel it instead

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and roles.may(request.user, roles.WAVES)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and roles.may(request.user, roles.WAVES)

    @admin.display(description="ring")
    def ring_progress(self, wave: Wave) -> str:
        return f"{wave.current_ring + 1} of {waves.ring_count(wave)}"

    @admin.display(description="tenants")
    def tenant_count(self, wave: Wave) -> int:
        return wave.members.count()

    @admin.display(description="next fire (local)", ordering="next_fire_at")
    def next_fire(self, wave: Wave) -> str:
        if wave.next_fire_at is None:
            return "—"
        if wave.next_fire_at <= timezone.now():
            return "now"
        return f"{_local(wave, wave.next_fire_at):%Y-%m-%d %H:%M} {wave.time_zone}"

    def get_urls(self):
        def url(action, view):
            return path(
                f"<int:pk>/{action}/",
                self.admin_site.admin_view(view),
                name=f"migrations_engine_wave_{action}",
            )

        return [
            url("pause", self.pause_view),
            url("resume", self.resume_view),
            url("cancel", self.cancel_view),
        ] + super().get_urls()

    def _wave(self, request, pk) -> Wave:
        if not self.has_view_permission(request):
            raise PermissionDenied
        wave = visible_waves(request.user).filter(pk=pk).first()
        if wave is None:
            raise Http404("No such wave")
        return wave

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = WaveForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            tenants, selection = form.chosen()
            data = form.cleaned_data
            try:
                wave = waves.create_wave(
                    name=data["name"],
                    mode=data["mode"],
                    pilot_group_id=data["pilot_group_id"] or None,
                    tenants=tenants,
                    time_zone=data["time_zone"].strip(),
                    starts_at=data["start"],
                    window_minutes=data["window_minutes"],
                    repeat_days=data["repeat_days"],
                    concurrency=data["concurrency"],
                    rings=data["rings"],
                    pilot_tenants=list(data["pilot_tenants"]),
                    ring_delay_days=data["ring_delay_days"],
                    selection=selection,
                    options=data["options"],
                    actor=request.user,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                self.message_user(request, f"Wave {wave.name!r} created: {counted(len(tenants), 'tenant')}.")
                return HttpResponseRedirect(reverse("admin:migrations_engine_wave_change", args=[wave.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Schedule a wave",
            "form": form,
            "time_zones": sorted(known_zones()),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.add_template, context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The wave page (read-only): schedule, rings with each tenant's status, slots, buttons."""
        try:
            pk = int(object_id)
        except ValueError as exc:
            raise Http404("No such wave") from exc
        wave = self._wave(request, pk)
        statuses = {
            (item.tenant_id): item
            for item in RunItem.objects.filter(run__wave=wave).select_related("run").order_by("run__ring")
        }
        rings: dict[int, list] = {}
        for member in wave.members.select_related("tenant"):
            item = statuses.get(member.tenant_id)
            rings.setdefault(member.ring, []).append(
                {
                    "tenant": member.tenant,
                    "skipped": member.skipped_reason,
                    "item": item,
                    "status": item.get_status_display() if item else "Not started",
                }
            )
        now = timezone.now()
        first = waves.window(wave, 0)
        open_window = None
        if wave.status in (WaveStatus.SCHEDULED, WaveStatus.RUNNING):
            win, start = waves.ring_window(wave, now)
            if win.is_open(now) and now >= start:
                open_window = _local(wave, win.end)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Wave “{wave.name}”",
            "wave": wave,
            "rings": [(n + 1, rings[n]) for n in sorted(rings)],
            "slots": wave.slots.select_related("run"),
            "first_window": _local(wave, first.start),
            "next_fire": self.next_fire(wave),
            "open_until": open_window,
            "ring_ready": _local(wave, wave.ring_ready_at),
            "may_change": self.has_change_permission(request, wave),
            "can_pause": wave.status in (WaveStatus.SCHEDULED, WaveStatus.RUNNING),
            "can_resume": wave.status in (WaveStatus.PAUSED, WaveStatus.HALTED),
            "can_cancel": wave.status in waves.UNFINISHED_WAVE,
            "halted": wave.status == WaveStatus.HALTED,
            "waiting": RunItem.objects.filter(run__wave=wave, status=ItemStatus.WAITING).count(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.page_template, context)

    def _act(self, request, pk, action, verb: str = ""):
        wave = self._wave(request, pk)
        if not self.has_change_permission(request, wave):
            raise PermissionDenied
        if verb and not run_confirm.confirmed(request):
            back = reverse("admin:migrations_engine_wave_change", args=[pk])
            crumbs = [
                ("Waves", reverse("admin:migrations_engine_wave_changelist")),
                (f"Wave “{wave.name}”", back),
            ]
            return run_confirm.confirmation_page(
                request, self.admin_site, wave_question(wave, verb), back_url=back, crumbs=crumbs
            )
        try:
            wave = action(wave)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, f"Wave {wave.name!r}: {wave.get_status_display().lower()}.")
        return HttpResponseRedirect(reverse("admin:migrations_engine_wave_change", args=[pk]))

    def pause_view(self, request, pk):
        return require_POST(lambda r: self._act(r, pk, lambda w: waves.pause_wave(w, actor=r.user), "pause"))(
            request
        )

    def resume_view(self, request, pk):
        def resume(r):
            reason = r.POST.get("reason", "").strip()
            return self._act(
                r,
                pk,
                lambda w: waves.resume_wave(w, actor=r.user, accept_failures=bool(reason), reason=reason),
                "resume",
            )

        return require_POST(resume)(request)

    def cancel_view(self, request, pk):
        return require_POST(
            lambda r: self._act(r, pk, lambda w: waves.cancel_wave(w, actor=r.user), "cancel")
        )(request)


def wave_question(wave, verb: str) -> run_confirm.Question:
    """What pausing, resuming or cancelling this wave will do, with the counts."""
    items = RunItem.objects.filter(run__wave=wave)
    waiting = items.filter(status=ItemStatus.WAITING).count()
    running = items.filter(status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING)).count()
    tenants = lambda n: f"{n} tenant{'' if n == 1 else 's'}"  # noqa: E731 - one line of words
    if verb == "pause":
        return run_confirm.Question(
            f"Pause wave {wave.name}?",
            f"No new tenant starts ({tenants(waiting)} waiting); {tenants(running)} already running finish.",
            "pause it",
        )
    if verb == "resume":
        return run_confirm.Question(
            f"Resume wave {wave.name}?",
            f"Its next windows start the {tenants(waiting)} still waiting, ring by ring.",
            "resume it",
        )
    return run_confirm.Question(
        f"Cancel wave {wave.name}?",
        f"The {tenants(waiting)} still waiting never start; {tenants(running)} already running finish. "
        "A cancelled wave cannot be resumed.",
        "cancel the wave",
        warning="This cannot be undone: a new wave would be needed for the tenants left.",
    )
