"""A second official client: Microsoft's msgraph-beta-sdk parses every /beta answer the console relies on.

For each call the SDK makes, the exact bytes the simulator answered (captured on the SDK's own httpx
client) are compared with what the SDK's models hold:

- every JSON property lands in a typed model attribute, none in ``additional_data`` (OData annotations,
  keys with ``@odata.``, excepted): a property Graph's beta model does not know is a finding;
- the model serialized back with kiota's JSON writer equals the JSON that was sent (nulls and absent keys
  are alike, date-times compare as instants to the microsecond, an ``@odata.type`` the model adds of its
  own is ignored), so no value was lost or changed in parsing.

Two gaps of the SDK itself (kiota's Python generator and serializers, not the simulator) are handled in
the open: flags enums (``requirementsSatisfied``, ``analysisReasons``) are parsed into lists but kiota's
writer drops a list given to ``write_enum_value``, so the writer used here writes them as Graph does
("a,b"); and an element of a collection of flags enums that combines values (``allowedCombinations``:
"password,sms") parses to None, so those elements are checked against the enum's members instead.
Two properties Microsoft's beta response examples show on policies, which the beta model lacks, are
accepted in ``additional_data`` (``MODEL_LACKS``, with the sources).
``test_the_sdk_gaps_the_comparison_works_around_are_still_there`` pins all three, so a fixed SDK shows.

The console reads Conditional Access policies, named locations and authentication strengths at v1.0;
they are checked here at /beta too (the simulator serves one shape for both).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import httpx
import pytest
from kiota_abstractions.serialization import Parsable
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.identity.conditional_access.evaluate.evaluate_post_request_body import (
    EvaluatePostRequestBody,
)
from msgraph_beta.generated.models.authentication_method_modes import AuthenticationMethodModes
from msgraph_beta.generated.models.authentication_strength_policy import AuthenticationStrengthPolicy
from msgraph_beta.generated.models.authentication_strength_requirements import (
    AuthenticationStrengthRequirements,
)
from msgraph_beta.generated.models.conditional_access_policy import ConditionalAccessPolicy
from msgraph_beta.generated.models.country_named_location import CountryNamedLocation
from msgraph_beta.generated.models.ip_named_location import IpNamedLocation
from msgraph_beta.generated.models.named_location import NamedLocation
from msgraph_beta.generated.models.per_user_mfa_state import PerUserMfaState
from msgraph_beta.generated.models.strong_authentication_requirements import StrongAuthenticationRequirements
from msgraph_beta.generated.models.what_if_analysis_reasons import WhatIfAnalysisReasons
from msgraph_beta.generated.models.what_if_analysis_result import WhatIfAnalysisResult
from msgraph_core import APIVersion, GraphClientFactory

from graph_sim.auth_strengths import BUILT_IN_STRENGTHS
from migrations_engine.graph.resources.grants import STRENGTH_MFA
from migrations_engine.graph.resources.mfa_policy import Scope, desired_policy
from migrations_engine.graph.resources.named_locations import IP_LOCATION, range_item
from migrations_engine.graph.resources.session_policy import desired_session_policy
from tests.graph_sim.conftest import CONTOSO, GRAPH_SCOPE, NORTHWIND, WOODGROVE
from tests.graph_sim.test_sdk import MsalCredential

WHAT_IF_APP = "00000002-0000-0ff1-ce00-000000000000"  # Exchange Online, as the verify step asks


# --- the client and what it received ------------------------------------------------------------------
@dataclass
class Exchange:
    method: str
    url: str
    status: int
    sent: bytes
    body: bytes

    def json(self):
        return json.loads(self.body)


class BetaClient:
    """msgraph-beta-sdk's GraphServiceClient on the simulator, with every exchange it made recorded."""

    def __init__(self, sim, app):
        self.exchanges: list[Exchange] = []
        auth = AzureIdentityAuthenticationProvider(
            MsalCredential(app), scopes=GRAPH_SCOPE, allowed_hosts=["127.0.0.1"]
        )
        http = GraphClientFactory.create_with_default_middleware(
            api_version=APIVersion.beta,
            client=httpx.AsyncClient(
                verify=ssl.create_default_context(cafile=sim.ca_bundle),
                trust_env=False,
                event_hooks={"response": [self._record]},
            ),
        )
        self.adapter = GraphRequestAdapter(auth, client=http)
        self.adapter.base_url = f"{sim.graph_base_url}/beta"
        self.sdk = GraphServiceClient(request_adapter=self.adapter)
        self.loop = asyncio.new_event_loop()  # one loop for the client's connection pool

    def __call__(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.close()

    async def _record(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.exchanges.append(
            Exchange(
                request.method, str(request.url), response.status_code, request.content, response.content
            )
        )

    @property
    def last(self) -> Exchange:
        return self.exchanges[-1]


@pytest.fixture
def beta(sim, msal_app):
    clients: list[BetaClient] = []

    def make(tenant: str) -> BetaClient:
        clients.append(BetaClient(sim, msal_app(tenant)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


# --- the comparison ---------------------------------------------------------------------------------------
class GraphJsonWriter(JsonSerializationWriter):
    """kiota's JSON writer, writing a flags enum (parsed into a list) as Graph sends it: "a,b"."""

    def _create_new_writer(self) -> JsonSerializationWriter:
        writer = GraphJsonWriter()
        writer.on_before_object_serialization = self.on_before_object_serialization
        writer.on_after_object_serialization = self.on_after_object_serialization
        writer.on_start_object_serialization = self.on_start_object_serialization
        return writer

    def write_enum_value(self, key, value) -> None:
        if isinstance(value, list) and all(isinstance(v, Enum) for v in value):
            joined = ",".join(v.value for v in value)
            if key is not None:
                self.writer[key] = joined
            else:
                self._write_root_value(joined)
            return
        super().write_enum_value(key, value)


def serialized(model: Parsable, writer_class=GraphJsonWriter) -> dict:
    writer = writer_class()
    writer.write_object_value(None, model)
    return json.loads(writer.get_serialized_content())


def parsed(raw: dict, model_class):
    """``raw`` parsed into ``model_class`` by kiota's JSON parse node (as the SDK parses an answer)."""
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(raw).encode())
    return node.get_object_value(model_class)


# Properties Graph sends at /beta that the beta SDK's models (generated from Graph's beta metadata) lack:
# Microsoft's own beta response examples show `"templateId": null` and `"partialEnablementStrategy": null`
# on every conditionalAccessPolicy and whatIfAnalysisResult ("Evaluate" and "List policyDeletableItem
# objects", api-reference/beta in microsoft-graph-docs-contrib); v1.0's model has templateId, neither has
# partialEnablementStrategy. They stay in `additional_data` and are accepted there, on those models only.
MODEL_LACKS = {ConditionalAccessPolicy: ("templateId", "partialEnablementStrategy")}


def untyped(model, path: str = "$") -> list[str]:
    """Paths of JSON properties the model kept only in ``additional_data`` (OData annotations and
    `MODEL_LACKS` excepted)."""
    found = []
    if isinstance(model, list):
        for i, item in enumerate(model):
            found += untyped(item, f"{path}[{i}]")
        return found
    if not isinstance(model, Parsable):
        return found
    lacks = {k for cls, keys in MODEL_LACKS.items() if isinstance(model, cls) for k in keys}
    found += [
        f"{path}.{k}" for k in getattr(model, "additional_data", {}) if "@odata." not in k and k not in lacks
    ]
    for f in fields(model):
        if f.name not in ("backing_store", "additional_data"):
            found += untyped(getattr(model, f.name), f"{path}.{f.name}")
    return found


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _instant(text: str) -> datetime:
    head, zone = re.match(r"^(.*?)(Z|[+-]\d{2}:\d{2})$", text).groups()
    if "." in head:
        head, frac = head.split(".")
        head = f"{head}.{(frac + '000000')[:6]}"  # Graph sends 7 digits; Python holds microseconds
    return datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone)).astimezone(UTC)


def normal(value):
    """JSON made comparable: nulls dropped (absent and null are alike), date-times as instants."""
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str) and _DATETIME.match(value):
        return _instant(value)
    return value


def differences(raw, back, path: str = "$") -> list[tuple[str, object, object]]:
    """(path, sent, serialized back) wherever the two differ, after `normal`."""
    if isinstance(raw, dict) and isinstance(back, dict):
        out = []
        if "@odata.type" not in raw:
            back = {k: v for k, v in back.items() if k != "@odata.type"}  # the model's own default
        for key in sorted(set(raw) | set(back)):
            out += differences(raw.get(key), back.get(key), f"{path}.{key}")
        return out
    if isinstance(raw, list) and isinstance(back, list) and len(raw) == len(back):
        out = []
        for i, (a, b) in enumerate(zip(raw, back, strict=True)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    return [] if raw == back else [(path, raw, back)]


def assert_lossless(raw: dict, model: Parsable, allowed: list | None = None) -> None:
    """Every property of ``raw`` typed in ``model`` and the model's serialization equal to ``raw``.
    ``allowed``: differences expected and explained by the caller (the SDK's own gaps)."""
    assert untyped(model) == [], f"properties the beta model does not have: {untyped(model)}"
    assert differences(normal(raw), normal(serialized(model))) == (allowed or [])


def combination_losses(raw_policy: dict, prefix: str) -> list[tuple[str, object, object]]:
    """The `allowedCombinations` elements the SDK cannot hold (combined flags: "password,sms" -> None),
    each checked to be made only of the beta enum's members."""
    members = {m.value for m in AuthenticationMethodModes}
    losses = []
    for i, combination in enumerate(raw_policy.get("allowedCombinations") or []):
        assert set(combination.split(",")) <= members, f"{combination!r} is not in authenticationMethodModes"
        if "," in combination:
            losses.append((f"{prefix}.allowedCombinations[{i}]", combination, None))
    return losses


def _user(sim, tenant: str, state: str, registered: bool | None = None):
    return next(
        u
        for u in sim.tenant(tenant).users
        if u.per_user_state == state
        and not u.break_glass
        and (registered is None or u.is_mfa_registered == registered)
    )


def _product_scope(sim, tenant: str, grant: str = "mfa") -> Scope:
    """What the product's policy builders take of a run: a full run's scope with the tenant's break-glass."""
    break_glass = sorted(u.id for u in sim.tenant(tenant).users if u.break_glass)
    return Scope.of({"break_glass_ids": break_glass}, "full", None, {"grant": grant})


def _same_as_plain_get(graph, tenant: str, exchange: Exchange) -> None:
    """The SDK's answer equals what a plain HTTPS GET of the same URL answers."""
    assert graph(tenant).get(exchange.url).json() == exchange.json()


# --- per-user MFA (beta only) --------------------------------------------------------------------------
def test_per_user_requirements_parse_into_strong_authentication_requirements(sim, beta, graph):
    client = beta(CONTOSO)
    for state in ("disabled", "enabled", "enforced"):
        user = _user(sim, CONTOSO, state)
        model = client(client.sdk.users.by_user_id(user.id).authentication.requirements.get())
        raw = client.last.json()
        assert client.last.url.endswith(f"/beta/users/{user.id}/authentication/requirements")
        assert set(raw) == {"@odata.context", "perUserMfaState"}
        assert isinstance(model, StrongAuthenticationRequirements)
        assert model.per_user_mfa_state == PerUserMfaState(state)
        assert_lossless(raw, model)
        _same_as_plain_get(graph, CONTOSO, client.last)


def test_the_sdks_per_user_patch_is_accepted_and_reads_back(sim, beta):
    client = beta(CONTOSO)
    unregistered = _user(sim, CONTOSO, "disabled", registered=False)
    registered = _user(sim, CONTOSO, "disabled", registered=True)
    requirements = client.sdk.users.by_user_id(unregistered.id).authentication.requirements
    answer = client(
        requirements.patch(StrongAuthenticationRequirements(per_user_mfa_state=PerUserMfaState.Enabled))
    )
    assert answer is None and client.last.status == 204
    assert json.loads(client.last.sent) == {"perUserMfaState": "enabled"}
    assert client(requirements.get()).per_user_mfa_state == PerUserMfaState.Enabled
    # Documented: enabled for a user with a registered method becomes enforced.
    requirements = client.sdk.users.by_user_id(registered.id).authentication.requirements
    client(requirements.patch(StrongAuthenticationRequirements(per_user_mfa_state=PerUserMfaState.Enabled)))
    model = client(requirements.get())
    assert model.per_user_mfa_state == PerUserMfaState.Enforced
    assert_lossless(client.last.json(), model)


def test_per_user_requirements_in_a_beta_batch_parse_item_by_item(sim, graph):
    """The console reads and writes per-user state 20 to a `/beta/$batch`; each item's answer parses into
    the beta model as a direct GET's does. (msgraph-core 1.5.2's batch client imports `deprecated`, which
    it does not declare, so the batch is sent as the console sends it and its items parsed by kiota.)"""
    users = [_user(sim, CONTOSO, s) for s in ("disabled", "enabled", "enforced")]
    target = next(u for u in sim.tenant(CONTOSO).users if u.per_user_state == "enforced" and u not in users)
    patch = serialized(StrongAuthenticationRequirements(per_user_mfa_state=PerUserMfaState.Disabled))
    requests = [
        {"id": str(i), "method": "GET", "url": f"/users/{u.id}/authentication/requirements"}
        for i, u in enumerate(users)
    ] + [
        {
            "id": "patch",
            "method": "PATCH",
            "url": f"/users/{target.id}/authentication/requirements",
            "headers": {"Content-Type": "application/json"},
            "body": patch,
        }
    ]
    answer = graph(CONTOSO).post("/beta/$batch", json={"requests": requests})
    responses = {r["id"]: r for r in answer.json()["responses"]}
    assert {k: r["status"] for k, r in responses.items()} == {"0": 200, "1": 200, "2": 200, "patch": 204}
    for i, user in enumerate(users):
        raw = responses[str(i)]["body"]
        model = parsed(raw, StrongAuthenticationRequirements)
        assert model.per_user_mfa_state == PerUserMfaState(user.per_user_state)
        assert_lossless(raw, model)
    assert target.per_user_state == "disabled"


# --- Conditional Access policies ------------------------------------------------------------------------
def test_listed_and_read_policies_parse_into_conditional_access_policy(sim, beta, graph):
    """Northwind's Microsoft-managed policies: templateId, 7-digit date-times, a null modifiedDateTime."""
    client = beta(NORTHWIND)
    page = client(client.sdk.identity.conditional_access.policies.get())
    raw = client.last.json()
    assert len(page.value) == len(raw["value"]) == 2
    assert_lossless(raw, page)
    _same_as_plain_get(graph, NORTHWIND, client.last)
    for listed in raw["value"]:
        model = client(
            client.sdk.identity.conditional_access.policies.by_conditional_access_policy_id(
                listed["id"]
            ).get()
        )
        assert isinstance(model, ConditionalAccessPolicy)
        assert str(model.additional_data["templateId"]) == listed["templateId"]  # see MODEL_LACKS
        assert_lossless(client.last.json(), model)


def _as_model(body: dict, model_class):
    """A product request body as the beta model: it must fit it entirely, or the SDK could not send it."""
    model = parsed(body, model_class)
    assert untyped(model) == [], f"the product sends properties the beta model lacks: {untyped(model)}"
    return model


@pytest.mark.parametrize("grant", ["mfa", "mfa_strength"])
def test_the_products_policy_created_and_updated_through_the_sdk_reads_back_whole(sim, beta, grant):
    client = beta(CONTOSO)
    body = desired_policy(_product_scope(sim, CONTOSO, grant))
    policies = client.sdk.identity.conditional_access.policies
    created = client(policies.post(_as_model(body, ConditionalAccessPolicy)))
    assert client.last.status == 201
    raw = client.last.json()
    strength = raw["grantControls"].get("authenticationStrength")
    losses = combination_losses(strength, "$.grantControls.authenticationStrength") if strength else []
    if grant == "mfa_strength":
        assert strength["id"] == STRENGTH_MFA and losses  # expanded, with combined-method entries
        assert created.grant_controls.authentication_strength.requirements_satisfied == [
            AuthenticationStrengthRequirements.Mfa
        ]
    assert_lossless(raw, created, losses)
    assert created.display_name == body["displayName"] and created.state.value == body["state"]

    item = policies.by_conditional_access_policy_id(created.id)
    answer = client(item.patch(ConditionalAccessPolicy(description="checked by the beta SDK")))
    assert answer is None and client.last.status == 204
    model = client(item.get())
    assert model.description == "checked by the beta SDK" and model.modified_date_time is not None
    assert_lossless(client.last.json(), model, losses)


def test_the_products_sign_in_frequency_policy_reads_back_whole(sim, beta):
    client = beta(CONTOSO)
    body = desired_session_policy(_product_scope(sim, CONTOSO), {"value": 14, "type": "days"})
    created = client(
        client.sdk.identity.conditional_access.policies.post(_as_model(body, ConditionalAccessPolicy))
    )
    raw = client.last.json()
    assert set(raw["sessionControls"]) >= {"signInFrequency", "persistentBrowser", "cloudAppSecurity"}
    assert created.session_controls.sign_in_frequency.value == 14
    assert_lossless(raw, created)


# --- named locations ----------------------------------------------------------------------------------------
def test_named_locations_listed_read_created_and_patched_parse_whole(sim, beta, graph):
    client = beta(WOODGROVE)
    locations = client.sdk.identity.conditional_access.named_locations
    page = client(locations.get())
    raw = client.last.json()
    assert [type(m) for m in page.value] == [IpNamedLocation]
    assert_lossless(raw, page)
    _same_as_plain_get(graph, WOODGROVE, client.last)
    hq = client(locations.by_named_location_id(raw["value"][0]["id"]).get())
    assert {r.odata_type for r in hq.ip_ranges} == {
        "#microsoft.graph.iPv4CidrRange",
        "#microsoft.graph.iPv6CidrRange",
    }
    assert_lossless(client.last.json(), hq)

    body = {  # as the named-location step creates it
        "@odata.type": IP_LOCATION,
        "displayName": "MFA trusted IPs (migrated)",
        "isTrusted": True,
        "ipRanges": [range_item("203.0.113.0/24"), range_item("2001:db8:2000::/48")],
    }
    created = client(locations.post(_as_model(body, NamedLocation)))
    assert isinstance(created, IpNamedLocation) and client.last.status == 201
    assert_lossless(client.last.json(), created)
    patch = {**body, "ipRanges": [*body["ipRanges"], range_item("198.51.100.0/24")]}  # the step's union
    del patch["displayName"]
    client(locations.by_named_location_id(created.id).patch(_as_model(patch, NamedLocation)))
    assert client.last.status == 204
    model = client(locations.by_named_location_id(created.id).get())
    assert [r.cidr_address for r in model.ip_ranges][-1] == "198.51.100.0/24"
    assert_lossless(client.last.json(), model)

    country = CountryNamedLocation(display_name="Blocked countries", countries_and_regions=["KP"])
    created = client(locations.post(country))
    assert isinstance(created, CountryNamedLocation)
    assert_lossless(client.last.json(), created)


# --- authentication strengths ----------------------------------------------------------------------------
def test_authentication_strengths_parse_whole_but_for_the_sdks_combined_flags(sim, beta, graph):
    client = beta(CONTOSO)
    strengths = client.sdk.policies.authentication_strength_policies
    page = client(strengths.get())
    raw = client.last.json()
    assert [s.id for s in page.value] == list(BUILT_IN_STRENGTHS)
    losses = [loss for i, s in enumerate(raw["value"]) for loss in combination_losses(s, f"$.value[{i}]")]
    assert losses  # "password,microsoftAuthenticatorPush" and the like: see the module docstring
    assert_lossless(raw, page, losses)
    _same_as_plain_get(graph, CONTOSO, client.last)
    for sid in BUILT_IN_STRENGTHS:
        model = client(strengths.by_authentication_strength_policy_id(sid).get())
        raw = client.last.json()
        assert isinstance(model, AuthenticationStrengthPolicy)
        assert model.requirements_satisfied == [AuthenticationStrengthRequirements.Mfa]
        assert_lossless(raw, model, combination_losses(raw, "$"))


# --- What-If ------------------------------------------------------------------------------------------------
def test_what_if_as_the_verify_step_asks_parses_into_what_if_analysis_results(sim, beta):
    client = beta(NORTHWIND)
    user = _user(sim, NORTHWIND, "enforced")
    body = {  # the verify step's request (migrations_engine/graph/resources/what_if.py)
        "signInIdentity": {"@odata.type": "#microsoft.graph.userSignIn", "userId": user.id},
        "signInContext": {
            "@odata.type": "#microsoft.graph.applicationContext",
            "includeApplications": [WHAT_IF_APP],
        },
        "signInConditions": {},
        "appliedPoliciesOnly": False,
    }
    answer = client(
        client.sdk.identity.conditional_access.evaluate.post(_as_model(body, EvaluatePostRequestBody))
    )
    assert client.last.url.endswith("/beta/identity/conditionalAccess/evaluate")
    raw = client.last.json()
    assert json.loads(client.last.sent)["signInIdentity"] == body["signInIdentity"]
    assert [type(r) for r in answer.value] == [WhatIfAnalysisResult, WhatIfAnalysisResult]
    by_name = {r.display_name: r for r in answer.value}
    assert by_name["Multifactor authentication for all users"].policy_applies is True
    legacy = by_name["Block legacy authentication"]  # browser sign-in: not a legacy client
    assert legacy.policy_applies is False and legacy.analysis_reasons == [WhatIfAnalysisReasons.ClientApps]
    assert_lossless(raw, answer)


# --- the undocumented legacy settings --------------------------------------------------------------------
def test_the_legacy_mfa_service_policy_is_not_in_the_beta_sdk(sim, beta, graph):
    """`GET /beta/policies/mfaServicePolicy` (the named-location and sign-in frequency steps read it) is
    not in Microsoft's beta reference, and the beta SDK, generated from Graph's beta metadata, has neither
    a request builder nor a model for it: its shape is the simulator's assumption (graph_sim/README.md),
    which no official client can confirm. The console parses it defensively
    (steps/shared/legacy_settings.py)."""
    import msgraph_beta.generated.models as models_package

    client = beta(CONTOSO)
    assert not hasattr(client.sdk.policies, "mfa_service_policy")
    names = {p.stem for p in Path(models_package.__path__[0]).glob("*.py")}
    assert not {"mfa_service_policy", "mfa_service_settings"} & names
    assert graph(CONTOSO).get("/beta/policies/mfaServicePolicy").status_code == 200


# --- the comparison itself -----------------------------------------------------------------------------
def test_the_sdk_gaps_the_comparison_works_around_are_still_there():
    strength = parsed(
        {"requirementsSatisfied": "mfa", "allowedCombinations": ["fido2", "password,sms"]},
        AuthenticationStrengthPolicy,
    )
    assert strength.allowed_combinations == [AuthenticationMethodModes.Fido2, None]
    assert "requirementsSatisfied" not in serialized(strength, JsonSerializationWriter)
    assert serialized(strength)["requirementsSatisfied"] == "mfa"
    known = ConditionalAccessPolicy().get_field_deserializers()
    assert not set(MODEL_LACKS[ConditionalAccessPolicy]) & set(known)


def test_the_comparison_finds_a_renamed_property_and_a_changed_value():
    raw = {"@odata.context": "x", "perUserMfaState": "enabled"}
    renamed = {"@odata.context": "x", "perUserMFAState": "enabled"}
    model = parsed(renamed, StrongAuthenticationRequirements)
    assert untyped(model) == ["$.perUserMFAState"]
    with pytest.raises(AssertionError, match="perUserMFAState"):
        assert_lossless(renamed, model)
    unknown_value = parsed({**raw, "perUserMfaState": "on"}, StrongAuthenticationRequirements)
    with pytest.raises(AssertionError):
        assert_lossless({**raw, "perUserMfaState": "on"}, unknown_value)
    policy = {
        "id": "p",
        "createdDateTime": "2024-11-04T08:12:45.1234567Z",
        "conditions": {"clientAppTypes": ["all"]},
    }
    assert differences(normal(policy), normal(serialized(parsed(policy, ConditionalAccessPolicy)))) == []
    nested = {**policy, "conditions": {"clientAppTypes": ["all"], "userz": {}}}
    assert untyped(parsed(nested, ConditionalAccessPolicy)) == ["$.conditions.userz"]
