"""Crash points for reliability tests: make a real worker die at a named point, as SIGKILL would.

`MSP_CRASH_POINTS` (comma-separated, e.g. "after_step:census,after_write:policy.create") is read from the
environment of the worker process. It is empty in every real deployment; a system check warns if set.
"""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    """Exit the process at once (no cleanup, no finally blocks) when `name` is configured."""
    points = os.environ.get("MSP_CRASH_POINTS", "")
    if points and name in {p.strip() for p in points.split(",")}:
        os._exit(137)
