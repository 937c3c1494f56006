"""Login side: OIDC metadata, client credentials (secret and certificate), the real AAD error shapes,
roles per tenant, and the admin-consent page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest

from graph_sim.auth import FULL_ROLES
from tests.graph_sim.conftest import ADATUM, CONTOSO, GRAPH_SCOPE, LITWARE, requests_session


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_it_serves_oidc_metadata_for_guid_and_domain(sim):
    by_guid = sim.admin_response("GET", f"/{CONTOSO}/v2.0/.well-known/openid-configuration").json()
    by_domain = sim.admin_response(
        "GET", "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    ).json()
    assert by_guid == by_domain
    assert by_guid["issuer"] == f"{sim.authority_host}/{CONTOSO}/v2.0"
    assert by_guid["token_endpoint"] == f"{sim.authority_host}/{CONTOSO}/oauth2/v2.0/token"
    assert by_guid["jwks_uri"].startswith(sim.authority_host)
    keys = sim.admin_response("GET", urlsplit(by_guid["jwks_uri"]).path).json()["keys"]
    assert keys and keys[0]["kty"] == "RSA"


def test_it_answers_unknown_tenant_with_aadsts90002(sim):
    r = sim.admin_response("GET", "/nope.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_request" and body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002:")
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()
    r = sim.admin_response("POST", "/nope.onmicrosoft.com/oauth2/v2.0/token")
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]
    with pytest.raises(ValueError):
        msal.ConfidentialClientApplication(
            sim.fleet["client_id"],
            authority=f"{sim.authority_host}/nope.example",
            client_credential="x",
            instance_discovery=False,
            http_client=requests_session(sim.ca_bundle),
        )


def test_it_issues_a_graph_token_to_msal_with_a_secret(sim, msal_app):
    result = msal_app("contoso.onmicrosoft.com").acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3599
    claims = _claims(result["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == CONTOSO and claims["appid"] == sim.fleet["client_id"]
    assert sorted(claims["roles"]) == sorted(FULL_ROLES)
    assert claims["exp"] - claims["iat"] == 3599 and claims["appidacr"] == "1"


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_it_accepts_a_certificate_assertion_from_msal(sim, msal_app, form):
    key = open(sim.fleet["client_private_key"]).read()
    cred = {"private_key": key}
    if form == "thumbprint":
        cred["thumbprint"] = sim.fleet["client_certificate_thumbprint"]  # RS256 + x5t
    else:
        cred["public_certificate"] = open(sim.fleet["client_certificate"]).read()  # PS256 + x5t#S256
    result = msal_app(CONTOSO, cred).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert "access_token" in result, result
    assert _claims(result["access_token"])["appidacr"] == "2"


def test_it_rejects_an_assertion_signed_by_another_key(sim, msal_app):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    cred = {"private_key": other, "thumbprint": sim.fleet["client_certificate_thumbprint"]}
    result = msal_app(CONTOSO, cred).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_it_rejects_a_wrong_secret_with_aadsts7000215(msal_app):
    result = msal_app(CONTOSO, "not-the-secret").acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


def test_it_rejects_an_unknown_client_with_aadsts700016(sim):
    r = sim.admin_response("POST", f"/{CONTOSO}/oauth2/v2.0/token")  # no form at all
    assert r.status_code == 400 and r.json()["error_codes"] == [900144]
    r = sim.http.post(
        f"/{CONTOSO}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "00000000-0000-0000-0000-000000000001",
            "client_secret": "x",
            "scope": GRAPH_SCOPE[0],
        },
    )
    assert r.status_code == 400
    assert r.json()["error"] == "unauthorized_client" and r.json()["error_codes"] == [700016]


def test_it_refuses_tokens_in_a_tenant_without_consent(msal_app):
    result = msal_app(ADATUM).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000229]
    assert "missing service principal" in result["error_description"]


def test_it_puts_only_the_consented_roles_in_the_token(sim, msal_app):
    claims = _claims(msal_app(LITWARE).acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"])
    assert "Policy.ReadWrite.AuthenticationMethod" not in claims["roles"]
    assert set(claims["roles"]) == set(FULL_ROLES) - {"Policy.ReadWrite.AuthenticationMethod"}
    sim.admin_response("POST", f"/_sim/tenants/{LITWARE}/consent", json={"granted": True, "roles": []})
    claims = _claims(msal_app(LITWARE).acquire_token_for_client(scopes=GRAPH_SCOPE)["access_token"])
    assert "roles" not in claims  # consented with no application permissions: no roles claim at all


def test_it_rejects_a_non_default_scope(sim):
    r = sim.http.post(
        f"/{CONTOSO}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sim.fleet["client_id"],
            "client_secret": sim.fleet["client_secret"],
            "scope": "User.Read",
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def _consent_url(sim, tenant: str, state: str = "xyz") -> str:
    return (
        f"/{tenant}/adminconsent?client_id={sim.fleet['client_id']}"
        f"&redirect_uri=https%3A%2F%2Fconsole.example%2Fconsent%2Fcallback&state={state}"
    )


def _submit(sim, tenant: str, action: str, extra: dict | None = None) -> httpx.Response:
    page = sim.admin_response("GET", _consent_url(sim, tenant))
    assert page.status_code == 200 and "Accept" in page.text and "Cancel" in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form = {**fields, "action": action, **(extra or {})}
    return sim.http.post(urlsplit(_consent_url(sim, tenant)).path, data=form, follow_redirects=False)


def test_it_grants_consent_when_the_admin_accepts(sim, msal_app):
    page = sim.admin_response("GET", _consent_url(sim, ADATUM))
    for role in FULL_ROLES:
        assert role in page.text
    r = _submit(sim, ADATUM, "accept")
    assert r.status_code == 302
    loc = urlsplit(r.headers["location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == "https://console.example/consent/callback"
    assert parse_qs(loc.query) == {"admin_consent": ["True"], "tenant": [ADATUM], "state": ["xyz"]}
    result = msal_app(ADATUM).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert sorted(_claims(result["access_token"])["roles"]) == sorted(FULL_ROLES)


def test_it_redirects_with_an_error_when_the_admin_cancels(sim):
    r = _submit(sim, ADATUM, "cancel")
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["location"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["xyz"]
    assert q["error_description"][0].startswith("AADSTS65004")
    assert "tenant" not in q
    assert sim.tenant(ADATUM).consent_granted is False


def test_it_lets_the_admin_pick_the_tenant_on_the_organizations_page(sim):
    page = sim.admin_response("GET", _consent_url(sim, "organizations"))
    assert '<select name="tenant"' in page.text and ADATUM in page.text
    r = _submit(sim, "organizations", "accept", {"tenant": ADATUM})
    assert parse_qs(urlsplit(r.headers["location"]).query)["tenant"] == [ADATUM]
    assert sim.tenant(ADATUM).consent_granted is True
