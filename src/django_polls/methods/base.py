"""The contract of a voting method: what a ballot looks like, how it is checked, which counts it
moves, and how results are read from them.

A method is a subclass of :class:`VotingMethod`, named by its dotted path in
``DJANGO_POLLS["METHODS"]``. The built-in methods (:mod:`~django_polls.methods.choice`,
:mod:`~django_polls.methods.ranked`, :mod:`~django_polls.methods.score`) are written against this
class alone, as a site's own method is.

What the app does around a method, whatever it is: it reads the ballot field named by
:attr:`VotingMethod.ballot_field` from the vote body, asks :meth:`~VotingMethod.parse` for the
ballot's shape, checks that the options it names (:meth:`~VotingMethod.options_named`) are options
of the poll, distinct, and within ``min_choices``/``max_choices``, asks
:meth:`~VotingMethod.check` for the method's own rules, and applies every policy of the poll
(opening time, expiry, voter group and policy, one ballot per voter, vote changes, anonymity). In
one transaction (on PostgreSQL one statement, the method's part done in Python before it) it
then stores the ballot (never on a secret poll), adds one to the ``votes`` of each option named,
and adds one to the poll's count under each of :meth:`~VotingMethod.tally_keys`; a change or a
retraction takes the same counts back. Results
call :meth:`~VotingMethod.results` with those counts, never with ballots: a method's results cost
what its counts cost, whatever the number of ballots.

Single and multiple choice keep their counts in the options alone, and store their ballots as one
vote row per option (the one-statement ballot on PostgreSQL); every other method stores a voter's
ballot whole and keeps :class:`~django_polls.models.Tally` rows.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any, ClassVar, TypeVar, cast

from django.utils.translation import gettext, ngettext

from django_polls.models import CHANGE_KEYS, Option, Poll

T = TypeVar("T")

#: Tally keys of the app's own start with this (one character); no method's may.
APP_KEY_PREFIX = "#"


_LOCKS: weakref.WeakValueDictionary[Any, threading.Lock] = weakref.WeakValueDictionary()
_LOCKS_LOCK = threading.Lock()


def _computing(identity: tuple[Any, ...]) -> threading.Lock:
    """The lock held while this process computes something for ``identity`` (a poll's state)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(identity)
        if lock is None:
            lock = _LOCKS[identity] = threading.Lock()
        return lock


class InvalidBallot(Exception):
    """A ballot that can never be accepted on this poll; ``errors`` maps the ballot field to its
    messages (the API's 400 body)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclasses.dataclass(frozen=True)
class OptionResult:
    """An option in every results body (v1's shape): its ``votes`` are the ballots that name it
    (a selection), ``percentage`` their share of all selections."""

    id: int
    text: str
    votes: int
    percentage: float


@dataclasses.dataclass(frozen=True)
class Results:
    """The results body of single and multiple polls, and the part every method's body shares."""

    poll: int
    method: str
    is_active: bool
    total_votes: int
    total_voters: int
    options: list[OptionResult]


class Counts:
    """What a method's results are read from: the poll, its options in their order (with their
    ``votes``), its number of voters, and its tallies, read (one query) when first asked for.

    ``read_tallies`` answers every tally of the poll, the app's own (keys starting with ``#``)
    included; ``read_version`` the sum of its change tallies, one small query, and ``memo`` a
    mapping where :meth:`memoized` keeps what was computed for each state of the counts."""

    def __init__(
        self,
        *,
        poll: Poll,
        options: Sequence[Option],
        total_voters: int,
        read_tallies: Callable[[], Mapping[str, int]],
        read_version: Callable[[], int] | None = None,
        memo: MutableMapping[Any, Any] | None = None,
    ) -> None:
        self.poll = poll
        self.options = list(options)
        self.total_voters = total_voters
        self._read_tallies = read_tallies
        self._read_version = read_version
        self._memo = memo

    @cached_property
    def _all_tallies(self) -> Mapping[str, int]:
        return self._read_tallies()

    @cached_property
    def tallies(self) -> Mapping[str, int]:
        """The poll's counts by key (see :meth:`VotingMethod.tally_keys`), zeros left out."""
        # key[:1], not key.startswith(): twice as fast over a million distinct rankings.
        return {
            key: count
            for key, count in self._all_tallies.items()
            if count and key[:1] != APP_KEY_PREFIX
        }

    def memoized(self, name: str, compute: Callable[[Mapping[str, int]], T]) -> T:
        """``compute(tallies)``, computed once per state of the poll's counts (and of its
        options), not once per reader: where the app keeps a memo, a reader of a state already
        computed reads one small query (the poll's count of changes) and not its tallies.
        ``compute`` must depend on the tallies and the poll's options alone."""
        if self._memo is None or self._read_version is None:
            return compute(self.tallies)
        # The poll's creation time too: an id a database hands out again (after a rollback, a
        # restart of MySQL) names another poll.
        identity = (
            self.poll.pk,
            self.poll.created_at,
            name,
            tuple(option.pk for option in self.options),
        )
        if "_all_tallies" in self.__dict__:
            return self._compute(identity, compute)
        found = self._memo.get((*identity, self._read_version()))
        if found is not None:
            return cast("T", found)
        # One reader of a poll computes at a time in this process; the others wait for it and
        # then find what it computed, unless the counts moved meanwhile.
        lock = _computing(identity)
        waited = not lock.acquire(blocking=False) and lock.acquire()
        try:
            if waited:
                found = self._memo.get((*identity, self._read_version()))
                if found is not None:
                    return cast("T", found)
            return self._compute(identity, compute)
        finally:
            lock.release()

    def _compute(self, identity: tuple[Any, ...], compute: Callable[[Mapping[str, int]], T]) -> T:
        # The state the tallies were read in: their own change tallies, read with them.
        version = sum(self._all_tallies.get(key, 0) for key in CHANGE_KEYS)
        value = compute(self.tallies)
        if self._memo is not None:
            self._memo[(*identity, version)] = value
        return value

    @cached_property
    def summary(self) -> Results:
        """v1's results body: each option's votes and percentage, the totals."""
        total = sum(option.votes for option in self.options)
        return Results(
            poll=self.poll.pk,
            method=self.poll.method,
            is_active=self.poll.is_active,
            total_votes=total,
            total_voters=self.total_voters,
            options=[
                OptionResult(
                    id=option.pk,
                    text=option.text,
                    votes=option.votes,
                    percentage=percentage(option.votes, total),
                )
                for option in self.options
            ],
        )


class VotingMethod:
    """A voting method. Subclass it, set :attr:`name`, :attr:`label` and :attr:`ballot_field`,
    implement :meth:`parse`, :meth:`options_named`, :meth:`tally_keys` and :meth:`results`
    (:meth:`check` and :meth:`to_json` when the defaults do not fit), and list its dotted path in
    ``DJANGO_POLLS["METHODS"]``. An instance serves every poll and request: keep no state on it.
    """

    #: Stored in ``Poll.method`` (at most 16 characters) and sent as the poll's ``method``.
    name: ClassVar[str]
    #: A short human name (the admin, the API's schema); the name by default.
    label: ClassVar[str] = ""
    #: The field of the vote body that carries a ballot; also the field of receipts, of
    #: ``GET vote/`` and of ``ballots/``. ``options`` belongs to single and multiple choice.
    ballot_field: ClassVar[str]
    #: Whether polls of this method take ``max_score`` (1 to 10, 5 by default).
    takes_max_score: ClassVar[bool] = False
    #: How the schema describes the ballot field (a JSON schema fragment), for API docs.
    ballot_schema: ClassVar[dict[str, Any]] = {}

    def parse(self, value: Any) -> Any:
        """The ballot as the method stores it (JSON: lists, dicts, numbers, strings), from the
        value of :attr:`ballot_field` in the request body. Only the shape is checked here; raise
        :class:`InvalidBallot` for anything malformed. The poll is not known yet."""
        raise NotImplementedError

    def options_named(self, choice: Any) -> list[int]:
        """The ids of the options the ballot names, each once, in any order. The app checks
        that they are options of the poll and as many as its ``min_choices``/``max_choices``
        allow, and counts one vote for each."""
        raise NotImplementedError

    def check(self, choice: Any, *, poll: Poll) -> None:
        """The method's own rules for a ballot on ``poll`` (e.g. scores within ``max_score``),
        once its options are known to be the poll's; raise :class:`InvalidBallot`.

        Judge by ``poll``'s fields alone. On PostgreSQL a first ballot is checked against the
        poll as read just before the ballot's statement, which stores it only while the poll's
        row is unchanged (else the ballot is read and checked again), so this may run more
        than once for one ballot."""

    def tally_keys(self, choice: Any) -> list[str]:
        """The keys (at most 512 characters each, not starting with ``#``, the app's own) of the
        poll's counts that this ballot adds one to, each once; a change or retraction takes one
        from the same keys."""
        raise NotImplementedError

    def initial_tally_keys(self, *, poll: Poll, option_ids: Sequence[int]) -> list[str]:
        """Keys whose counts the app creates at 0 with the poll (and again when its options,
        method or ``max_score`` change before it has votes), so that a ballot updates rows
        rather than inserting them: the order in which rows were inserted then tells nothing
        of the order of the ballots (see docs/security.md). Only where the keys are few; none by
        default (a ranked poll's rankings are too many)."""
        return []

    def options_of_key(self, key: str) -> list[int] | None:
        """The options a tally key counts a ballot for, where each ballot's keys name each of its
        options once in all (a ranking names them all, an option and score one): then the
        options' votes can be checked against the tallies alone, on secret polls too, which keep
        no ballots. None (the default): the keys do not say."""
        return None

    def results(self, counts: Counts) -> Any:
        """The results body, as a dataclass (encoded field by field, in order): start from
        ``counts.summary``'s fields and add the method's own. Read ``counts.tallies``, never
        ballots; where that is costly (many distinct keys), compute it with
        ``counts.memoized(name, compute)``, once per state of the counts."""
        raise NotImplementedError

    def to_json(self, choice: Any) -> Any:
        """The ballot as receipts, ``GET vote/`` and ``ballots/`` show it; by default as
        stored."""
        return choice

    # -- helpers for subclasses -------------------------------------------------------------------

    @staticmethod
    def too_long(limit: int) -> str:
        """The message of a ballot that names more than ``limit`` options."""
        return ngettext(
            "A ballot names at most %(count)d option.",
            "A ballot names at most %(count)d options.",
            limit,
        ) % {"count": limit}

    @staticmethod
    def item_error(index: int, message: str) -> str:
        """``message`` about the item at ``index`` of a ballot's list."""
        return gettext("Item %(index)d: %(message)s") % {"index": index, "message": message}

    def invalid(self, message: str) -> InvalidBallot:
        """An :class:`InvalidBallot` about this method's ballot field."""
        return InvalidBallot({self.ballot_field: [message]})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def percentage(part: int, total: int) -> float:
    """100 * part / total, rounded half-up to 2 decimals; 0.0 when the total is 0."""
    if not total:
        return 0.0
    exact = Decimal(100 * part) / Decimal(total)
    return float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def rounded(value: Decimal) -> float:
    """A value rounded half-up to 2 decimals, as a JSON number."""
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def is_id(value: Any) -> bool:
    """An id as JSON gives it: an integer (not a boolean) from 1 to the largest BIGINT."""
    return type(value) is int and 0 < value <= MAX_ID


#: The largest id a BIGINT primary key can hold; anything larger is simply not an option.
MAX_ID = 2**63 - 1
