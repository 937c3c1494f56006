"""The second-factor pages: enrol an authenticator app (QR code, then a code to confirm it, then backup
codes shown once), and enter a code at sign-in. Both are audited."""

from __future__ import annotations

import base64

import segno
from django import forms
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from migrations_engine.audit.writer import record_staff_action
from staff.second_factor import confirmed_devices, is_satisfied
from staff.sessions import mark_authenticated

BACKUP_CODES = 10


class CodeForm(forms.Form):
    """Six digits from the authenticator app, or one backup code."""

    code = forms.CharField(
        label="Code",
        max_length=16,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    ok = url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure())
    return target if ok and target.startswith("/") else "/"


def verify_code(user, code: str):
    """The confirmed device of `user` that accepts `code` (TOTP devices first), or None. Each device
    throttles failed tries itself (django-otp: growing delays after each failure)."""
    code = "".join(code.split())
    for device in confirmed_devices(user):
        with transaction.atomic():
            locked = type(device).objects.select_for_update().get(pk=device.pk)
            if locked.verify_token(code):
                return locked
    return None


def _qr_svg(url: str) -> str:
    return segno.make(url, error="m").svg_data_uri(scale=5, border=2)


def _secret_for_typing(device: TOTPDevice) -> str:
    """The key in base32, in groups of four (authenticator apps ignore the spaces)."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


@require_http_methods(["GET", "POST"])
def second_factor_view(request, site):
    """Enter a code (a person with an authenticator), or enrol one (a person without)."""
    user = request.user
    if is_satisfied(request):
        return HttpResponseRedirect(_next(request))
    if not confirmed_devices(user):
        return _enrol(request, site)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = verify_code(user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            mark_authenticated(request)
            kind = "backup code" if isinstance(device, StaticDevice) else "authenticator"
            record_staff_action(
                actor=user.username, action="staff.second_factor_passed", detail={"with": kind}
            )
            return HttpResponseRedirect(_next(request))
        record_staff_action(actor=user.username, action="staff.second_factor_failed", detail={})
        form.add_error("code", "That code is wrong or expired. Wait for the next one and try again.")
    context = {**site.each_context(request), "title": "Second factor", "form": form, "next": _next(request)}
    return TemplateResponse(request, "staff/second_factor.html", context, status=400 if form.errors else 200)


def _enrol(request, site):
    """A new TOTP device (unconfirmed until a code from it is entered), then backup codes, shown once."""
    user = request.user
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first() or TOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=False
    )
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token("".join(form.cleaned_data["code"].split())):
            codes = _confirm(device)
            otp_login(request, device)
            mark_authenticated(request)
            record_staff_action(actor=user.username, action="staff.second_factor_enrolled", detail={})
            context = {
                **site.each_context(request),
                "title": "Backup codes",
                "codes": codes,
                "next": _next(request),
            }
            return TemplateResponse(request, "staff/backup_codes.html", context)
        form.add_error("code", "That code does not match: check the app's clock and enter the newest code.")
    context = {
        **site.each_context(request),
        "title": "Set up your second factor",
        "form": form,
        "qr": _qr_svg(device.config_url),
        "secret": _secret_for_typing(device),
        "next": _next(request),
    }
    return TemplateResponse(request, "staff/enrol.html", context, status=400 if form.errors else 200)


def _confirm(device: TOTPDevice) -> list[str]:
    """Confirm the TOTP device and give its owner a fresh set of single-use backup codes."""
    with transaction.atomic():
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        StaticDevice.objects.filter(user=device.user).delete()
        backup = StaticDevice.objects.create(user=device.user, name="Backup codes", confirmed=True)
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
        StaticToken.objects.bulk_create([StaticToken(device=backup, token=code) for code in codes])
    return codes
