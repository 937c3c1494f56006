"""The project's shape: production code never imports the simulator."""

from __future__ import annotations

import ast
import re
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


def _module_graph() -> dict[str, set[str]]:
    """Every production module and the production modules it imports, at the top or inside a function."""
    modules = {}
    for pkg in PRODUCTION_PACKAGES + ("staff",):
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_project_has_no_import_cycle():
    graph = _module_graph()
    assert len(graph) > 100
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # it finds one
    assert _cycles(graph) == []


def test_every_queued_task_and_schedule_names_a_function_that_exists():
    """Jobs are named by dotted path (queueing.py), so a moved or renamed task must fail here, not in a
    worker."""
    from django.utils.module_loading import import_string

    from migrations_engine import queueing, schedules

    paths = [getattr(queueing, name) for name in dir(queueing) if name.endswith("_TASK")]
    paths += [s.task for s in schedules.SCHEDULES] + list(schedules.ON_START)
    paths += [s.interval for s in schedules.SCHEDULES if isinstance(s.interval, str)]
    assert len(paths) >= 12
    for path in paths:
        assert callable(import_string(path)), path


# A Graph path: an optional version, then a top-level segment of the Graph API the console uses (or may).
GRAPH_SEGMENTS = (
    "users",
    "groups",
    "identity",
    "policies",
    "reports",
    "auditLogs",
    "subscribedSkus",
    "organization",
    "directoryRoles",
    "servicePrincipals",
    "applications",
    "roleManagement",
    "$batch",
)
_SEGMENT = "(" + "|".join(re.escape(s) for s in GRAPH_SEGMENTS) + r")(?=$|[/?(\s'\"{])"
GRAPH_PATH_START = re.compile(r"^(/v1\.0|/beta)?/" + _SEGMENT)
GRAPH_PATH_ANYWHERE = re.compile(r"(^|[\s'\"(`])(/v1\.0|/beta)?/" + _SEGMENT)


def _code_strings(source: str) -> list[tuple[int, str]]:
    """Every string literal of `source` that is code (docstrings left out), with its line; an f-string
    counts by its literal parts, the first part marked as its start."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                docstrings.add(id(part))  # read below, as one string
            found.append(
                (node.lineno, "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values))
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def _graph_path_lines(source: str, pattern: re.Pattern) -> list[int]:
    return [line for line, text in _code_strings(source) if pattern.search(text)]


def _graph_paths(path: Path, pattern: re.Pattern) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}" for line in _graph_path_lines(path.read_text(), pattern)]


def test_the_graph_path_finder_finds_a_planted_path_and_skips_docs():
    planted = (
        '"""Reads /users/{id}/authentication/requirements."""\n'
        'A = f"/users/{uid}/authentication/requirements"\n'
        'B = "/beta/policies/mfaServicePolicy"\n'
        'C = "ask the admin: see /identity/conditionalAccess"\n'
        'D = "/tenants/users"\n'
    )
    assert _graph_path_lines(planted, GRAPH_PATH_START) == [2, 3]
    assert _graph_path_lines(planted, GRAPH_PATH_ANYWHERE) == [2, 3, 4]


def test_steps_hold_no_graph_url():
    """Steps say what to do; the Graph resources (graph/resources/) know where it is."""
    files = list((ROOT / "migrations_engine" / "steps").rglob("*.py"))
    assert len(files) > 15
    assert [hit for path in files for hit in _graph_paths(path, GRAPH_PATH_ANYWHERE)] == []


def test_no_module_outside_graph_builds_a_graph_path():
    graph_dir = ROOT / "migrations_engine" / "graph"
    files = [
        p
        for pkg in PRODUCTION_PACKAGES + ("staff",)
        for p in (ROOT / pkg).rglob("*.py")
        if graph_dir not in p.parents
    ]
    assert len(files) > 100
    assert [hit for path in files for hit in _graph_paths(path, GRAPH_PATH_START)] == []


def _mounts_pages(source: str) -> bool:
    """True when the module wraps a view for the console (`site.admin_view(...)`, `self.admin_site...`)."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "admin_view"
        for node in ast.walk(ast.parse(source))
    )


def _production_files() -> list[Path]:
    return [
        p
        for pkg in PRODUCTION_PACKAGES + ("staff",)
        for p in (ROOT / pkg).rglob("*.py")
        if "migrations" not in p.relative_to(ROOT).parts
    ]


def test_the_page_finder_finds_a_planted_mount():
    assert _mounts_pages("path('x/', site.admin_view(view), name='x')")
    assert not _mounts_pages("'''site.admin_view(view) in a docstring'''")


def test_pages_are_added_one_way():
    """A page about one model is mounted by that model's admin (`admin.py`, `*_admin.py`); any other page
    by its feature's `urls.py`, and every such `urls.py` is named in `msp_console/console_urls.py`."""
    mounting = {p for p in _production_files() if _mounts_pages(p.read_text())}
    assert len(mounting) >= 6
    misplaced = [
        str(p.relative_to(ROOT))
        for p in mounting
        if not (p.name in ("urls.py", "admin.py") or p.name.endswith("_admin.py"))
    ]
    assert misplaced == []
    feature_urls = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in _production_files()
        if p.name == "urls.py" and "def urls(site)" in p.read_text()
    }
    assert len(feature_urls) >= 4
    listed = _imported_modules(ROOT / "msp_console" / "console_urls.py")
    named = listed | {
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse((ROOT / "msp_console" / "console_urls.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert feature_urls - named == set()
