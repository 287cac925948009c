"""``manage.py polls_load_votes``: load synthetic voters and their votes into a poll, fast.

For benchmarks and capacity tests. Every vote has a voter of its own: a new account of the site's
user model, named ``polls-load-<poll id>-<n>``, that cannot sign in (unusable password). Voter
``n`` votes for option ``n mod (number of options)`` in the poll's option order, so the votes
spread evenly.

The rows are made by the database from a number series (``generate_series`` on PostgreSQL, a
recursive CTE on SQLite), never row by row from Python. The columns of the user table other than
the username are copied from one template instance built in Python, so custom user models work
as long as they have an auto-increment primary key, live in one table and need no other unique
value per account.

Each batch is one transaction that holds the poll's exclusive lock (it waits for the ballots in
flight, and later ballots wait for it), checks that the poll still takes votes, inserts the
batch's voters, their participations and votes, and adds them to the option counters and the
poll's count of voters, so the counts never drift.
Numbering starts at the poll's total of votes, which is above every number an earlier load used;
should a username be taken all the same (real voters retracted votes since that load), the batch
is retried once, numbered past the highest number in use.
No ``vote_cast`` signals are sent.

On a ranked or score poll each synthetic voter casts one ballot, drawn at random (seeded by the
poll and the voter's number, so a load is repeatable): a ranking of ``min_choices`` to
``max_choices`` options in random order, or that many options with random scores from 0 to
``max_score``. The voters are inserted in SQL as above; their ballots, participations, the
options' votes and the poll's tallies (one upsert per thousand keys) are written in the same
transaction, so ``polls_recount`` finds no drift. A poll with every option required
(``min_choices`` = the number of options) gives full rankings: with many options nearly every
ballot is a distinct ranking, the worst case for ranked results.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Count, F, Field, Max, Model, Value, When
from django.utils import timezone

from django_polls import methods
from django_polls.models import (
    VOTE_ROW_METHODS,
    VOTER_COUNT_STRIPES,
    Anonymity,
    Ballot,
    Method,
    Option,
    Participation,
    Poll,
    Vote,
    VoterCount,
    change_key,
    choice_limits,
    counted_votes,
)
from django_polls.services import locks, method_ballots

DEFAULT_BATCH_SIZE = 100_000
VENDORS = ("postgresql", "sqlite")
AUTO_FIELDS = ("AutoField", "BigAutoField", "SmallAutoField")


def voter_prefix(poll_id: int) -> str:
    """The username of synthetic voter ``n`` of the poll is this prefix followed by ``n``."""
    return f"polls-load-{poll_id}-"


@dataclasses.dataclass(frozen=True)
class VoterTemplate:
    """How to insert synthetic accounts: constant columns, plus a username computed in SQL."""

    model: Any
    table: str
    pk_column: str
    username_field: str
    username_column: str
    columns: list[str]
    values: list[Any]

    @classmethod
    def for_user_model(cls) -> VoterTemplate:
        """Read the site's user model; CommandError when its accounts cannot be made in SQL."""
        model = get_user_model()
        concrete = model._meta.concrete_model or model
        opts = concrete._meta
        if opts.parents:
            raise CommandError(
                f"The user model {opts.label} inherits from another concrete model (several "
                "tables); polls_load_votes supports one-table user models only."
            )
        if opts.pk is None or opts.pk.get_internal_type() not in AUTO_FIELDS:
            raise CommandError(
                f"The user model {opts.label} needs an auto-increment primary key for "
                "polls_load_votes."
            )
        template = model(**{model.USERNAME_FIELD: "x"})
        template.set_unusable_password()
        columns: list[str] = []
        values: list[Any] = []
        for field in opts.local_concrete_fields:
            if field.primary_key or field.name == model.USERNAME_FIELD:
                continue
            if getattr(field, "generated", False):
                continue
            value = field.pre_save(template, add=True)
            if hasattr(value, "as_sql"):
                continue  # a database default (db_default): the database fills it in
            columns.append(field.column)
            values.append(field.get_db_prep_save(value, connection))
        return cls(
            model=model,
            table=opts.db_table,
            pk_column=opts.pk.column,
            username_field=model.USERNAME_FIELD,
            username_column=_column(concrete, model.USERNAME_FIELD),
            columns=columns,
            values=values,
        )

    def select_list(self) -> str:
        """The constant columns as parameters, then the username: prefix and ``series.n``."""
        return ", ".join([*(["%s"] * len(self.values)), "%s || CAST(series.n AS text)"])

    def highest_number(self, prefix: str) -> int:
        """The highest ``n`` among the accounts named ``prefix`` + ``n`` (-1 when none)."""
        names = (
            self.model._default_manager.filter(**{f"{self.username_field}__startswith": prefix})
            .order_by()
            .values_list(self.username_field, flat=True)
        )
        highest = -1
        for name in names.iterator():
            suffix = str(name)[len(prefix) :]
            if str(name).startswith(prefix) and suffix.isascii() and suffix.isdigit():
                highest = max(highest, int(suffix))
        return highest


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model: type[Model], name: str) -> str:
    """The database column of the model's field ``name``."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.column:
        raise CommandError(f"{model._meta.label}.{name} is not a database column.")
    return field.column


def _vote_column(name: str) -> str:
    return _q(_column(Vote, name))


def _insert_postgresql(
    voters: VoterTemplate,
    prefix: str,
    first: int,
    size: int,
    vote_values: list[Any],
    option: str,
    limit: int,
) -> tuple[str, list[Any]]:
    """One statement: the voters (from ``generate_series``) and, from what they return, their
    participations and votes."""
    number = f"CAST(SUBSTR(new_users.{_q(voters.username_column)}, {len(prefix) + 1}) AS bigint)"
    sql = (
        f"WITH new_users AS ("
        f" INSERT INTO {_q(voters.table)}"
        f" ({', '.join(_q(c) for c in [*voters.columns, voters.username_column])})"
        f" SELECT {voters.select_list()}"
        f" FROM generate_series(%s, %s) AS series(n)"
        f" RETURNING {_q(voters.pk_column)}, {_q(voters.username_column)}"
        f"), joined AS ("
        f" INSERT INTO {_q(Participation._meta.db_table)} ({_participation_columns()})"
        f" SELECT %s, new_users.{_q(voters.pk_column)}, 1, 1, %s FROM new_users"
        f") INSERT INTO {_q(Vote._meta.db_table)} ({_vote_columns()})"
        f" SELECT %s, {option.format(number=number)}, new_users.{_q(voters.pk_column)}, %s, %s"
        f" FROM new_users"
    )
    params = [*voters.values, prefix, first, first + size - 1, vote_values[0], limit]
    return sql, [*params, *vote_values]


def _participation_columns() -> str:
    names = ("poll", "voter", "choices", "min_choices", "max_choices")
    return ", ".join(_q(_column(Participation, name)) for name in names)


def _vote_columns() -> str:
    names = ("poll", "option", "voter", "poll_allows_multiple", "created_at")
    return ", ".join(_vote_column(name) for name in names)


class Command(BaseCommand):
    help = (
        "Load VOTES synthetic votes into the poll POLL_ID, each cast by a new synthetic voter "
        "(an account that cannot sign in, named polls-load-<poll id>-<n>), spread evenly over "
        "the options, in batches of one transaction each. For benchmarks and capacity tests."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("poll_id", type=int, metavar="POLL_ID", help="The poll to load.")
        parser.add_argument("votes", type=int, metavar="VOTES", help="How many votes to add.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Votes per transaction (default {DEFAULT_BATCH_SIZE:,}).",
        )

    def handle(self, *args: Any, poll_id: int, votes: int, batch_size: int, **options: Any) -> None:
        if votes < 1:
            raise CommandError(f"VOTES must be at least 1, not {votes}.")
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}.")
        if connection.vendor not in VENDORS:
            raise CommandError(
                f"polls_load_votes supports PostgreSQL and SQLite, not {connection.vendor}."
            )
        voters = VoterTemplate.for_user_model()
        started = time.perf_counter()
        loaded = 0
        floor = 0
        while loaded < votes:
            size = min(batch_size, votes - loaded)
            done = (
                f" Stopped after {loaded:,} of {votes:,} votes." if loaded else " Nothing loaded."
            )
            try:
                first = self._load_batch(poll_id, voters, size, floor=floor, done=done)
            except IntegrityError:
                # A username is taken: real voters retracted votes since an earlier load, so the
                # total fell below the numbers that load used. Number past the highest instead.
                floor = voters.highest_number(voter_prefix(poll_id)) + 1
                try:
                    first = self._load_batch(poll_id, voters, size, floor=floor, done=done)
                except IntegrityError as exc:
                    raise CommandError(
                        f"Could not insert the synthetic voters.{done} The database said: {exc}"
                    ) from exc
            # The next batch numbers on from this one, whatever the total does meanwhile.
            floor = first + size
            loaded += size
            rate = loaded / max(time.perf_counter() - started, 1e-9)
            self.stdout.write(f"loaded {loaded:,} / {votes:,} votes ({rate:,.0f} votes/s)")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {votes:,} votes into poll {poll_id} in {elapsed:.2f} s "
                f"({votes / max(elapsed, 1e-9):,.0f} votes/s)."
            )
        )

    def _load_batch(
        self, poll_id: int, voters: VoterTemplate, size: int, *, floor: int, done: str
    ) -> int:
        """One transaction: lock the poll, insert ``size`` voters and votes, count them; returns
        the number of the batch's first voter.

        ``done`` ends the message of a refusal: what earlier batches loaded.
        """
        with transaction.atomic():
            try:
                poll = locks.lock_poll(poll_id, exclusive=True)
            except Poll.DoesNotExist:
                raise CommandError(f"Poll {poll_id} does not exist.{done}") from None
            if poll.anonymity == Anonymity.SECRET:
                raise CommandError(
                    f"Poll {poll_id} is secret: the loader writes votes with their voters.{done}"
                )
            now = timezone.now()
            if not poll.is_open_at(now):
                raise CommandError(
                    f"Poll {poll_id} is closed or expired: it no longer takes votes.{done}"
                )
            rows = list(
                Option.objects.filter(poll_id=poll.pk)
                .annotate(count=counted_votes())
                .order_by("order", "pk")
                .values_list("pk", "count")
            )
            if not rows:
                raise CommandError(f"Poll {poll_id} has no options.{done}")
            option_ids = [pk for pk, _ in rows]
            first = max(sum(int(count) for _, count in rows), floor)
            last_participation = Participation.objects.aggregate(last=Max("pk"))["last"] or 0
            if poll.method not in VOTE_ROW_METHODS:
                _load_ballots(poll, voters, option_ids, first, size, now, done=done)
                _count_new_voters(poll.pk, after=last_participation)
                return first
            inserted = self._insert(poll, voters, option_ids, first, size, now)
            if inserted != size:
                raise CommandError(f"Inserted {inserted} votes instead of {size}.{done}")
            _count_new_voters(poll.pk, after=last_participation)
            added = _votes_per_option(option_ids, first, size)
            Option.objects.filter(pk__in=list(added)).update(
                votes=F("votes")
                + Case(*(When(pk=pk, then=Value(n)) for pk, n in added.items()), default=0)
            )
        return first

    def _insert(
        self,
        poll: Poll,
        voters: VoterTemplate,
        option_ids: Sequence[int],
        first: int,
        size: int,
        now: Any,
    ) -> int:
        """Insert voters ``first`` .. ``first + size - 1`` and their votes; returns the votes."""
        prefix = voter_prefix(poll.pk)
        # Voter n votes for option n mod len(option_ids); {number} is n as an SQL expression.
        option = (
            f"CASE ({{number}}) %% {len(option_ids)}"
            + "".join(f" WHEN {index} THEN %s" for index in range(len(option_ids)))
            + " END"
        )
        created_at = Vote._meta.get_field("created_at").get_db_prep_save(now, connection)
        vote_values = [poll.pk, *option_ids, poll.allow_multiple_votes, created_at]
        # Each synthetic voter holds one option, within what the poll allows a voter.
        limit = 1 if not poll.allow_multiple_votes else (poll.max_choices or len(option_ids))
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    *_insert_postgresql(voters, prefix, first, size, vote_values, option, limit)
                )
                return int(cursor.rowcount)
            # SQLite: no data-modifying CTEs, so the voters first, then the votes, joined back to
            # them by username (unique, indexed) over the same number series.
            series = (
                "WITH RECURSIVE series(n) AS"
                " (SELECT %s UNION ALL SELECT n + 1 FROM series WHERE n < %s)"
            )
            bounds = [first, first + size - 1]
            username = _q(voters.username_column)
            cursor.execute(
                f"INSERT INTO {_q(voters.table)}"
                f" ({', '.join(_q(c) for c in [*voters.columns, voters.username_column])})"
                f" {series}"
                f" SELECT {voters.select_list()} FROM series",
                [*bounds, *voters.values, prefix],
            )
            cursor.execute(
                f"INSERT INTO {_q(Participation._meta.db_table)} ({_participation_columns()})"
                f" {series}"
                f" SELECT %s, voter.{_q(voters.pk_column)}, 1, 1, %s"
                f" FROM series JOIN {_q(voters.table)} AS voter"
                f" ON voter.{username} = %s || CAST(series.n AS text)",
                [*bounds, poll.pk, limit, prefix],
            )
            cursor.execute(
                f"INSERT INTO {_q(Vote._meta.db_table)} ({_vote_columns()})"
                f" {series}"
                f" SELECT %s, {option.format(number='series.n')}, voter.{_q(voters.pk_column)},"
                f" %s, %s"
                f" FROM series JOIN {_q(voters.table)} AS voter"
                f" ON voter.{username} = %s || CAST(series.n AS text)",
                [*bounds, *vote_values, prefix],
            )
            return int(cursor.rowcount)


BALLOT_METHODS = (Method.RANKED, Method.SCORE)


def _load_ballots(
    poll: Poll,
    voters: VoterTemplate,
    option_ids: Sequence[int],
    first: int,
    size: int,
    now: Any,
    *,
    done: str,
) -> None:
    """Voters ``first`` .. ``first + size - 1`` of a ranked or score poll, each with a random
    ballot, and every count those ballots move."""
    if poll.method not in BALLOT_METHODS:
        raise CommandError(
            f"Poll {poll.pk} uses the method {poll.method!r}: polls_load_votes makes ballots of "
            f"single, multiple, ranked and score polls.{done}"
        )
    method = methods.get_method(poll.method)
    low, high = choice_limits(
        poll.method, poll.min_choices, poll.max_choices, lambda: len(option_ids)
    )
    rng = random.Random(f"{poll.pk}:{first}")
    choices: list[Any] = []
    for _ in range(size):
        chosen = rng.sample(list(option_ids), rng.randint(low, high))
        if poll.method == Method.SCORE:
            top = poll.max_score or 5
            choices.append([{"option": pk, "score": rng.randint(0, top)} for pk in chosen])
        else:
            choices.append(chosen)
    voter_ids = _insert_voters(voters, voter_prefix(poll.pk), first, size)
    limits = {"min_choices": low, "max_choices": high}
    Participation.objects.bulk_create(
        (
            Participation(
                poll_id=poll.pk,
                voter_id=voter_id,
                choices=len(method.options_named(choice)),
                **limits,
            )
            for voter_id, choice in zip(voter_ids, choices, strict=True)
        ),
        batch_size=5000,
    )
    Ballot.objects.bulk_create(
        (
            Ballot(poll_id=poll.pk, voter_id=voter_id, choice=choice, created_at=now)
            for voter_id, choice in zip(voter_ids, choices, strict=True)
        ),
        batch_size=5000,
    )
    added: Counter[int] = Counter()
    keys: Counter[str] = Counter()
    for choice in choices:
        added.update(method.options_named(choice))
        keys.update(method.tally_keys(choice))
    if added:
        Option.objects.filter(pk__in=list(added)).update(
            votes=F("votes")
            + Case(*(When(pk=pk, then=Value(n)) for pk, n in added.items()), default=0)
        )
    keys[change_key(0)] += 1  # a new state of the poll's counts
    method_ballots.add_tally_counts(poll.pk, keys)


def _insert_voters(voters: VoterTemplate, prefix: str, first: int, size: int) -> list[Any]:
    """Insert voters ``first`` .. ``first + size - 1``; returns their keys, in number order."""
    username = _q(voters.username_column)
    if connection.vendor == "postgresql":
        series = "generate_series(%s, %s) AS series(n)"
        head = ""
    else:
        series = "series"
        head = (
            "WITH RECURSIVE series(n) AS"
            " (SELECT %s UNION ALL SELECT n + 1 FROM series WHERE n < %s) "
        )
    sql = (
        f"INSERT INTO {_q(voters.table)}"
        f" ({', '.join(_q(c) for c in [*voters.columns, voters.username_column])})"
        f" {head if head else ''}SELECT {voters.select_list()} FROM {series}"
        f" RETURNING {_q(voters.pk_column)}, {username}"
    )
    bounds = [first, first + size - 1]
    params = [*bounds, *voters.values, prefix] if head else [*voters.values, prefix, *bounds]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [pk for pk, _ in sorted(found, key=lambda row: int(str(row[1])[len(prefix) :]))]


def _count_new_voters(poll_id: int, *, after: int) -> None:
    """Add the poll's participations with ids above ``after`` (this batch's) to its count of
    voters, by stripe; reads the new rows only, through the primary key."""
    stripes = (
        Participation.objects.filter(pk__gt=after, poll_id=poll_id)
        .annotate(stripe=F("pk") % VOTER_COUNT_STRIPES)
        .order_by()
        .values("stripe")
        .annotate(n=Count("pk"))
        .values_list("stripe", "n")
    )
    for stripe, n in stripes:
        updated = VoterCount.objects.filter(poll_id=poll_id, stripe=stripe).update(
            voters=F("voters") + n
        )
        if not updated:
            VoterCount.objects.create(poll_id=poll_id, stripe=stripe, voters=n)


def _votes_per_option(option_ids: Sequence[int], first: int, size: int) -> dict[int, int]:
    """How many of voters ``first`` .. ``first + size - 1`` vote for each option (n mod count)."""
    count = len(option_ids)
    added = dict.fromkeys(option_ids, size // count)
    for n in range(first, first + size % count):
        added[option_ids[n % count]] += 1
    return {pk: n for pk, n in added.items() if n}
