"""Staff sign-in at the MSP's own tenant: the authorization-code flow with PKCE, through msal.

What the simulator does follows Microsoft's pages:
- https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow (the request, the redirect
  with code and state, the code redemption, single-use codes: AADSTS54005, PKCE)
- https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference (v2.0 claims; groups
  overage past 200; no `amr` in v2.0 ID tokens)
- https://learn.microsoft.com/entra/identity-platform/developer-guide-conditional-access-authentication-context
  (a requested authentication context comes back in `acrs` once its policy is met)
- https://learn.microsoft.com/entra/identity-platform/reply-url (the port of a localhost reply URL is
  ignored)
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import pytest

from tests.graph_sim.conftest import CONTOSO, requests_session

# The console uses the query response mode (staff/entra/flow.py says why); msal warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post':UserWarning")
REDIRECT = "http://localhost:8123/account/entra/callback/"
WANTS_C1 = json.dumps({"id_token": {"acrs": {"essential": True, "value": "c1"}}})


@pytest.fixture
def staff(sim):
    return sim.fleet["staff_sign_in"]


@pytest.fixture
def app(sim, staff):
    return msal.ConfidentialClientApplication(
        staff["client_id"],
        authority=f"{sim.authority_host}/{staff['tenant_id']}",
        client_credential=staff["client_secret"],
        instance_discovery=False,
        http_client=requests_session(sim.ca_bundle),
    )


@pytest.fixture
def browser(sim):
    with httpx.Client(verify=sim.ssl_context, trust_env=False, timeout=30) as client:
        yield client


def person(staff, alias: str) -> dict:
    return next(m for m in staff["members"] if m["upn"].startswith(f"{alias}@"))


def sign_in(browser, flow: dict, who: dict, *, approve: bool | None = True) -> httpx.Response:
    """Open the flow's auth_uri; enter the password; answer the MFA step. The last response."""
    page = browser.get(flow["auth_uri"])
    if page.status_code == 302:
        return page
    assert page.status_code == 200, page.text
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    login = urlsplit(flow["auth_uri"]).path.replace("/oauth2/v2.0/authorize", "/login")
    base = f"{urlsplit(flow['auth_uri']).scheme}://{urlsplit(flow['auth_uri']).netloc}"
    answer = browser.post(
        f"{base}{login}",
        data={"txn": txn, "step": "password", "username": who["upn"], "password": who["password"]},
    )
    if answer.status_code == 200 and 'name="step" value="mfa"' in answer.text and approve is not None:
        answer = browser.post(
            f"{base}{login}", data={"txn": txn, "step": "mfa", "action": "approve" if approve else "deny"}
        )
    return answer


def callback_query(response: httpx.Response) -> dict:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("http://localhost:8123/account/entra/callback/")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_a_staff_member_signs_in_with_mfa_and_msal_gets_an_id_token(sim, staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    ada = person(staff, "ada")
    query = callback_query(sign_in(browser, flow, ada))
    assert query["state"] == flow["state"] and query["code"] and query["client_info"]

    result = app.acquire_token_by_auth_code_flow(flow, query)

    claims = result["id_token_claims"]
    assert claims["iss"] == f"{sim.authority_host}/{staff['tenant_id']}/v2.0"
    assert (claims["aud"], claims["tid"], claims["ver"]) == (staff["client_id"], staff["tenant_id"], "2.0")
    assert claims["preferred_username"] == ada["upn"] and claims["oid"] == ada["id"]
    assert claims["acrs"] == ["c1"] and "amr" not in claims  # v2.0 ID tokens carry no amr
    groups = {g["displayName"]: g["id"] for g in staff["groups"]}
    assert set(claims["groups"]) == {groups["Console Operators"], groups["Helpdesk"]}
    assert isinstance(claims["auth_time"], int) and "refresh_token" in result


def test_the_code_is_single_use_and_bound_to_pkce_and_the_reply_url(sim, staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    query = callback_query(sign_in(browser, flow, person(staff, "ada")))
    token_url = f"/{staff['tenant_id']}/oauth2/v2.0/token"
    form = {
        "grant_type": "authorization_code",
        "client_id": staff["client_id"],
        "client_secret": staff["client_secret"],
        "code": query["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": "not-the-verifier",
    }
    wrong_verifier = sim.http.post(token_url, data=form).json()
    assert wrong_verifier["error"] == "invalid_grant" and wrong_verifier["error_codes"] == [501481]
    # A code is redeemed once, even when that try failed.
    again = sim.http.post(token_url, data={**form, "code_verifier": flow["code_verifier"]}).json()
    assert again["error_codes"] == [54005]

    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    query = callback_query(sign_in(browser, flow, person(staff, "ada")))
    other_reply = {**form, "code": query["code"], "code_verifier": flow["code_verifier"]}
    other_reply["redirect_uri"] = "http://localhost:8123/elsewhere/"
    assert sim.http.post(token_url, data=other_reply).json()["error_codes"] == [500112]
    bad_secret = {**form, "client_secret": "wrong"}
    assert sim.http.post(token_url, data=bad_secret).json()["error_codes"] == [7000215]


def test_a_reply_url_that_is_not_registered_is_refused_on_the_sign_in_page(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri="https://evil.example/account/entra/callback/")
    page = browser.get(flow["auth_uri"])
    assert page.status_code == 400 and "AADSTS50011" in page.text


def test_the_staff_app_lives_only_in_the_msp_tenant(sim, staff, browser):
    customer = msal.ConfidentialClientApplication(
        staff["client_id"],
        authority=f"{sim.authority_host}/{CONTOSO}",
        client_credential=staff["client_secret"],
        instance_discovery=False,
        http_client=requests_session(sim.ca_bundle),
    )
    page = browser.get(customer.initiate_auth_code_flow([], redirect_uri=REDIRECT)["auth_uri"])
    assert page.status_code == 400 and "AADSTS700016" in page.text


def test_without_a_context_asked_for_no_mfa_is_asked_and_the_token_says_nothing_of_it(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT)
    query = callback_query(sign_in(browser, flow, person(staff, "ada"), approve=None))
    claims = app.acquire_token_by_auth_code_flow(flow, query)["id_token_claims"]
    assert "acrs" not in claims and "amr" not in claims


def test_a_context_with_no_policy_comes_back_without_mfa_and_an_undeclared_one_never(staff, app, browser):
    wants = json.dumps({"id_token": {"acrs": {"essential": True, "values": ["c2", "c9"]}}})
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=wants)
    query = callback_query(sign_in(browser, flow, person(staff, "ada"), approve=None))
    assert app.acquire_token_by_auth_code_flow(flow, query)["id_token_claims"]["acrs"] == ["c2"]


def test_denied_mfa_and_unregistered_mfa_come_back_as_errors(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    denied = callback_query(sign_in(browser, flow, person(staff, "ada"), approve=False))
    assert denied["error"] == "access_denied" and "AADSTS500121" in denied["error_description"]
    assert app.acquire_token_by_auth_code_flow(flow, denied)["error"] == "access_denied"

    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    page = sign_in(browser, flow, person(staff, "linus"))
    assert "More information required" in page.text
    txn = re.search(r'name="txn" value="([^"]+)"', page.text).group(1)
    login = urlsplit(flow["auth_uri"]).path.replace("/oauth2/v2.0/authorize", "/login")
    cancelled = browser.post(
        f"{page.url.scheme}://{page.url.netloc.decode()}{login}",
        data={"txn": txn, "step": "register", "action": "cancel"},
    )
    assert "AADSTS50079" in callback_query(cancelled)["error_description"]


def test_wrong_passwords_and_disabled_accounts(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    wrong = sign_in(browser, flow, {**person(staff, "ada"), "password": "nope"})
    assert wrong.status_code == 200 and "Your account or password is incorrect." in wrong.text
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    disabled = callback_query(sign_in(browser, flow, person(staff, "dora")))
    assert "AADSTS50057" in disabled["error_description"]


def test_the_sign_in_session_skips_the_password_unless_prompt_login(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    first = app.acquire_token_by_auth_code_flow(
        flow, callback_query(sign_in(browser, flow, person(staff, "ada")))
    )

    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    silent = browser.get(flow["auth_uri"])  # straight back: the browser is signed in, MFA done
    second = app.acquire_token_by_auth_code_flow(flow, callback_query(silent))
    assert second["id_token_claims"]["auth_time"] == first["id_token_claims"]["auth_time"]

    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1, prompt="login")
    assert browser.get(flow["auth_uri"]).status_code == 200  # the password page again


def test_roles_and_the_groups_overage_claim(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    grace = app.acquire_token_by_auth_code_flow(
        flow, callback_query(sign_in(browser, flow, person(staff, "grace")))
    )
    assert grace["id_token_claims"]["roles"] == ["Console.Approver"]

    browser.cookies.clear()
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    olga = app.acquire_token_by_auth_code_flow(
        flow, callback_query(sign_in(browser, flow, person(staff, "olga")))
    )
    claims = olga["id_token_claims"]
    assert "groups" not in claims and claims["_claim_names"] == {"groups": "src1"}


def test_guests_say_so_in_acct_and_idp(staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    gus = app.acquire_token_by_auth_code_flow(
        flow, callback_query(sign_in(browser, flow, person(staff, "gus")))
    )
    claims = gus["id_token_claims"]
    assert claims["acct"] == 1 and claims["idp"].startswith("https://sts.windows.net/")
    assert claims["tid"] == staff["tenant_id"]  # a guest signs in to the MSP's tenant all the same


def test_sign_out_ends_the_sign_in_session_and_returns_to_a_registered_url(sim, staff, app, browser):
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    callback_query(sign_in(browser, flow, person(staff, "ada")))
    logout = f"{sim.authority_host}/{staff['tenant_id']}/oauth2/v2.0/logout"
    back = browser.get(logout, params={"post_logout_redirect_uri": "http://localhost:8123/login/"})
    assert back.status_code == 302 and back.headers["location"] == "http://localhost:8123/login/"
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT, claims_challenge=WANTS_C1)
    assert browser.get(flow["auth_uri"]).status_code == 200  # the password page: no session any more
    elsewhere = browser.get(logout, params={"post_logout_redirect_uri": "https://evil.example/"})
    assert elsewhere.status_code == 200 and "You signed out" in elsewhere.text
