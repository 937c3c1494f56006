"""The simulator process: fleet state + TLS + aiohttp routes for login, Graph and ``/_sim``."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web

from graph_sim import admin, auth, batch, clock, sign_in, sign_in_policies
from graph_sim.app_key import SIM_KEY
from graph_sim.faults import FaultDice
from graph_sim.fleets import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_fleet, generated_fleet
from graph_sim.graph_api import _unauthorized, dispatch
from graph_sim.graph_http import (
    JSON_CONTENT_TYPE,
    GraphRequest,
    GraphResponse,
    error,
    parse_body,
    parse_query,
    split_path,
)
from graph_sim.staff_directory import demo_staff_directory
from graph_sim.state import AppRegistration, FleetState
from graph_sim.stats import SimStats
from graph_sim.throttle import ThrottleLimits, Throttler

log = logging.getLogger("graph_sim")


@dataclass
class SimConfig:
    """How to build and run one simulator."""

    fleet: str = "demo"  # demo | generated
    tenants: int = 3
    users: int = 50
    seed: int = 1
    latency_ms: float = 0.0  # default per-tenant latency knob
    timeout_hold_s: float = 120.0
    throttle: bool = True
    limits: ThrottleLimits = field(default_factory=ThrottleLimits)
    log_size: int = 100_000
    host: str = "127.0.0.1"  # the address to listen on
    port: int = 0
    # The name clients use (base URLs in fleet.json and token metadata, and the TLS certificate's name):
    # 127.0.0.1 here; a service name such as `graph-sim` in a container network.
    public_host: str = "127.0.0.1"
    state_dir: Path | None = None
    time_scale: float = 1.0  # simulated seconds per real second (see graph_sim.clock)

    def __post_init__(self):
        self.time_scale = clock.validate_scale(self.time_scale)


def build_tenants(config: SimConfig):
    if config.fleet == "demo":
        return demo_fleet(0)
    if config.fleet == "generated":
        return generated_fleet(config.tenants, config.users, config.seed)
    raise ValueError(f"unknown fleet {config.fleet!r}")


class Simulator:
    """One running simulator: state, keys, throttles and the HTTPS server."""

    def __init__(self, config: SimConfig):
        self.config = config
        self.clock = clock.Clock(config.time_scale)
        self.tokens = auth.TokenService()
        app = AppRegistration(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
        auth.make_app_credential(app)
        self.state = self._new_state(app)
        # The MSP's own tenant, where staff sign in to the console (graph_sim.sign_in).
        self.sign_in = sign_in.SignInService(demo_staff_directory())
        self.stats = SimStats(self.clock, self.state.tenants)
        self.throttle = Throttler(config.limits, enabled=config.throttle)
        self.ca = trustme.CA()
        self._server_cert = self.ca.issue_cert(*dict.fromkeys(("127.0.0.1", "localhost", config.public_host)))
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def _new_state(self, app: AppRegistration) -> FleetState:
        tenants = build_tenants(self.config)
        for t in tenants:
            t.faults.latency_ms = self.config.latency_ms
            t.faults.timeout_hold_s = self.config.timeout_hold_s
            t.dice = FaultDice(self.config.seed, t.id)
            sign_in_policies.stamp(t, t.sign_ins)
        return FleetState(
            tenants, app, self.config.fleet, self.config.seed, self.config.log_size, sim_clock=self.clock
        )

    def reset(self) -> None:
        """Fresh fleet state (same app credentials, keys and port), empty log, empty throttle windows,
        stats counted from now."""
        self.state = self._new_state(self.state.app)
        self.sign_in = sign_in.SignInService(demo_staff_directory())
        self.stats = SimStats(self.clock, self.state.tenants)
        self.throttle.reset()

    @property
    def base_url(self) -> str:
        return f"https://{self.config.public_host}:{self.port}"

    # -- files -------------------------------------------------------------------------------------
    def fleet_json(self) -> dict:
        d = self.config.state_dir
        app = self.state.app
        return {
            "authority_host": self.base_url,
            "graph_base_url": self.base_url,
            "ca_bundle": str(d / "ca.pem") if d else None,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "client_certificate": str(d / "app-cert.pem") if d else None,
            "client_private_key": str(d / "app-key.pem") if d else None,
            "client_certificate_thumbprint": app.thumbprint_sha1,
            "time_scale": self.clock.scale,
            "tenants": [t.summary() for t in self.state.tenants.values()],
            "staff_sign_in": self.sign_in.directory.summary(),
        }

    def write_files(self) -> None:
        """ca.pem, app-cert.pem, app-key.pem, fleet.json; server.json is written last by ``write_ready``."""
        d = self.config.state_dir
        d.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(d / "ca.pem"))
        (d / "app-cert.pem").write_bytes(self.state.app.cert_pem)
        key_path = d / "app-key.pem"
        key_path.write_bytes(self.state.app.key_pem)
        key_path.chmod(0o600)
        _atomic_write(d / "fleet.json", json.dumps(self.fleet_json(), indent=2, ensure_ascii=False))

    def write_ready(self) -> None:
        d = self.config.state_dir
        _atomic_write(
            d / "server.json",
            json.dumps(
                {
                    "pid": os.getpid(),
                    "port": self.port,
                    "authority_host": self.base_url,
                    "graph_base_url": self.base_url,
                    "ca_bundle": str((d / "ca.pem").resolve()),
                    "time_scale": self.clock.scale,
                }
            ),
        )

    # -- server ------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(ctx)
        return ctx

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app[SIM_KEY] = self
        admin.add_routes(app)
        for version in ("v1.0", "beta"):
            app.router.add_route("*", f"/{version}/{{tail:.*}}", graph_entry)
        r = app.router
        r.add_get("/common/discovery/instance", auth.handle_instance_discovery)
        r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", auth.handle_openid_configuration)
        r.add_get("/{tenant}/.well-known/openid-configuration", auth.handle_openid_configuration)
        r.add_get("/{tenant}/discovery/v2.0/keys", auth.handle_jwks)
        r.add_get("/{tenant}/discovery/keys", auth.handle_jwks)
        r.add_post("/{tenant}/oauth2/v2.0/token", auth.handle_token)
        r.add_get("/{tenant}/oauth2/v2.0/authorize", sign_in.handle_authorize)
        r.add_post("/{tenant}/login", sign_in.handle_login_post)
        r.add_get("/{tenant}/oauth2/v2.0/logout", sign_in.handle_logout)
        for path in ("/{tenant}/adminconsent", "/{tenant}/v2.0/adminconsent"):
            r.add_get(path, auth.handle_adminconsent)
            r.add_post(path, auth.handle_adminconsent)
        return app

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.SockSite(self._runner, sock, ssl_context=self.ssl_context())
        await site.start()
        self.stats.mark_started()
        log.info("graph_sim listening on %s", self.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _to_web(resp: GraphResponse) -> web.Response:
    headers = dict(resp.headers)
    if resp.body is None:
        return web.Response(status=resp.status, headers=headers)
    body = json.dumps(resp.body, ensure_ascii=False).encode()
    headers["Content-Type"] = JSON_CONTENT_TYPE
    return web.Response(status=resp.status, body=body, headers=headers)


async def graph_entry(request: web.Request) -> web.StreamResponse:
    sim: Simulator = request.app[SIM_KEY]
    version = request.path.split("/", 2)[1]
    raw_path = request.rel_url.raw_path[len(version) + 1 :]
    headers = {k.lower(): v for k, v in request.headers.items()}
    req = GraphRequest(
        method=request.method,
        version=version,
        segments=split_path(raw_path),
        query=parse_query(request.rel_url.raw_query_string),
        headers=headers,
        raw_path=request.rel_url.raw_path,
    )
    raw = await request.read()
    req.body, req.has_body, problem = parse_body(raw)
    if problem:
        resp = error(req, 400, "BadRequest", problem)
        sim.stats.record(None, resp, item=False)
    elif req.segments == ["$batch"] and req.method == "POST":
        resp = await _batch(sim, req)
    else:
        resp = await dispatch(sim, req)
    resp.headers.setdefault("request-id", req.request_id)
    resp.headers.setdefault("client-request-id", req.client_request_id)
    if resp.drop:
        # The write is committed; the client never learns the outcome.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)  # never reaches the client: the transport is gone
    return _to_web(resp)


async def _batch(sim: Simulator, req: GraphRequest) -> GraphResponse:
    auth_header = req.headers.get("authorization", "")
    claims, problem = (
        sim.tokens.verify(auth_header[7:].strip())
        if auth_header.lower().startswith("bearer ")
        else (None, "Access token is empty.")
    )
    if claims is None:
        resp = _unauthorized(req, problem)
    else:
        resp = await batch.handle_batch(sim, req, claims["tid"])
    tid = claims.get("tid") if claims else None
    sim.stats.record(tid if tid in sim.state.tenants else None, resp, item=False, batch=True)
    sim.state.log.add(
        t=sim.clock.monotonic(),
        wall=clock.iso(),
        method="POST",
        path=f"/{req.version}/$batch",
        tenant_id=claims.get("tid") if claims else None,
        app_id=claims.get("appid") if claims else None,
        client_request_id=req.client_request_id,
        request_id=req.request_id,
        status=resp.status,
        write=False,
        write_effective=False,
        throttled="",
        fault="",
        fault_rule=None,
        dropped=resp.drop,
        batch_parent=None,
    )
    return resp
