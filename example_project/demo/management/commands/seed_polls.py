"""`manage.py seed_polls`: a demo user, voters, and a few polls with votes. Safe to run again:
what exists is kept, what is missing is added, and the demo user's password is (re)set."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from django_polls import services
from django_polls.models import Poll

User = get_user_model()


@dataclass(frozen=True)
class DemoPoll:
    title: str
    options: list[str]
    description: str = ""
    allow_multiple_votes: bool = False
    expires_in_days: int | None = None
    closed: bool = False
    method: str | None = None
    # ballots[i] is the option indexes voter i+1 picks (in order of preference on a ranked
    # poll); an empty list abstains.
    ballots: list[list[int]] = field(default_factory=list)
    # On a score poll, scores[i] is voter i+1's score for each option (None: not scored).
    scores: list[list[int | None]] = field(default_factory=list)


DEMO_POLLS = [
    DemoPoll(
        title="Which language should the next workshop cover?",
        description="One vote each; the workshop is in the spring.",
        options=["Python", "Rust", "Go", "TypeScript"],
        ballots=[[0], [1], [0], [3], [0], [2], [1], [0], [3], [0], [1], [0]],
    ),
    DemoPoll(
        title="Which days suit you for the team offsite?",
        description="Pick every day you can make.",
        options=["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
        allow_multiple_votes=True,
        expires_in_days=30,
        ballots=[[0, 2], [1, 2, 3], [2], [2, 4], [0, 1], [3, 4], [2, 3], [1]],
    ),
    DemoPoll(
        title="Best pizza topping?",
        description="Closed: the pizzas have been ordered.",
        options=["Margherita", "Mushroom", "Pineapple"],
        closed=True,
        ballots=[[0], [0], [2], [1], [0], [2]],
    ),
    DemoPoll(
        title="Where should next year's conference be?",
        description="Rank the cities you would travel to, favourite first.",
        options=["Lisbon", "Berlin", "Kraków", "Dublin"],
        method="ranked",
        expires_in_days=14,
        ballots=[
            [0, 1],
            [1, 0, 2],
            [2, 1],
            [0],
            [3, 2, 1],
            [1, 2],
            [2, 0],
            [0, 3],
            [3, 1],
        ],
    ),
    DemoPoll(
        title="How were the talks?",
        description="Give each talk you saw 0 to 5 stars.",
        options=["Keynote", "Databases at scale", "Typing Python"],
        method="score",
        scores=[[5, 3, None], [4, None, 2], [5, 4, 3], [3, 5, None], [4, 4, 1]],
    ),
    DemoPoll(
        title="Where should the launch party be?",
        options=["The roof terrace", "The bowling alley", "Online"],
        expires_in_days=7,
    ),
]


class Command(BaseCommand):
    help = "Create a demo user and a few polls with votes (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo", help="The demo user (default: demo).")
        parser.add_argument(
            "--password", default="demo", help="The demo user's password (default: demo)."
        )

    def handle(self, *args: Any, username: str, password: str, **options: Any) -> None:
        with transaction.atomic():
            owner = self._demo_user(username, password)
            voters = [self._voter(number) for number in range(1, 13)]
        token, _ = Token.objects.get_or_create(user=owner)
        added = 0
        for demo in DEMO_POLLS:
            with transaction.atomic():  # a poll comes with all its votes or not at all
                added += self._seed(demo, owner, voters)
        polls = Poll.objects.filter(created_by=owner).count()
        self.stdout.write(
            f"Demo data: {polls} polls by {username!r} ({added} added now).\n"
            f"  username: {username}\n"
            f"  password: {password}\n"
            f"  token:    {token.key}  (Authorize in Swagger with: Token {token.key})\n"
            f"  The demo user is a superuser: sign in to /admin/ with it."
        )

    def _demo_user(self, username: str, password: str) -> Any:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if not (user.is_staff and user.is_superuser):
            # Someone's own account, not one this command made: never take it over.
            raise CommandError(
                f"The user {username!r} exists and is not the demo administrator; "
                "choose another with --username."
            )
        if not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        return user

    def _voter(self, number: int) -> Any:
        voter, created = User.objects.get_or_create(username=f"voter{number:02d}")
        if created:
            voter.set_unusable_password()
            voter.save(update_fields=["password"])
        return voter

    def _seed(self, demo: DemoPoll, owner: Any, voters: list[Any]) -> int:
        if Poll.objects.filter(created_by=owner, title=demo.title).exists():
            return 0
        poll = services.create_poll(
            created_by=owner,
            title=demo.title,
            description=demo.description,
            options=demo.options,
            allow_multiple_votes=demo.allow_multiple_votes,
            method=demo.method,
            expires_at=(
                timezone.now() + timedelta(days=demo.expires_in_days)
                if demo.expires_in_days
                else None
            ),
        )
        option_ids = list(poll.options.order_by("order").values_list("id", flat=True))
        for voter, picks in zip(voters, demo.ballots, strict=False):
            chosen = [option_ids[i] for i in picks]
            if demo.method == "ranked":
                services.cast_ballot(poll_id=poll.pk, voter=voter, data={"ranking": chosen})
            else:
                services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=chosen)
        for voter, stars in zip(voters, demo.scores, strict=False):
            entries = [
                {"option": option_id, "score": score}
                for option_id, score in zip(option_ids, stars, strict=True)
                if score is not None
            ]
            services.cast_ballot(poll_id=poll.pk, voter=voter, data={"scores": entries})
        if demo.closed:
            services.close_poll(poll=poll)
        return 1
