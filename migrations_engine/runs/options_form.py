"""The run options staff choose when they start a plan, pilot or full run or schedule a wave: the grant
(the `mfa` control or an authentication strength), the optional steps (trusted IPs → named location,
remember MFA → sign-in frequency) and the readiness gate. One form for the console, one parser for the
command line; both end in `run_options.validate`.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from migrations_engine.runs import options as run_options

SIF_CHOICES = [
    ("", "Off (keep Microsoft's default session lifetime)"),
    ("legacy", "From the legacy 'remember MFA' days"),
    ("days", "Every N days"),
    ("hours", "Every N hours"),
]


class RunOptionsForm(forms.Form):
    grant = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in run_options.GRANTS.items()],
        initial="mfa",
        required=False,
        label="Grant",
        help_text="What the policy requires: the classic MFA control, or an authentication strength.",
    )
    trusted_ips = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
        label="Trusted IPs",
        help_text="CIDR ranges (IPv4 or IPv6), separated by commas or new lines: they become one trusted "
        "named location. The policy still asks for MFA there.",
    )
    trusted_ips_from_legacy = forms.BooleanField(
        required=False, label="Also take the trusted IPs from the legacy MFA service settings"
    )
    sign_in_frequency = forms.ChoiceField(choices=SIF_CHOICES, required=False, label="Sign-in frequency")
    sign_in_frequency_value = forms.IntegerField(required=False, min_value=1, label="N (days or hours)")
    readiness_max_unregistered_pct = forms.FloatField(
        required=False,
        min_value=0,
        max_value=100,
        label="Readiness threshold (%)",
        help_text="A full run stops before any change when more in-scope users than this are not "
        "MFA-registered. Empty: the console's default.",
    )
    readiness_override = forms.CharField(
        required=False,
        max_length=500,
        label="Go on past the readiness gate, because",
        help_text="Recorded in the audit log when the gate would have stopped the run.",
    )

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                data["options"] = run_options.validate(form_options(data))
            except ValidationError as exc:
                raise ValidationError(exc.messages) from exc
        return data


def form_options(data: dict[str, Any]) -> dict[str, Any]:
    """Run options from the form's (or the command line's) cleaned fields."""
    options: dict[str, Any] = {"grant": data.get("grant") or "mfa"}
    cidrs = (data.get("trusted_ips") or "").strip()
    if cidrs or data.get("trusted_ips_from_legacy"):
        options["named_location"] = {"cidrs": cidrs, "from_legacy": bool(data.get("trusted_ips_from_legacy"))}
    kind = data.get("sign_in_frequency") or ""
    if kind == "legacy":
        options["sign_in_frequency"] = {"from_legacy": True}
    elif kind in ("days", "hours"):
        options["sign_in_frequency"] = {"type": kind, "value": data.get("sign_in_frequency_value")}
    if data.get("readiness_max_unregistered_pct") is not None:
        options["readiness_max_unregistered_pct"] = data["readiness_max_unregistered_pct"]
    if data.get("readiness_override"):
        options["readiness_override"] = data["readiness_override"]
    return options


def add_cli_arguments(parser) -> None:
    """The same options as command-line flags (start_run, wave create)."""
    parser.add_argument("--grant", choices=list(run_options.GRANTS), default="mfa")
    parser.add_argument(
        "--trusted-ips", metavar="CIDRS", help="comma-separated CIDR ranges for a named location"
    )
    parser.add_argument(
        "--trusted-ips-from-legacy", action="store_true", help="also read them from the MFA service settings"
    )
    parser.add_argument(
        "--sign-in-frequency", metavar="14d|12h|legacy", help="a sign-in frequency session policy"
    )
    parser.add_argument("--readiness-threshold", type=float, metavar="PCT")
    parser.add_argument("--readiness-override", metavar="REASON")


def cli_options(options: dict[str, Any]) -> dict[str, Any]:
    """Run options from parsed flags; ValidationError with every problem."""
    frequency = (options.get("sign_in_frequency") or "").strip().lower()
    kind, value = "", None
    if frequency == "legacy":
        kind = "legacy"
    elif frequency:
        match = re.fullmatch(r"(\d+)\s*([dh])", frequency)
        if not match:
            raise ValidationError("--sign-in-frequency is like 14d, 12h or legacy.")
        value, kind = int(match.group(1)), {"d": "days", "h": "hours"}[match.group(2)]
    data = {
        "grant": options.get("grant"),
        "trusted_ips": options.get("trusted_ips") or "",
        "trusted_ips_from_legacy": options.get("trusted_ips_from_legacy"),
        "sign_in_frequency": kind,
        "sign_in_frequency_value": value,
        "readiness_max_unregistered_pct": options.get("readiness_threshold"),
        "readiness_override": options.get("readiness_override") or "",
    }
    return run_options.validate(form_options(data))
