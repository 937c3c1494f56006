"""Run the simulator from tests: in-process on a background thread, or as a separate process.

with running_simulator(fleet="demo") as sim:
    sim.authority_host, sim.graph_base_url, sim.ca_bundle, sim.fleet
    sim.admin("POST", "/_sim/tenants/contoso.onmicrosoft.com/faults", json={"rate_5xx": 1})
    sim.add_fault_rules("contoso.onmicrosoft.com", {"method": "PATCH", "path_contains": uid, "status": 403})
    sim.tenant("contoso.onmicrosoft.com").users[0].per_user_state

with running_simulator(fleet="generated", tenants=2, users=100, time_scale=10) as sim:
    sim.clock.monotonic()  # the simulator's own (scaled) clock; each simulator has its own
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from graph_sim.server import SimConfig, Simulator
from graph_sim.throttle import ThrottleLimits


class SimHandle:
    """What a test gets: URLs, the CA bundle, fleet.json, an admin helper and the live state."""

    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop, state_dir: Path):
        self.simulator = sim
        self.loop = loop
        self.state_dir = state_dir
        self.authority_host = sim.base_url
        self.graph_base_url = sim.base_url
        self.ca_bundle = str(state_dir / "ca.pem")
        self.fleet = json.loads((state_dir / "fleet.json").read_text())
        self.ssl_context = ssl.create_default_context(cafile=self.ca_bundle)
        self.http = httpx.Client(base_url=sim.base_url, verify=self.ssl_context, timeout=30, trust_env=False)

    # -- state -------------------------------------------------------------------------------------
    @property
    def clock(self):
        """The simulator's clock: compare timeline ``t`` and coverage ``since`` with its ``monotonic()``."""
        return self.simulator.clock

    @property
    def state(self):
        return self.simulator.state

    def tenant(self, key: str):
        """A tenant by GUID or domain; read it freely, mutate it through ``call``."""
        t = self.simulator.state.resolve(key)
        if t is None:
            raise KeyError(key)
        return t

    def call(self, fn, *args, **kwargs):
        """Run ``fn`` on the simulator's event loop thread (safe place for direct state changes)."""

        async def run():
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def reset(self) -> None:
        """Fresh fleet, empty request log and throttle windows; keys, port and credentials stay."""
        self.call(self.simulator.reset)

    # -- HTTP helpers ------------------------------------------------------------------------------
    def admin(self, method: str, path: str, json: dict | list | None = None) -> dict:
        """Call a ``/_sim`` endpoint and return its JSON; raises ``httpx.HTTPStatusError`` on 4xx/5xx."""
        r = self.admin_response(method, path, json=json)
        r.raise_for_status()
        return r.json()

    def add_fault_rules(self, tenant: str, *rules: dict, replace: bool = False) -> list[dict]:
        """Append (or with ``replace=True`` replace) a tenant's fault rules; returns all its rules."""
        body = {"rules": list(rules), "replace": replace}
        return self.admin("POST", f"/_sim/tenants/{tenant}/fault-rules", json=body)["rules"]

    def fault_rules(self, tenant: str) -> list[dict]:
        """A tenant's fault rules with ``fired`` and ``remaining`` (``None`` = unlimited)."""
        return self.admin("GET", f"/_sim/tenants/{tenant}/fault-rules")["rules"]

    def clear_fault_rules(self, tenant: str) -> None:
        self.admin("DELETE", f"/_sim/tenants/{tenant}/fault-rules")

    def admin_response(self, method: str, path: str, json: dict | list | None = None) -> httpx.Response:
        """The raw ``httpx.Response`` of any request to the simulator (for status-code assertions)."""
        return self.http.request(method, path, json=json)

    def token(self, tenant: str) -> str:
        """An app-only Graph token for a tenant via the client-secret flow (raw HTTP, no msal)."""
        r = self.http.post(
            f"/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.fleet["client_id"],
                "client_secret": self.fleet["client_secret"],
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def graph(self, tenant: str, **kwargs) -> httpx.Client:
        """An httpx client for Graph with a bearer token for ``tenant`` (caller closes it)."""
        headers = {"Authorization": f"Bearer {self.token(tenant)}", **kwargs.pop("headers", {})}
        return httpx.Client(
            base_url=self.graph_base_url,
            verify=self.ssl_context,
            headers=headers,
            trust_env=False,
            timeout=kwargs.pop("timeout", 30),
            **kwargs,
        )

    def close(self) -> None:
        self.http.close()


@contextlib.contextmanager
def running_simulator(
    fleet: str = "demo",
    state_dir: str | Path | None = None,
    *,
    throttle: bool = True,
    limits: ThrottleLimits | None = None,
    time_scale: float = 1.0,
    **opts,
) -> Iterator[SimHandle]:
    """Start a simulator on a free port in a background thread with its own event loop.

    ``time_scale`` runs its simulated time that many times faster (see ``graph_sim.clock``); the clock
    belongs to this simulator, so simulators with different scales can run side by side in one process."""
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="graph_sim_"))
        state_dir = Path(state_dir).resolve()
        config = SimConfig(
            fleet=fleet,
            throttle=throttle,
            limits=limits or ThrottleLimits(),
            state_dir=state_dir,
            time_scale=time_scale,
            **opts,
        )
        loop = asyncio.new_event_loop()
        sim = Simulator(config)
        thread = threading.Thread(target=loop.run_forever, name="graph_sim", daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(sim.start(), loop).result(30)
        sim.write_files()
        sim.write_ready()
        handle = SimHandle(sim, loop, state_dir)
        try:
            _wait_until_answering(handle)
            yield handle
        finally:
            handle.close()
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def _wait_until_answering(handle: SimHandle, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if handle.admin_response("GET", "/_sim/health").status_code == 200:
                return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@contextlib.contextmanager
def simulator_process(
    state_dir: str | Path,
    *args: str,
    fleet: str = "demo",
    timeout: float = 30.0,
    time_scale: float | None = None,
) -> Iterator[dict]:
    """``python -m graph_sim serve`` as a child process; yields server.json once it exists
    (``time_scale`` adds ``--time-scale``)."""
    state_dir = Path(state_dir).resolve()
    ready = state_dir / "server.json"
    ready.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "graph_sim",
        "serve",
        "--port",
        "0",
        "--fleet",
        fleet,
        "--state-dir",
        str(state_dir),
        *(("--time-scale", repr(float(time_scale))) if time_scale is not None else ()),
        *args,
    ]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"graph_sim exited early ({proc.returncode}): {proc.stdout.read()}")
            if time.monotonic() > deadline:
                raise TimeoutError("graph_sim did not write server.json in time")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        info["process"] = proc
        yield info
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
