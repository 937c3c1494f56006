"""The sign-in frequency policy ("[SESSION] Sign-in frequency all users"): the main policy's users, all
cloud apps, `sessionControls.signInFrequency` (time based), no grant controls; what keeps an existing one
from fitting, its fix and what puts it back.

https://learn.microsoft.com/graph/api/resources/signinfrequencysessioncontrol
"""

from __future__ import annotations

import copy
from typing import Any

from migrations_engine.graph.resources.mfa_policy import Scope, conditions_for, fixed_conditions
from migrations_engine.graph.resources.policies import REPORT_ONLY, normalized

SESSION_POLICY_NAME = "[SESSION] Sign-in frequency all users"
SESSION_FIELDS = ("id", "displayName", "state", "conditions", "grantControls", "sessionControls")


def frequency_control(frequency: dict[str, Any]) -> dict[str, Any]:
    """Graph's `signInFrequencySessionControl`, time based (authenticationType is not needed then)."""
    return {
        "isEnabled": True,
        "value": frequency["value"],
        "type": frequency["type"],
        "frequencyInterval": "timeBased",
    }


def describe(frequency: dict[str, Any]) -> str:
    return f"every {frequency['value']} {frequency['type']}"


def desired_session_policy(scope: Scope, frequency: dict[str, Any]) -> dict[str, Any]:
    return {
        "displayName": SESSION_POLICY_NAME,
        "state": REPORT_ONLY,
        "conditions": conditions_for(scope),
        "sessionControls": {"signInFrequency": frequency_control(frequency)},
    }


def frequency_of(policy: dict[str, Any] | None) -> dict[str, Any]:
    control = ((policy or {}).get("sessionControls") or {}).get("signInFrequency") or {}
    return {
        "isEnabled": control.get("isEnabled"),
        "value": control.get("value"),
        "type": control.get("type"),
        "frequencyInterval": control.get("frequencyInterval") or "timeBased",
    }


def session_problems(policy: dict[str, Any], scope: Scope, frequency: dict[str, Any]) -> list[str]:
    """What keeps an existing session policy from being the one this run needs (empty when it fits)."""
    problems = []
    if frequency_of(policy) != frequency_control(frequency):
        now = frequency_of(policy)
        problems.append(
            f"sign-in frequency is {now['value']} {now['type']} (enabled {now['isEnabled']}), "
            f"not {describe(frequency)}"
        )
    if normalized(fixed_conditions(policy, scope).get("users")) != normalized(
        ((policy.get("conditions") or {}).get("users")) or {}
    ):
        problems.append("users are not the run's scope with break-glass excluded")
    apps = (policy.get("conditions") or {}).get("applications") or {}
    if "All" not in (apps.get("includeApplications") or []):
        problems.append("does not cover all cloud apps")
    if (policy.get("conditions") or {}).get("locations"):
        problems.append("limited to some locations (it should apply everywhere)")
    if policy.get("state") == "disabled":
        problems.append("disabled")
    return problems


def session_fix(policy: dict[str, Any], scope: Scope, frequency: dict[str, Any]) -> dict[str, Any]:
    conditions = fixed_conditions(policy, scope)
    conditions["locations"] = None
    control = {**(((policy.get("sessionControls") or {}).get("signInFrequency")) or {})}
    control.update(frequency_control(frequency))
    body: dict[str, Any] = {"conditions": conditions, "sessionControls": {"signInFrequency": control}}
    if policy.get("state") == "disabled":
        body["state"] = REPORT_ONLY  # report-only first: the cut-over enables it with the main policy
    return body


def snapshot_of(policy: dict[str, Any]) -> dict[str, Any]:
    """What a rollback puts back (and the drift watch compares)."""
    return {key: copy.deepcopy(policy.get(key)) for key in SESSION_FIELDS}


def restore_body(policy: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The PATCH that puts an adopted session policy's state and frequency back as `before` had them."""
    body: dict[str, Any] = {}
    if before.get("state") and policy.get("state") != before["state"]:
        body["state"] = before["state"]
    if normalized(frequency_of(policy)) != normalized(frequency_of(before)):
        body["sessionControls"] = copy.deepcopy(before.get("sessionControls"))
    return body
