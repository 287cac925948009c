"""Voting rules under real concurrency: threads, each with its own connection and transactions.

PostgreSQL and MySQL/MariaDB, every scenario on both (SQLite serialises writers, so it cannot show
these races). Every thread waits at a barrier so the requests really start together, and closes
its connection when it is done.
Run with ``pytest -s`` to see the figures each scenario observed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Min, Sum
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from django_polls import services
from django_polls.models import (
    BallotChange,
    Option,
    Participation,
    Poll,
    Vote,
    VoterCount,
    counted_votes,
)
from tests.conftest import option_ids

pytestmark = [
    pytest.mark.skipif(
        connection.vendor not in ("postgresql", "mysql"),
        reason="needs PostgreSQL or MySQL/MariaDB (set DATABASE_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]

# Enough threads to make the races likely, few enough to stay well inside max_connections.
SIMULTANEOUS = 50
POOL = 30
JOIN_TIMEOUT = 60.0
SLOW_ROW_SECONDS = 0.02


@dataclasses.dataclass
class Outcome:
    value: Any = None
    error: Exception | None = None


def run_together(tasks: Sequence[Callable[[], Any]]) -> list[Outcome]:
    """Run each task in its own thread, all released at once; one outcome per task, in order."""
    barrier = threading.Barrier(len(tasks))
    outcomes = [Outcome() for _ in tasks]

    def run(outcome: Outcome, task: Callable[[], Any]) -> None:
        try:
            # Connect before the barrier, so connection setup does not stagger the start.
            connection.ensure_connection()
            barrier.wait(timeout=JOIN_TIMEOUT)
            outcome.value = task()
        except Exception as exc:
            outcome.error = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(outcome, task), name=f"polls-test-{index}")
        for index, (outcome, task) in enumerate(zip(outcomes, tasks, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running (deadlock?): {stuck}"
    return outcomes


def tally(outcomes: Sequence[Outcome]) -> collections.Counter[str]:
    """How many tasks succeeded ("ok") and how many failed, by exception class name."""
    return collections.Counter(
        "ok" if outcome.error is None else type(outcome.error).__name__ for outcome in outcomes
    )


def counters(poll: Poll) -> dict[int, int]:
    return dict(
        Option.objects.filter(poll=poll)
        .annotate(counted=counted_votes())
        .values_list("pk", "counted")
    )


def rows(poll: Poll) -> dict[int, int]:
    """Vote rows per option of the poll, 0 for options nobody chose."""
    found = collections.Counter(Vote.objects.filter(poll=poll).values_list("option_id", flat=True))
    return {option_id: found[option_id] for option_id in counters(poll)}


@pytest.fixture
def slow_rows() -> Iterator[Callable[[str, str], None]]:
    """Make each row written to a table take a little longer (a trigger that sleeps).

    Widens a race window that production traffic hits only now and then, so that an interleaving
    which deadlocks happens on every run instead of once in a while. Removed after the test.
    """
    installed: list[str] = []
    mysql = connection.vendor == "mysql"

    def slow(table: str, event: str) -> None:
        name = f"polls_test_slow_{event.lower()}_{table}"
        action = (
            f"SET @polls_test_slept = SLEEP({SLOW_ROW_SECONDS})"
            if mysql
            else "EXECUTE FUNCTION polls_test_slow_row()"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW {action}")
        installed.append(f"DROP TRIGGER {name}" + ("" if mysql else f" ON {table}"))

    if mysql:
        try:
            yield slow
        finally:
            with connection.cursor() as cursor:
                for statement in installed:
                    cursor.execute(statement)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION polls_test_slow_row() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN PERFORM pg_sleep({SLOW_ROW_SECONDS}); RETURN NEW; END $$"
        )
    try:
        yield slow
    finally:
        with connection.cursor() as cursor:
            for statement in installed:
                cursor.execute(statement)
            cursor.execute("DROP FUNCTION polls_test_slow_row()")


# ---------------------------------------------------------------------------------------------
# One user, many simultaneous identical ballots


def vote_via_service(poll_id: int, user: Any, ballot: list[int]) -> Callable[[], Any]:
    return lambda: services.cast_vote(poll_id=poll_id, voter=user, option_ids=ballot)


def vote_via_api(poll_id: int, user: Any, ballot: list[int]) -> Callable[[], Any]:
    key = Token.objects.get_or_create(user=user)[0].key
    url = reverse("django_polls:poll-vote", args=[poll_id])

    def vote() -> tuple[int, str]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.post(url, {"options": ballot}, "json")
        body = response.json()
        return response.status_code, body.get("code", "") if isinstance(body, dict) else ""

    return vote


def api_tally(outcomes: Sequence[Outcome]) -> collections.Counter[Any]:
    return collections.Counter(
        outcome.value if outcome.error is None else type(outcome.error).__name__
        for outcome in outcomes
    )


@pytest.mark.parametrize("multiple", [False, True], ids=["single-vote", "multiple-vote"])
def test_simultaneous_identical_ballots_via_service_store_one_vote(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], multiple: bool
) -> None:
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=multiple)
    pizza = option_ids(poll)[0]
    voter = make_user()

    outcomes = run_together(
        [vote_via_service(poll.pk, voter, [pizza]) for _ in range(SIMULTANEOUS)]
    )

    seen = tally(outcomes)
    stored = Vote.objects.filter(poll=poll).count()
    counter = Option.objects.counted().get(pk=pizza).votes
    print(
        f"\n[identical ballots, service, {'multiple' if multiple else 'single'}-vote poll] "
        f"{SIMULTANEOUS} threads: outcomes={dict(seen)} rows={stored} counter={counter}"
    )
    assert seen == {"ok": 1, "AlreadyVoted": SIMULTANEOUS - 1}
    assert stored == 1
    assert counters(poll) == {option: int(option == pizza) for option in option_ids(poll)}
    assert services.votes_of(poll_id=poll.pk, voter=voter) == [pizza]


@pytest.mark.parametrize("multiple", [False, True], ids=["single-vote", "multiple-vote"])
def test_simultaneous_identical_ballots_via_api_get_one_201_and_409s(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], multiple: bool
) -> None:
    poll = make_poll(options=("Pizza", "Soup"), allow_multiple_votes=multiple)
    soup = option_ids(poll)[1]
    voter = make_user()

    outcomes = run_together([vote_via_api(poll.pk, voter, [soup]) for _ in range(SIMULTANEOUS)])

    seen = api_tally(outcomes)
    stored = Vote.objects.filter(poll=poll).count()
    counter = Option.objects.counted().get(pk=soup).votes
    print(
        f"\n[identical ballots, API, {'multiple' if multiple else 'single'}-vote poll] "
        f"{SIMULTANEOUS} requests: responses={dict(seen)} rows={stored} counter={counter}"
    )
    assert seen == {(201, ""): 1, (409, "already_voted"): SIMULTANEOUS - 1}
    assert stored == 1
    assert counter == 1
    assert services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk)).total_votes == 1


def test_simultaneous_ballots_naming_options_in_opposite_orders_store_one_ballot_each(
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    slow_rows: Callable[[str, str], None],
) -> None:
    """Each user sends [a, b] and [b, a] at once: one ballot is stored, the other is refused.

    The refused ballot must be AlreadyVoted (409), never a database error such as a deadlock,
    which the API would turn into a 500.
    """
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    voters = [make_user() for _ in range(10)]
    slow_rows("django_polls_vote", "INSERT")
    tasks = [
        vote_via_service(poll.pk, voter, ballot)
        for voter in voters
        for ballot in ([pizza, soup], [soup, pizza])
    ]

    outcomes = run_together(tasks)

    seen = tally(outcomes)
    print(
        f"\n[opposite-order ballots] {len(voters)} users x 2 threads: outcomes={dict(seen)} "
        f"rows={rows(poll)} counters={counters(poll)}"
    )
    assert seen == {"ok": len(voters), "AlreadyVoted": len(voters)}, [
        repr(outcome.error)[:200] for outcome in outcomes if outcome.error is not None
    ][:3]
    for voter in voters:
        assert services.votes_of(poll_id=poll.pk, voter=voter) == sorted([pizza, soup])
    assert counters(poll) == rows(poll) == {pizza: len(voters), soup: len(voters), salad: 0}


def waiting_for_locks() -> int:
    """How many other sessions on the test database are held up in a statement of the app now
    (none of them takes long unless it waits for a lock)."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE db = DATABASE()"
                " AND command = 'Query' AND id <> CONNECTION_ID()"
                " AND info LIKE '%%django_polls_%%'"
            )
        else:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
        return int(cursor.fetchone()[0])


def test_ballots_waiting_on_a_vote_that_is_rolled_back_store_one_and_refuse_the_other(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """Two ballots of one voter for different options wait while a vote of theirs, which
    another transaction inserted, is rolled back: one on that vote's unique key, the other on the
    first one's participation.

    On InnoDB waiters on one key can deadlock (each holds a shared lock and needs the exclusive
    one), and the server rolls one back. Either way a ballot must get the answer it would have got
    in turn (AlreadyVoted, a 409), not a database error (a 500 or 503).
    """
    poll = make_poll(options=("Pizza", "Soup", "Salad"))
    pizza, soup, salad = option_ids(poll)
    voter = make_user()
    inserted, release = threading.Event(), threading.Event()

    class RolledBack(Exception):
        pass

    def insert_then_roll_back() -> None:
        with contextlib.suppress(RolledBack), transaction.atomic():
            Vote.objects.create(poll=poll, option_id=pizza, voter=voter, poll_allows_multiple=False)
            inserted.set()
            assert release.wait(JOIN_TIMEOUT)
            raise RolledBack

    def roll_back_once_both_wait() -> None:
        assert inserted.wait(JOIN_TIMEOUT)
        deadline = time.monotonic() + JOIN_TIMEOUT
        while waiting_for_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()

    def once_inserted(ballot: Callable[[], Any]) -> Callable[[], Any]:
        def vote() -> Any:
            assert inserted.wait(JOIN_TIMEOUT)
            return ballot()

        return vote

    outcomes = run_together(
        [
            insert_then_roll_back,
            roll_back_once_both_wait,
            once_inserted(vote_via_service(poll.pk, voter, [soup])),
            once_inserted(vote_via_service(poll.pk, voter, [salad])),
        ]
    )

    seen = tally(outcomes[2:])
    assert tally(outcomes[:2]) == {"ok": 2}
    assert seen == {"ok": 1, "AlreadyVoted": 1}, [repr(outcome.error) for outcome in outcomes]
    assert len(services.votes_of(poll_id=poll.pk, voter=voter)) == 1
    assert counters(poll) == rows(poll)
    assert sum(counters(poll).values()) == 1


def test_ballots_and_retractions_by_different_users_all_succeed(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """Different users never clash: every one of these requests must succeed.

    Each user, in a thread of their own and round after round, votes for a few options one by
    one and then retracts them all, so the transactions update overlapping sets of counter rows
    in varying orders. None may fail with a database error such as a deadlock (a 500 through the
    API), and the counters end equal to the rows.
    """
    poll = make_poll(options=("A", "B", "C", "D", "E"), allow_multiple_votes=True)
    options = option_ids(poll)
    users = [make_user() for _ in range(20)]
    rounds = 5
    failures: list[str] = []
    done = collections.Counter[str]()
    lock = threading.Lock()
    # A deadlock costs deadlock_timeout (1 s) to detect; stop everyone at the first failure.
    failed = threading.Event()

    def take_turns(offset: int, user: Any) -> Callable[[], None]:
        def run() -> None:
            for turn in range(rounds):
                if failed.is_set():
                    return
                chosen = [options[(offset + turn + step) % len(options)] for step in range(3)]
                try:
                    for option in chosen:
                        services.cast_vote(poll_id=poll.pk, voter=user, option_ids=[option])
                    removed = services.retract_votes(poll_id=poll.pk, voter=user)
                except Exception as exc:
                    failures.append(repr(exc)[:300])
                    failed.set()
                    return
                assert removed == sorted(chosen)
                with lock:
                    done["rounds"] += 1

        return run

    outcomes = run_together([take_turns(offset, user) for offset, user in enumerate(users)])

    print(
        f"\n[ballots and retractions, different users] {len(users)} threads x {rounds} rounds "
        f"(3 votes + 1 retraction each): completed={done['rounds']} failed={len(failures)} "
        f"rows={rows(poll)} counters={counters(poll)}"
    )
    assert failures == []
    assert tally(outcomes) == {"ok": len(users)}
    assert done["rounds"] == len(users) * rounds
    assert rows(poll) == counters(poll) == dict.fromkeys(options, 0)


# ---------------------------------------------------------------------------------------------
# Many users at once


def test_200_users_voting_at_once_are_all_counted(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(options=("North", "East", "South", "West"))
    options = option_ids(poll)
    voters = [make_user() for _ in range(200)]
    ballots = [(voter, [options[index % len(options)]]) for index, voter in enumerate(voters)]

    def vote_for(share: Sequence[tuple[Any, list[int]]]) -> Callable[[], list[Outcome]]:
        def vote() -> list[Outcome]:
            done = []
            for voter, ballot in share:
                try:
                    done.append(Outcome(value=vote_via_service(poll.pk, voter, ballot)()))
                except Exception as exc:
                    done.append(Outcome(error=exc))
            return done

        return vote

    outcomes = run_together(
        [vote_for(ballots[start::SIMULTANEOUS]) for start in range(SIMULTANEOUS)]
    )

    assert tally(outcomes) == {"ok": SIMULTANEOUS}
    seen = tally([ballot for outcome in outcomes for ballot in outcome.value])
    results = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    print(
        f"\n[200 users] {SIMULTANEOUS} threads: outcomes={dict(seen)} counters={counters(poll)} "
        f"rows={rows(poll)} total={results.total_votes}"
    )
    assert seen == {"ok": 200}
    assert counters(poll) == dict.fromkeys(options, 50)
    assert rows(poll) == counters(poll)
    assert results.total_votes == 200
    assert services.find_drift(poll_ids=[poll.pk]) == []


def test_a_hot_option_counts_every_ballot_among_changes_and_retractions(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """A poll gone viral: most voters vote for one option at once, while earlier voters move
    their ballot away from it and back, or withdraw it. On PostgreSQL the ballots count in the
    option's slots and the changes and retractions fold them into its counter; at every moment
    and at the end each option's count equals its vote rows and what the callers were told, and
    no request fails."""
    poll = make_poll(options=("Hot", "Cold", "Mild"))
    hot, cold, mild = option_ids(poll)
    earlier = [make_user() for _ in range(10)]
    for user in earlier:
        services.cast_vote(poll_id=poll.pk, voter=user, option_ids=[hot])
    leaving, moving = earlier[:5], earlier[5:]
    newcomers = [make_user() for _ in range(SIMULTANEOUS - len(earlier))]

    def cast(user: Any) -> Callable[[], None]:
        return lambda: services.cast_vote(poll_id=poll.pk, voter=user, option_ids=[hot]) and None

    def move(user: Any) -> Callable[[], None]:
        def run() -> None:
            for target in (cold, hot, cold, hot, mild):
                services.change_vote(poll_id=poll.pk, voter=user, option_ids=[target])

        return run

    def leave(user: Any) -> Callable[[], None]:
        return lambda: services.retract_votes(poll_id=poll.pk, voter=user) and None

    stop = threading.Event()
    drift_seen: list[services.Drift] = []

    def sample() -> None:
        try:
            while not stop.is_set():
                drift_seen.extend(services.find_drift(poll_ids=[poll.pk]))
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, name="polls-test-sampler")
    sampler.start()
    try:
        outcomes = run_together(
            [cast(user) for user in newcomers]
            + [move(user) for user in moving]
            + [leave(user) for user in leaving]
        )
    finally:
        stop.set()
        sampler.join(JOIN_TIMEOUT)

    print(
        f"\n[hot option] {len(outcomes)} threads: outcomes={dict(tally(outcomes))} "
        f"rows={rows(poll)} counters={counters(poll)} drifting-samples={len(drift_seen)}"
    )
    assert tally(outcomes) == {"ok": len(outcomes)}, [o.error for o in outcomes if o.error]
    assert counters(poll) == rows(poll) == {hot: len(newcomers), cold: 0, mild: len(moving)}
    assert drift_seen == []
    assert services.find_drift(poll_ids=[poll.pk]) == []
    results = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    assert [option.votes for option in results.options] == [len(newcomers), 0, len(moving)]


# ---------------------------------------------------------------------------------------------
# Votes and retractions racing each other


@dataclasses.dataclass
class Ledger:
    """What the callers were told: acknowledged selections and retractions, per option."""

    cast: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    retracted: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


@pytest.mark.parametrize("multiple", [False, True], ids=["single-vote", "multiple-vote"])
def test_votes_and_retractions_racing_keep_every_counter_equal_to_its_rows(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], multiple: bool
) -> None:
    """Each user has voting and retracting threads running at once, round after round.

    Acceptable outcomes are success, AlreadyVoted and NotVoted; at the end, and at every moment
    in between, each counter equals its vote rows, and the rows equal what the callers were told
    (acknowledged selections minus the options that retractions reported).
    """
    poll = make_poll(options=("A", "B", "C", "D"), allow_multiple_votes=multiple)
    options = option_ids(poll)
    users = [make_user() for _ in range(8)]
    rounds = 30
    ledger = Ledger()

    def record(kind: str, cast: Sequence[int] = (), retracted: Sequence[int] = ()) -> None:
        with ledger.lock:
            ledger.outcomes[kind] += 1
            ledger.cast.update(cast)
            ledger.retracted.update(retracted)

    # A user's retractor starts once a ballot of theirs is stored, so it retracts at least once.
    first_cast = {user.pk: threading.Event() for user in users}

    def voter(user: Any, choices: Sequence[int]) -> Callable[[], None]:
        def run() -> None:
            for option in itertools.islice(itertools.cycle(choices), rounds):
                try:
                    receipt = services.cast_vote(poll_id=poll.pk, voter=user, option_ids=[option])
                except services.AlreadyVoted:
                    record("AlreadyVoted")
                except Exception as exc:
                    ledger.unexpected.append(f"cast: {exc!r}"[:300])
                else:
                    record("cast", cast=receipt.options)
                    first_cast[user.pk].set()

        return run

    def retractor(user: Any) -> Callable[[], None]:
        def run() -> None:
            first_cast[user.pk].wait(JOIN_TIMEOUT)
            for _ in range(rounds):
                try:
                    removed = services.retract_votes(poll_id=poll.pk, voter=user)
                except services.NotVoted:
                    record("NotVoted")
                except Exception as exc:
                    ledger.unexpected.append(f"retract: {exc!r}"[:300])
                else:
                    record("retracted", retracted=removed)

        return run

    # Per user: two voting threads on different options (two ballots in flight) and a retractor.
    tasks = [
        task
        for user in users
        for task in (voter(user, options[:2]), voter(user, options[2:]), retractor(user))
    ]

    # A committed state never shows a counter that disagrees with its rows: both change in one
    # transaction, and find_drift reads both in one statement (one snapshot).
    stop = threading.Event()
    drift_seen: list[services.Drift] = []
    lowest: list[int] = []

    def sample() -> None:
        try:
            while not stop.is_set():
                drift_seen.extend(services.find_drift(poll_ids=[poll.pk]))
                lowest.append(Option.objects.filter(poll=poll).aggregate(m=Min("votes"))["m"])
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, name="polls-test-sampler")
    sampler.start()
    try:
        outcomes = run_together(tasks)
    finally:
        stop.set()
        sampler.join(JOIN_TIMEOUT)

    told = {option: ledger.cast[option] - ledger.retracted[option] for option in options}
    stored, counted = rows(poll), counters(poll)
    print(
        f"\n[vote/retract race, {'multiple' if multiple else 'single'}-vote poll] "
        f"{len(tasks)} threads x {rounds} rounds, {len(users)} users: "
        f"outcomes={dict(ledger.outcomes)} unexpected={len(ledger.unexpected)} "
        f"told={told} rows={stored} counters={counted} "
        f"samples={len(lowest)} drifting-samples={len(drift_seen)} lowest-counter={min(lowest)}"
    )
    assert tally(outcomes) == {"ok": len(tasks)}
    assert ledger.unexpected == []
    assert ledger.outcomes["cast"] > 0
    assert ledger.outcomes["retracted"] > 0
    assert min(lowest) >= 0
    assert counted == stored, "a counter differs from its vote rows"
    assert stored == told, "the vote rows differ from what the callers were told"
    assert drift_seen == []
    if not multiple:
        for user in users:
            assert Vote.objects.filter(poll=poll, voter=user).count() <= 1


# ---------------------------------------------------------------------------------------------
# Closing racing votes


def test_close_racing_votes_accepts_no_vote_after_the_close(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """Voters keep voting (one option after another, then retracting and voting again) while
    the owner closes the poll; each stops only when refused.

    Every acknowledged vote that was not retracted is stored and counted, no stored vote is dated
    after the poll's closed_at, and the close takes effect while the voters are still at it: every
    voter is refused with PollClosed in the end. A close that waited for a gap in the stream of
    ballots (writer starvation) would leave the voters voting until their deadline instead.
    """
    poll = make_poll(options=[f"Option {n}" for n in range(20)], allow_multiple_votes=True)
    options = option_ids(poll)
    voters = [make_user() for _ in range(POOL - 1)]
    receipts: list[tuple[Any, services.Receipt]] = []
    retracted: collections.Counter[tuple[Any, int]] = collections.Counter()
    refused: list[Any] = []
    unexpected: list[str] = []
    close_timing: list[float] = []
    lock = threading.Lock()
    enough = threading.Event()

    def vote(user: Any) -> Callable[[], None]:
        def run() -> None:
            deadline = time.monotonic() + JOIN_TIMEOUT / 2
            try:
                while time.monotonic() < deadline:
                    for option in options:
                        receipt = services.cast_vote(
                            poll_id=poll.pk, voter=user, option_ids=[option]
                        )
                        with lock:
                            receipts.append((user, receipt))
                            if len(receipts) >= 100:
                                enough.set()
                    removed = services.retract_votes(poll_id=poll.pk, voter=user)
                    with lock:
                        retracted.update((user.pk, option) for option in removed)
            except services.PollClosed:
                with lock:
                    refused.append(user)
            except Exception as exc:
                unexpected.append(repr(exc)[:300])

        return run

    def close() -> None:
        # Close mid-stream: after some votes were acknowledged, with more in flight.
        assert enough.wait(JOIN_TIMEOUT), "the voters never got going"
        with lock:
            acknowledged_before = len(receipts)
        started = time.monotonic()
        services.close_poll(poll=Poll.objects.get(pk=poll.pk))
        close_timing.extend([time.monotonic() - started, acknowledged_before])

    outcomes = run_together([close, *(vote(user) for user in voters)])

    poll.refresh_from_db()
    assert poll.closed_at is not None
    stored = list(Vote.objects.filter(poll=poll).values_list("voter_id", "option_id", "created_at"))
    late = [
        created_at - poll.closed_at for _, _, created_at in stored if created_at > poll.closed_at
    ]
    seconds, acknowledged_before = close_timing
    kept = collections.Counter((user.pk, receipt.options[0]) for user, receipt in receipts)
    kept.subtract(retracted)
    print(
        f"\n[close racing votes] {len(voters)} voters + 1 closer: acknowledged={len(receipts)} "
        f"(before the close request: {acknowledged_before:.0f}) retracted={retracted.total()} "
        f"rows={len(stored)} counter-total={sum(counters(poll).values())} "
        f"refused={len(refused)} unexpected={len(unexpected)} close-took={seconds:.3f}s "
        f"rows-dated-after-closed_at={len(late)}" + (f" (up to {max(late)} after)" if late else "")
    )
    assert tally(outcomes) == {"ok": len(voters) + 1}
    assert unexpected == []
    assert acknowledged_before >= 100
    assert +kept == collections.Counter((voter_id, option_id) for voter_id, option_id, _ in stored)
    assert counters(poll) == rows(poll)
    assert sum(counters(poll).values()) == len(stored)
    assert late == [], "votes were stored with a time after the poll's closed_at"
    assert all(receipt.created_at <= poll.closed_at for _, receipt in receipts)
    assert len(refused) == len(voters), "the close waited until the voting stopped"


def participations(poll: Poll) -> list[int]:
    """The choices held by each participation in the poll."""
    return list(Participation.objects.filter(poll=poll).values_list("choices", flat=True))


def counted_voters(poll: Poll) -> int:
    return VoterCount.objects.filter(poll=poll).aggregate(n=Sum("voters"))["n"] or 0


def test_simultaneous_changes_of_one_voters_ballot_leave_one_ballot_and_exact_counts(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(options=("Pizza", "Soup", "Salad", "Curry"))
    options = option_ids(poll)
    voter = make_user()
    services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=[options[0]])

    outcomes = run_together(
        [
            lambda option=option: services.change_vote(
                poll_id=poll.pk, voter=voter, option_ids=[option]
            )
            for option in itertools.islice(itertools.cycle(options), SIMULTANEOUS)
        ]
    )

    seen = tally(outcomes)
    print(f"\n[ballot changed by {SIMULTANEOUS} requests at once] outcomes={dict(seen)}")
    assert seen == {"ok": SIMULTANEOUS}
    assert Vote.objects.filter(poll=poll).count() == 1
    assert counters(poll) == rows(poll)
    assert sum(counters(poll).values()) == 1
    assert participations(poll) == [1]
    assert counted_voters(poll) == 1
    assert BallotChange.objects.filter(poll=poll).count() == SIMULTANEOUS


def test_simultaneous_first_ballots_on_a_secret_poll_count_one(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    Poll.objects.filter(pk=poll.pk).update(anonymity="secret", allow_vote_change=False)
    options = option_ids(poll)
    voter = make_user()

    outcomes = run_together(
        [
            vote_via_service(poll.pk, voter, [option])
            for option in itertools.islice(itertools.cycle(options), SIMULTANEOUS)
        ]
    )

    seen = tally(outcomes)
    print(f"\n[first ballots on a secret poll, one voter] outcomes={dict(seen)}")
    assert seen == {"ok": 1, "AlreadyVoted": SIMULTANEOUS - 1}
    assert not Vote.objects.filter(poll=poll).exists()
    assert sum(counters(poll).values()) == 1
    assert participations(poll) == [1]
    assert counted_voters(poll) == 1


def test_parallel_ballots_of_one_voter_never_exceed_the_maximum(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(options=[f"Option {n}" for n in range(10)], allow_multiple_votes=True)
    Poll.objects.filter(pk=poll.pk).update(max_choices=3)
    voter = make_user()

    outcomes = run_together(
        [vote_via_service(poll.pk, voter, [option]) for option in option_ids(poll)]
    )

    seen = tally(outcomes)
    print(f"\n[10 single-option ballots at once, max_choices=3] outcomes={dict(seen)}")
    assert seen == {"ok": 3, "AlreadyVoted": 7}
    assert counters(poll) == rows(poll)
    assert Vote.objects.filter(poll=poll, voter=voter).count() == 3
    assert participations(poll) == [3]
    assert counted_voters(poll) == 1


def test_a_poll_that_opens_while_ballots_arrive_takes_those_stamped_after_it_opens(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(options=("Pizza", "Soup"))
    opens_at = timezone.now() + timedelta(seconds=1)
    Poll.objects.filter(pk=poll.pk).update(opens_at=opens_at)
    pizza = option_ids(poll)[0]
    voters = [make_user() for _ in range(POOL)]

    def keep_voting(user: Any) -> Callable[[], str]:
        def run() -> str:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    services.cast_vote(poll_id=poll.pk, voter=user, option_ids=[pizza])
                except services.PollNotOpen:
                    time.sleep(0.01)
                else:
                    return "stored"
            return "never stored"

        return run

    outcomes = run_together([keep_voting(user) for user in voters])

    stamps = list(Vote.objects.filter(poll=poll).values_list("created_at", flat=True))
    print(
        f"\n[{POOL} voters while the poll opens] outcomes={dict(tally(outcomes))} "
        f"earliest stamp - opens_at = {min(stamps) - opens_at}"
    )
    assert [outcome.value for outcome in outcomes] == ["stored"] * POOL
    assert all(stamp >= opens_at for stamp in stamps)
    assert counters(poll) == {pizza: POOL, option_ids(poll)[1]: 0}


def test_a_ballot_that_cannot_get_its_lock_in_time_is_a_503_to_retry(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """A host that bounds lock waits (``lock_timeout``, ``innodb_lock_wait_timeout``) gets a
    JSON 503 with Retry-After."""
    mysql = connection.vendor == "mysql"
    poll = make_poll()
    voter = make_user()
    token, _ = Token.objects.get_or_create(user=voter)
    holding, release = threading.Event(), threading.Event()

    def hold_the_poll() -> None:
        try:
            with transaction.atomic():
                Poll.objects.select_for_update().get(pk=poll.pk)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_poll)
    holder.start()
    try:
        assert holding.wait(10)
        with connection.cursor() as cursor:
            cursor.execute(
                "SET SESSION innodb_lock_wait_timeout = 1"
                if mysql
                else "SET lock_timeout = '200ms'"
            )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        response = client.post(
            reverse("django_polls:poll-vote", args=[poll.pk]),
            {"options": [option_ids(poll)[0]]},
            format="json",
        )
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute(
                "SET SESSION innodb_lock_wait_timeout = DEFAULT" if mysql else "RESET lock_timeout"
            )

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "service_unavailable"
    assert response["Retry-After"] == "1"
    assert not Vote.objects.filter(poll=poll).exists()
