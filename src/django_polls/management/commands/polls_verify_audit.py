from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_polls import services


class Command(BaseCommand):
    help = (
        "Check every poll's audit trail, entry by entry: an entry edited afterwards (its hash no "
        "longer matches it), removed (a number missing, or an entry not following the one "
        "before) or cut from the end (the trail's head ahead of its last entry). Prints each "
        "problem and exits with status 1 when there is one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--poll",
            type=int,
            action="append",
            dest="polls",
            metavar="ID",
            help="Only this poll's trail (repeatable).",
        )

    def handle(self, *args: Any, polls: list[int] | None, **options: Any) -> None:
        problems = 0
        for found in services.verify_audit(poll_ids=polls):
            problems += 1
            self.stdout.write(str(found))
        if problems:
            raise CommandError(f"{problems} problem(s) in the audit trail.", returncode=1)
        self.stdout.write("The audit trail is intact.")
