"""A first ballot of a method stored whole (ranked, score, a site's) on PostgreSQL: one read of
the poll, then one statement (``METHOD_BALLOT_SQL``). It must answer exactly as the transaction
of a few statements that other databases run (``cast_ballot_in_steps``): the same rows stored,
and every refusal with the same error, code and message, prepared statements on or off."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_polls import services
from django_polls.conf import DEFAULTS
from django_polls.models import (
    Ballot,
    Option,
    Participation,
    Poll,
    Tally,
    VoterCount,
    counted_votes,
)
from django_polls.services import method_ballots
from django_polls.services.errors import PollRuleError
from tests.conftest import expire, on_postgresql, option_ids
from tests.test_queries import on_the_wire, statements

pytestmark = [on_postgresql, pytest.mark.django_db(transaction=True)]


@contextlib.contextmanager
def prepared(on: bool) -> Iterator[None]:
    """Prepared statements allowed (as ``OPTIONS["prepare_threshold"]`` 0) or not (Django's
    default), on the test's connection."""
    connection.ensure_connection()
    raw: Any = connection.connection
    saved = raw.prepare_threshold
    raw.prepare_threshold = 0 if on else None
    try:
        yield
    finally:
        raw.prepare_threshold = saved


def outcome(cast: Callable[[], Any]) -> Any:
    """What a ballot came to: stored, or the error that refused it, as the API shows it."""
    try:
        cast()
    except Poll.DoesNotExist:
        return "no such poll"
    except PollRuleError as exc:
        return type(exc).__name__, exc.code, str(exc.message), getattr(exc, "errors", None)
    return "stored"


def stored(poll: Poll) -> dict[str, Any]:
    """Every row a ballot on the poll writes."""
    return {
        "ballots": sorted(
            map(str, Ballot.objects.filter(poll=poll).values_list("choice", flat=True))
        ),
        "tallies": dict(Tally.objects.filter(poll=poll).values_list("key", "ballots")),
        "votes": list(
            Option.objects.filter(poll=poll)
            .order_by("pk")
            .annotate(counted=counted_votes())
            .values_list("counted")
        ),
        "participations": sorted(
            Participation.objects.filter(poll=poll).values_list(
                "choices", "min_choices", "max_choices"
            )
        ),
        "voters": sum(VoterCount.objects.filter(poll=poll).values_list("voters", flat=True)),
    }


CASES = [
    "twice",
    "closed",
    "scheduled",
    "not_a_member",
    "unknown_option",
    "too_many",
    "too_few",
    "score_too_high",
    "not_a_member_and_score_too_high",
    "closed_and_score_too_high",
    "no_poll",
    "options_field",
    "malformed",
]


@pytest.mark.parametrize("prepare", [False, True], ids=["bound on the client", "prepared"])
@pytest.mark.parametrize("case", CASES)
def test_every_refusal_is_the_one_of_the_transaction_in_steps(
    case: str, prepare: bool, make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    voter = make_user()
    score = "score" in case
    fields: dict[str, Any] = {"method": "score" if score else "ranked"}
    if case == "scheduled":
        fields["opens_at"] = timezone.now() + timedelta(days=1)
    if "not_a_member" in case:
        fields["voter_group"] = Group.objects.create(name="members")
    if case == "too_many":
        fields["max_choices"] = 2
    if case == "too_few":
        fields["min_choices"] = 3
    poll = make_poll(options=("Ann", "Ben", "Cat"), **fields)
    ids = option_ids(poll)
    data: Any = (
        {"scores": [{"option": ids[0], "score": 9 if "too_high" in case else 3}]}
        if score
        else {"ranking": ids if case == "too_many" else ids[:2]}
    )
    poll_id = poll.pk
    if case == "twice":
        services.cast_ballot(poll_id=poll_id, voter=voter, data=data)
    if case.startswith("closed"):
        expire(poll)
    if case == "unknown_option":
        data = {"ranking": option_ids(make_poll(method="ranked"))[:1]}
    if case == "no_poll":
        poll_id = Poll.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1
    if case == "options_field":
        data = {"options": ids[:1]}
    if case == "malformed":
        data = {"ranking": [ids[0], ids[0]]}
    before = stored(poll)

    steps = outcome(
        lambda: method_ballots.cast_ballot_in_steps(poll_id=poll_id, voter=voter, data=data)
    )
    with prepared(prepare):
        one_statement = outcome(
            lambda: services.cast_ballot(poll_id=poll_id, voter=voter, data=data)
        )

    assert one_statement == steps
    assert one_statement != "stored"
    assert stored(poll) == before


@pytest.mark.parametrize("prepare", [False, True], ids=["bound on the client", "prepared"])
@pytest.mark.parametrize("anonymity", ["anonymous", "secret"])
@pytest.mark.parametrize("method", ["ranked", "score"])
def test_a_ballot_stores_what_the_transaction_in_steps_stores(
    method: str,
    anonymity: str,
    prepare: bool,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
) -> None:
    fields = {"allow_vote_change": False} if anonymity == "secret" else {}
    polls = [
        make_poll(options=("Ann", "Ben", "Cat"), method=method, anonymity=anonymity, **fields)
        for _ in range(2)
    ]

    def ballots(poll: Poll) -> list[Any]:
        a, b, c = option_ids(poll)
        if method == "ranked":
            return [{"ranking": [b, a]}, {"ranking": [b, a]}, {"ranking": [c, a, b]}]
        return [
            {"scores": [{"option": a, "score": 4}, {"option": c, "score": 0}]},
            {"scores": [{"option": a, "score": 4}]},
            {"scores": [{"option": b, "score": 5}, {"option": c, "score": 1}]},
        ]

    def normalised(poll: Poll) -> str:
        # The rows, each option id as its position in the poll, the app's own tallies (counts of
        # changes, by participation id) as their sum.
        position = {
            str(option_id): f"<{index}>" for index, option_id in enumerate(option_ids(poll))
        }

        def renamed(text: str) -> str:
            return re.sub(r"\d+", lambda found: position.get(found[0], found[0]), text)

        rows = stored(poll)
        tallies = rows.pop("tallies")
        rows["changes"] = sum(n for key, n in tallies.items() if key.startswith("#"))
        rows["tallies"] = sorted((renamed(k), n) for k, n in tallies.items() if k[0] != "#")
        return renamed(repr(rows))

    with prepared(prepare):
        for data in ballots(polls[0]):
            services.cast_ballot(poll_id=polls[0].pk, voter=make_user(), data=data)
    for data in ballots(polls[1]):
        method_ballots.cast_ballot_in_steps(poll_id=polls[1].pk, voter=make_user(), data=data)

    assert normalised(polls[0]) == normalised(polls[1])
    assert stored(polls[0])["voters"] == 3
    assert len(stored(polls[0])["ballots"]) == (0 if anonymity == "secret" else 3)
    assert "'changes': 3" in normalised(polls[0])  # once per ballot


@pytest.mark.parametrize("prepare", [False, True], ids=["bound on the client", "prepared"])
def test_a_ranked_ballot_is_three_statements_on_the_wire_and_prepared_once(
    prepare: bool, make_poll: Callable[..., Poll], make_user: Callable[..., Any], client_for: Any
) -> None:
    polls = [make_poll(method="ranked", options=("Ann", "Ben", "Cat")) for _ in range(3)]
    clients = [client_for(make_user()) for _ in polls]
    traces = []
    rankings = [option_ids(poll)[::-1] for poll in polls]
    with prepared(prepare):
        for poll, client, ranking in zip(polls, clients, rankings, strict=True):
            with on_the_wire() as wire:
                response = client.post(
                    reverse("django_polls:poll-vote", args=[poll.pk]),
                    {"ranking": ranking},
                    format="json",
                )
            assert response.status_code == 201, response.content
            traces.append(wire)

    for wire in traces:
        # The token joined to its user, the poll as the method judges it, then the ballot; no
        # BEGIN, no COMMIT: the ballot commits on its own.
        ran = statements(wire)
        assert len(ran) == 3, wire
        assert "authtoken_token" in ran[0]
        if not prepare:
            assert "xmin" in ran[1] and ran[2].startswith('"WITH poll AS'), wire
    if prepare:
        parsed = [[m for m in wire if m.startswith("PARSE ")] for wire in traces]
        assert all(statements(wire)[1:] == ["EXECUTE", "EXECUTE"] for wire in traces)
        assert parsed[1:] == [[], []]
    assert [
        sorted(
            Option.objects.filter(poll=p)
            .annotate(counted=counted_votes())
            .values_list("counted", flat=True)
        )
        for p in polls
    ] == [[1, 1, 1]] * 3


def test_a_poll_edited_after_the_method_judged_it_is_judged_again(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], monkeypatch: Any
) -> None:
    poll = make_poll(method="score", max_score=10)
    data = {"scores": [{"option": option_ids(poll)[0], "score": 8}]}
    parse = method_ballots._parsed_ballot
    reads: list[int] = []

    def owner_edits_meanwhile(name: str, body: Any) -> Any:
        reads.append(1)
        if len(reads) == 1:  # the poll has no votes: its max_score may still change
            services.update_poll(poll=poll, max_score=5)
        return parse(name, body)

    monkeypatch.setattr(method_ballots, "_parsed_ballot", owner_edits_meanwhile)
    refused = outcome(lambda: services.cast_ballot(poll_id=poll.pk, voter=make_user(), data=data))

    assert len(reads) == 2
    assert refused[:2] == ("InvalidInput", "invalid")
    assert "from 0 to 5" in refused[3]["scores"][0]
    assert not Participation.objects.filter(poll=poll).exists()


def test_a_refused_ballot_leaves_the_callers_transaction_usable(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    poll = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    voter = make_user()
    ranking = {"ranking": option_ids(poll)[:2]}
    with transaction.atomic():
        services.cast_ballot(poll_id=poll.pk, voter=voter, data=ranking)
        assert (
            outcome(lambda: services.cast_ballot(poll_id=poll.pk, voter=voter, data=ranking))[1]
            == "already_voted"
        )
        other = make_user()
        services.cast_ballot(poll_id=poll.pk, voter=other, data=ranking)

    assert Participation.objects.filter(poll=poll).count() == 2
    assert Ballot.objects.filter(poll=poll).count() == 2


def test_a_site_method_is_cast_in_one_statement(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], client_for: Any
) -> None:
    with override_settings(DJANGO_POLLS={"METHODS": [*DEFAULTS["METHODS"], "tests.borda.Borda"]}):
        poll = make_poll(method="borda", options=("Ann", "Ben", "Cat"))
        a, b, c = option_ids(poll)
        client = client_for(make_user())
        with on_the_wire() as wire:
            response = client.post(
                reverse("django_polls:poll-vote", args=[poll.pk]),
                {"ranking": [b, c, a]},
                format="json",
            )

    assert response.status_code == 201, response.content
    assert len(statements(wire)) == 3, wire
    assert {
        key: count
        for key, count in Tally.objects.filter(poll=poll).values_list("key", "ballots")
        if not key.startswith("#")
    } == {f"{b}@0": 1, f"{c}@1": 1, f"{a}@2": 1}
