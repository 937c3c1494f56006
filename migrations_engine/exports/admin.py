"""Scheduled audit exports in the console: schedules (added and changed here, scoped to the tenants a staff
member may see; fleet schedules are superusers' only) and the files they wrote (read-only, with downloads
of the data file and its manifest, served only from paths recorded in `ExportFile` rows under
`AUDIT_EXPORT_DIR`). Loaded by the last line of `migrations_engine.admin`.
"""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseNotAllowed
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import slugify

from migrations_engine.exports.services import check_folder_name, first_pending_period, save_schedule
from migrations_engine.models import ExportFile, ExportSchedule
from msp_console.admin_base import ReadOnlyAdmin
from msp_console.admin_site import site
from staff import roles
from tenants.access import visible_tenants

CONTENT_TYPES = {".csv": "text/csv", ".jsonl": "application/x-ndjson", ".json": "application/json"}


class ExportScheduleForm(forms.ModelForm):
    """A schedule's fields; `user` (set per request by the admin) decides whether "fleet" is allowed."""

    user = None

    class Meta:
        model = ExportSchedule
        fields = ("name", "tenant", "frequency", "format", "enabled")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        try:
            check_folder_name(name, exclude_pk=self.instance.pk)
        except ValidationError:
            slug = slugify(name)
            clashes = [
                other.pk
                for other in ExportSchedule.objects.exclude(pk=self.instance.pk).only("pk", "name")
                if slug and slugify(other.name) == slug
            ]
            # The folder is the user's own words (their name, slugified); the schedule that has it, and its
            # scope, are named only to a user who may see that schedule.
            if clashes and not visible_schedules(self.user).filter(pk__in=clashes).exists():
                raise ValidationError(
                    f"Another schedule already writes to the folder {slug!r}: choose another name."
                ) from None
            raise
        return name

    def clean(self):
        data = super().clean()
        if "tenant" in self.errors:
            return data
        if data.get("tenant") is None and not self.user.is_superuser:
            self.add_error("tenant", "Only a superuser may export the whole fleet: choose a tenant.")
        elif self.instance.pk and "tenant" in self.changed_data and self.instance.files.exists():
            self.add_error("tenant", "This schedule has written exports: its scope cannot change.")
        return data


def visible_schedules(user):
    """The schedules `user` may see: those of their tenants (every one, fleet ones too, for superusers)."""
    if user.is_superuser:
        return ExportSchedule.objects.all()
    return ExportSchedule.objects.filter(tenant__in=visible_tenants(user).values("pk"))


def _scope_label(schedule: ExportSchedule) -> str:
    return schedule.tenant.primary_domain if schedule.tenant_id else "fleet (every chain)"


@admin.register(ExportSchedule, site=site)
class ExportScheduleAdmin(admin.ModelAdmin):
    form = ExportScheduleForm
    list_display = ("name", "scope", "frequency", "format", "enabled", "last_period_end", "next_period_end")
    list_filter = ("frequency", "format", "enabled")
    search_fields = ("name",)
    list_select_related = ("tenant",)
    fields = (
        "name",
        "tenant",
        "frequency",
        "format",
        "enabled",
        "created_by",
        "created_at",
        "last_period_end",
    )
    readonly_fields = ("created_by", "created_at", "last_period_end")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=visible_schedules(request.user).values("pk"))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # A subclass per request: the form class is shared between requests, its user must not be.
        return type(form.__name__, (form,), {"user": request.user})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tenant":
            kwargs["queryset"] = visible_tenants(request.user).order_by("display_name")
            kwargs["empty_label"] = "fleet (every chain)" if request.user.is_superuser else "choose a tenant"
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # disable instead: its folder and files are evidence, and names pick folders

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and roles.may(request.user, roles.EXPORTS)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and roles.may(request.user, roles.EXPORTS)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if self.get_object(request, object_id) is None:
            raise Http404("No such export schedule")  # another tenant's, or none: the same answer
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        try:
            save_schedule(obj, actor=request.user, changed=form.changed_data if change else ())
        except ValidationError as exc:  # the form checked the same; a concurrent change got in between
            raise PermissionDenied(" ".join(exc.messages)) from exc

    @admin.display(description="scope", ordering="tenant__primary_domain")
    def scope(self, schedule: ExportSchedule) -> str:
        return _scope_label(schedule)

    @admin.display(description="next period ends")
    def next_period_end(self, schedule: ExportSchedule):
        return first_pending_period(schedule).end if schedule.enabled else None


def _servable(recorded: str) -> Path:
    """The recorded file, if it is a file under AUDIT_EXPORT_DIR once links and ".." are resolved."""
    root = Path(settings.AUDIT_EXPORT_DIR).resolve()
    target = Path(recorded).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise Http404("No such export file")
    return target


@admin.register(ExportFile, site=site)
class ExportFileAdmin(ReadOnlyAdmin):
    list_display = ("period_start", "period_end", "schedule", "scope", "rows", "short_sha256", "downloads")
    list_select_related = ("schedule__tenant",)
    search_fields = ("schedule__name",)
    date_hierarchy = "period_start"
    fields = (
        "schedule",
        "period_start",
        "period_end",
        "rows",
        "sha256",
        "path",
        "manifest_path",
        "created_at",
    )

    def get_queryset(self, request):
        files = super().get_queryset(request)
        if request.user.is_superuser:
            return files
        return files.filter(schedule__tenant__in=visible_tenants(request.user).values("pk"))

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/download/",
                view(self.download_view),
                {"which": "data"},
                name="{}_{}_download".format(*info),
            ),
            path(
                "<path:object_id>/manifest/",
                view(self.download_view),
                {"which": "manifest"},
                name="{}_{}_manifest".format(*info),
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.get_scoped_object(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="scope")
    def scope(self, export: ExportFile) -> str:
        return _scope_label(export.schedule)

    @admin.display(description="sha256")
    def short_sha256(self, export: ExportFile) -> str:
        return export.sha256[:12]

    @admin.display(description="download")
    def downloads(self, export: ExportFile) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">manifest</a>',
            reverse("admin:migrations_engine_exportfile_download", args=[export.pk]),
            Path(export.path).suffix.lstrip(".") or "data",
            reverse("admin:migrations_engine_exportfile_manifest", args=[export.pk]),
        )

    def download_view(self, request, object_id: str, which: str):
        """Stream the export's data file or manifest, if the user may see the export."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not object_id.isdigit():
            raise Http404("No such export file")
        export = self.get_scoped_object(request, object_id)
        target = _servable(export.path if which == "data" else export.manifest_path)
        return FileResponse(
            target.open("rb"),
            as_attachment=True,
            filename=target.name,
            content_type=CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
        )
