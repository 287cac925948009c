from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_polls import services


class Command(BaseCommand):
    help = (
        "Delete the idempotency keys past their time (DJANGO_POLLS['IDEMPOTENCY_KEY_TTL'] after "
        "they were first sent). A user's own expired keys also go when the user sends a new "
        "one; run this daily (cron, or the site's task runner) for the keys of users who do not."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = services.purge_expired_keys()
        self.stdout.write(f"{deleted} expired idempotency key(s) deleted.")
