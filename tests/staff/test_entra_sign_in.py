"""Staff sign-in through the MSP's own Entra ID, end to end: the console (msal) ↔ the simulator's login
side (authorize page, MFA step, code redemption; see tests/graph_sim/test_staff_sign_in.py for what it
does and the Microsoft pages it follows)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from migrations_engine.models import AuditEvent
from staff import roles
from staff.checks import staff_sign_in_is_hardened
from staff.entra.config import entra_sign_in
from staff.entra.flow import SignInRefused, _proof
from staff.models import EntraIdentity
from staff.sessions import AUTHENTICATED_AT, is_fresh
from tests.staff.entra_helpers import (
    at_entra,
    callback_path,
    login_browser,
    map_roles,
    person,
    point_entra_at,
    sign_in_with_entra,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(settings, fresh_sim):
    staff = point_entra_at(settings, fresh_sim)
    map_roles(staff)
    return staff


@pytest.fixture
def browser(fresh_sim):
    with login_browser(fresh_sim) as client:
        yield client


def refusals() -> list[dict]:
    return [e.detail for e in AuditEvent.objects.filter(action="staff.entra_sign_in_refused").order_by("id")]


def signed_in(client: Client) -> bool:
    return client.get("/").status_code == 200


def test_an_operator_signs_in_with_mfa_and_gets_the_mapped_role_and_team(staff, browser):
    client = Client()
    answer = sign_in_with_entra(
        client, browser, person(staff, "ada"), start="/account/entra/login/?next=/runs/"
    )

    assert answer.status_code == 302 and answer["Location"] == "/runs/"
    ada = get_user_model().objects.get(username=person(staff, "ada")["upn"])
    assert ada.is_staff and not ada.is_superuser and not ada.has_usable_password()
    assert {g.name for g in ada.groups.all()} == {"Operator", "North desk"}
    assert roles.may(ada, roles.MIGRATE) and not roles.may(ada, roles.APPROVE)
    identity = EntraIdentity.objects.get(user=ada)
    assert (identity.tenant_id, identity.object_id) == (staff["tenant_id"], person(staff, "ada")["id"])
    # MFA proven at Entra ID stands for the console's second factor (required here for everyone).
    assert signed_in(client)
    row = AuditEvent.objects.get(action="staff.signed_in", actor=ada.username)
    assert row.detail["method"] == "entra" and row.detail["mfa"] == ["acrs:c1"] and row.detail["created"]


def test_an_app_role_gives_its_group_and_the_next_sign_in_follows_entra(staff, browser, fresh_sim):
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "grace")).status_code == 302
    grace = get_user_model().objects.get(username=person(staff, "grace")["upn"])
    assert {g.name for g in grace.groups.all()} == {"Approver"}

    # A group given by hand stays; the app role taken away in Entra ID takes Approver away.
    grace.groups.add(Group.objects.get(name="Viewer"))
    member = fresh_sim.simulator.sign_in.directory.find(person(staff, "grace")["upn"])
    fresh_sim.call(member.app_roles.clear)
    browser.cookies.clear()
    refused = sign_in_with_entra(Client(), browser, person(staff, "grace"))

    assert refused.status_code == 403 and b"maps to a role" in refused.content
    assert {g.name for g in grace.groups.all()} == {"Viewer"}
    assert refusals()[-1]["reason"] == "unmapped"


def test_a_sign_in_that_did_not_prove_mfa_is_refused_in_words(settings, staff, browser):
    settings.STAFF_ENTRA_AUTH_CONTEXT = "c9"  # not declared in the MSP's tenant: never in acrs
    client = Client()
    refused = sign_in_with_entra(client, browser, person(staff, "ada"))

    assert refused.status_code == 403
    assert b"did not prove multi-factor authentication" in refused.content
    assert not signed_in(client) and not get_user_model().objects.filter(username__startswith="ada@").exists()
    assert refusals()[-1] == {"reason": "no_mfa", "upn": person(staff, "ada")["upn"]}


def test_without_required_mfa_the_console_asks_for_its_own_second_factor(settings, staff, browser):
    settings.STAFF_ENTRA_REQUIRE_MFA = False
    settings.STAFF_ENTRA_AUTH_CONTEXT = ""
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "ada")).status_code == 302
    page = client.get("/")
    assert page.status_code == 302 and page["Location"].startswith("/account/second-factor/")


def test_entra_id_errors_reach_the_person_in_words(staff, browser):
    no_mfa_method = sign_in_with_entra(Client(), browser, person(staff, "linus"))
    assert no_mfa_method.status_code == 403 and b"AADSTS50079" in no_mfa_method.content
    denied = sign_in_with_entra(Client(), browser, person(staff, "ada"), mfa="deny")
    assert b"Microsoft Entra ID did not sign you in: AADSTS500121" in denied.content
    assert [r["reason"] for r in refusals()] == ["entra_error", "entra_error"]


def test_unmapped_people_and_group_overage_are_refused_and_nothing_is_made(staff, browser):
    unmapped = sign_in_with_entra(Client(), browser, person(staff, "mallory"))
    assert unmapped.status_code == 403 and b"no group and holds no app role" in unmapped.content
    browser.cookies.clear()
    overage = sign_in_with_entra(Client(), browser, person(staff, "olga"))
    assert overage.status_code == 403 and b"more groups than an ID token can list" in overage.content
    assert not EntraIdentity.objects.exists()
    assert [r["reason"] for r in refusals()] == ["unmapped", "groups_overage"]


def test_an_existing_local_account_of_the_same_name_is_never_taken_over(staff, browser):
    local = get_user_model().objects.create_user(
        person(staff, "ada")["upn"], "", "local-pw-12345", is_staff=True
    )
    refused = sign_in_with_entra(Client(), browser, person(staff, "ada"))
    assert refused.status_code == 403 and b"never takes over an existing account" in refused.content
    assert not EntraIdentity.objects.exists() and not local.groups.exists()


def test_a_replayed_forged_or_foreign_answer_is_refused(staff, browser, fresh_sim):
    client = Client()
    started = client.get("/account/entra/login/")
    back = callback_path(at_entra(browser, started["Location"], person(staff, "ada")))

    # Another browser (no flow in its session) brings the answer: refused, and the code is not redeemed.
    stranger = Client()
    assert stranger.get(back).status_code == 403
    # The right browser with a forged state (or an error text of someone else's choosing): refused, the
    # code unused, and the sign-in under way goes on.
    assert client.get(back.replace("state=", "state=x")).status_code == 403
    assert client.get("/account/entra/callback/?error=access_denied&state=forged").status_code == 403
    assert fresh_sim.simulator.sign_in.redemptions == []
    assert client.get(back).status_code == 302 and signed_in(client)
    # Used once: the same answer again is refused and redeems nothing.
    assert Client().get(back).status_code == 403 and client.get(back).status_code == 403
    assert [outcome for _, outcome in fresh_sim.simulator.sign_in.redemptions] == ["ok"]
    # Answers nobody asked for are logged, not audit rows anyone could pile up.
    assert refusals() == []


def test_guests_of_the_msp_tenant_are_refused(staff, browser):
    refused = sign_in_with_entra(Client(), browser, person(staff, "gus"))
    assert refused.status_code == 403 and b"Guest accounts" in refused.content
    assert not EntraIdentity.objects.exists() and refusals()[-1]["reason"] == "guest"


def test_a_sign_in_that_entra_answered_from_its_own_session_is_not_a_fresh_proof(staff, browser, fresh_sim):
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "ada")).status_code == 302
    assert is_fresh(type("R", (), {"session": client.session})())
    # An hour later Entra ID's session signs her in again without asking anything: the console's
    # session is not fresh for approve, full run or rollback (its proof is Entra ID's auth_time).
    fresh_sim.call(
        lambda: [
            setattr(s, "auth_time", s.auth_time - 3600) for s in fresh_sim.simulator.sign_in.sessions.values()
        ]
    )
    again = client.get(callback_path(browser.get(client.get("/account/entra/login/")["Location"])))
    assert again.status_code == 302
    assert not is_fresh(type("R", (), {"session": client.session})())


def test_mfa_at_entra_does_not_stand_for_a_superusers_second_factor(staff, browser):
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "ada")).status_code == 302
    get_user_model().objects.filter(username=person(staff, "ada")["upn"]).update(is_superuser=True)
    page = client.get("/")
    assert page.status_code == 302 and page["Location"].startswith("/account/second-factor/")


def test_signing_out_signs_out_of_entra_too(staff, browser, fresh_sim):
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "ada")).status_code == 302
    out = client.post("/logout/")
    assert out.status_code == 302 and "/oauth2/v2.0/logout?" in out["Location"]
    back = browser.get(out["Location"])
    assert back.status_code == 302 and back.headers["location"] == "http://localhost/login/"
    assert not signed_in(client)
    # The next "Sign in with Microsoft" at this browser asks for the password again.
    assert browser.get(client.get("/account/entra/login/")["Location"]).status_code == 200


def test_id_tokens_of_another_tenant_or_app_are_refused(staff):
    config = entra_sign_in()
    now = int(time.time())
    good = {"tid": config.tenant_id, "iss": config.issuer, "aud": config.client_id, "oid": "o", "iat": now}
    good |= {"exp": now + 3600, "acrs": ["c1"], "preferred_username": "x@y"}
    assert _proof(config, good, reauth=False, next_url="/").mfa == ("acrs:c1",)
    contoso = "11111111-1111-4111-8111-111111111111"
    for claims, reason in (
        ({**good, "tid": contoso, "iss": f"{config.authority_host}/{contoso}/v2.0"}, "wrong_tenant"),
        ({**good, "aud": "another-app"}, "wrong_audience"),
        ({**good, "exp": now - 3600}, "lifetime"),
        ({**good, "acrs": [], "amr": ["pwd"]}, "no_mfa"),
    ):
        with pytest.raises(SignInRefused) as refused:
            _proof(config, claims, reauth=False, next_url="/")
        assert refused.value.reason == reason
    # amr with mfa (v1.0 tokens carry it) proves MFA too.
    assert _proof(config, {**good, "acrs": [], "amr": ["pwd", "mfa"]}, reauth=False, next_url="/").mfa == (
        "amr:mfa",
    )


def test_reauthentication_goes_back_to_entra_for_the_password_and_mfa(staff, browser):
    client = Client()
    assert sign_in_with_entra(client, browser, person(staff, "ada")).status_code == 302
    session = client.session
    session[AUTHENTICATED_AT] = time.time() - 3600
    session.save()

    started = client.get("/account/entra/login/?reauth=1&next=/runs/")
    # prompt=login: the password page again although the login side's session cookie would serve.
    assert "prompt=login" in started["Location"]
    answer = client.get(callback_path(at_entra(browser, started["Location"], person(staff, "ada"))))

    assert answer.status_code == 302 and answer["Location"] == "/runs/"
    row = AuditEvent.objects.filter(action="staff.reauthenticated").latest("id")
    assert row.detail == {"with": "entra", "mfa": ["acrs:c1"]}
    assert time.time() - client.session[AUTHENTICATED_AT] < 60

    # Confirming as someone else is refused and changes nothing.
    browser.cookies.clear()
    started = client.get("/account/entra/login/?reauth=1")
    other = client.get(callback_path(at_entra(browser, started["Location"], person(staff, "alan"))))
    assert other.status_code == 403 and b"different Microsoft account" in other.content


def test_the_sign_in_page_offers_microsoft_only_when_it_is_set_up(settings, staff):
    assert b'id="entra-sign-in"' in Client().get("/login/").content
    settings.STAFF_ENTRA_TENANT_ID = ""
    assert b'id="entra-sign-in"' not in Client().get("/login/").content
    assert Client().get("/account/entra/login/").status_code == 404


def test_a_password_sign_in_is_an_audit_row_and_counts_as_fresh_without_a_second_factor(settings, db):
    settings.STAFF_SECOND_FACTOR_REQUIRED = False
    get_user_model().objects.create_user("pat", "", "a-long-pass-phrase-9", is_staff=True)
    client = Client()
    answer = client.post("/login/", {"username": "pat", "password": "a-long-pass-phrase-9", "next": "/"})
    assert answer.status_code == 302
    assert AuditEvent.objects.get(action="staff.signed_in", actor="pat").detail["method"] == "password"
    assert is_fresh(type("R", (), {"session": client.session})())


def test_a_password_alone_never_refreshes_the_proof_of_someone_with_a_second_factor(settings, db):
    sam = get_user_model().objects.create_user("sam", "", "a-long-pass-phrase-9", is_staff=True)
    client = Client()
    client.force_login(sam)  # password and code, then (tests/conftest.py)
    session = client.session
    session[AUTHENTICATED_AT] = time.time() - 3600
    session.save()
    # Signing in again with the password only: django-otp still counts the earlier code for the session.
    client.post("/login/", {"username": "sam", "password": "a-long-pass-phrase-9", "next": "/"})
    assert not is_fresh(type("R", (), {"session": client.session})())


def test_deploy_checks_name_an_entra_sign_in_that_cannot_prove_mfa(settings):
    settings.PRODUCTION = True
    settings.STAFF_ENTRA_TENANT_ID, settings.STAFF_ENTRA_CLIENT_ID = "t", "c"
    settings.STAFF_ENTRA_CLIENT_SECRET = ""
    settings.STAFF_ENTRA_REQUIRE_MFA, settings.STAFF_ENTRA_AUTH_CONTEXT = True, ""
    ids = {problem.id for problem in staff_sign_in_is_hardened(None)}
    assert {"staff.E003", "staff.E004"} <= ids
    settings.STAFF_ENTRA_REQUIRE_MFA = False
    assert "staff.W003" in {problem.id for problem in staff_sign_in_is_hardened(None)}
    settings.STAFF_ENTRA_TENANT_ID = ""
    assert not {p.id for p in staff_sign_in_is_hardened(None)} & {"staff.E003", "staff.E004", "staff.W003"}
