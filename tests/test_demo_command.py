"""The README's demo command, non-interactively: every process comes up and the census is right."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_it_brings_the_demo_up_and_checks_it(tmp_path):
    """With the port it is asked for already taken (another demo's console, started at the same moment),
    the demo moves its console to a free port rather than failing; it stops every process it started,
    the workers and scheduler before Redis, so none logs a traceback on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_", "DATABASE_", "REDIS_"))}
    env["MSP_DEMO_DIR"] = str(tmp_path / "demo")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "tasks.py", "demo", "--once", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "port taken, trying" in output
    assert "Demo check passed" in output
    assert "Entra ID Free" in output and "No consent" in output
    # Teardown stopped every process it started: none still names the demo's folder.
    leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert env["MSP_DEMO_DIR"] not in leftovers
    logs = Path(env["MSP_DEMO_DIR"]) / "logs"
    for name in ("worker1", "worker2", "scheduler"):
        text = (logs / f"{name}.log").read_text(errors="replace")
        assert "Traceback" not in text and "ConnectionRefused" not in text, (name, text[-3000:])


def test_a_second_demo_in_the_same_folder_is_refused_at_once(tmp_path):
    """Two demos in one folder would delete each other's database: the second says so and stops."""
    folder = tmp_path / "demo"
    folder.mkdir()
    env = {**os.environ, "MSP_DEMO_DIR": str(folder)}
    with open(folder / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [sys.executable, "tasks.py", "demo", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert f"Another demo is running from {folder}" in result.stderr, result.stderr
    assert not (folder / "logs").exists()
