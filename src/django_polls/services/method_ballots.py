"""Ballots of every method: cast, change, retract and read a voter's ballot whatever the poll's
method; a ballot stored whole (ranked, score, a site's own method) is handled here, with the
counts its method keeps.

``{"options": [...]}`` ballots of single and multiple polls are the API's hottest path: this
module hands them to :mod:`django_polls.services.ballots` (one statement on PostgreSQL), which
knows nothing of other methods. Every other ballot runs here, taking the locks in the app's one
order: the poll (shared), the options the ballot names (in id order; a change or retraction locks
every option of the poll), the voter's participation, then the ballot, the count of voters and
the tallies. Each tally key of the built-in methods names options (a ranking, an option and a
score), so the option locks already queue every transaction that moves a tally; keys are written
in sorted order all the same.

On PostgreSQL a first ballot is one statement (:data:`METHOD_BALLOT_SQL`), as a single-choice
ballot is: the method, in Python, parses the ballot, judges it by its own rules against the poll
as read just before, and says which tallies it moves; the statement takes the locks, judges the
rules of every poll, and stores the ballot only if the poll is still the row the method judged.
Elsewhere, and for changes and retractions, one transaction of a few statements.

The rules are those of v1 ballots, in the same order: the ballot's shape (400), who may vote
(403), the ballot's options and size (400), the method's own rules (400), the poll's state
(409), then one ballot per voter (409 ``already_voted``), which the unique participation enforces
under any concurrency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils.translation import gettext

from django_polls import changes, methods, signals
from django_polls.changes import announce_change
from django_polls.methods.base import APP_KEY_PREFIX, InvalidBallot, VotingMethod
from django_polls.models import (
    CHANGE_KEYS,
    CHANGE_STRIPES,
    TALLY_KEY_LENGTH,
    VOTE_ROW_METHODS,
    VOTER_COUNT_STRIPES,
    Anonymity,
    Ballot,
    BallotChange,
    Option,
    Participation,
    Poll,
    Status,
    Tally,
    VoterCount,
    change_key,
    counted_votes,
    read_poll_clock,
)
from django_polls.services.aio import fetchone, model_from_row
from django_polls.services.audit import ballot_changed
from django_polls.services.ballots import (
    LOCKS_SQL,
    PARTICIPATION_LIMITS,
    SECRET_LIMITS,
    STATUS_SQL,
    MyBallot,
    Receipt,
    announce_vote_changed,
    ballot_cursor,
    cast_vote,
    change_vote,
    check_voter_policy,
    count_voter,
    eligibility_sql,
    is_member,
    judge_change,
    limits_of,
    lock_participation,
    not_an_option,
    retract_vote_rows,
    too_few_options,
    too_many_options,
    votes_of,
)
from django_polls.services.counts import add_votes, counted_sql, set_count, take_votes
from django_polls.services.errors import (
    AlreadyVoted,
    InvalidInput,
    NotEligible,
    NotVoted,
    PollChanged,
    PollClosed,
    PollNotOpen,
    PollRuleError,
)
from django_polls.services.locks import (
    ADVISORY_LOCK_NAMESPACE,
    is_unique_violation,
    lock_options,
    lock_poll,
    retrying_deadlocks,
)
from django_polls.services.sql import column, poll_columns, voter_param
from django_polls.services.visibility import took_part
from django_polls.services.webhooks import (
    dispatch_on_commit,
    vote_cast,
    vote_cast_sql,
    vote_changed,
    vote_retracted,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def cast_ballot(*, poll_id: int, voter: User, data: Any) -> Receipt:
    """Store one ballot from a vote body (``{"ranking": [...]}``, ``{"scores": [...]}``,
    ``{"options": [...]}``, a site's method's field): all of it, or nothing.

    Raises ``Poll.DoesNotExist``, :class:`InvalidInput` (the wrong ballot field, a malformed
    ballot, unknown options, too few or too many, a method's own rule), :class:`NotEligible`,
    :class:`PollClosed`, :class:`PollNotOpen` or :class:`AlreadyVoted`.

    On PostgreSQL a ballot of a method stored whole is one statement after one read of the poll
    (:data:`METHOD_BALLOT_SQL`); elsewhere a transaction of a few statements
    (:func:`cast_ballot_in_steps`). Both take the same locks in the same order, judge with the
    same rules in the same order, and the same tests run on both.
    """
    if connection.vendor == "postgresql":
        return _cast_in_one_statement(poll_id, voter, data)
    return cast_ballot_in_steps(poll_id=poll_id, voter=voter, data=data)


def cast_ballot_in_steps(*, poll_id: int, voter: User, data: Any) -> Receipt:
    """:func:`cast_ballot` as a transaction of a few statements, on any database."""
    method, choice = _ballot_of_body(poll_id, data)
    if method.name in VOTE_ROW_METHODS:
        return cast_vote(poll_id=poll_id, voter=voter, option_ids=choice)
    named = method.options_named(choice)
    check_voter_policy(poll_id, voter)
    try:
        poll, now = retrying_deadlocks(lambda: _cast(poll_id, method, voter, choice, named))
    except IntegrityError as exc:
        # Two first ballots of one voter at once: the unique participation (or its limits).
        raise _refusal(exc) from exc
    _announce_cast(poll, voter, named)
    return _receipt(poll_id, method, choice, now)


def _announce_cast(poll: Poll, voter: User, named: Sequence[int]) -> None:
    """Send ``vote_cast`` once the transaction commits, where anybody listens."""
    if signals.vote_cast.has_listeners(Poll):
        chosen = None if poll.anonymity == Anonymity.SECRET else sorted(named)
        transaction.on_commit(
            lambda: signals.vote_cast.send(sender=Poll, poll=poll, voter=voter, option_ids=chosen),
            robust=True,
        )


def change_ballot(*, poll_id: int, voter: User, data: Any) -> Receipt:
    """Replace the voter's ballot with the one of the vote body, in one transaction: the counts
    move from the old ballot to the new one at once.

    Raises ``Poll.DoesNotExist``, :class:`InvalidInput`, :class:`NotEligible`,
    :class:`VoteFinal`, :class:`PollClosed`, :class:`PollNotOpen` or :class:`NotVoted`.
    """
    method, choice = _ballot_of_body(poll_id, data)
    if method.name in VOTE_ROW_METHODS:
        return change_vote(poll_id=poll_id, voter=voter, option_ids=choice)
    named = method.options_named(choice)
    check_voter_policy(poll_id, voter)
    previous, poll, now = retrying_deadlocks(lambda: _change(poll_id, method, voter, choice, named))
    announce_vote_changed(poll, voter, previous, sorted(named))
    return _receipt(poll_id, method, choice, now)


def _receipt(poll_id: int, method: VotingMethod, choice: Any, now: datetime) -> Receipt:
    return Receipt(
        poll=poll_id,
        options=sorted(method.options_named(choice)),
        created_at=now,
        ballot_field=method.ballot_field,
        ballot=method.to_json(choice),
    )


def _ballot_of_body(poll_id: int, data: Any) -> tuple[VotingMethod, Any]:
    """The poll's method and the ballot of the body, its shape checked (one query, for the
    method): exactly the method's ballot field, and no other method's."""
    name = Poll.objects.filter(pk=poll_id).values_list("method", flat=True).first()
    if name is None:
        raise Poll.DoesNotExist()
    return _parsed_ballot(name, data)


def _parsed_ballot(name: str, data: Any) -> tuple[VotingMethod, Any]:
    """The method of that name and the ballot of the body, its shape checked."""
    method = method_of(name)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise InvalidInput(
            {
                "non_field_errors": [
                    gettext("Invalid data. Expected a dictionary, but got {datatype}.").format(
                        datatype=kind
                    )
                ]
            }
        )
    others = sorted((set(data) & methods.ballot_fields()) - {method.ballot_field})
    if others:
        raise InvalidInput(
            {
                others[0]: [
                    gettext(
                        'This poll (%(method)s) takes a ballot in "%(field)s", not in "%(sent)s".'
                    )
                    % {"method": method.name, "field": method.ballot_field, "sent": others[0]}
                ]
            }
        )
    if method.ballot_field not in data:
        raise InvalidInput({method.ballot_field: [gettext("This field is required.")]})
    try:
        choice = method.parse(data[method.ballot_field])
    except InvalidBallot as exc:
        raise InvalidInput(exc.errors) from exc
    if method.name not in VOTE_ROW_METHODS and any(
        len(key) > TALLY_KEY_LENGTH or key.startswith(APP_KEY_PREFIX)
        for key in method.tally_keys(choice)
    ):
        # Only ids far beyond any poll's options make a key this long (see TALLY_KEY_LENGTH).
        raise InvalidInput(
            {method.ballot_field: [gettext("This ballot names ids of no option here.")]}
        )
    return method, choice


def method_of(name: str) -> VotingMethod:
    """The site's method of that name; a poll whose method the site no longer lists takes no
    ballots (:class:`InvalidInput`)."""
    try:
        return methods.get_method(name)
    except methods.UnknownMethod:
        raise InvalidInput(
            {
                "non_field_errors": [
                    gettext('This poll\'s method "%(method)s" is not available on this site.')
                    % {"method": name}
                ]
            }
        ) from None


def _judge(
    method: VotingMethod,
    choice: Any,
    named: Sequence[int],
    *,
    poll: Poll,
    voter: User,
    known: set[int],
    now: datetime | None,
) -> tuple[int, int]:
    """The rules of a ballot on ``poll``, in the order their errors are reported (as
    :func:`~django_polls.services.judge_ballot`): who may vote, the ballot's options and
    size, the method's own rules, the poll's state at ``now`` (a change judges it itself, after
    whether ballots are final: None). Returns the poll's choice limits, which it read."""
    if not is_member(voter, poll.voter_group_id):
        raise NotEligible()
    field = method.ballot_field
    unknown = [option_id for option_id in named if option_id not in known]
    if unknown:
        raise InvalidInput({field: [not_an_option(unknown[0])]})
    low, high = limits_of(poll)
    if len(named) > high:
        raise InvalidInput({field: [too_many_options(high)]})
    if len(named) < low:
        raise InvalidInput({field: [too_few_options(low)]})
    try:
        method.check(choice, poll=poll)
    except InvalidBallot as exc:
        raise InvalidInput(exc.errors) from exc
    if now is not None:
        status = poll.status_at(now)
        if status == Status.CLOSED:
            raise PollClosed()
        if status == Status.SCHEDULED:
            raise PollNotOpen()
    return low, high


def _locked_poll(poll_id: int, method: VotingMethod) -> Poll:
    poll = lock_poll(poll_id, exclusive=False)
    if poll.method != method.name:  # edited (it had no votes) since the body was read
        raise PollChanged()
    return poll


def _cast(
    poll_id: int, method: VotingMethod, voter: User, choice: Any, named: Sequence[int]
) -> tuple[Poll, datetime]:
    with transaction.atomic():
        poll = _locked_poll(poll_id, method)
        now = read_poll_clock()  # after the locks, by the clock of ballots and closing
        known = set(lock_options(Option.objects.filter(poll_id=poll.pk, pk__in=list(named))))
        participation = lock_participation(poll.pk, voter)
        low, high = _judge(method, choice, named, poll=poll, voter=voter, known=known, now=now)
        if participation is not None:
            raise AlreadyVoted()
        secret = poll.anonymity == Anonymity.SECRET
        held = {"choices": len(named), "min_choices": low, "max_choices": high}
        participation = Participation.objects.create(
            poll_id=poll.pk, voter=voter, **(SECRET_LIMITS if secret else held)
        )
        count_voter(poll.pk, participation.pk, +1)
        if not secret:  # a secret poll keeps the counts alone
            Ballot.objects.create(poll_id=poll.pk, voter=voter, choice=choice, created_at=now)
        add_votes(named)
        move_tallies(poll.pk, method.tally_keys(choice), +1, change=participation.pk)
        announce_change(poll_id=poll.pk)
        vote_cast(poll, voter, method.ballot_field, method.to_json(choice), at=now)
    return poll, now


# -- a first ballot in one statement (PostgreSQL) ------------------------------------------------

#: How many times a ballot is judged again when the poll changed between the read its method
#: judged and the statement (an edit of a poll without votes, a title changed, the poll closed).
STALE_ATTEMPTS = 3

#: The poll as a ballot's method judges it (its columns, then its row version, and the ids of
#: its options), read without a lock just before the ballot statement.
SEEN_SQL = """SELECT {poll_columns}, p.xmin::text,
    ARRAY(SELECT o.id FROM {option} AS o WHERE o.{option_poll} = p.id)
FROM {poll} AS p WHERE p.id = %(poll)s
"""

#: A first ballot of a method stored whole (ranked, score, a site's), in one statement: the
#: steps of :func:`_cast` in the same lock order, as :data:`~django_polls.services.ballots.
#: BALLOT_SQL` for single and multiple choice: the poll under the shared locks (``poll``), the
#: timestamp taken once they are held (``stamped``), the ballot's options locked in id order
#: (``chosen``), what the rules need (``verdict``), the ballot if they all pass (``accepted``:
#: the poll's row is still the one the method judged, ``version``, and it is open, the voter
#: may vote, the options are the poll's and as many as it allows, the voter has no ballot yet),
#: then the voter's participation (``joined``, nothing when a ballot of theirs committed
#: meanwhile), the count of voters, the ballot (never on a secret poll), the options' votes
#: with the live results' notification, and the tallies the method named, with the poll's count
#: of changes, in key order (``tallied``, after ``voters`` as in :func:`_cast`). The last
#: ``SELECT`` reports what the rules saw and how many participations were stored (0 or 1), so
#: that a refused ballot is explained by the rules' own errors (:func:`_statement_outcome`).
METHOD_BALLOT_SQL = (
    "WITH "
    + LOCKS_SQL
    + """, verdict AS MATERIALIZED (
    SELECT id, stamp, version,
        {status} AS status,
        {eligible} AS eligible,
        anonymity = 'secret' AS secret,
        min_choices,
        coalesce(max_choices,
            (SELECT count(*) FROM {option} WHERE {option_poll} = stamped.id)) AS max_choices,
        EXISTS (SELECT FROM {participation} WHERE {participation_poll} = stamped.id
            AND {participation_voter} = %(voter)s) AS voted,
        ARRAY(SELECT id FROM chosen ORDER BY id) AS known,
        {poll_owner} AS owner, anonymity
    FROM stamped
), accepted AS MATERIALIZED (
    SELECT * FROM verdict
    WHERE version = %(version)s::text AND status = 'open' AND eligible AND NOT voted
        AND cardinality(known) = %(count)s
        AND %(count)s BETWEEN min_choices AND max_choices
), joined AS (
    INSERT INTO {participation} ({participation_poll}, {participation_voter}, choices,
        min_choices, max_choices)
    SELECT id, %(voter)s, CASE WHEN secret THEN 1 ELSE %(count)s END,
        CASE WHEN secret THEN 1 ELSE min_choices END, CASE WHEN secret THEN 1 ELSE max_choices END
    FROM accepted
    ON CONFLICT ({participation_poll}, {participation_voter}) DO NOTHING
    RETURNING id
), voters AS (
    INSERT INTO {voter_count} AS c ({voter_count_poll}, stripe, voters)
    SELECT %(poll)s, id %% {voter_stripes}, 1 FROM joined
    ON CONFLICT ({voter_count_poll}, stripe) DO UPDATE SET voters = c.voters + 1
    RETURNING 1
), stored AS (
    INSERT INTO {ballot} ({ballot_poll}, {ballot_voter}, {ballot_choice}, {ballot_created})
    SELECT accepted.id, %(voter)s, %(choice)s::jsonb, accepted.stamp
    FROM accepted CROSS JOIN joined
    WHERE NOT accepted.secret
    RETURNING 1
), {counted}, tallied AS (
    INSERT INTO {tally} AS t ({tally_poll}, {tally_key}, {tally_count})
    SELECT %(poll)s, moved.key, moved.delta FROM (
        SELECT key, delta FROM unnest(%(keys)s::text[], %(deltas)s::int[]) AS given (key, delta)
        UNION ALL
        SELECT ({change_keys})[id %% {change_stripes} + 1], 1 FROM joined
    ) AS moved
    WHERE EXISTS (SELECT FROM voters)
    ORDER BY moved.key COLLATE "C"
    ON CONFLICT ({tally_poll}, {tally_key}) DO UPDATE
        SET {tally_count} = t.{tally_count} + excluded.{tally_count}
    RETURNING 1
), {announced}
SELECT verdict.stamp, verdict.version, verdict.status, verdict.eligible, verdict.min_choices,
    verdict.max_choices, verdict.voted, verdict.known, (SELECT count(*) FROM joined) AS stored,
    (SELECT count(*) FROM announced) AS announced
FROM verdict
"""
)


def _tables() -> dict[str, Any]:
    quote = connection.ops.quote_name
    return {
        "poll": quote(Poll._meta.db_table),
        "option": quote(Option._meta.db_table),
        "option_poll": column(Option, "poll"),
        "participation": quote(Participation._meta.db_table),
        "participation_poll": column(Participation, "poll"),
        "participation_voter": column(Participation, "voter"),
        "voter_count": quote(VoterCount._meta.db_table),
        "voter_count_poll": column(VoterCount, "poll"),
        "ballot": quote(Ballot._meta.db_table),
        "ballot_poll": column(Ballot, "poll"),
        "ballot_voter": column(Ballot, "voter"),
        "ballot_choice": column(Ballot, "choice"),
        "ballot_created": column(Ballot, "created_at"),
        "tally": quote(Tally._meta.db_table),
        "tally_poll": column(Tally, "poll"),
        "tally_key": column(Tally, "key"),
        "tally_count": column(Tally, "ballots"),
    }


@functools.cache
def _seen_sql() -> str:
    return SEEN_SQL.format(
        poll_columns=", ".join(f"p.{name}" for name in poll_columns()), **_tables()
    )


@functools.cache
def _method_ballot_sql() -> str:
    return METHOD_BALLOT_SQL.format(
        # The poll's row version too: the statement stores nothing if the poll changed since
        # the method judged the ballot against it.
        poll_columns=", ".join([*poll_columns(), "xmin::text AS version"]),
        status=STATUS_SQL,
        eligible=eligibility_sql(),
        voter_stripes=VOTER_COUNT_STRIPES,
        change_keys="ARRAY[{}]".format(", ".join(f"'{key}'" for key in CHANGE_KEYS)),
        change_stripes=CHANGE_STRIPES,
        # The old lock: see LOCKS_SQL.
        option_lock="NO KEY UPDATE",
        counted=counted_sql(participated="joined", channel=f"'{changes.CHANNEL}'"),
        poll_owner=column(Poll, "created_by"),
        announced=vote_cast_sql(ballot="%(announced)s::jsonb", written="joined"),
        **_tables(),
    )


@dataclasses.dataclass(frozen=True)
class _Seen:
    """The poll as read before a ballot statement (:data:`SEEN_SQL`)."""

    poll: Poll
    version: str
    option_ids: frozenset[int]


def _seen(row: Sequence[Any] | None) -> _Seen:
    if row is None:
        raise Poll.DoesNotExist()
    *values, version, option_ids = row
    return _Seen(
        poll=model_from_row(Poll, values), version=version, option_ids=frozenset(option_ids)
    )


@dataclasses.dataclass(frozen=True)
class _Judged:
    """A ballot as its method judged it against the poll as seen, and the statement's
    parameters: ``checked`` says whether the method's rules ran (the ballot named only options
    the poll had then), ``refusal`` what they said if they refused it."""

    method: VotingMethod
    choice: Any
    named: list[int]
    checked: bool
    refusal: InvalidBallot | None
    params: dict[str, Any]


def _judged(
    seen: _Seen,
    method: VotingMethod,
    choice: Any,
    voter: User,
    bigint: Callable[[int], Any],
) -> _Judged:
    named = list(method.options_named(choice))
    checked = set(named) <= seen.option_ids
    refusal = None
    if checked:
        try:
            method.check(choice, poll=seen.poll)
        except InvalidBallot as exc:
            refusal = exc
    keys = sorted(set(method.tally_keys(choice)))
    params = {
        "namespace": ADVISORY_LOCK_NAMESPACE,
        "poll": bigint(seen.poll.pk),
        "options": [bigint(option_id) for option_id in named],
        "voter": voter_param(voter, bigint),
        "count": len(named),
        # Without the method's consent, no version: the statement then stores nothing.
        "version": seen.version if checked and refusal is None else None,
        "choice": json.dumps(choice),
        # The ballot as a vote.cast webhook event tells it: as the API takes it.
        "announced": json.dumps({method.ballot_field: method.to_json(choice)}),
        "keys": keys,
        "deltas": [1] * len(keys),
    }
    return _Judged(method, choice, named, checked, refusal, params)


def _statement_outcome(row: Sequence[Any] | None, seen: _Seen, judged: _Judged) -> datetime | None:
    """The ballot statement's timestamp when it stored the ballot; None when the poll changed
    since it was seen (the ballot is to be judged again); else raises what the rules said, in
    the order of :func:`_judge`."""
    if row is None:
        raise Poll.DoesNotExist()
    stamp, version, status, eligible, low, high, _voted, known, stored, announced = row
    if stored:
        if announced:  # (the async views run only where no WEBHOOK_DISPATCH is to be called)
            dispatch_on_commit()
        return cast("datetime", stamp)
    if version != seen.version:
        return None
    named, field = judged.named, judged.method.ballot_field
    if not eligible:
        raise NotEligible()
    unknown = [option_id for option_id in named if option_id not in set(known)]
    if unknown:
        raise InvalidInput({field: [not_an_option(unknown[0])]})
    if len(named) > high:
        raise InvalidInput({field: [too_many_options(high)]})
    if len(named) < low:
        raise InvalidInput({field: [too_few_options(low)]})
    if judged.refusal is not None:
        raise InvalidInput(judged.refusal.errors)
    if not judged.checked:
        return None  # options the poll did not have when seen: its options changed
    if status == Status.CLOSED:
        raise PollClosed()
    if status == Status.SCHEDULED:
        raise PollNotOpen()
    # A ballot of theirs, stored before, or committed while the statement ran.
    raise AlreadyVoted()


def _cast_in_one_statement(poll_id: int, voter: User, data: Any) -> Receipt:
    for _ in range(STALE_ATTEMPTS):
        with ballot_cursor() as (cursor, bigint):
            cursor.execute(_seen_sql(), {"poll": bigint(poll_id)})
            seen = _seen(cursor.fetchone())
        method, choice = _parsed_ballot(seen.poll.method, data)
        if method.name in VOTE_ROW_METHODS:
            return cast_vote(poll_id=poll_id, voter=voter, option_ids=choice)
        check_voter_policy(poll_id, voter)
        # Inside the caller's transaction a savepoint keeps a refused ballot from spoiling it;
        # outside one the statement commits on its own.
        scope = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        try:
            with scope, ballot_cursor() as (cursor, bigint):
                judged = _judged(seen, method, choice, voter, bigint)
                cursor.execute(_method_ballot_sql(), judged.params)
                stamp = _statement_outcome(cursor.fetchone(), seen, judged)
        except IntegrityError as exc:
            raise _refusal(exc) from exc
        if stamp is not None:
            _announce_cast(seen.poll, voter, judged.named)
            return _receipt(poll_id, method, choice, stamp)
    raise PollChanged()


async def acast_ballot(*, poll_id: int, voter: User, data: Any) -> Receipt | None:
    """:func:`cast_ballot` on PostgreSQL for the async views: the same statements on a
    connection of the event loop's pool (:mod:`~django_polls.services.aio`), in autocommit.

    For callers that checked that nothing else must run around a ballot (:func:`runs_alone`).
    None where the synchronous path is to answer: a poll of single or multiple choice, or a
    method with rules of its own beside the app's methods' (they may read the database)."""
    from psycopg.types.numeric import Int8

    for _ in range(STALE_ATTEMPTS):
        seen = _seen(await fetchone(_seen_sql(), {"poll": Int8(poll_id)}))
        method, choice = _parsed_ballot(seen.poll.method, data)
        if method.name in VOTE_ROW_METHODS or not _checks_inline(method):
            return None
        judged = _judged(seen, method, choice, voter, Int8)
        try:
            row = await fetchone(_method_ballot_sql(), judged.params)
        except IntegrityError as exc:
            raise _refusal(exc) from exc
        stamp = _statement_outcome(row, seen, judged)
        if stamp is not None:
            return _receipt(poll_id, method, choice, stamp)
    raise PollChanged()


def _checks_inline(method: VotingMethod) -> bool:
    """Whether the method's own rules are the app's methods' (they read nothing)."""
    return type(method).check.__module__.startswith("django_polls.methods.")


def _refusal(exc: IntegrityError) -> PollRuleError:
    """What a ballot the database refused broke: one ballot per voter (a unique index or the
    participation's limits), else the poll changed under it."""
    if is_unique_violation(exc) or PARTICIPATION_LIMITS in str(exc):
        return AlreadyVoted()
    return PollChanged()


def _change(
    poll_id: int, method: VotingMethod, voter: User, choice: Any, named: Sequence[int]
) -> tuple[list[int], Poll, datetime]:
    with transaction.atomic():
        poll = _locked_poll(poll_id, method)
        now = read_poll_clock()
        # Every option of the poll, in id order: whatever the old ballot names is among them.
        known = set(lock_options(Option.objects.filter(poll_id=poll.pk)))
        _judge(method, choice, named, poll=poll, voter=voter, known=known, now=None)
        judge_change(poll, now)  # vote_final, then the poll's state, as for v1 ballots
        participation = lock_participation(poll.pk, voter)
        stored = Ballot.objects.filter(poll_id=poll.pk, voter=voter).first()
        if participation is None or stored is None:
            raise NotVoted()
        previous = method.options_named(stored.choice)
        _uncount(poll.pk, method, stored.choice)
        add_votes(named)
        move_tallies(poll.pk, method.tally_keys(choice), +1, change=participation.pk)
        Ballot.objects.filter(pk=stored.pk).update(choice=choice, created_at=now)
        Participation.objects.filter(pk=participation.pk).update(choices=len(named))
        ballot_changed(
            poll=poll,
            voter=voter,
            action=BallotChange.Action.REPLACED,
            previous=method.to_json(stored.choice),
            current=method.to_json(choice),
            created_at=now,
        )
        vote_changed(
            poll,
            voter,
            method.ballot_field,
            method.to_json(stored.choice),
            method.to_json(choice),
            at=now,
        )
        announce_change(poll_id=poll.pk)
    return sorted(previous), poll, now


def retract_ballot(*, poll: Poll, voter: User) -> list[int]:
    """Withdraw the voter's whole ballot on ``poll``, which the caller's transaction holds under
    its shared lock; returns the options that lost a vote. Raises :class:`VoteFinal`,
    :class:`PollClosed`, :class:`PollNotOpen` or :class:`NotVoted`."""
    method = method_of(poll.method)
    judge_change(poll, read_poll_clock())
    lock_options(Option.objects.filter(poll_id=poll.pk))
    participation = lock_participation(poll.pk, voter)
    stored = Ballot.objects.filter(poll_id=poll.pk, voter=voter).first()
    if participation is None or stored is None:
        raise NotVoted()
    _uncount(poll.pk, method, stored.choice, change=participation.pk)
    Ballot.objects.filter(pk=stored.pk).delete()
    Participation.objects.filter(pk=participation.pk).delete()
    count_voter(poll.pk, participation.pk, -1)
    ballot_changed(
        poll=poll,
        voter=voter,
        action=BallotChange.Action.RETRACTED,
        previous=method.to_json(stored.choice),
        current=[],
        created_at=read_poll_clock(),
    )
    vote_retracted(
        poll, voter, method.ballot_field, method.to_json(stored.choice), at=read_poll_clock()
    )
    announce_change(poll_id=poll.pk)
    return sorted(method.options_named(stored.choice))


def retract_votes(*, poll_id: int, voter: User) -> list[int]:
    """Withdraw the voter's ballot on the poll, whatever its method; returns the options that
    lost a vote.

    Raises ``Poll.DoesNotExist``, :class:`VoteFinal`, :class:`PollClosed`,
    :class:`PollNotOpen` or :class:`NotVoted`.
    """
    poll, option_ids = retrying_deadlocks(lambda: _retract(poll_id, voter))
    transaction.on_commit(
        lambda: signals.vote_retracted.send(
            sender=Poll, poll=poll, voter=voter, option_ids=option_ids
        ),
        robust=True,
    )
    return option_ids


def _retract(poll_id: int, voter: User) -> tuple[Poll, list[int]]:
    with transaction.atomic():
        poll = lock_poll(poll_id, exclusive=False)
        if poll.method in VOTE_ROW_METHODS:
            return poll, retract_vote_rows(poll=poll, voter=voter)
        return poll, retract_ballot(poll=poll, voter=voter)


def _uncount(poll_id: int, method: VotingMethod, choice: Any, *, change: int | None = None) -> None:
    """Take a stored ballot out of the counts: its options' votes and its tallies."""
    take_votes(method.options_named(choice))
    move_tallies(poll_id, method.tally_keys(choice), -1, change=change)


def move_tallies(
    poll_id: int, keys: Sequence[str], delta: int, *, change: int | None = None
) -> None:
    """Add ``delta`` (+1 or -1) to the poll's count under each key, in key order, and, with
    ``change`` (the participation's id), one to the poll's count of changes in that
    participation's stripe. Adding is one upsert (the rows need not exist); taking away leaves
    rows at 0, which results skip."""
    keys = sorted(set(keys))
    added: dict[str, int] = {} if change is None else {change_key(change): 1}
    if delta < 0:
        if keys:
            Tally.objects.filter(poll_id=poll_id, key__in=keys).update(ballots=F("ballots") + delta)
    else:
        added.update(dict.fromkeys(keys, delta))
    if added:
        add_tally_counts(poll_id, added)


#: Rows per upsert of :func:`add_tally_counts` (three parameters each: within SQLite's limit).
TALLY_ROWS_PER_STATEMENT = 1000


def add_tally_counts(poll_id: int, counts: Mapping[str, int]) -> None:
    """Add ``counts[key]`` (positive) to the poll's count under each key, in key order: upserts
    of many rows each (a ballot's few keys, or a bulk load's many)."""
    table = connection.ops.quote_name(Tally._meta.db_table)
    poll_column, key_column = column(Tally, "poll"), column(Tally, "key")
    count = column(Tally, "ballots")
    if connection.vendor == "mysql":
        conflict = f"ON DUPLICATE KEY UPDATE {count} = {count} + VALUES({count})"
    else:
        conflict = (
            f"ON CONFLICT ({poll_column}, {key_column}) DO UPDATE"
            f" SET {count} = {table}.{count} + excluded.{count}"
        )
    keys = sorted(key for key, added in counts.items() if added)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), TALLY_ROWS_PER_STATEMENT):
            chunk = keys[start : start + TALLY_ROWS_PER_STATEMENT]
            params: list[Any] = []
            for key in chunk:
                params.extend([poll_id, key, counts[key]])
            rows = ", ".join(["(%s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({poll_column}, {key_column}, {count})"
                f" VALUES {rows} {conflict}",
                params,
            )


def ballot_of(*, poll_id: int, voter: User) -> MyBallot:
    """Whether the voter voted on the poll and, except on a secret poll, their ballot: the
    options of a single or multiple poll, else the ballot in its method's field.
    ``Poll.DoesNotExist`` when there is no such poll."""
    found = (
        Poll.objects.filter(pk=poll_id)
        .annotate(voted=took_part(voter))
        .values_list("anonymity", "voted", "method")
        .first()
    )
    if found is None:
        raise Poll.DoesNotExist()
    anonymity, voted, method = found
    secret = anonymity == Anonymity.SECRET
    if method in VOTE_ROW_METHODS:
        options = None if secret else votes_of(poll_id=poll_id, voter=voter) if voted else []
        return MyBallot(voted=voted, options=options)
    if secret:
        mine = ballot_of_method(poll_id=poll_id, voter=voter, method=method, voted=False)
        return dataclasses.replace(mine, voted=voted, ballot=None)
    return ballot_of_method(poll_id=poll_id, voter=voter, method=method, voted=voted)


def ballot_of_method(*, poll_id: int, voter: User, method: str, voted: bool) -> MyBallot:
    """``GET vote/`` on a poll whose ballots are stored whole: the ballot as its method shows it,
    empty (``[]``) without one."""
    found = method_of(method)
    stored = None
    if voted:
        stored = Ballot.objects.filter(poll_id=poll_id, voter=voter).values_list(
            "choice", flat=True
        )
    choice = stored.first() if stored is not None else None
    return MyBallot(
        voted=voted,
        options=None,
        ballot_field=found.ballot_field,
        ballot=[] if choice is None else found.to_json(choice),
    )


# -- checking and repairing the counts ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BallotDrift:
    """A count of a poll whose ballots are stored whole that differs from what it counts: an
    option's ``votes`` (``option`` set) or a tally (``key`` set), against the poll's ballots, or
    on a secret poll (``source`` "tallies") an option's votes against its tallies."""

    poll_id: int
    stored: int
    actual: int
    option_id: int | None = None
    key: str | None = None
    source: str = "ballots"


def _method_polls(poll_ids: Iterable[int] | None) -> QuerySet[Poll]:
    polls = Poll.objects.exclude(method__in=VOTE_ROW_METHODS).order_by("pk")
    return polls if poll_ids is None else polls.filter(pk__in=list(poll_ids))


def unchecked_polls(*, poll_ids: Iterable[int] | None = None) -> list[tuple[int, bool]]:
    """Secret polls of every method, each with whether its options' votes are checked against
    its tallies: they keep the counts and no ballots, so nothing checks the tallies themselves
    (a secret poll's participations say only that a voter took part), nor a single or multiple
    poll's counters."""
    polls = Poll.objects.filter(anonymity=Anonymity.SECRET).order_by("pk")
    if poll_ids is not None:
        polls = polls.filter(pk__in=list(poll_ids))
    return [
        (poll_id, _keys_tell_options(name)) for poll_id, name in polls.values_list("pk", "method")
    ]


def _keys_tell_options(name: str) -> bool:
    """Whether the method's tally keys say which options they count (on a probe key)."""
    if name in VOTE_ROW_METHODS:
        return False
    try:
        method = methods.get_method(name)
    except methods.UnknownMethod:
        return False
    return type(method).options_of_key is not VotingMethod.options_of_key


def find_ballot_drift(*, poll_ids: Iterable[int] | None = None) -> list[BallotDrift]:
    """The counts of polls whose ballots are stored whole that differ from what their ballots
    add up to (each option's votes, and each tally of the poll's method), and on secret polls,
    which keep no ballots, the options' votes that differ from their tallies (where the method's
    keys say which options they count). Reads every ballot of those polls, once (it is a check,
    not a request's path)."""
    found: list[BallotDrift] = []
    for poll_id, name, anonymity in _method_polls(poll_ids).values_list(
        "pk", "method", "anonymity"
    ):
        try:
            method = methods.get_method(name)
        except methods.UnknownMethod:
            continue  # the site no longer lists it: nothing says what its ballots count
        if anonymity == Anonymity.SECRET:
            found.extend(_votes_against_tallies(poll_id, method))
        else:
            found.extend(_drift_of(poll_id, method))
    return found


def _votes_against_tallies(poll_id: int, method: VotingMethod) -> list[BallotDrift]:
    votes: Counter[int] = Counter()
    for key, count in Tally.objects.filter(poll_id=poll_id).values_list("key", "ballots"):
        if key.startswith(APP_KEY_PREFIX):
            continue
        named = method.options_of_key(key)
        if named is None:
            return []  # the keys do not say: nothing to check
        for option_id in set(named):
            votes[option_id] += count
    return [
        BallotDrift(
            poll_id=poll_id,
            option_id=option_id,
            stored=stored,
            actual=votes[option_id],
            source="tallies",
        )
        for option_id, stored in Option.objects.filter(poll_id=poll_id)
        .annotate(stored=counted_votes())
        .order_by("order", "pk")
        .values_list("pk", "stored")
        if stored != votes[option_id]
    ]


def _drift_of(poll_id: int, method: VotingMethod) -> list[BallotDrift]:
    votes: Counter[int] = Counter()
    keys: Counter[str] = Counter()
    for choice in (
        Ballot.objects.filter(poll_id=poll_id).values_list("choice", flat=True).iterator()
    ):
        votes.update(set(method.options_named(choice)))
        keys.update(set(method.tally_keys(choice)))
    drift = [
        BallotDrift(poll_id=poll_id, option_id=option_id, stored=stored, actual=votes[option_id])
        for option_id, stored in Option.objects.filter(poll_id=poll_id)
        .annotate(stored=counted_votes())
        .order_by("order", "pk")
        .values_list("pk", "stored")
        if stored != votes[option_id]
    ]
    stored_keys = {
        key: count
        for key, count in Tally.objects.filter(poll_id=poll_id).values_list("key", "ballots")
        if not key.startswith(APP_KEY_PREFIX)  # the app's own, counting changes
    }
    for key in sorted(set(stored_keys) | set(keys)):
        if stored_keys.get(key, 0) != keys[key]:
            drift.append(
                BallotDrift(
                    poll_id=poll_id, key=key, stored=stored_keys.get(key, 0), actual=keys[key]
                )
            )
    return drift


def repair_ballot_counts(*, poll_ids: Iterable[int] | None = None) -> list[BallotDrift]:
    """Set every drifting count of polls whose ballots are stored whole to what their ballots
    add up to, each poll under its exclusive lock (no ballot in flight); returns what was
    repaired."""
    repaired: list[BallotDrift] = []
    for poll_id in sorted({drift.poll_id for drift in find_ballot_drift(poll_ids=poll_ids)}):
        with transaction.atomic():
            try:
                poll = lock_poll(poll_id, exclusive=True)
            except Poll.DoesNotExist:
                continue
            method = methods.get_method(poll.method)
            drifts = (
                _votes_against_tallies(poll_id, method)
                if poll.anonymity == Anonymity.SECRET
                else _drift_of(poll_id, method)
            )
            for drift in drifts:
                if drift.option_id is not None:
                    set_count(drift.option_id, drift.actual)
                else:
                    Tally.objects.update_or_create(
                        poll_id=poll_id, key=drift.key, defaults={"ballots": drift.actual}
                    )
            if drifts:
                add_tally_counts(poll_id, {change_key(0): 1})  # a new state of the counts
                announce_change(poll_id=poll_id)
            repaired.extend(drifts)
    return repaired
