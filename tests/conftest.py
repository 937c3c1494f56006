"""Fixtures shared by the whole suite: a real Redis, the Graph simulator over HTTPS, Graph settings."""

from __future__ import annotations

import os

import pytest

from scripts.processes import Processes, start_redis

# The longest test files go first: pytest-xdist hands whole files to its workers in collection order
# (pyproject's --no-loadscope-reorder), and a three-minute file collected last runs alone at the end while
# the other workers sit idle. Measured in CI (seconds, summed per file); the rest keep their order.
SLOW_FIRST = (
    "tests/test_demo_command.py",  # 170
    "tests/reliability/test_fault_mixes.py",  # 145
    "tests/test_compose_stack.py",  # 80
    "tests/tenants/test_census.py",  # 80
    "tests/bad_input/test_large_tenant.py",  # 65
    "tests/migrations_engine/test_drift.py",  # 150 over many tests
    "tests/migrations_engine/test_pipeline_faults.py",
    "tests/migrations_engine/test_throughput.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: n for n, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """A real redis-server on a free loopback port for this test session (TEST_REDIS_URL to reuse one)."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    base = tmp_path_factory.mktemp("redis")
    procs = Processes(base / "logs")
    try:
        yield start_redis(procs, base / "data")
    finally:
        procs.stop_all()


@pytest.fixture(scope="session", autouse=True)
def _force_login_is_a_complete_sign_in():
    """`Client.force_login` stands for a finished sign-in: password, second factor (a TOTP device of the
    user), just now. The sign-in steps themselves go through /login/ in tests/staff/."""
    from django.test import Client

    from tests.migrations_engine.console_helpers import complete_sign_in

    plain = Client.force_login

    def force_login(self, user, backend=None):
        plain(self, user, backend)
        complete_sign_in(self, user)

    Client.force_login = force_login
    yield
    Client.force_login = plain


@pytest.fixture(autouse=True)
def _fresh_local_pacing():
    """In-process pacing buckets start empty in every test (simulators reuse the same tenant ids)."""
    from migrations_engine.graph.pacing import LOCAL, Pacer

    LOCAL.clear()
    Pacer._redis_down_until = Pacer._warned_at = 0.0


@pytest.fixture(scope="session")
def demo_sim():
    """The simulator with the demo fleet, shared by read-only tests (state-changing ones use `fresh_sim`)."""
    from graph_sim.testing import running_simulator

    with running_simulator(fleet="demo") as sim:
        yield sim


@pytest.fixture
def fresh_sim():
    """A simulator of its own for a test that changes tenant state or fault knobs."""
    from graph_sim.testing import running_simulator

    with running_simulator(fleet="demo") as sim:
        yield sim


def point_settings_at(settings, sim, *, certificate: bool = True) -> None:
    """Point the console's Graph settings at a running simulator."""
    fleet = sim.fleet
    settings.GRAPH_AUTHORITY_HOST = fleet["authority_host"]
    settings.GRAPH_BASE_URL = fleet["graph_base_url"]
    settings.GRAPH_CA_BUNDLE = fleet["ca_bundle"]
    settings.GRAPH_CLIENT_ID = fleet["client_id"]
    settings.GRAPH_ALLOWED_HOSTS = []
    settings.GRAPH_CLIENT_CERTIFICATE_THUMBPRINT = ""
    if certificate:
        settings.GRAPH_CLIENT_SECRET = ""
        settings.GRAPH_CLIENT_PRIVATE_KEY_FILE = fleet["client_private_key"]
        settings.GRAPH_CLIENT_CERTIFICATE_FILE = fleet["client_certificate"]
    else:
        settings.GRAPH_CLIENT_SECRET = fleet["client_secret"]
        settings.GRAPH_CLIENT_PRIVATE_KEY_FILE = ""
        settings.GRAPH_CLIENT_CERTIFICATE_FILE = ""


@pytest.fixture
def demo_graph(settings, demo_sim):
    """Console settings pointed at the shared demo simulator; returns the simulator handle."""
    point_settings_at(settings, demo_sim)
    return demo_sim


@pytest.fixture
def fresh_graph(settings, fresh_sim):
    """Console settings pointed at a simulator of the test's own."""
    point_settings_at(settings, fresh_sim)
    return fresh_sim


def fleet_tenant(sim, predicate) -> dict:
    """The first fleet tenant matching `predicate` (a test names the shape it needs, not a GUID)."""
    for entry in sim.fleet["tenants"]:
        if predicate(entry):
            return entry
    raise LookupError("no demo tenant of that shape")


# The documented throttles at ten times the speed: every window a tenth as long, our pacing ten times
# as fast. The limits still bite in the same proportions; pipeline tests just finish sooner.
FAST_LIMITS = {
    "ru_window_s": 1.0,
    "app_tenant_writes_window_s": 15.0,
    "tenant_writes_window_s": 30.0,
    "app_ru_window_s": 2.0,
    "app_writes_window_s": 30.0,
    "ca_window_s": 0.1,
    "report_window_s": 1.0,
}


@pytest.fixture
def fast_graph(settings):
    """A simulator of the test's own with the demo fleet and 10x-speed throttles, settings pointed at it."""
    from graph_sim.testing import running_simulator
    from graph_sim.throttle import ThrottleLimits

    with running_simulator(fleet="demo", limits=ThrottleLimits(**FAST_LIMITS)) as sim:
        point_settings_at(settings, sim)
        settings.GRAPH_PACING_TIME_SCALE = 10.0  # every pacing rate x10, like the windows
        yield sim


@pytest.fixture
def queue(redis_url, settings):
    """The default RQ queue on the session's real Redis, with nothing left from earlier tests."""
    import django_rq

    settings.RQ_QUEUES = {"default": {"URL": redis_url, "DEFAULT_TIMEOUT": 600}}
    settings.REDIS_URL = redis_url  # Graph pacing shares this Redis with the workers
    q = django_rq.get_queue("default")
    q.connection.flushdb()  # the session's own Redis: no job or registry of an earlier test survives
    return q
