#!/bin/sh
# Wait for PostgreSQL and Redis, apply migrations (web only), then run the given command.
set -e
python - <<'PY'
import os, sys, time
import django
django.setup()
from django.db import connection
import redis
deadline = time.monotonic() + 60
while True:
    try:
        connection.ensure_connection()
        redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")).ping()
        break
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        if time.monotonic() > deadline:
            sys.exit(f"dependencies not ready after 60 s: {exc}")
        time.sleep(1)
PY
if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
  python manage.py migrate --noinput
fi
exec "$@"
