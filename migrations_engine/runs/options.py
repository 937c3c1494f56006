"""A run's options beyond the basics: the optional steps (named location, sign-in frequency), the grant
(the `mfa` control or an authentication strength), and the readiness gate. Checked here once, when a run
or a wave is created, so a step can trust what it reads from `ctx.settings`.

    grant                            "mfa" (built-in control, default) | "mfa_strength" | "phishing_resistant"
    named_location                   None, or {"cidrs": [...], "from_legacy": bool, "display_name": str}
    sign_in_frequency                None, or {"value": int, "type": "days"|"hours"}, or {"from_legacy": True}
    readiness_max_unregistered_pct   None (READINESS_MAX_UNREGISTERED_PCT), or 0-100
    readiness_override               "" or the reason a full run goes on past the readiness gate (audited)
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from django.core.exceptions import ValidationError

from migrations_engine.graph.resources.grants import GRANTS

NAMED_LOCATION_NAME = "Trusted IPs (moved from MFA service settings)"
SIGN_IN_FREQUENCY_LIMITS = {"days": (1, 365), "hours": (1, 23)}

EXTRA_DEFAULTS: dict[str, Any] = {
    "grant": "mfa",
    "named_location": None,
    "sign_in_frequency": None,
    "readiness_max_unregistered_pct": None,
    "readiness_override": "",
}


def parse_cidr(text: str) -> str:
    """One IPv4 or IPv6 range in CIDR form, as Graph wants it; ValidationError saying what is wrong."""
    raw = (text or "").strip()
    if not raw:
        raise ValidationError("An empty IP range.")
    if "/" not in raw:
        raise ValidationError(f"{raw!r} has no prefix length: write it as a CIDR range, e.g. {raw}/32.")
    try:
        network = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise ValidationError(f"{raw!r} is not an IPv4 or IPv6 CIDR range ({exc}).") from exc
        raise ValidationError(f"{raw!r} has host bits set: did you mean {loose}?") from exc
    if network.prefixlen == 0:
        raise ValidationError(f"{raw!r} is every address: a trusted location must be narrower.")
    if network.version == 4 and network.prefixlen < 8:
        raise ValidationError(
            f"{raw!r} is wider than /8: too wide to trust (a typo?); the console refuses it."
        )
    return str(network)


def parse_cidrs(texts) -> list[str]:
    """Several ranges (a list, or text split on commas, spaces and new lines), deduplicated, in order;
    every bad one is named in one ValidationError."""
    if isinstance(texts, str):
        texts = texts.replace(",", " ").split()
    good, errors = [], []
    for text in texts or []:
        try:
            cidr = parse_cidr(str(text))
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if cidr not in good:
            good.append(cidr)
    if errors:
        raise ValidationError(errors)
    return good


# The basic options (services.DEFAULT_OPTIONS): how long to wait, how many users to sample. Each is a
# number from 0 to its maximum; checked here when present so a step's float()/int() never meets text.
NUMBERS: dict[str, tuple[type, float]] = {
    "settle_seconds": (float, 24 * 3600),
    "replication_wait_seconds": (float, 3600),
    "whatif_sample": (int, 1000),
}


def _is_number(value: Any) -> bool:
    """A finite JSON number (true/false are not numbers, though Python says so)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(out: dict[str, Any], errors: list[str]) -> None:
    for key, (kind, high) in NUMBERS.items():
        if key not in out:
            continue
        value = out[key]
        whole = kind is int
        if not _is_number(value) or (whole and value != int(value)) or not 0 <= value <= high:
            what = "a whole number" if whole else "a number of seconds"
            errors.append(f"{key} must be {what} from 0 to {high:g}, not {value!r}.")
        else:
            out[key] = int(value) if whole else value


def _named_location(location: Any, errors: list[str]) -> dict[str, Any] | None:
    if not location:
        return None
    if not isinstance(location, dict):
        errors.append("named_location must be {cidrs, from_legacy, display_name}.")
        return None
    cidrs_in = location.get("cidrs") or []
    if not isinstance(cidrs_in, list | str):
        errors.append(f"named_location.cidrs must be a list of CIDR ranges, not {cidrs_in!r}.")
        return None
    found = len(errors)
    try:
        cidrs = parse_cidrs(cidrs_in)
    except ValidationError as exc:
        errors.extend(exc.messages)
        cidrs = []
    from_legacy = bool(location.get("from_legacy"))
    if not cidrs and not from_legacy and len(errors) == found:
        errors.append("A named location needs IP ranges, or to take them from the MFA service settings.")
    name = location.get("display_name") or NAMED_LOCATION_NAME
    if not isinstance(name, str):
        errors.append(f"named_location.display_name must be text, not {name!r}.")
        return None
    return {"cidrs": cidrs, "from_legacy": from_legacy, "display_name": name.strip()[:256]}


def _sign_in_frequency(frequency: Any, errors: list[str]) -> dict[str, Any] | None:
    if not frequency:
        return None
    if not isinstance(frequency, dict):
        errors.append("sign_in_frequency must be {value, type} or {from_legacy: true}.")
        return None
    if frequency.get("from_legacy"):
        return {"from_legacy": True}
    kind, raw = frequency.get("type"), frequency.get("value")
    value = None
    if _is_number(raw) and raw == int(raw):
        value = int(raw)
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw)
    if not isinstance(kind, str) or kind not in SIGN_IN_FREQUENCY_LIMITS:
        errors.append("Sign-in frequency is counted in days or hours.")
        return None
    low, high = SIGN_IN_FREQUENCY_LIMITS[kind]
    if value is None or not low <= value <= high:
        errors.append(f"Sign-in frequency in {kind} is {low} to {high}.")
        return None
    return {"value": value, "type": kind}


def validate(options: dict[str, Any]) -> dict[str, Any]:
    """The options, checked and normalised: the keys of EXTRA_DEFAULTS, and the basic numbers (NUMBERS)
    when present. Anything of the wrong type or shape is a ValidationError naming the option, never a
    TypeError: options also come from JSON (a wave's, a run's)."""
    if not isinstance(options, dict):
        raise ValidationError(f"Run options must be an object of option names and values, not {options!r}.")
    out = dict(options)
    errors: list[str] = []
    _numbers(out, errors)
    grant = out.get("grant", "mfa") or "mfa"
    if not isinstance(grant, str) or grant not in GRANTS:
        errors.append(f"Unknown grant {grant!r}: choose {', '.join(GRANTS)}.")
    out["grant"] = grant
    out["named_location"] = _named_location(out.get("named_location"), errors)
    out["sign_in_frequency"] = _sign_in_frequency(out.get("sign_in_frequency"), errors)

    pct = out.get("readiness_max_unregistered_pct")
    if pct not in (None, ""):
        try:
            pct = -1.0 if isinstance(pct, bool) else float(pct)
        except (TypeError, ValueError):
            pct = -1.0
        if not 0 <= pct <= 100:  # NaN fails this too
            errors.append("The readiness threshold is a percentage from 0 to 100.")
        out["readiness_max_unregistered_pct"] = pct
    else:
        out["readiness_max_unregistered_pct"] = None
    reason = out.get("readiness_override") or ""
    if not isinstance(reason, str):
        errors.append(f"readiness_override must be text (the reason), not {reason!r}.")
        reason = ""
    reason = reason.strip()
    if len(reason) > 500:
        errors.append("Keep the readiness override's reason under 500 characters.")
    out["readiness_override"] = reason
    if errors:
        raise ValidationError(errors)
    return out
