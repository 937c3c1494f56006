"""The whole test suite: lint, then pytest. Exit non-zero on any failure, and when no test ran."""

from __future__ import annotations

import subprocess
import sys


def main(args: list[str]) -> int:
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "."])
    if lint.returncode != 0:
        print("ruff found problems (see above)", file=sys.stderr)
        return lint.returncode
    result = subprocess.run([sys.executable, "-m", "pytest", *args])
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure", file=sys.stderr)
        return 1
    return result.returncode
