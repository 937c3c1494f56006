"""Fixtures: one demo simulator per session (reset before each test), msal/httpx/msgraph-sdk helpers.

The shell may export REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, which silently override msal's ``verify=``.
These tests neither rely on nor set them: msal gets a requests session with ``trust_env = False``.
"""

from __future__ import annotations

import time

import httpx
import msal
import pytest
import requests

from graph_sim.testing import running_simulator

CONTOSO = "11111111-1111-4111-8111-111111111111"
FABRIKAM = "22222222-2222-4222-8222-222222222222"
TAILSPIN = "33333333-3333-4333-8333-333333333333"
NORTHWIND = "44444444-4444-4444-8444-444444444444"
ADATUM = "55555555-5555-4555-8555-555555555555"
LITWARE = "66666666-6666-4666-8666-666666666666"
WOODGROVE = "77777777-7777-4777-8777-777777777777"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


@pytest.fixture(scope="session")
def sim_session():
    with running_simulator(fleet="demo", throttle=False) as handle:
        yield handle


@pytest.fixture
def sim(sim_session):
    """The session simulator with a fresh demo fleet, empty log and throttling off."""
    sim_session.reset()
    sim_session.admin("POST", "/_sim/throttle", json={"enabled": False})
    return sim_session


def requests_session(ca_bundle: str) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace verify
    s.verify = ca_bundle
    return s


@pytest.fixture
def msal_app(sim):
    def make(
        tenant: str, credential=None, client_id: str | None = None
    ) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            client_id or sim.fleet["client_id"],
            authority=f"{sim.authority_host}/{tenant}",
            client_credential=credential if credential is not None else sim.fleet["client_secret"],
            instance_discovery=False,
            http_client=requests_session(sim.ca_bundle),
        )

    return make


@pytest.fixture
def graph(sim):
    """graph(tenant) -> httpx.Client with a bearer token; closed after the test."""
    clients: list[httpx.Client] = []

    def make(tenant: str = CONTOSO, **kwargs) -> httpx.Client:
        c = sim.graph(tenant, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def wait_ca_slot() -> None:
    """Conditional Access allows 1 request/s per tenant when throttling is on."""
    time.sleep(1.05)


def grant_mailbox_settings(sim, tenant_id: str) -> None:
    """The console's app asks for no mailbox permission; tests of the simulator's mailboxSettings grant
    MailboxSettings.Read to one tenant themselves."""
    tenant = sim.tenant(tenant_id)
    sim.call(tenant.set_consent, True, [*tenant.roles, "MailboxSettings.Read"], "test")
