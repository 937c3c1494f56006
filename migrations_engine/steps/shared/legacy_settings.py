"""The legacy MFA service settings as the optional steps use them: trusted IPs (the named location) and
remember-MFA days (the sign-in frequency). The endpoint is undocumented, so every field is parsed
defensively, and every range is validated like a typed one (bad ones are skipped and named)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from migrations_engine.graph.resources.mfa_service import NOT_SERVED, legacy_mfa_settings
from migrations_engine.runs.options import parse_cidr
from migrations_engine.steps.base import StepContext


@dataclass
class LegacySettings:
    """What the undocumented `mfaServicePolicy` said (or why it said nothing usable)."""

    read: bool = False
    reason: str = ""  # why nothing was read, when `read` is False
    trusted_ips_enabled: bool | None = None
    trusted_ips: list[str] = field(default_factory=list)  # validated CIDRs
    bad_ranges: list[str] = field(default_factory=list)  # why each unusable entry was skipped
    remember_enabled: bool | None = None
    remember_days: int | None = None
    skip_federated: bool | None = None
    app_passwords_allowed: bool | None = None

    def summary(self) -> dict[str, Any]:
        """For the item's state (the run page shows it)."""
        return {
            "read": self.read,
            "reason": self.reason,
            "trusted_ips_enabled": self.trusted_ips_enabled,
            "trusted_ips": self.trusted_ips,
            "bad_ranges": self.bad_ranges,
            "remember_mfa_enabled": self.remember_enabled,
            "remember_mfa_days": self.remember_days,
            "skip_mfa_for_federated_users": self.skip_federated,
            "app_passwords_allowed": self.app_passwords_allowed,
        }


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def parse_legacy(body: Any) -> LegacySettings:
    """Parse the answer defensively: every field may be missing or of another shape."""
    if body is None:
        return LegacySettings(reason=NOT_SERVED)
    known = ("trustedIps", "rememberMfaOnTrustedDevices", "appPasswords", "skipMfaForFederatedUsers")
    if not isinstance(body, dict) or not any(key in body for key in known):
        return LegacySettings(reason="its answer has none of the fields we know (an unknown shape)")
    out = LegacySettings(read=True, skip_federated=_flag(body.get("skipMfaForFederatedUsers")))
    trusted = body.get("trustedIps")
    if isinstance(trusted, dict):
        out.trusted_ips_enabled = _flag(trusted.get("isEnabled"))
        ranges = trusted.get("ipRanges")
        if ranges is not None and not isinstance(ranges, list):
            out.bad_ranges.append("trustedIps.ipRanges is not a list: ignored")
            ranges = []
        for entry in ranges or []:
            raw = entry.get("cidrAddress") if isinstance(entry, dict) else entry
            if not isinstance(raw, str):
                out.bad_ranges.append(f"{str(entry)[:80]!r} is not a CIDR range")
                continue
            try:
                cidr = parse_cidr(raw)
            except ValidationError as exc:
                out.bad_ranges.append(" ".join(exc.messages))
                continue
            if cidr not in out.trusted_ips:
                out.trusted_ips.append(cidr)
    elif trusted is not None:
        out.bad_ranges.append("trustedIps has an unknown shape: ignored")
    remember = body.get("rememberMfaOnTrustedDevices")
    if isinstance(remember, dict):
        out.remember_enabled = _flag(remember.get("isEnabled"))
        days = remember.get("days")
        if isinstance(days, str) and days.strip().isdigit():
            days = int(days)
        out.remember_days = days if isinstance(days, int) and not isinstance(days, bool) else None
    app_passwords = body.get("appPasswords")
    if isinstance(app_passwords, dict):
        out.app_passwords_allowed = _flag(app_passwords.get("isAllowed"))
    return out


def read_legacy(ctx: StepContext) -> LegacySettings:
    """Read and parse the legacy settings and keep the summary in the item's state."""
    legacy = parse_legacy(ctx.wait(legacy_mfa_settings(ctx.graph)))
    ctx.save_state(legacy_mfa_settings=legacy.summary())
    return legacy
