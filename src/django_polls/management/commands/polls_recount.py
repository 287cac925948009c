from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_polls import services


class Command(BaseCommand):
    help = (
        "Compare every option's stored vote count with its vote rows and report the drift. "
        "With --fix, set the drifting counts to the number of rows. Exits with status 1 when "
        "drift was found and not fixed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Repair the drift that is found.")
        parser.add_argument(
            "--poll",
            type=int,
            action="append",
            dest="polls",
            metavar="ID",
            help="Only this poll (repeatable).",
        )

    def handle(self, *args: Any, fix: bool, polls: list[int] | None, **options: Any) -> None:
        found = (
            services.repair_counts(poll_ids=polls) if fix else services.find_drift(poll_ids=polls)
        )
        for drift in found:
            self.stdout.write(
                f"poll {drift.poll_id} option {drift.option_id}: "
                f"stored {drift.stored}, rows {drift.actual}"
            )
        if not found:
            self.stdout.write(self.style.SUCCESS("No drift: every count matches its vote rows."))
        elif fix:
            self.stdout.write(self.style.SUCCESS(f"Repaired {len(found)} option count(s)."))
        else:
            raise CommandError(f"{len(found)} option count(s) drift; run with --fix to repair.")
