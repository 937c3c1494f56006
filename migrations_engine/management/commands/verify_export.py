"""`manage.py verify_export MANIFEST [--offline]`: check a scheduled audit export against its manifest.

Exits 0 with "OK: …" when the export holds, 1 naming the first problem otherwise. `--offline` checks the
two files alone (for a customer without access to the console's database).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from migrations_engine.exports.verify import verify_export


class Command(BaseCommand):
    help = "Verify a scheduled audit export (data file, manifest, hash chain; the database unless --offline)."

    def add_arguments(self, parser):
        parser.add_argument("manifest", metavar="MANIFEST", help="the export's .manifest.json")
        parser.add_argument(
            "--offline", action="store_true", help="check the files only, not against the audit log"
        )

    def handle(self, *args, **options):
        verdict = verify_export(options["manifest"], offline=options["offline"])
        if not verdict.ok:
            raise CommandError(str(verdict))  # exit status 1
        self.stdout.write(str(verdict))
