"""How long the console's pages take on the server with a large fleet in the database.

    .venv/bin/python -m bench.console_pages [--tenants 500] [--repeat 7] [--database-url URL]

A script, not a test: it adds a synthetic fleet (`tenants.synthetic.add_fleet`: tenants in every state,
with consent, census figures, runs and drift) to a fresh database, signs a superuser in with Django's test
client and times each page `--repeat` times (server time: the request through every middleware and
the template, no network, no browser). Prints the median and the worst per page, and the query count.
The target is 300 ms per page with 500 tenants.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300

PAGES = (
    ("dashboard", "/"),
    ("fleet", "/tenants/customertenant/"),
    ("fleet, blocked view", "/tenants/customertenant/?view=blocked"),
    ("fleet, searched", "/tenants/customertenant/?q=harbor"),
    ("fleet, sorted by state", "/tenants/customertenant/?o=2"),
    ("tenant page", "/tenants/customertenant/{pk}/change/"),
    ("runs", "/migrations_engine/migrationrun/"),
    ("run page", "/migrations_engine/migrationrun/{run}/change/"),
    ("audit list", "/migrations_engine/auditevent/"),
    ("drift findings", "/migrations_engine/driftfinding/"),
    ("waves", "/migrations_engine/wave/"),
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.console_pages")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="console_pages_")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/console.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msp_console.settings")
    os.environ["DEBUG"] = "False"
    os.environ.setdefault("SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("ALLOW_SIMULATOR", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    # Why here: the settings above must be in the environment before Django and the models load.
    from migrations_engine.models import MigrationRun
    from tenants.models import CustomerTenant
    from tenants.synthetic import add_fleet

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.SECURE_SSL_REDIRECT = False
    settings.STATIC_ROOT = f"{folder}/static"  # production's hashed static files, collected here
    call_command("collectstatic", "--noinput", "-v", "0")
    call_command("migrate", "--noinput", "-v", "0")
    added = add_fleet(args.tenants)
    user = User.objects.create_superuser("bench", "", "a-bench-password-1234")
    client = Client()
    client.force_login(user)
    # A superuser always needs a second factor: this session passed one, as the sign-in would record it.
    device = StaticDevice.objects.create(user=user, name="bench")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    ids = {"pk": CustomerTenant.objects.order_by("pk").first().pk, "run": MigrationRun.objects.first().pk}
    print(f"{added} tenants on {connection.vendor}; {args.repeat} requests per page; target {TARGET_MS} ms\n")
    print(f"{'page':28} {'median ms':>10} {'worst ms':>9} {'queries':>8}  status")
    worst_median = 0.0
    for name, path in PAGES:
        url = path.format(**ids)
        times, queries, status = [], 0, 0
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                response = client.get(url)
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()
                times.append((time.perf_counter() - start) * 1000)
            queries, status = len(captured), response.status_code
        median = statistics.median(times)
        worst_median = max(worst_median, median)
        print(f"{name:28} {median:10.0f} {max(times):9.0f} {queries:8}  {status}")
    verdict = "within" if worst_median <= TARGET_MS else "over"
    print(f"\nslowest page median: {worst_median:.0f} ms ({verdict} the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
