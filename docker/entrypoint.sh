#!/bin/sh
# Wait for PostgreSQL and Redis; then compose's one-shot `migrate` service (RUN_MIGRATIONS=1) applies
# migrations, and the others (web, workers, scheduler) wait until the schema is migrated; then run the
# given command.
set -e
python - <<'PY'
import os, sys, time
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
import redis


def wait(what, ready, seconds):
    deadline = time.monotonic() + seconds
    reported = False
    while True:
        try:
            problem = ready()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            problem = f"{type(exc).__name__}: {exc}"
            connection.close()
        if not problem:
            return
        if time.monotonic() > deadline:
            sys.exit(f"entrypoint: {what} not ready after {seconds} s: {problem}")
        if not reported:
            print(f"entrypoint: waiting for {what} ({problem})", file=sys.stderr, flush=True)
            reported = True
        time.sleep(1)


def dependencies():
    connection.ensure_connection()
    redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")).ping()


def schema():
    executor = MigrationExecutor(connection)
    missing = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return f"{len(missing)} migrations not applied yet" if missing else ""


wait("PostgreSQL and Redis", dependencies, int(os.environ.get("WAIT_FOR_DEPENDENCIES_SECONDS", "60")))
if os.environ.get("RUN_MIGRATIONS", "0") != "1":
    # The migrate service migrates; a process started on an older schema would fail its requests and jobs.
    wait("the database schema", schema, int(os.environ.get("WAIT_FOR_MIGRATIONS_SECONDS", "300")))
PY
if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
  python manage.py migrate --noinput
fi
exec "$@"
