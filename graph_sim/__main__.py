"""``python -m graph_sim serve --port PORT --fleet demo|generated --state-dir DIR [--time-scale S] ...``"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from graph_sim.clock import validate_scale
from graph_sim.server import SimConfig, Simulator
from graph_sim.throttle import ThrottleLimits


def _time_scale(text: str) -> float:
    try:
        return validate_scale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m graph_sim", description="Microsoft Graph + login simulator"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTPS simulator (on 127.0.0.1 unless --host says so)")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0 only inside a container network)"
    )
    serve.add_argument(
        "--public-host",
        default="127.0.0.1",
        help="the name clients reach it by: written into fleet.json, token metadata and the TLS certificate",
    )
    serve.add_argument("--fleet", choices=("demo", "generated"), default="demo")
    serve.add_argument("--state-dir", type=Path, required=True)
    serve.add_argument("--tenants", type=int, default=3, help="generated fleet: number of tenants")
    serve.add_argument("--users", type=int, default=50, help="generated fleet: users per tenant")
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added to every Graph request")
    serve.add_argument("--no-throttle", action="store_true", help="start with throttling switched off")
    serve.add_argument(
        "--app-write-cap", type=int, default=70000, help="writes per 5 min per app, all tenants"
    )
    serve.add_argument("--timeout-hold-s", type=float, default=120.0)
    serve.add_argument("--log-size", type=int, default=100_000, help="request-log ring size")
    serve.add_argument(
        "--time-scale",
        type=_time_scale,
        default=1.0,
        metavar="S",
        help="simulated seconds per real second (> 0): throttle windows, latency, lag and timeout holds "
        "run S times faster; Retry-After headers stay in real seconds",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = SimConfig(
        fleet=args.fleet,
        tenants=args.tenants,
        users=args.users,
        seed=args.seed,
        latency_ms=args.latency_ms,
        timeout_hold_s=args.timeout_hold_s,
        throttle=not args.no_throttle,
        limits=ThrottleLimits(app_writes=args.app_write_cap),
        log_size=args.log_size,
        host=args.host,
        port=args.port,
        public_host=args.public_host,
        state_dir=args.state_dir.resolve(),
        time_scale=args.time_scale,
    )
    # A server.json left by a killed run would announce a server that is not up yet.
    (config.state_dir / "server.json").unlink(missing_ok=True)
    sim = Simulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    sim.write_files()
    print(f"graph_sim authority_host: {sim.base_url}", flush=True)
    print(f"graph_sim graph_base_url: {sim.base_url}/v1.0 (beta: {sim.base_url}/beta)", flush=True)
    print(f"graph_sim admin: {sim.base_url}/_sim/health  state: {config.state_dir}", flush=True)
    if config.time_scale != 1:
        print(f"graph_sim time scale: {config.time_scale:g} simulated seconds per real second", flush=True)
    sim.write_ready()
    await stop.wait()
    await sim.stop()
    (config.state_dir / "server.json").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
