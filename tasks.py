#!/usr/bin/env python3
"""The project's commands, on a fresh machine with only Python 3.11+:

    python3 tasks.py demo [--once]   set everything up and run the console on the demo fleet
    python3 tasks.py test [ARGS]     run the whole test suite (ARGS go to pytest)
    python3 tasks.py screenshots [DIR]
                                     the demo, then full-page PNGs of every page at 1440 and 800 px
                                     (in DIR, default .demo/screenshots), for reviewing a change
    python3 tasks.py reliability [--trials N]
                                     the long crash and Redis-loss trials, then a table of figures
    python3 tasks.py bench [--quick] [ARGS]
                                     the throughput benchmark (bench/README.md); --help lists ARGS
    python3 tasks.py bench-console [ARGS]
                                     the console at 1,000 tenants and 10M audit rows on PostgreSQL
                                     (bench/console_scale.py); --help lists ARGS

Each first creates `.venv` and installs the pinned dependencies (again only when pyproject.toml or
constraints.txt changed), then re-run themselves inside it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"

if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists
    sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")


def _requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def _installed_extras() -> set[str]:
    """The extras the stamp says were installed for the current pins (none if the pins changed)."""
    if not STAMP.exists():
        return set()
    digest, _, extras = STAMP.read_text().partition("\n")
    if digest != _requirements_digest():
        return set()
    return set(filter(None, extras.split(","))) or {"test"}


def ensure_venv(extras: tuple[str, ...] = ("test",)) -> None:
    """Create .venv and install the pinned dependencies (with `extras`) if missing or out of date."""
    if not VENV_PYTHON.exists():
        print("Creating .venv ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            sys.exit(
                f"Could not create .venv ({exc}). On Debian/Ubuntu install the python3-venv package "
                "(apt-get install python3-venv), then run this again."
            )
    installed = _installed_extras()
    if set(extras) <= installed:
        return
    wanted = sorted(installed | set(extras))
    print("Installing pinned dependencies into .venv ...", flush=True)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-c", "constraints.txt", "-e", f".[{','.join(wanted)}]"], check=True, cwd=ROOT)
    STAMP.write_text(f"{_requirements_digest()}\n{','.join(wanted)}")


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in {
        "demo",
        "screenshots",
        "test",
        "reliability",
        "bench",
        "bench-console",
    }:
        print(__doc__)
        return 2
    if not in_venv():
        ensure_venv(("test", "bench") if argv[0].startswith("bench") else ("test",))
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    if argv[0] == "demo":
        from scripts.demo import main as demo_main

        return demo_main(argv[1:])
    if argv[0] == "screenshots":
        from scripts.demo import STATE
        from scripts.demo import main as demo_main

        folder = argv[1] if len(argv) > 1 else str(STATE / "screenshots")
        return demo_main(["--screenshots", str(Path(folder).resolve())])
    if argv[0] == "bench":
        from bench.throughput import main as bench_main

        return bench_main(argv[1:])
    if argv[0] == "bench-console":
        from bench.console_scale import main as console_bench_main

        return console_bench_main(argv[1:])
    if argv[0] == "reliability":
        from scripts.reliability import main as reliability_main

        return reliability_main(argv[1:])
    from scripts.run_tests import main as test_main

    return test_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
