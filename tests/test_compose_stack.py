"""The compose stack without a Docker engine: the processes `docker/compose.yml` defines (demo profile),
started with the same commands and environment, against PostgreSQL and Redis on loopback; a full-mode
wave of the demo fleet runs through them, fired by the scheduler and worked by the workers.

Commands come from the compose file and the Dockerfile (ENTRYPOINT, CMD, HEALTHCHECK, the build's
collectstatic); the environment is the Dockerfile's ENV, then the services' env_file, then each
service's `environment`, interpolated as Compose does with `--env-file docker/demo.env` (the README's
demo command). Only what a container network provides differs: service host names and listen
addresses become 127.0.0.1 with free ports, container paths (/app/state) become a temporary folder,
/entrypoint.sh is docker/entrypoint.sh, and the database and its role get names of their own on the
suite's PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from scripts.demo import ready_domains, wave_soon_args
from scripts.processes import Processes, free_port, start_redis

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# -- reading the files as Docker and Compose do ----------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        # The files here use plain values only; quoting rules differ between Compose versions.
        assert sep and not value.startswith(("'", '"')), f"{path.name}:{number}: write NAME=value"
        values[name.strip()] = value
    return values


def interpolate(value, variables: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, through lists and mappings."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        current = variables.get(name, "")
        if op and op.endswith("?") and not current:
            raise AssertionError(f"compose would refuse to start: {arg}")
        if op and op.endswith("-") and not current:
            return arg
        return current

    return INTERPOLATION.sub(one, value)


def dockerfile() -> dict:
    """ENV, ENTRYPOINT, CMD, HEALTHCHECK's CMD and the build's collectstatic command."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict = {"env": {}}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            found["env"].update(pair.split("=", 1) for pair in rest.split())
        elif word in ("ENTRYPOINT", "CMD"):
            found[word.lower()] = json.loads(rest)
        elif word == "HEALTHCHECK":
            found["healthcheck"] = json.loads(rest[rest.index("CMD ") + 4 :])
        elif word == "RUN" and "collectstatic" in rest:
            found["collectstatic"] = next(p.strip() for p in rest.split("&&") if "collectstatic" in p)
    return found


def service_env(image_env: dict, env_file: dict, service: dict, variables: dict) -> dict[str, str]:
    """A container's environment: image ENV, then env_file, then `environment` (Compose's precedence)."""
    env = {**image_env, **env_file}
    env.update({k: str(v) for k, v in interpolate(service.get("environment", {}), variables).items()})
    return env


# -- the loopback stand-ins for the container network --------------------------------------------------
class Loopback:
    def __init__(self, tmp: Path, pg_admin_url: str, compose: dict, variables: dict):
        self.state = tmp / "state"
        self.state.mkdir()
        self.ports = {"redis:6379": free_port(), "graph-sim:8443": free_port(), "web:8000": free_port()}
        pg = urllib.parse.urlsplit(pg_admin_url)
        self.pg_hostport = f"127.0.0.1:{pg.port or 5432}"
        self.db_env = interpolate(compose["services"]["postgres"]["environment"], variables)
        suffix = f"stack_{os.getpid()}"
        # The image's POSTGRES_USER (owner, superuser) and the console's runtime role, named apart here.
        self.roles = {
            self.db_env[key]: f"{self.db_env[key]}_{suffix}" for key in ("POSTGRES_USER", "POSTGRES_APP_USER")
        }
        self.role = self.roles[self.db_env["POSTGRES_USER"]]
        self.app_role = self.roles[self.db_env["POSTGRES_APP_USER"]]
        self.database = f"{self.db_env['POSTGRES_DB']}_{suffix}"
        self.password = self.db_env["POSTGRES_PASSWORD"]

    def value(self, text: str) -> str:
        text = text.replace("/app/state", str(self.state))
        if text.startswith("postgres://"):
            url = urllib.parse.urlsplit(text)
            assert url.hostname == "postgres" and url.username in self.roles, text
            text = url._replace(
                netloc=f"{self.roles[url.username]}:{url.password}@{self.pg_hostport}",
                path=f"/{self.database}",
            ).geturl()
        for hostport, port in self.ports.items():
            text = text.replace(f"//{hostport}", f"//127.0.0.1:{port}").replace(
                f"@{hostport}", f"@127.0.0.1:{port}"
            )
        return text

    def args(self, args: list[str]) -> list[str]:
        out = []
        for i, arg in enumerate(args):
            before = args[i - 1] if i else ""
            if before in ("--host", "--public-host"):
                arg = "127.0.0.1"
            elif before == "--port" and arg == "8443":
                arg = str(self.ports["graph-sim:8443"])
            else:  # gunicorn's --bind and the health check's URL
                web = f"127.0.0.1:{self.ports['web:8000']}"
                arg = arg.replace("0.0.0.0:8000", web).replace("127.0.0.1:8000", web)
            out.append(self.value(arg))
        if out and out[0] == "/entrypoint.sh":
            out[0] = str(DOCKER / "entrypoint.sh")
        if out and (BIN / out[0]).exists():  # python, gunicorn: the image's are on PATH; here the venv's
            out[0] = str(BIN / out[0])
        return out


def psql(admin_url: str, sql: str) -> None:
    import psycopg

    url = urllib.parse.urlsplit(admin_url)._replace(path="/postgres").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def wait_until(what: str, ready, timeout: float, procs: Processes, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = ready()
        if result:
            return result
        dead = procs.check_alive()
        if time.monotonic() > deadline or dead:
            logs = "\n".join(f"--- {n}\n{procs.tail(n, 40)}" for n, _ in procs.children)
            raise AssertionError(f"{what} not within {timeout:.0f} s (exited: {dead})\n{logs}")
        time.sleep(interval)


# -- the test -------------------------------------------------------------------------------------------
@pytest.fixture
def pg_admin_url():
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("needs a PostgreSQL server: set DATABASE_URL=postgres://... (CI does)")
    return url


def test_the_compose_stack_runs_a_full_wave_of_the_demo_fleet(tmp_path, pg_admin_url):
    compose = YAML(typ="safe").load((DOCKER / "compose.yml").read_text())
    # `docker compose --env-file docker/demo.env --profile demo up`: the variables Compose interpolates
    # with, which also name the containers' env_file.
    variables = read_env_file(DOCKER / "demo.env")
    env_file = read_env_file(DOCKER / interpolate(compose["x-console"]["env_file"], variables))
    image = dockerfile()
    services = compose["services"]
    net = Loopback(tmp_path, pg_admin_url, compose, variables)
    procs = Processes(tmp_path / "logs")
    # What the postgres image does on an empty volume: POSTGRES_USER (a superuser) and POSTGRES_DB, then
    # the scripts in /docker-entrypoint-initdb.d (compose mounts docker/postgres-init there).
    psql(pg_admin_url, f"CREATE ROLE {net.role} LOGIN SUPERUSER PASSWORD '{net.password}'")
    try:
        psql(pg_admin_url, f"CREATE DATABASE {net.database} OWNER {net.role}")
        pg = urllib.parse.urlsplit(pg_admin_url)
        init_env = {
            **{k: net.value(str(v)) for k, v in net.db_env.items()},
            "POSTGRES_USER": net.role,
            "POSTGRES_DB": net.database,
            "POSTGRES_APP_USER": net.app_role,
            "PATH": os.environ["PATH"],
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg.port or 5432),
            "PGPASSWORD": net.password,
        }
        for script in sorted((DOCKER / "postgres-init").glob("*.sh")):
            done = subprocess.run([str(script)], env=init_env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
        _run_the_stack(tmp_path, compose, services, env_file, variables, image, net, procs)
    finally:
        procs.stop_all()
        psql(pg_admin_url, f"DROP DATABASE IF EXISTS {net.database} WITH (FORCE)")
        psql(pg_admin_url, f"DROP ROLE IF EXISTS {net.app_role}")
        psql(pg_admin_url, f"DROP ROLE IF EXISTS {net.role}")


def _run_the_stack(tmp_path, compose, services, env_file, variables, image, net, procs):
    base = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def env_of(name: str) -> dict[str, str]:
        env = service_env(image["env"], env_file, services[name], variables)
        return {**base, **{k: net.value(v) for k, v in env.items()}}

    def command_of(name: str) -> list[str]:
        service = services[name]
        entrypoint = service.get("entrypoint", image["entrypoint"])
        return net.args([*entrypoint, *interpolate(service.get("command", image["cmd"]), variables)])

    def start(name: str, label: str | None = None):
        procs.start(label or name, command_of(name), env=env_of(name))

    # The image build's static files step, as the Dockerfile runs it.
    words = shlex.split(image["collectstatic"])
    build_env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    subprocess.run(
        net.args([w for w in words if w not in {f"{k}={v}" for k, v in build_env.items()}]),
        env={**base, **image["env"], **build_env},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    # redis: the compose command, on loopback with its own data folder.
    redis_args = interpolate(services["redis"]["command"], variables)
    assert redis_args[0] == "redis-server" and "--requirepass" in redis_args and "yes" in redis_args
    start_redis(
        procs,
        net.state / "redisdata",
        net.ports["redis:6379"],
        args=redis_args[1:],
        password=variables["REDIS_PASSWORD"],
    )

    # migrate: one-shot, as the tables' owner; the console services start once it has succeeded.
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrated = subprocess.run(
        command_of("migrate"), env=env_of("migrate"), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0 and "migrations applied" in migrated.stdout, (
        migrated.stdout + migrated.stderr
    )
    assert urllib.parse.urlsplit(env_of("web")["DATABASE_URL"]).username == net.app_role
    # The owner's password reaches the migrate service alone.
    for name in ("web", "worker", "scheduler", "demo-seed"):
        assert net.password not in "\n".join(env_of(name).values()), name

    start("web")
    replicas = services["worker"]["deploy"]["replicas"]
    for n in range(1, replicas + 1):
        start("worker", f"worker{n}")
    start("scheduler")
    start("graph-sim")

    def healthy(name: str, checker: str) -> bool:
        test = services[name].get("healthcheck", {}).get("test") or ["CMD", *image["healthcheck"]]
        assert test[0] == "CMD", test
        return subprocess.run(net.args(test[1:]), env=env_of(checker), capture_output=True).returncode == 0

    wait_until("graph-sim healthy", lambda: healthy("graph-sim", "graph-sim"), 60, procs)
    wait_until("web healthy (Dockerfile HEALTHCHECK)", lambda: healthy("web", "web"), 120, procs, 1)

    # demo-seed: depends on both being healthy, runs once.
    seed = subprocess.run(
        command_of("demo-seed"),
        env=env_of("demo-seed"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seed.returncode == 0, seed.stdout + seed.stderr
    assert "admin user 'admin' created" in seed.stdout

    # As `docker compose exec web python manage.py ...`: the deploy check, then a full wave.
    web_env = env_of("web")

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            env=web_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    checked = manage("check", "--deploy", "--fail-level", "ERROR")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    fleet = json.loads((net.state / "sim" / "fleet.json").read_text())
    ready = ready_domains(fleet)
    assert len(ready) >= 2, ready
    created = manage(
        *wave_soon_args("Stack wave", "full", ",".join(ready), "--actor", "stack-test", seconds=3)
    )
    assert created.returncode == 0, created.stdout + created.stderr

    import psycopg

    def wave_state():
        with psycopg.connect(web_env["DATABASE_URL"]) as conn:
            status = conn.execute(
                "SELECT id, status FROM migrations_engine_wave WHERE name = 'Stack wave'"
            ).fetchone()
        return status if status and status[1] in ("completed", "halted", "cancelled") else None

    wave_id, status = wait_until("the wave to finish", wave_state, 240, procs, 1)
    shown = manage("wave", "show", str(wave_id))
    assert status == "completed", shown.stdout + shown.stderr
    with psycopg.connect(web_env["DATABASE_URL"]) as conn:
        runs = conn.execute(
            "SELECT ring, mode, status FROM migrations_engine_migrationrun WHERE wave_id = %s ORDER BY ring",
            (wave_id,),
        ).fetchall()
        items = conn.execute(
            "SELECT t.primary_domain, i.status FROM migrations_engine_runitem i "
            "JOIN migrations_engine_migrationrun r ON r.id = i.run_id "
            "JOIN tenants_customertenant t ON t.id = i.tenant_id WHERE r.wave_id = %s",
            (wave_id,),
        ).fetchall()
        slots = conn.execute(
            "SELECT count(*) FROM migrations_engine_waveslot WHERE wave_id = %s", (wave_id,)
        ).fetchone()[0]
    assert runs == [(0, "full", "succeeded"), (1, "full", "succeeded")], runs
    _audit_log_holds_against_the_console_role(web_env["DATABASE_URL"])
    assert sorted(items) == sorted((d, "succeeded") for d in ready), items
    assert slots == 2

    # The simulator agrees: per-user MFA off everywhere, security defaults off, our policy enforced.
    sim = fleet["graph_base_url"]
    ctx = ssl.create_default_context(cafile=fleet["ca_bundle"])
    for entry in fleet["tenants"]:
        if entry["domain"] not in ready:
            continue
        with urllib.request.urlopen(f"{sim}/_sim/tenants/{entry['tenant_id']}/state", context=ctx) as r:
            state = json.load(r)
        assert state["security_defaults"] is False, entry["domain"]
        assert not [u for u in state["users"] if u["perUserMfaState"] != "disabled"], entry["domain"]
        # Ours, or a Microsoft-managed equivalent the run adopted (Northwind): enforced for all users.
        enforced = [
            p
            for p in state["policies"]
            if p["state"] == "enabled"
            and p["conditions"]["users"]["includeUsers"] == ["All"]
            and "mfa" in (p.get("grantControls") or {}).get("builtInControls", [])
        ]
        assert enforced, (entry["domain"], state["policies"])

    # The console under gunicorn: sign in as the seeded admin, see the wave; static files by whitenoise.
    _check_console(
        net.ports["web:8000"],
        env_file["DJANGO_SUPERUSER_PASSWORD"],
        env_file["DJANGO_SUPERUSER_BACKUP_CODES"].split(",")[0],
        wave_id,
        ready,
    )

    # Log lines are JSON lines (LOG_FORMAT=json), also gunicorn's and rq-scheduler's own; the workers'
    # carry the run and item ids.
    def log_lines(name: str) -> tuple[list[dict], list[str]]:
        text = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()
        return [json.loads(line) for line in text if line.startswith("{")], text

    worker_lines = [line for n in range(1, replicas + 1) for line in log_lines(f"worker{n}")[0]]
    assert any("run_id" in line and "item_id" in line for line in worker_lines), worker_lines[-5:]
    web_json, web_text = log_lines("web")
    assert any(line["logger"] == "gunicorn.error" for line in web_json), web_text[-10:]
    assert not [line for line in web_text if re.match(r"\[\d{4}-\d\d-\d\d ", line)], web_text[-10:]
    scheduler_json, scheduler_text = log_lines("scheduler")
    assert any(line["logger"] == "rq_scheduler.scheduler" for line in scheduler_json), scheduler_text
    assert not [line for line in scheduler_text if re.match(r"\d\d:\d\d:\d\d ", line)], scheduler_text
    assert not procs.check_alive(), procs.check_alive()


def _check_console(port: int, password: str, backup_code: str, wave_id: int, ready: list[str]) -> None:
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(f"{base}/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password, "csrfmiddlewaretoken": token, "next": "/"}
    ).encode()
    request = urllib.request.Request(f"{base}/login/", data=form, headers={"Referer": f"{base}/login/"})
    with opener.open(request) as response:
        assert "/login/" not in response.url, "signing in failed"
        # A superuser always needs a second factor: one of demo.env's single-use backup codes.
        assert "/account/second-factor/" in response.url, response.url
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"code": backup_code, "csrfmiddlewaretoken": token, "next": "/"}).encode()
    second = f"{base}/account/second-factor/"
    with opener.open(urllib.request.Request(second, data=form, headers={"Referer": second})) as response:
        assert "/account/" not in response.url, "the second factor failed"
    request = urllib.request.Request(
        f"{base}/migrations_engine/wave/{wave_id}/change/", headers={"X-Request-ID": "stack-check-0001"}
    )
    with opener.open(request) as response:
        html = response.read().decode()
        assert response.headers["X-Request-ID"] == "stack-check-0001"
    assert "Stack wave" in html and all(domain in html for domain in ready)
    # Static files: collected at build with hashed names, served by whitenoise to be cached for good.
    css = re.search(r'href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', html).group(1)
    with opener.open(urllib.request.Request(f"{base}{css}", headers={"Accept-Encoding": "gzip"})) as response:
        assert response.status == 200 and "immutable" in response.headers.get("Cache-Control", "")
        assert response.headers.get("Content-Encoding") == "gzip"


def _audit_log_holds_against_the_console_role(database_url: str) -> None:
    """The console's own role wrote the audit rows; it can neither change, delete, empty them nor switch
    off the trigger that guards them."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM migrations_engine_auditevent").fetchone()[0] > 0
        changed, privileged = (
            psycopg.errors.IntegrityConstraintViolation,
            psycopg.errors.InsufficientPrivilege,
        )
        table = "migrations_engine_auditevent"
        refused = {
            f"DELETE FROM {table}": changed,  # the append-only trigger
            f"UPDATE {table} SET actor = 'x'": changed,
            f"TRUNCATE {table}": privileged,  # not granted
            f"ALTER TABLE {table} DISABLE TRIGGER ALL": privileged,  # not the owner
            f"DROP TRIGGER migrations_engine_auditevent_append_only ON {table}": privileged,
            "CREATE TABLE stack_probe (id int)": privileged,  # no DDL
        }
        for sql, error in refused.items():
            try:
                conn.execute(sql)
            except error:
                continue
            raise AssertionError(f"the console's role was allowed: {sql}")
