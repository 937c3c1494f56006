"""The README's demo command, non-interactively: every process comes up and the census is right."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_it_brings_the_demo_up_and_checks_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPH_", "DATABASE_", "REDIS_"))}
    env["MSP_DEMO_DIR"] = str(tmp_path / "demo")
    result = subprocess.run(
        [sys.executable, "tasks.py", "demo", "--once", "--port", "18765"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Demo check passed" in output
    assert "Entra ID Free" in output and "No consent" in output
    # Teardown stopped every process it started: none still names the demo's folder, the port is free.
    leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert env["MSP_DEMO_DIR"] not in leftovers
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 18765))
