"""The demo: Redis, the Graph simulator with the demo fleet, the console, an RQ worker and rq-scheduler.

`python3 tasks.py demo` runs until Ctrl-C; `python3 tasks.py demo --once` checks everything came up and
the census is right, then stops and exits 0 (or 1 with the reason).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import fcntl
import os
import secrets
import signal
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scripts.processes import Processes, free_port, graph_env, start_redis, start_simulator

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("MSP_DEMO_DIR") or ROOT / ".demo")
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A one-off manage.py command with its INFO logging kept out of the terminal."""
    quiet = {**env, "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "manage.py", *args], env=quiet, cwd=ROOT, check=True)


def demo_password() -> str:
    """The demo admin's password: four groups of four random letters and digits (95 bits), such as
    `k7Qp-2xVa-Rm9d-Tz4b`.

    It starts with a letter or digit, never with "-" (a command line would read it as an option; one
    `token_urlsafe` in 64 did), and passes the console's validators: 19 characters, never only digits,
    and groups of four can hold neither the username "admin" nor a six-key keyboard run.
    """
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(4))
    return "-".join(groups)


def wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
                if response.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def start_web(procs: Processes, env: dict[str, str], wanted: int, tries: int = 5) -> int:
    """runserver on `wanted`, else on free ports, until one is its own; sets env's SITE_URL; returns the port.

    A port checked free can be taken before runserver binds it (another demo starting at the same
    moment), and then a page may even answer on it, from the other console: what counts is that *our*
    runserver got past binding (its banner printed, the process still alive a moment later) and answers.
    """
    port = wanted
    for _ in range(tries):
        env["SITE_URL"] = f"http://127.0.0.1:{port}"
        log = procs.log_dir / "web.log"
        offset = log.stat().st_size if log.exists() else 0
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        proc = procs.start("web", command, env={**env, "PYTHONUNBUFFERED": "1"})  # the banner, at once
        if _web_bound(proc, log, offset):
            wait_for_http(f"http://127.0.0.1:{port}/login/")
            if proc.poll() is None:
                return port
        text = log.read_bytes()[offset:].decode(errors="replace")
        if "already in use" not in text:
            raise RuntimeError("the web console did not start:\n" + text[-2000:])
        procs.discard(proc)
        port = free_port()
        print(f"  port taken, trying {port} ...", flush=True)
    raise RuntimeError(f"the web console found no free port in {tries} tries")


def _web_bound(proc: subprocess.Popen, log: Path, offset: int, timeout: float = 60) -> bool:
    """Whether runserver bound its port: its banner is printed just before it binds, and a failed bind
    exits at once."""
    deadline = time.monotonic() + timeout
    while b"Quit the server with" not in log.read_bytes()[offset:]:
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise RuntimeError(f"the web console printed nothing in {timeout:.0f} s")
        time.sleep(0.1)
    time.sleep(0.5)
    return proc.poll() is None


def ready_domains(fleet: dict) -> list[str]:
    """The demo tenants a full run can migrate: consented, P1/P2, every write permission granted."""
    return [
        t["domain"]
        for t in fleet["tenants"]
        if t["consent_granted"]
        and t["licence"] != "Free"
        and "Policy.ReadWrite.AuthenticationMethod" in t["roles"]
    ]


def wave_soon_args(name: str, mode: str, tenants: str, *extra: str, seconds: int = 5) -> list[str]:
    """`manage.py wave create` arguments for a wave of two rings whose window opens in a few seconds (UTC,
    an hour long, two tenants at once; the second ring follows as soon as the first verified)."""
    opens = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    opens += datetime.timedelta(seconds=seconds)
    return [
        "wave", "create", "--name", name, "--mode", mode, "--tenants", tenants, "--time-zone", "UTC",
        "--start", opens.isoformat(), "--window-minutes", "60", "--concurrency", "2", "--rings", "2",
        "--ring-delay-days", "0", *extra,
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py demo")
    parser.add_argument("--once", action="store_true", help="check the demo comes up right, then stop")
    parser.add_argument("--port", type=int, default=8000, help="console port (a free one if taken)")
    parser.add_argument(
        "--screenshots", metavar="DIR", help="photograph every page at 1440 and 800 px into DIR, then stop"
    )
    args = parser.parse_args(argv)

    STATE.mkdir(exist_ok=True)
    lock = open(STATE / ".lock", "w")  # noqa: SIM115 - held until this process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(
            f"Another demo is running from {STATE}: stop it, or give this one a folder of its own "
            "(MSP_DEMO_DIR=/some/folder python3 tasks.py demo).",
            file=sys.stderr,
        )
        return 1
    procs = Processes(STATE / "logs")
    # Ctrl-C and SIGTERM both stop everything, also when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args, procs)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"\nDemo failed: {exc}", file=sys.stderr)
        print(f"Logs are in {procs.log_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    finally:
        procs.stop_all()


def _run(args, procs: Processes) -> int:
    print("Starting Redis ...", flush=True)
    redis_url = start_redis(procs, STATE / "redis")
    print("Starting the Graph simulator with the demo fleet ...", flush=True)
    fleet = start_simulator(procs, STATE / "sim", "--fleet", "demo")
    database = STATE / "console.sqlite3"
    database.unlink(missing_ok=True)  # the simulator starts fresh each time, so does the console
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "msp_console.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        "AUDIT_EXPORT_DIR": str(STATE / "audit-exports"),
        **graph_env(fleet),
    }
    env.pop("REQUESTS_CA_BUNDLE", None)
    print("Preparing the console database ...", flush=True)
    manage(env, "migrate", "--noinput", "-v", "0")
    # The web console first, so the port it holds is known before anything is told the site's URL.
    print("Starting the web console ...", flush=True)
    port = start_web(procs, env, args.port)
    (STATE / "env").write_text(
        "".join(
            f"export {k}={v}\n"
            for k, v in env.items()
            if k in {"DATABASE_URL", "REDIS_URL", "SITE_URL"} or k.startswith("GRAPH_")
        )
    )
    password = demo_password()
    totp_key, backup_codes = secrets.token_hex(20), [secrets.token_hex(4) for _ in range(5)]
    # Through the environment: out of the process list, and never parsed as an option.
    manage(
        {
            **env,
            "DJANGO_SUPERUSER_PASSWORD": password,
            "DJANGO_SUPERUSER_TOTP_KEY": totp_key,
            "DJANGO_SUPERUSER_BACKUP_CODES": ",".join(backup_codes),
        },
        "seed_demo",
        "--fleet",
        str(STATE / "sim" / "fleet.json"),
        "--admin-user",
        "admin",
    )

    print("Starting two RQ workers and rq-scheduler ...", flush=True)
    py = sys.executable
    for n in (1, 2):
        procs.start(
            f"worker{n}",
            [py, "manage.py", "rqworker", "default", "--name", f"demo-{os.getpid()}-{n}"],
            env=env,
        )
    # The scheduler process registers every schedule (sweeper, waves, drift watch, audit exports), then
    # runs rq-scheduler.
    procs.start("scheduler", [py, "manage.py", "run_scheduler", "--interval", "5"], env=env)

    print("\nCensus of the demo fleet:", flush=True)
    try:
        manage(env, "census", "--all")
    except subprocess.CalledProcessError:
        print("Some tenants could not be read (see the Notes column).")

    ready = ",".join(ready_domains(fleet))
    print("\nA plan, then a full migration, of the consented P1/P2 demo tenants:", flush=True)
    for mode in ("plan", "full"):
        try:
            manage(env, "start_run", "--mode", mode, "--tenants", ready, "--wait", "--actor", "demo")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"the {mode} run did not succeed (see above)") from exc

    # A scheduled wave: a plan of the same tenants in two rings, its window opening in 5 s. rq-scheduler
    # fires its slot, ring 2 follows once ring 1 verified (no delay in the demo).
    manage(
        env,
        *wave_soon_args(
            "Nightly plan (demo)",
            "plan",
            ready,
            # The plan also shows the optional steps: trusted IPs as a named location, remember-MFA as a
            # sign-in frequency policy, and the "Multifactor authentication" strength as the grant.
            "--trusted-ips",
            "203.0.113.0/24",
            "--sign-in-frequency",
            "14d",
            "--grant",
            "mfa_strength",
            "--actor",
            "demo",
        ),
    )

    # Evidence for the customer: the whole fleet's audit log, exported each day with a manifest.
    manage(
        env, "audit_export_schedule", "add", "--name", "Fleet daily (demo)", "--fleet", "--frequency", "daily"
    )

    dead = procs.check_alive()
    if dead:
        raise RuntimeError(f"{', '.join(dead)} exited:\n" + "\n".join(procs.tail(n) for n in dead))

    if args.screenshots:
        # Why here: Playwright is imported only when pictures are asked for.
        from scripts.screenshots import photograph_demo

        photograph_demo(env, port, ("admin", password, totp_key), Path(args.screenshots))
        return 0
    if args.once:
        from scripts.demo_check import check_demo

        problems = check_demo(env, fleet, port)
        if problems:
            print("\nDemo check FAILED:\n- " + "\n- ".join(problems), file=sys.stderr)
            return 1
        print(
            "\nDemo check passed: console, worker, scheduler, census, the scheduled wave and the Entra ID "
            "sign-in are right."
        )
        return 0

    print(
        f"""
The console is running at http://127.0.0.1:{port}/
  user: admin   password: {password}
  second factor: one of the backup codes {", ".join(backup_codes)} (each works once),
  or add this key to an authenticator app: {base64.b32encode(bytes.fromhex(totp_key)).decode()}
{entra_lines(fleet)}Graph simulator: {fleet["graph_base_url"]} (fleet in {STATE / "sim" / "fleet.json"})
Logs: {procs.log_dir}    Settings for manage.py by hand: source {STATE / "env"}
Press Ctrl-C to stop everything.""",
        flush=True,
    )
    while True:
        dead = procs.check_alive()
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited:\n" + "\n".join(procs.tail(n) for n in dead))
        time.sleep(1)


def entra_lines(fleet: dict) -> str:
    """How to try "Sign in with Microsoft" against the simulator's MSP tenant."""
    staff = fleet.get("staff_sign_in")
    if not staff:
        return ""
    people = {m["upn"].split("@")[0]: m for m in staff["members"]}
    lines = ["  or Sign in with Microsoft (the simulator's Entra ID; approve the MFA prompt):"]
    for alias, role in (("ada", "Operator"), ("grace", "Approver, passkey"), ("alan", "Administrator")):
        if alias in people:
            lines.append(f"    {people[alias]['upn']}  {people[alias]['password']}  ({role})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
