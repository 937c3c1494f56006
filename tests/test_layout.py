"""The project's shape: production code never imports the simulator."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_PACKAGES = ("msp_console", "tenants", "migrations_engine")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_it_never_imports_graph_sim_in_production_code():
    offenders = []
    files = [ROOT / "manage.py"] + [p for pkg in PRODUCTION_PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 10
    for path in files:
        if any(name == "graph_sim" or name.startswith("graph_sim.") for name in _imported_modules(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_it_does_not_load_graph_sim_when_the_console_and_worker_code_load():
    code = (
        "import django, sys, importlib;"
        "django.setup();"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "import migrations_engine.queueing, migrations_engine.runs.tasks, migrations_engine.census.tasks;"
        "import migrations_engine.census.read, tenants.admin;"
        "importlib.import_module('tenants.management.commands.census');"
        "print('graph_sim' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "msp_console.settings", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_it_runs_on_postgresql_in_ci():
    """CI must exercise the production database; locally SQLite is fine."""
    import os

    import pytest
    from django.db import connection

    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("only CI is required to run on PostgreSQL (CI is not set)")
    assert connection.vendor == "postgresql"
