from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_polls import webhooks


class Command(BaseCommand):
    help = (
        "Send webhook events from the outbox: signed, retried with backoff until delivered or "
        "parked as failed. Runs until stopped (SIGTERM or Ctrl-C ends it after the current "
        "round); several may run at once. Also announces the polls that open or expire by the "
        "clock."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Send what is due now, then stop.")
        parser.add_argument(
            "--batch", type=int, default=100, help="Deliveries claimed per round (default 100)."
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            help="Deliveries sent at once (default 4): a slow receiver holds up one of them.",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="Seconds to wait after a round that found nothing more to send (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch, concurrency = max(1, options["batch"]), max(1, options["concurrency"])
        if options["once"]:
            sent = 0
            while (done := webhooks.deliver_due(limit=batch, concurrency=concurrency)) > 0:
                sent += done
            self.stdout.write(f"{sent} deliveries sent.")
            return
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write("Sending webhook events; SIGTERM or Ctrl-C stops.")
        self.stdout.flush()
        webhooks.run(
            limit=batch,
            concurrency=concurrency,
            interval=options["interval"],
            stop=lambda: stopping,
        )
