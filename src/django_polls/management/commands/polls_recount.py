from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_polls import services


class Command(BaseCommand):
    help = (
        "Compare every stored count with what it counts and report the drift: each option's "
        "votes with its vote rows (single and multiple polls) or with the ballots that name it "
        "(ranked, score and other methods, whose tallies are checked against their ballots "
        "too). Secret polls keep no ballots: on ranked and score ones the options' votes are "
        "checked against the tallies, which nothing can check; every secret poll is listed, "
        "with what was checked. With --fix, set the drifting counts to what they count. Exits "
        "with status 1 when drift was found and not fixed."
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
        by_ballots = (
            services.repair_ballot_counts(poll_ids=polls)
            if fix
            else services.find_ballot_drift(poll_ids=polls)
        )
        for ballot_drift in by_ballots:
            what = (
                f"option {ballot_drift.option_id}"
                if ballot_drift.option_id is not None
                else f"count {ballot_drift.key!r}"
            )
            self.stdout.write(
                f"poll {ballot_drift.poll_id} {what}: "
                f"stored {ballot_drift.stored}, {ballot_drift.source} {ballot_drift.actual}"
            )
        for poll_id, by_tallies in services.unchecked_polls(poll_ids=polls):
            if by_tallies:
                self.stdout.write(
                    f"poll {poll_id} is secret: it keeps no ballots; its options' votes were "
                    "checked against its tallies, which nothing can check."
                )
            else:
                self.stdout.write(
                    f"poll {poll_id} is secret: it keeps no ballots, so its counts cannot be "
                    "checked."
                )
        drifted = len(found) + len(by_ballots)
        if not drifted:
            self.stdout.write(self.style.SUCCESS("No drift: every count matches its vote rows."))
        elif fix:
            self.stdout.write(self.style.SUCCESS(f"Repaired {drifted} count(s)."))
        else:
            raise CommandError(f"{drifted} count(s) drift; run with --fix to repair.")
