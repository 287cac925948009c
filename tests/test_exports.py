"""A poll's owner downloads its results, and on a public poll who chose what, as CSV or JSON
(``GET polls/{id}/export/``), streamed in constant memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import AsyncRequestFactory, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import force_authenticate

from benchmarks.management.commands import polls_load_votes
from django_polls import services
from django_polls.conf import polls_settings
from django_polls.models import Participation, Poll, Vote
from django_polls.services import exports
from django_polls.views import PollViewSet, in_thread
from tests.conftest import assert_error, login_of, on_postgresql, option_ids
from tests.taking_part import cast, with_policy

pytestmark = pytest.mark.django_db


def export_url(poll: Poll | int, query: str = "format=csv") -> str:
    url = reverse("django_polls:poll-export", args=[getattr(poll, "pk", poll)])
    return f"{url}?{query}" if query else url


def body(response: Any) -> bytes:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming
    return b"".join(response.streaming_content)


def table(response: Any) -> list[list[str]]:
    """The CSV of an answer, as rows of cells."""
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(body(response).decode("utf-8"), newline="")))


def in_database_order(users: list[Any]) -> list[Any]:
    """``users`` as the database orders their keys, the order exports list voters in (MariaDB's
    UUID type does not order UUIDs as Python does)."""
    keys = list(
        get_user_model()
        .objects.filter(pk__in=[user.pk for user in users])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return sorted(users, key=lambda user: keys.index(user.pk))


def shown_as(user: Any) -> str:
    return str(polls_settings.USER_DISPLAY(user))


@pytest.fixture
def owner(make_user: Callable[..., Any]) -> Any:
    return make_user("owner")


@pytest.fixture
def public(make_poll: Callable[..., Poll], owner: Any) -> Poll:
    poll = make_poll(created_by=owner, options=("Pizza", "Soup", "Salad"))
    return with_policy(poll, anonymity="public")


# ---------------------------------------------------------------------------------------------
# Who may export


def test_the_owner_and_staff_may_export_whatever_the_results_visibility(
    public: Poll, owner: Any, make_user: Callable[..., Any], client_for: Callable[..., Any]
) -> None:
    poll = with_policy(public, results_visibility="owner")
    staff = make_user("staff", is_staff=True)

    for user in (owner, staff):
        response = client_for(user).get(export_url(poll))
        assert table(response)[0][:2] == ["option_id", "option"]


def test_others_get_403_anonymous_callers_401_and_a_missing_poll_404(
    public: Poll, alice: Any, client_for: Callable[..., Any], anon: Any
) -> None:
    cast(public, alice, option_ids(public)[:1])

    # A voter of a poll whose results everybody sees is not its owner.
    assert_error(client_for(alice).get(export_url(public)), 403, "permission_denied")
    assert_error(anon.get(export_url(public)), 401, "not_authenticated")
    assert_error(client_for(alice).get(export_url(10**12)), 404, "not_found")


@pytest.mark.parametrize(
    ("query", "field"),
    [("format=xml", "format"), ("", "format"), ("format=csv&table=votes", "table")],
)
def test_an_unknown_format_or_table_is_400_in_json(
    public: Poll, owner: Any, client_for: Callable[..., Any], query: str, field: str
) -> None:
    response = client_for(owner).get(export_url(public, query))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {field}


def test_an_unknown_format_is_400_whatever_the_client_accepts(
    public: Poll, owner: Any, client_for: Callable[..., Any]
) -> None:
    response = client_for(owner).get(export_url(public, "format=xlsx"), HTTP_ACCEPT="text/csv")

    assert response.status_code == 400
    assert response.json() == {"format": ["Must be csv or json."]}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "trace"])
def test_other_methods_are_405_in_json_whatever_the_format(
    public: Poll, owner: Any, client_for: Callable[..., Any], method: str
) -> None:
    response = getattr(client_for(owner), method)(export_url(public, "format=csv"))

    assert_error(response, 405, "method_not_allowed")


def test_options_describes_the_export_in_json(
    public: Poll, owner: Any, client_for: Callable[..., Any]
) -> None:
    response = client_for(owner).options(export_url(public, "format=csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("anonymity", ["anonymous", "secret"])
def test_the_ballot_table_of_a_poll_that_is_not_public_is_403(
    make_poll: Callable[..., Poll], owner: Any, client_for: Callable[..., Any], anonymity: str
) -> None:
    poll = with_policy(make_poll(created_by=owner), anonymity=anonymity)

    response = client_for(owner).get(export_url(poll, "format=csv&table=ballots"))

    assert_error(response, 403, "ballots_hidden")


# ---------------------------------------------------------------------------------------------
# The results table


def test_the_results_table_has_a_row_per_option_in_the_poll_s_order(
    public: Poll, owner: Any, alice: Any, bob: Any, client_for: Callable[..., Any]
) -> None:
    pizza, soup, _ = option_ids(public)
    cast(public, alice, [pizza])
    cast(public, bob, [soup])

    response = client_for(owner).get(export_url(public))

    assert (
        response["Content-Disposition"]
        == f'attachment; filename="poll-{public.pk}-lunch-results.csv"'
    )
    assert response["Cache-Control"] == "private, no-store"
    assert table(response) == [
        ["option_id", "option", "votes", "percentage"],
        [str(pizza), "Pizza", "1", "50.0"],
        [str(soup), "Soup", "1", "50.0"],
        [str(option_ids(public)[2]), "Salad", "0", "0.0"],
    ]


def test_the_results_of_a_score_poll_have_count_sum_average_and_distribution(
    make_poll: Callable[..., Poll], owner: Any, alice: Any, client_for: Callable[..., Any]
) -> None:
    poll = make_poll(created_by=owner, method="score", max_score=3)
    first, second = option_ids(poll)
    services.cast_ballot(
        poll_id=poll.pk, voter=alice, data={"scores": [{"option": first, "score": 2}]}
    )

    rows = table(client_for(owner).get(export_url(poll)))

    assert rows == [
        [
            "option_id", "option", "votes", "percentage", "count", "sum", "average",
            "distribution_0", "distribution_1", "distribution_2", "distribution_3",
        ],
        [str(first), "Pizza", "1", "100.0", "1", "2", "2.0", "0", "0", "1", "0"],
        [str(second), "Soup", "0", "0.0", "0", "0", "", "0", "0", "0", "0"],
    ]  # fmt: skip


def test_the_results_of_a_ranked_poll_have_each_round_and_the_winner(
    make_poll: Callable[..., Poll], owner: Any, make_user: Callable[..., Any], client_for: Any
) -> None:
    poll = make_poll(created_by=owner, method="ranked", options=("A", "B", "C"))
    a, b, c = option_ids(poll)
    for ranking in ([a, b], [b, a], [c, b], [a], [b]):
        services.cast_ballot(poll_id=poll.pk, voter=make_user(), data={"ranking": ranking})

    rows = table(client_for(owner).get(export_url(poll)))

    assert rows[0] == [
        "option_id", "option", "votes", "percentage", "first_choices",
        "round_1", "round_2", "eliminated_in_round", "winner",
    ]  # fmt: skip
    # Round 1: A 2, B 2, C 1; C is out and its ballot moves to B, who wins round 2 with 3 of 5.
    assert [row[1:2] + row[4:] for row in rows[1:]] == [
        ["A", "2", "2", "2", "", "false"],
        ["B", "2", "2", "3", "", "true"],
        ["C", "1", "1", "", "1", "false"],
    ]


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], client_for: Any
) -> None:
    owner = make_user("owner")
    texts = ('=HYPERLINK("http://evil.example","x")', "+1", "-2", "@SUM(A1)", "Plain")
    poll = with_policy(make_poll(created_by=owner, options=texts), anonymity="public")
    cast(poll, make_user("=cmd|' /C calc'!A0"), option_ids(poll)[:1])

    results = table(client_for(owner).get(export_url(poll)))
    ballots = table(client_for(owner).get(export_url(poll, "format=csv&table=ballots")))

    assert [row[1] for row in results[1:]] == [
        '\'=HYPERLINK("http://evil.example","x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "Plain",
    ]
    assert ballots[0][2:] == [row[1] for row in results[1:]]
    assert ballots[1][0].startswith("'=cmd|")
    # The JSON document is data for programs: its texts stay as they are.
    document = json.loads(body(client_for(owner).get(export_url(poll, "format=json"))))
    assert [option["text"] for option in document["poll"]["options"]] == list(texts)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("\tTab", "'\tTab"),
        ("\rReturn", "'\rReturn"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (-1, "-1"),
        (66.67, "66.67"),
    ],
)
def test_a_cell_is_neutralised_only_where_it_is_text_starting_like_a_formula(
    value: Any, cell: str
) -> None:
    """Option texts are trimmed, so tabs and carriage returns could only start a site's own
    texts (USER_DISPLAY); numbers are written as numbers."""
    assert exports.neutralised(value) == cell


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Crème brûlée or 寿司?", "poll-{id}-creme-brulee-or-results.csv"),
        ("寿司", "poll-{id}-results.csv"),
        ('"; rm -rf / ../..', "poll-{id}-rm-rf-results.csv"),
        ("x" * 200, "poll-{id}-" + "x" * 50 + "-results.csv"),
    ],
)
def test_the_file_is_named_by_the_poll_s_id_and_title_in_ascii(
    make_poll: Callable[..., Poll], owner: Any, client_for: Any, title: str, name: str
) -> None:
    poll = make_poll(created_by=owner, title=title)

    response = client_for(owner).get(export_url(poll))

    expected = name.format(id=poll.pk)
    assert response["Content-Disposition"] == f'attachment; filename="{expected}"'


def test_exports_are_utf_8(
    make_poll: Callable[..., Poll], owner: Any, client_for: Callable[..., Any]
) -> None:
    poll = make_poll(created_by=owner, options=("Crème brûlée", "寿司 🍣"))

    raw = body(client_for(owner).get(export_url(poll)))

    assert "Crème brûlée".encode() in raw
    assert "寿司 🍣".encode() in raw


@pytest.mark.parametrize("anonymity", ["anonymous", "secret"])
def test_a_poll_that_is_not_public_exports_aggregates_only(
    make_poll: Callable[..., Poll],
    owner: Any,
    alice: Any,
    client_for: Callable[..., Any],
    anonymity: str,
) -> None:
    poll = with_policy(make_poll(created_by=owner), anonymity=anonymity)
    cast(poll, alice, option_ids(poll)[:1])

    results = table(client_for(owner).get(export_url(poll)))
    document = json.loads(body(client_for(owner).get(export_url(poll, "format=json"))))

    assert results[1][2] == "1"
    assert document["ballots"] is None
    assert document["results"]["total_voters"] == 1
    assert shown_as(alice).encode() not in json.dumps(document).encode()


# ---------------------------------------------------------------------------------------------
# The ballot table and the JSON document


def test_the_ballot_table_has_a_row_per_voter_and_a_column_per_option(
    public: Poll, owner: Any, alice: Any, bob: Any, client_for: Callable[..., Any]
) -> None:
    poll = with_policy(public, method="multiple", allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    first = cast(poll, alice, [salad, pizza])
    second = cast(poll, bob, [soup])

    response = client_for(owner).get(export_url(poll, "format=csv&table=ballots"))

    assert (
        response["Content-Disposition"]
        == f'attachment; filename="poll-{poll.pk}-lunch-ballots.csv"'
    )
    stamp = exports.TIMESTAMP.to_representation
    rows = [
        [shown_as(alice), stamp(first.created_at), "1", "", "1"],
        [shown_as(bob), stamp(second.created_at), "", "1", ""],
    ]
    # In the order of the voters' accounts, as the database orders their keys.
    in_order = rows if in_database_order([alice, bob])[0] == alice else rows[::-1]
    assert table(response) == [["voter", "voted_at", "Pizza", "Soup", "Salad"], *in_order]


def test_a_deleted_account_s_ballot_is_counted_and_not_listed(
    public: Poll, owner: Any, alice: Any, bob: Any, client_for: Callable[..., Any]
) -> None:
    cast(public, alice, option_ids(public)[:1])
    cast(public, bob, option_ids(public)[1:2])
    alice.delete()

    results = table(client_for(owner).get(export_url(public)))
    ballots = table(client_for(owner).get(export_url(public, "format=csv&table=ballots")))

    assert [row[2] for row in results[1:]] == ["1", "1", "0"]
    assert [row[0] for row in ballots[1:]] == [shown_as(bob)]


def test_ranked_and_score_ballots_show_ranks_and_scores(
    make_poll: Callable[..., Poll], owner: Any, alice: Any, client_for: Callable[..., Any]
) -> None:
    ranked = with_policy(make_poll(created_by=owner, method="ranked"), anonymity="public")
    score = with_policy(make_poll(created_by=owner, method="score"), anonymity="public")
    services.cast_ballot(poll_id=ranked.pk, voter=alice, data={"ranking": option_ids(ranked)[::-1]})
    services.cast_ballot(
        poll_id=score.pk,
        voter=alice,
        data={"scores": [{"option": option_ids(score)[1], "score": 5}]},
    )

    ranks = table(client_for(owner).get(export_url(ranked, "format=csv&table=ballots")))
    scores = table(client_for(owner).get(export_url(score, "format=csv&table=ballots")))

    assert [row[2:] for row in ranks] == [["Pizza", "Soup"], ["2", "1"]]
    assert [row[2:] for row in scores] == [["Pizza", "Soup"], ["", "5"]]


def test_the_json_document_holds_the_poll_its_results_and_its_ballots(
    public: Poll, owner: Any, alice: Any, client_for: Callable[..., Any]
) -> None:
    pizza = option_ids(public)[0]
    receipt = cast(public, alice, [pizza])

    response = client_for(owner).get(export_url(public, "format=json"))

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="poll-{public.pk}-lunch.json"'
    document = json.loads(body(response))
    assert document["poll"]["id"] == public.pk
    assert document["poll"]["created_by"] == shown_as(owner)
    assert document["poll"]["options"][0] == {"id": pizza, "text": "Pizza"}
    # The bodies of results/ and ballots/, as their owner reads them.
    assert (
        document["results"]
        == client_for(owner).get(reverse("django_polls:poll-results", args=[public.pk])).json()
    )
    assert document["ballots"] == [
        {
            "voter": shown_as(alice),
            "options": [pizza],
            "created_at": exports.TIMESTAMP.to_representation(receipt.created_at),
        }
    ]


def test_a_public_poll_without_ballots_exports_an_empty_list(
    public: Poll, owner: Any, client_for: Callable[..., Any]
) -> None:
    document = json.loads(body(client_for(owner).get(export_url(public, "format=json"))))

    assert document["ballots"] == []


@override_settings(DJANGO_POLLS={"USER_DISPLAY": "tests.test_exports.shouted"})
def test_voters_are_named_as_the_site_names_them(
    public: Poll, owner: Any, alice: Any, client_for: Callable[..., Any]
) -> None:
    cast(public, alice, option_ids(public)[:1])

    rows = table(client_for(owner).get(export_url(public, "format=csv&table=ballots")))

    assert rows[1][0] == f"{alice.get_username().upper()}!"


def shouted(user: Any) -> str:
    return f"{user.get_username().upper()}!"


# ---------------------------------------------------------------------------------------------
# Streaming


def test_ballots_are_read_a_chunk_at_a_time_as_the_body_is_sent(
    make_poll: Callable[..., Poll], owner: Any, make_user: Callable[..., Any]
) -> None:
    poll = with_policy(make_poll(created_by=owner), anonymity="public")
    voters = [make_user() for _ in range(7)]
    for voter in voters:
        cast(poll, voter, option_ids(poll)[:1])
    planned = services.plan_export(poll=poll, user=owner, format="csv", table="ballots")

    chunks = services.export_chunks(planned, chunk_size=3)
    with CaptureQueriesContext(connection) as first:
        header = next(chunks)
    with CaptureQueriesContext(connection) as second:
        three = next(chunks)
    rest = list(chunks)

    assert header == b"voter,voted_at,Pizza,Soup\r\n"
    assert len(first) == 0  # nothing is read before the body is asked for
    assert len(second) == 3  # three voters, their names, their ballots
    assert three.count(b"\r\n") == 3
    assert [chunk.count(b"\r\n") for chunk in rest] == [3, 1]
    # The JSON document too: three voters per chunk.
    document = list(
        services.export_chunks(exports.Export(**{**vars(planned), "format": "json"}), chunk_size=3)
    )
    assert len(document) == 5
    assert len(json.loads(b"".join(document))["ballots"]) == 7


def test_ballots_cast_while_an_export_runs_may_show_none_is_read_twice(
    make_poll: Callable[..., Poll], owner: Any, make_user: Callable[..., Any]
) -> None:
    """Keyset pagination: each chunk reads the voters after the last one sent, in the order of
    their accounts."""
    poll = with_policy(make_poll(created_by=owner), anonymity="public")
    voters = {}
    for _ in range(4):
        voter = make_user()
        voters[shown_as(voter)] = voter
        cast(poll, voter, option_ids(poll)[:1])
    planned = services.plan_export(poll=poll, user=owner, format="csv", table="ballots")
    chunks = services.export_chunks(planned, chunk_size=2)
    sent = next(chunks) + next(chunks)

    late = make_user("late")
    cast(poll, late, option_ids(poll)[1:])
    rest = b"".join(chunks)

    names = [line.split(",")[0] for line in (sent + rest).decode().splitlines()[1:]]
    assert len(names) == len(set(names))  # nobody twice
    assert set(voters) <= set(names)
    # The late ballot shows where its voter comes after those already sent.
    order = in_database_order([*voters.values(), late])
    last_sent = max(
        order.index(voters[line.split(",")[0]]) for line in sent.decode().splitlines()[1:]
    )
    assert (shown_as(late) in names) == (order.index(late) > last_sent)


def test_an_asgi_server_gets_the_chunks_one_by_one() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    async def read() -> list[bytes]:
        return [chunk async for chunk in in_thread(chunks())]

    assert asyncio.run(read()) == [b"a", b"b"]


def test_under_asgi_the_body_is_an_async_iterator(public: Poll, owner: Any) -> None:
    """Django reads a synchronous iterator whole before an ASGI server sends it."""
    request = AsyncRequestFactory().get(export_url(public))
    force_authenticate(request, user=owner)

    response = PollViewSet.as_view({"get": "export"})(request, pk=str(public.pk))

    assert response.status_code == 200
    assert response.is_async
    response.close()


def peak_while_reading(chunks: Iterator[bytes]) -> tuple[int, int]:
    """The size of the body and the peak of Python's memory while reading it, in bytes."""
    size = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        for chunk in chunks:
            size += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return size, peak


def load(poll: Poll, ballots: int) -> None:
    call_command(polls_load_votes.Command(), str(poll.pk), str(ballots), stdout=io.StringIO())


def exported(
    poll: Poll, owner: Any, format: str = "csv", chunk_size: int = exports.CHUNK_SIZE
) -> tuple[int, int]:
    """The size of the poll's ballot export and the peak of Python's memory while reading it."""
    poll = Poll.objects.for_listing().get(pk=poll.pk)
    planned = services.plan_export(poll=poll, user=owner, format=format, table="ballots")
    return peak_while_reading(services.export_chunks(planned, chunk_size=chunk_size))


def add_voters(poll: Poll, count: int) -> None:
    """``count`` new voters of the first option, written in bulk (on every database and user
    model): what the ballot table reads, not the counters results read."""
    users = get_user_model()
    first = users._default_manager.count()
    made = users._default_manager.bulk_create(
        [users(**{users.USERNAME_FIELD: login_of(f"bulk{first + n}")}) for n in range(count)],
        batch_size=1000,
    )
    if made and made[0].pk is None:  # MySQL/MariaDB hand out no ids from bulk inserts
        made = list(users._default_manager.order_by("-pk")[:count])
    option = option_ids(poll)[0]
    Participation.objects.bulk_create(
        [
            Participation(poll=poll, voter=user, choices=1, min_choices=1, max_choices=1)
            for user in made
        ],
        batch_size=1000,
    )
    Vote.objects.bulk_create(
        [
            Vote(poll=poll, option_id=option, voter=user, poll_allows_multiple=False)
            for user in made
        ],
        batch_size=1000,
    )


#: Voters per chunk in the memory test: 4 chunks, then 16.
CHUNK = 500


@pytest.mark.parametrize("format", ["csv", "json"])
def test_memory_stays_the_same_as_ballots_grow(public: Poll, owner: Any, format: str) -> None:
    add_voters(public, 4 * CHUNK)
    small, small_peak = exported(public, owner, format, CHUNK)
    add_voters(public, 12 * CHUNK)
    large, large_peak = exported(public, owner, format, CHUNK)

    assert large > 3.5 * small
    # A chunk's worth of rows and objects, whatever the number of chunks: four times the
    # ballots would take four times the memory if the export were held (the measure varies by
    # a tenth from run to run).
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


@on_postgresql
@pytest.mark.skipif(
    get_user_model()._meta.pk.get_internal_type() not in polls_load_votes.AUTO_FIELDS,
    reason="polls_load_votes makes users with integer keys",
)
@pytest.mark.skipif(
    not os.environ.get("POLLS_MILLION_BALLOTS"),
    reason="a few minutes: set POLLS_MILLION_BALLOTS=1 (tox -e exports-million)",
)
def test_a_million_ballots_export_in_constant_memory(
    public: Poll, owner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    load(public, 1_000_000)
    # What autovacuum does after a load: without statistics PostgreSQL reads each chunk's
    # voters through a bitmap of every voter after it, and sorts them.
    tables = (Participation, Vote, get_user_model())
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE " + ", ".join(connection.ops.quote_name(m._meta.db_table) for m in tables)
        )
    loaded = time.perf_counter()

    size, peak = exported(public, owner)
    done = time.perf_counter()

    with capsys.disabled():
        print(
            f"\n1,000,000 ballots: loaded in {loaded - started:.1f} s; exported as CSV "
            f"({size / 1e6:.1f} MB) in {done - loaded:.1f} s under tracemalloc, peak Python "
            f"memory {peak / 1e6:.2f} MB"
        )
    assert size > 30_000_000
    assert peak < size / 10
