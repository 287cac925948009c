"""Ballots of single and multiple polls, kept as vote rows: cast, change, retract, and read
one's own; the hot path of the API. :mod:`~django_polls.services.method_ballots` hands them here
and keeps every other method's ballots, and it answers for any method.

On PostgreSQL a ballot is one statement (:data:`BALLOT_SQL`); elsewhere a transaction of a few
statements that takes the same locks in the same order (:mod:`django_polls.services.locks`) and
judges with the same rules (:func:`judge_ballot`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import (
    F,
    FilteredRelation,
    Q,
    QuerySet,
)
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from django_polls import changes, signals
from django_polls.changes import announce_change
from django_polls.conf import polls_settings
from django_polls.models import (
    VOTE_ROW_METHODS,
    VOTER_COUNT_STRIPES,
    Anonymity,
    BallotChange,
    ClockTimestamp,
    Method,
    Option,
    Participation,
    Poll,
    Status,
    Vote,
    VoterCount,
    choice_limits,
    read_poll_clock,
)
from django_polls.services.aio import fetchone
from django_polls.services.audit import ballot_changed
from django_polls.services.counts import add_votes, counted_sql, take_votes
from django_polls.services.errors import (
    AlreadyVoted,
    InvalidInput,
    NotEligible,
    NotVoted,
    PollChanged,
    PollClosed,
    PollNotOpen,
    PollRuleError,
    VoteFinal,
)
from django_polls.services.locks import (
    ADVISORY_LOCK_NAMESPACE,
    is_unique_violation,
    lock_options,
    lock_poll,
    retrying_deadlocks,
)
from django_polls.services.polls import user_groups_field
from django_polls.services.sql import column, poll_columns, voter_param
from django_polls.services.webhooks import (
    dispatch_on_commit,
    vote_cast_sql,
    vote_changed,
    vote_retracted,
)
from django_polls.services.webhooks import vote_cast as announce_vote_cast

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclasses.dataclass(frozen=True)
class Receipt:
    """A stored ballot: its options and, for methods whose ballot is not a list of options
    (ranked, score, ...), the ballot as its field (``ballot_field``) shows it."""

    poll: int
    options: list[int]
    created_at: datetime
    ballot_field: str = "options"
    ballot: Any = None


@dataclasses.dataclass(frozen=True)
class MyBallot:
    """What ``GET vote/`` tells a voter: whether they voted, and (except on a secret poll,
    where nothing says it) the options they chose, or for methods whose ballot is not a list of
    options, the ballot in its field (``ballot_field``)."""

    voted: bool
    options: list[int] | None
    ballot_field: str = "options"
    ballot: Any = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the rules saw of a poll and a voter when a ballot arrived (see :func:`judge_ballot`).

    ``known``: the ballot's ids that are options of the poll; ``limits``: how many options one
    voter's ballot holds, at least and at most; ``status`` of the poll at the ballot's timestamp;
    ``prior``: how many options the voter holds already (None before their first ballot);
    ``repeated``: whether the ballot names an option the voter holds already; ``method``: the
    poll's (only single and multiple take ``options`` ballots).
    """

    known: Collection[int]
    allows_multiple: bool
    limits: tuple[int, int]
    status: Status
    eligible: bool
    secret: bool
    prior: int | None
    repeated: bool
    method: str = Method.SINGLE


def cast_vote(*, poll_id: int, voter: User, option_ids: Sequence[int]) -> Receipt:
    """Store one ballot: all of ``option_ids`` or, when any rule says no, nothing.

    Raises ``Poll.DoesNotExist``, :class:`NotEligible`, :class:`InvalidInput` (unknown or foreign
    option, more options than a ballot may hold, fewer than a first ballot must),
    :class:`PollClosed`, :class:`PollNotOpen` or :class:`AlreadyVoted`.

    On PostgreSQL the ballot is one statement (one round trip, see :data:`BALLOT_SQL`); elsewhere
    it is a transaction of a few statements. Both take the same locks in the same order and judge
    with :func:`judge_ballot`, and the same tests run on both. A site's ``VOTER_POLICY`` costs
    one read of the poll before either.
    """
    ids = distinct_ids(option_ids)
    check_voter_policy(poll_id, voter)
    listened = signals.vote_cast.has_listeners(Poll)
    try:
        if connection.vendor == "postgresql":
            now, poll = _cast_vote_in_one_statement(poll_id, voter, ids, with_poll=listened)
        else:
            poll, now = retrying_deadlocks(lambda: _cast_vote_in_steps(poll_id, voter, ids))
    except IntegrityError as exc:
        raise _ballot_refusal(exc, ids) from exc
    if listened:
        secret = poll is not None and poll.anonymity == Anonymity.SECRET
        chosen = None if secret else list(ids)
        transaction.on_commit(
            lambda: signals.vote_cast.send(sender=Poll, poll=poll, voter=voter, option_ids=chosen),
            robust=True,
        )
    return Receipt(poll=poll_id, options=ids, created_at=now)


def distinct_ids(option_ids: Sequence[int]) -> list[int]:
    """The ballot's ids, which must be some, and none twice (:class:`InvalidInput`)."""
    ids = list(option_ids)
    if not ids or len(set(ids)) != len(ids):
        raise InvalidInput({"options": [gettext("Give a non-empty list of distinct option ids.")]})
    return ids


def _ballot_refusal(exc: IntegrityError, ids: Sequence[int]) -> PollRuleError:
    """What a ballot that the database refused broke: a vote twice for one option (a unique
    index), or a ballot outside the voter's limits (the participation's check, which a first
    ballot raced by a retraction can meet)."""
    if is_unique_violation(exc):
        return AlreadyVoted()
    if PARTICIPATION_LIMITS in str(exc):
        return AlreadyVoted()
    return PollChanged()


#: The check constraint that keeps a voter's ballot within its limits.
PARTICIPATION_LIMITS = "django_polls_participation_within_limits"


def check_voter_policy(poll_id: int, voter: User) -> None:
    """The site's ``VOTER_POLICY``, when it has one: raises :class:`NotEligible` (or
    ``Poll.DoesNotExist``)."""
    policy = polls_settings.VOTER_POLICY
    if policy is None:
        return
    poll = Poll.objects.get(pk=poll_id)
    if not policy(voter, poll):
        raise NotEligible()


def judge_ballot(ids: Sequence[int], verdict: Verdict) -> None:
    """The voting rules for one ballot, in the order their errors are reported: who may vote
    (403), the ballot itself (400), then the poll's state and the voter's votes (409).

    :data:`BALLOT_SQL` applies the same rules in its ``WHERE``.
    """
    if verdict.method not in VOTE_ROW_METHODS:
        raise wrong_ballot_field(verdict.method)
    if not verdict.eligible:
        raise NotEligible()
    unknown = [option_id for option_id in ids if option_id not in verdict.known]
    if unknown:
        raise InvalidInput({"options": [not_an_option(unknown[0])]})
    judge_size(ids, verdict.allows_multiple, verdict.limits, first=verdict.prior is None)
    if verdict.status == Status.CLOSED:
        raise PollClosed()
    if verdict.status == Status.SCHEDULED:
        raise PollNotOpen()
    if verdict.prior is not None and (
        verdict.secret or verdict.repeated or verdict.prior + len(ids) > verdict.limits[1]
    ):
        raise AlreadyVoted()


def not_an_option(option_id: int) -> str:
    return gettext("%(id)s is not an option of this poll.") % {"id": option_id}


def too_many_options(high: int) -> str:
    return ngettext(
        "A ballot on this poll holds at most %(count)d option.",
        "A ballot on this poll holds at most %(count)d options.",
        high,
    ) % {"count": high}


def too_few_options(low: int) -> str:
    return ngettext(
        "A ballot on this poll holds at least %(count)d option.",
        "A ballot on this poll holds at least %(count)d options.",
        low,
    ) % {"count": low}


def wrong_ballot_field(method: str) -> InvalidInput:
    """An ``options`` ballot on a poll whose method takes another field (ranked, score, ...)."""
    return InvalidInput(
        {
            "options": [
                gettext('This poll (%(method)s) takes its ballot in another field than "options".')
                % {"method": method}
            ]
        }
    )


def judge_size(
    ids: Sequence[int], allows_multiple: bool, limits: tuple[int, int], *, first: bool
) -> None:
    """How many options one request may name: one on a single-vote poll; at most the maximum,
    and on a voter's first (or replacing) ballot at least the minimum."""
    low, high = limits
    if len(ids) > 1 and not allows_multiple:
        raise InvalidInput({"options": [gettext("This poll takes exactly one option per voter.")]})
    if len(ids) > high:
        raise InvalidInput({"options": [too_many_options(high)]})
    if first and len(ids) < low:
        raise InvalidInput({"options": [too_few_options(low)]})


def _cast_vote_in_steps(poll_id: int, voter: User, ids: list[int]) -> tuple[Poll, datetime]:
    with transaction.atomic():
        poll = lock_poll(poll_id, exclusive=False)
        # Off PostgreSQL (where a ballot is one statement, stamped by the database's clock) the
        # clock is this process's; taken once the locks are held.
        now = timezone.now()
        # Checks the ids and locks the chosen options' rows, in id order (see above).
        known = set(lock_options(Option.objects.filter(poll_id=poll.pk, pk__in=ids)))
        participation = lock_participation(poll.pk, voter)
        secret = poll.anonymity == Anonymity.SECRET
        limits = limits_of(poll)
        verdict = Verdict(
            known=known,
            allows_multiple=poll.allow_multiple_votes,
            limits=limits,
            status=poll.status_at(now),
            eligible=is_member(voter, poll.voter_group_id),
            secret=secret,
            prior=None if participation is None else participation.choices,
            repeated=participation is not None
            and Vote.objects.filter(poll_id=poll.pk, voter=voter, option_id__in=ids).exists(),
            method=poll.method,
        )
        judge_ballot(ids, verdict)
        if participation is None:
            held = {"choices": len(ids), "min_choices": limits[0], "max_choices": limits[1]}
            # On a secret poll one ballot, of a size nothing records.
            participation = Participation.objects.create(
                poll_id=poll.pk, voter=voter, **(SECRET_LIMITS if secret else held)
            )
            count_voter(poll.pk, participation.pk, +1)
        else:
            Participation.objects.filter(pk=participation.pk).update(
                choices=F("choices") + len(ids)
            )
        if not secret:
            _store_votes(poll, voter, ids, now)
        add_votes(ids)
        announce_change(poll_id=poll.pk)
        announce_vote_cast(poll, voter, "options", sorted(ids), at=now)
    return poll, now


def _store_votes(poll: Poll, voter: User, ids: Sequence[int], now: datetime) -> None:
    """The vote rows of a ballot, in option id order (the lock order)."""
    Vote.objects.bulk_create(
        Vote(
            poll_id=poll.pk,
            option_id=option_id,
            voter=voter,
            poll_allows_multiple=poll.allow_multiple_votes,
            created_at=now,
        )
        for option_id in sorted(ids)
    )


#: A participation in a secret poll: one ballot, and not how many options it chose (in a small
#: poll that alone could tell the choices from the counts).
SECRET_LIMITS = {"choices": 1, "min_choices": 1, "max_choices": 1}


def limits_of(poll: Poll) -> tuple[int, int]:
    """The poll's choice limits, counting its options (a query) where it sets no maximum."""
    return choice_limits(
        poll.method,
        poll.min_choices,
        poll.max_choices,
        Option.objects.filter(poll_id=poll.pk).count,
    )


def lock_participation(poll_id: int, voter: User) -> Participation | None:
    """The voter's participation in the poll, locked (after the options: see the lock order)."""
    return Participation.objects.select_for_update().filter(poll_id=poll_id, voter=voter).first()


def is_member(voter: User, group_id: int | None) -> bool:
    """Whether the voter belongs to the poll's voter group (every voter, where it has none)."""
    if group_id is None:
        return True
    groups = getattr(voter, "groups", None)
    return groups is not None and bool(groups.filter(pk=group_id).exists())


def count_voter(poll_id: int, participation_id: int, delta: int) -> None:
    """Add ``delta`` (+1 or -1) to the poll's count of voters, in the row of the participation's
    stripe. Adding is an upsert, so the row need not exist yet; a participation that goes was
    counted there."""
    stripe = participation_id % VOTER_COUNT_STRIPES
    if delta < 0:
        VoterCount.objects.filter(poll_id=poll_id, stripe=stripe).update(voters=F("voters") + delta)
        return
    table = connection.ops.quote_name(VoterCount._meta.db_table)
    poll_column = column(VoterCount, "poll")
    if connection.vendor == "mysql":
        sql = (
            f"INSERT INTO {table} ({poll_column}, stripe, voters) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE voters = voters + VALUES(voters)"
        )
    else:
        sql = (
            f"INSERT INTO {table} ({poll_column}, stripe, voters) VALUES (%s, %s, %s)"
            f" ON CONFLICT ({poll_column}, stripe) DO UPDATE SET voters = {table}.voters +"
            " excluded.voters"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [poll_id, stripe, delta])


#: The first steps of every ballot statement, in the app's lock order: the poll under the shared
#: locks (``poll``), the timestamp taken once they are held (``stamped``) and the ballot's options
#: locked in id order (``chosen``). A template of :data:`BALLOT_SQL` and of the whole-ballot
#: methods' statement, formatted with them.
#:
#: ``{option_lock}``: a ballot of single or multiple choice takes ``KEY SHARE`` (as its vote
#: rows' foreign keys do): enough to keep the options from being deleted meanwhile (an edit or a
#: deletion of the poll waits for its exclusive lock anyway), and it queues no ballot behind
#: another, nor behind a change or retraction, since ballots count in slots
#: (:mod:`~django_polls.services.counts`) and never update the option's row. A ballot of a
#: method stored whole takes ``NO KEY UPDATE``, which queues it with the changes and
#: retractions on its options, as before: they move the tallies (whose keys name options) and
#: the count of voters in another order than its statement.
LOCKS_SQL = """poll AS (
    SELECT {poll_columns},
        pg_advisory_xact_lock_shared(%(namespace)s, (id %% 2147483648)::int4) AS advisory_lock
    FROM {poll} WHERE id = %(poll)s
    FOR SHARE
), stamped AS MATERIALIZED (
    SELECT *, clock_timestamp() AS stamp FROM poll
), chosen AS MATERIALIZED (
    SELECT o.id FROM {option} AS o JOIN stamped ON o.{option_poll} = stamped.id
    WHERE o.id = ANY(%(options)s::bigint[])
    ORDER BY o.id
    FOR {option_lock} OF o
)"""


#: A whole ballot on PostgreSQL, in one statement and so one round trip and (outside a
#: transaction) one commit. Its steps are those of the portable path, in the same lock order:
#: the poll under the shared locks (``poll``), the timestamp taken once they are held
#: (``stamped``), the ballot's options locked in id order (``chosen``), what the rules need
#: (``verdict``: the poll's state at the timestamp, the voter's eligibility and what they hold
#: already), the rules themselves (``accepted``, as in :func:`judge_ballot`), the voter's
#: participation (``participated``: grown within its limits for a voter who holds options
#: already, else inserted, or grown when a first ballot of theirs committed meanwhile; its row
#: lock queues the voter's other ballots on this poll), the vote rows (``stored``, none on a
#: secret poll), the counters (``counted``, which also announces the change to live results
#: streams, see :func:`announce_change`), the count of voters (``voters``, for a first
#: ballot) and the ``vote.cast`` events for webhooks (``announced``, see
#: :data:`~django_polls.services.webhooks.VOTE_CAST_SQL`). The last row reports what the rules
#: saw, so a refusal names its reason without another query, and (when asked) the poll as
#: locked, for the ``vote_cast`` signal. Format it with :func:`_ballot_sql`.
BALLOT_SQL = (
    "WITH "
    + LOCKS_SQL
    + """, verdict AS MATERIALIZED (
    SELECT id, stamp, allow_multiple_votes,
        {status} AS status,
        {eligible} AS eligible,
        anonymity = 'secret' AS secret,
        CASE WHEN method = 'single' THEN 1 ELSE min_choices END AS min_choices,
        CASE WHEN method = 'single' THEN 1 ELSE coalesce(max_choices,
            (SELECT count(*) FROM {option} WHERE {option_poll} = stamped.id)) END AS max_choices,
        (SELECT choices FROM {participation}
            WHERE {participation_poll} = stamped.id AND {participation_voter} = %(voter)s)
            AS prior,
        EXISTS (SELECT FROM {vote} WHERE {vote_poll} = stamped.id
            AND {vote_voter} = %(voter)s AND {vote_option} IN (SELECT id FROM chosen))
            AS repeated,
        ARRAY(SELECT id FROM chosen ORDER BY id) AS known,
        method, {poll_owner} AS owner, anonymity
    FROM stamped
), accepted AS MATERIALIZED (
    SELECT * FROM verdict
    WHERE status = 'open' AND eligible AND method IN ('single', 'multiple')
        AND cardinality(known) = %(count)s
        AND (allow_multiple_votes OR %(count)s = 1)
        AND %(count)s <= max_choices
        AND CASE WHEN prior IS NULL THEN %(count)s >= min_choices
            ELSE NOT secret AND NOT repeated AND prior + %(count)s <= max_choices END
), grown AS (
    UPDATE {participation} AS p SET choices = p.choices + %(count)s
    FROM accepted
    WHERE accepted.prior IS NOT NULL
        AND p.{participation_poll} = accepted.id AND p.{participation_voter} = %(voter)s
        AND p.choices + %(count)s <= p.max_choices
    RETURNING p.id, false AS inserted
), joined AS (
    INSERT INTO {participation} AS p ({participation_poll}, {participation_voter}, choices,
        min_choices, max_choices)
    SELECT id, %(voter)s, CASE WHEN secret THEN 1 ELSE %(count)s END,
        CASE WHEN secret THEN 1 ELSE min_choices END, CASE WHEN secret THEN 1 ELSE max_choices END
    FROM accepted WHERE prior IS NULL
    ON CONFLICT ({participation_poll}, {participation_voter}) DO UPDATE
        SET choices = p.choices + excluded.choices
        WHERE p.choices + excluded.choices <= p.max_choices
    RETURNING id, xmax = 0 AS inserted
), participated AS (
    SELECT * FROM grown UNION ALL SELECT * FROM joined
), stored AS (
    INSERT INTO {vote} ({vote_poll}, {vote_option}, {vote_voter}, {vote_mode}, {vote_created})
    SELECT accepted.id, chosen.id, %(voter)s, accepted.allow_multiple_votes, accepted.stamp
    FROM accepted CROSS JOIN chosen
    WHERE NOT accepted.secret AND EXISTS (SELECT FROM participated)
    ORDER BY chosen.id
    RETURNING {vote_option}
), {counted}, voters AS (
    INSERT INTO {voter_count} AS c ({voter_count_poll}, stripe, voters)
    SELECT %(poll)s, participated.id %% {stripes}, 1
    -- After the slots, all of them (the lock order of retractions): the count reads them whole.
    FROM participated CROSS JOIN (SELECT count(*) FROM counted) AS slots_first
    WHERE inserted
    ON CONFLICT ({voter_count_poll}, stripe) DO UPDATE SET voters = c.voters + 1
    RETURNING 1
), {announced}
SELECT verdict.stamp, verdict.allow_multiple_votes, verdict.status, verdict.eligible,
    verdict.secret, verdict.min_choices, verdict.max_choices, verdict.prior, verdict.repeated,
    verdict.known, verdict.method, (SELECT count(*) FROM counted),
    (SELECT count(*) FROM announced){poll_row}
FROM verdict{poll_join}
"""
)


#: The poll's status at the ballot's timestamp (``stamp``), as :meth:`Poll.status_at` says it.
STATUS_SQL = """CASE WHEN closed_at IS NOT NULL OR expires_at <= stamp THEN 'closed'
            WHEN opens_at > stamp THEN 'scheduled' ELSE 'open' END"""


@functools.cache
def _ballot_sql(*, with_poll: bool = False) -> str:
    quote = connection.ops.quote_name
    columns = poll_columns()
    return BALLOT_SQL.format(
        poll_columns=", ".join(columns),
        poll_row="".join(f", poll.{name}" for name in columns) if with_poll else "",
        poll_join=" CROSS JOIN poll" if with_poll else "",
        poll=quote(Poll._meta.db_table),
        option=quote(Option._meta.db_table),
        option_poll=column(Option, "poll"),
        option_lock="KEY SHARE",
        counted=counted_sql(participated="participated", channel=f"'{changes.CHANNEL}'"),
        vote=quote(Vote._meta.db_table),
        vote_poll=column(Vote, "poll"),
        vote_option=column(Vote, "option"),
        vote_voter=column(Vote, "voter"),
        vote_mode=column(Vote, "poll_allows_multiple"),
        vote_created=column(Vote, "created_at"),
        participation=quote(Participation._meta.db_table),
        participation_poll=column(Participation, "poll"),
        participation_voter=column(Participation, "voter"),
        voter_count=quote(VoterCount._meta.db_table),
        voter_count_poll=column(VoterCount, "poll"),
        stripes=VOTER_COUNT_STRIPES,
        status=STATUS_SQL,
        eligible=eligibility_sql(),
        poll_owner=column(Poll, "created_by"),
        announced=vote_cast_sql(
            ballot="jsonb_build_object('options', to_jsonb(accepted.known))", written="counted"
        ),
    )


def eligibility_sql() -> str:
    """SQL that says whether the voter may vote on ``stamped``'s poll by its voter group: a
    member of it, or any voter where it names none (or the user model has no groups)."""
    groups = user_groups_field()
    through = None if groups is None else groups.remote_field.through
    if groups is None or through is None:
        return "voter_group_id IS NULL"
    member = (
        f"SELECT FROM {connection.ops.quote_name(through._meta.db_table)}"
        f" WHERE {connection.ops.quote_name(groups.m2m_column_name())} = %(voter)s"
        f" AND {connection.ops.quote_name(groups.m2m_reverse_name())} = voter_group_id"
    )
    return f"(voter_group_id IS NULL OR EXISTS ({member}))"


def _cast_vote_in_one_statement(
    poll_id: int, voter: User, ids: list[int], *, with_poll: bool
) -> tuple[datetime, Poll | None]:
    # Inside the caller's transaction a savepoint keeps a refused ballot from spoiling it;
    # outside one the statement commits on its own.
    scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with scope, ballot_cursor() as (cursor, bigint):
        cursor.execute(
            _ballot_sql(with_poll=with_poll), _ballot_params(poll_id, voter, ids, bigint)
        )
        row = cursor.fetchone()
    stamp, announced, poll_values = _ballot_outcome(row, ids)
    if announced:
        dispatch_on_commit()
    if not with_poll:
        return stamp, None
    fields = [field.attname for field in Poll._meta.concrete_fields]
    return stamp, Poll.from_db(connection.alias, fields, poll_values)


async def acast_vote(*, poll_id: int, voter: User, option_ids: Sequence[int]) -> Receipt:
    """:func:`cast_vote` on PostgreSQL for the async views: the same statement, on a connection
    of the event loop's pool (:mod:`~django_polls.services.aio`), in autocommit.

    For callers that checked that nothing else must run around a ballot: no ``VOTER_POLICY``,
    no receivers of ``vote_cast`` and no ``WEBHOOK_DISPATCH`` (:func:`runs_alone`). Webhook
    events are written by the statement itself.
    """
    from psycopg.types.numeric import Int8

    ids = distinct_ids(option_ids)
    try:
        row = await fetchone(_ballot_sql(), _ballot_params(poll_id, voter, ids, Int8))
    except IntegrityError as exc:
        raise _ballot_refusal(exc, ids) from exc
    stamp, _, _ = _ballot_outcome(row, ids)
    return Receipt(poll=poll_id, options=ids, created_at=stamp)


def runs_alone() -> bool:
    """Whether a ballot is the ballot statement alone: no ``VOTER_POLICY`` to ask before it and
    no receiver of ``vote_cast`` or ``WEBHOOK_DISPATCH`` to call after it."""
    return (
        polls_settings.VOTER_POLICY is None
        and polls_settings.WEBHOOK_DISPATCH is None
        and not signals.vote_cast.has_listeners(Poll)
    )


def _ballot_params(
    poll_id: int, voter: User, ids: Sequence[int], bigint: Callable[[int], Any]
) -> dict[str, Any]:
    return {
        "namespace": ADVISORY_LOCK_NAMESPACE,
        "poll": bigint(poll_id),
        "options": [bigint(option_id) for option_id in ids],
        "voter": voter_param(voter, bigint),
        "count": len(ids),
    }


def _ballot_outcome(
    row: Sequence[Any] | None, ids: Sequence[int]
) -> tuple[datetime, int, list[Any]]:
    """The ballot statement's timestamp, how many webhook deliveries it wrote and (when asked
    for) the poll's values; raises what the rules said when it stored nothing."""
    if row is None:
        raise Poll.DoesNotExist()
    (stamp, allows_multiple, status, eligible, secret, low, high, prior, repeated, known) = row[:10]
    method, counted, announced, *poll_values = row[10:]
    if counted != len(ids):
        verdict = Verdict(
            known=set(known),
            allows_multiple=allows_multiple,
            limits=(low, high),
            status=Status(status),
            eligible=eligible,
            secret=secret,
            prior=prior,
            repeated=repeated,
            method=method,
        )
        judge_ballot(ids, verdict)
        # The rules passed on the statement's snapshot, and another ballot of the voter's,
        # committed meanwhile, used up what the poll allows them.
        raise AlreadyVoted()
    return stamp, announced, poll_values


@contextlib.contextmanager
def ballot_cursor() -> Iterator[tuple[Any, Callable[[int], Any]]]:
    """A cursor for the ballot statement, and how to pass it a BIGINT.

    Where the site allows prepared statements (the database's ``OPTIONS["prepare_threshold"]``;
    Django's default, None, allows none), a cursor that binds on the server, so psycopg prepares
    the statement once per connection; ids go as int8 whatever their size, so one prepared
    statement serves every ballot. Else Django's own cursor, which binds on the client.
    """
    cursor = connection.cursor()
    raw = connection.connection
    if getattr(raw, "prepare_threshold", None) is None:
        with cursor:
            yield cursor, int
        return
    cursor.close()
    from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]
        ServerBindingCursor,
    )
    from psycopg.types.numeric import Int8

    with connection._prepare_cursor(ServerBindingCursor(raw)) as server_cursor:  # type: ignore[attr-defined]
        yield server_cursor, Int8


def change_vote(*, poll_id: int, voter: User, option_ids: Sequence[int]) -> Receipt:
    """Replace the voter's ballot with ``option_ids``, in one transaction: the counts move from
    the old options to the new ones at once, and live results streams see one change.

    Raises ``Poll.DoesNotExist``, :class:`NotEligible`, :class:`InvalidInput`,
    :class:`VoteFinal`, :class:`PollClosed`, :class:`PollNotOpen` or :class:`NotVoted`.
    """
    ids = sorted(distinct_ids(option_ids))
    check_voter_policy(poll_id, voter)
    previous, poll, now = retrying_deadlocks(lambda: _change_vote(poll_id, voter, ids))
    announce_vote_changed(poll, voter, previous, list(option_ids))
    return Receipt(poll=poll_id, options=list(option_ids), created_at=now)


def announce_vote_changed(poll: Poll, voter: User, previous: Any, option_ids: Any) -> None:
    """Send ``vote_changed`` once the transaction commits, where anybody listens."""
    if signals.vote_changed.has_listeners(Poll):
        transaction.on_commit(
            lambda: signals.vote_changed.send(
                sender=Poll,
                poll=poll,
                voter=voter,
                previous_option_ids=previous,
                option_ids=option_ids,
            ),
            robust=True,
        )


def _change_vote(poll_id: int, voter: User, ids: list[int]) -> tuple[list[int], Poll, datetime]:
    with transaction.atomic():
        poll = lock_poll(poll_id, exclusive=False)
        if poll.method not in VOTE_ROW_METHODS:
            raise wrong_ballot_field(poll.method)
        now = read_poll_clock()
        # Every option of the poll, locked in id order, then the voter's participation: the lock
        # order of every ballot, and whatever the old ballot holds (another ballot of the voter's
        # may commit until the participation is locked) is among the options locked.
        locked = lock_options(Option.objects.filter(poll_id=poll.pk))
        known = set(ids) & set(locked)
        if not is_member(voter, poll.voter_group_id):
            raise NotEligible()
        unknown = [option_id for option_id in ids if option_id not in known]
        if unknown:
            raise InvalidInput({"options": [not_an_option(unknown[0])]})
        judge_size(ids, poll.allow_multiple_votes, limits_of(poll), first=True)
        judge_change(poll, now)
        participation = lock_participation(poll.pk, voter)
        if participation is None:
            raise NotVoted()
        rows = dict(
            Vote.objects.filter(poll_id=poll.pk, voter=voter).values_list("pk", "option_id")
        )
        previous = sorted(rows.values())
        Vote.objects.filter(pk__in=list(rows)).delete()
        take_votes(previous)
        _store_votes(poll, voter, ids, now)
        add_votes(ids)
        Participation.objects.filter(pk=participation.pk).update(choices=len(ids))
        ballot_changed(
            poll=poll,
            voter=voter,
            action=BallotChange.Action.REPLACED,
            previous=previous,
            current=ids,
            created_at=now,
        )
        vote_changed(poll, voter, "options", previous, ids, at=now)
        announce_change(poll_id=poll.pk)
    return previous, poll, now


def judge_change(poll: Poll, now: datetime) -> None:
    """May a ballot on the poll be replaced or withdrawn at ``now``: only where ballots are not
    final, while the poll takes votes."""
    if not poll.allow_vote_change:
        raise VoteFinal()
    status = poll.status_at(now)
    if status == Status.CLOSED:
        raise PollClosed()
    if status == Status.SCHEDULED:
        raise PollNotOpen()


def retract_vote_rows(*, poll: Poll, voter: User) -> list[int]:
    """Withdraw the voter's votes on ``poll`` (single or multiple), which the caller's
    transaction holds under its shared lock; returns the options that lost a vote. Raises
    :class:`VoteFinal`, :class:`PollClosed`, :class:`PollNotOpen` or :class:`NotVoted`."""
    # The clock is read, after the locks, by the query of the caller's options: by the clock of
    # ballots and closing (the database's on PostgreSQL), and no extra round trip.
    now, candidates = _clock_and_options(poll.pk, voter)
    judge_change(poll, now)
    if not candidates:
        raise NotVoted()
    # With the options locked, no other retraction or change of theirs, and with the
    # participation locked, no ballot of the voter's can change these rows (each holds the
    # participation's lock until it commits), so what is read next is exactly what is deleted
    # and uncounted.
    lock_options(Option.objects.filter(pk__in=candidates))
    participation = lock_participation(poll.pk, voter)
    rows = dict(
        Vote.objects.filter(poll_id=poll.pk, voter=voter, option_id__in=candidates)
        .order_by()
        .values_list("pk", "option_id")
    )
    if not rows or participation is None:
        raise NotVoted()
    option_ids = sorted(rows.values())
    Vote.objects.filter(pk__in=list(rows)).delete()
    take_votes(option_ids)
    remaining = participation.choices - len(option_ids)
    if remaining > 0:  # votes of a ballot stored meanwhile, outside the options locked
        Participation.objects.filter(pk=participation.pk).update(choices=remaining)
    else:
        Participation.objects.filter(pk=participation.pk).delete()
        count_voter(poll.pk, participation.pk, -1)
    ballot_changed(
        poll=poll,
        voter=voter,
        action=BallotChange.Action.RETRACTED,
        previous=option_ids,
        current=[],
        created_at=now,
    )
    vote_retracted(poll, voter, "options", option_ids, at=now)
    announce_change(poll_id=poll.pk)
    return option_ids


def _clock_and_options(poll_id: int, voter: User) -> tuple[datetime, list[int]]:
    """The time by :func:`poll_clock` and the options ``voter`` voted for on the poll, in one
    query (a row per option, or one row without one)."""
    mine = FilteredRelation("votes", condition=Q(votes__voter=voter))
    rows = Poll.objects.filter(pk=poll_id).annotate(mine=mine).order_by()
    if connection.vendor == "postgresql":
        found = list(rows.values_list(ClockTimestamp(), "mine__option"))
        now = found[0][0]
    else:
        found = list(rows.values_list("pk", "mine__option"))
        now = timezone.now()
    return now, [option_id for _, option_id in found if option_id is not None]


def ballot_history(*, poll_id: int, voter: User | None = None) -> QuerySet[BallotChange]:
    """The replaced and withdrawn ballots of the poll (of one voter, when given), oldest first.
    Public and anonymous polls keep them; secret polls none."""
    changes = BallotChange.objects.filter(poll_id=poll_id)
    if voter is not None:
        changes = changes.filter(voter=voter)
    return changes.order_by("created_at", "id")


def votes_of(*, poll_id: int, voter: User) -> list[int]:
    """The option ids the voter chose on the poll (empty when none); Poll.DoesNotExist if none."""
    chosen = list(
        Vote.objects.filter(poll_id=poll_id, voter=voter)
        .order_by("option_id")
        .values_list("option_id", flat=True)
    )
    if not chosen and not Poll.objects.filter(pk=poll_id).exists():
        raise Poll.DoesNotExist()
    return chosen


# First key of the app's PostgreSQL advisory locks; the second is the poll id (wrapped to int4,
