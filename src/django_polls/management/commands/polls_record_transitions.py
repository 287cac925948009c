from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_polls import services


class Command(BaseCommand):
    help = (
        "Record in the audit trail the polls that opened or expired by the clock since the last "
        "run (dated at their opening or expiry time). Run it every minute (cron, or the site's "
        "task runner) where DJANGO_POLLS['AUDIT_TRAIL'] is on."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        written = services.record_transitions()
        self.stdout.write(f"{written} opening(s) and closing(s) recorded.")
