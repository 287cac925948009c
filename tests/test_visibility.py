"""Who sees results: ``results_visibility`` on ``results/``, ``total_votes`` in poll bodies,
the ``ETag`` of results, and ``ballots/`` of public polls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.fields import DateTimeField
from rest_framework.test import APIRequestFactory, force_authenticate

from django_polls import services
from django_polls.conf import polls_settings
from django_polls.models import Poll, Vote
from django_polls.views import PollViewSet
from tests.conftest import assert_error, expire, login_of, option_ids
from tests.taking_part import cast, with_policy

CALLERS = ("anonymous", "voter", "non-voter", "owner", "staff")

#: Who sees the results, by visibility and whether the poll is closed: the contract's table.
SEES = {
    ("always", False): set(CALLERS),
    ("always", True): set(CALLERS),
    ("after_vote", False): {"voter", "owner", "staff"},
    ("after_vote", True): {"voter", "owner", "staff"},
    ("after_close", False): {"owner", "staff"},
    ("after_close", True): set(CALLERS),
    ("owner", False): {"owner", "staff"},
    ("owner", True): {"owner", "staff"},
}
CASES = [
    (visibility, closed, caller, caller in sees)
    for (visibility, closed), sees in SEES.items()
    for caller in CALLERS
]
CASE_IDS = [
    f"{visibility}-{'closed' if closed else 'open'}-{caller}"
    for visibility, closed, caller, _ in CASES
]


def shown_as(name: str) -> str:
    """How the site names the user called ``name`` (DJANGO_POLLS["USER_DISPLAY"])."""
    user = get_user_model()._default_manager.get_by_natural_key(login_of(name))
    return str(polls_settings.USER_DISPLAY(user))


def results_url(poll: Poll | int) -> str:
    return reverse("django_polls:poll-results", args=[getattr(poll, "pk", poll)])


def detail_url(poll: Poll | int) -> str:
    return reverse("django_polls:poll-detail", args=[getattr(poll, "pk", poll)])


def ballots_url(poll: Poll | int) -> str:
    return reverse("django_polls:poll-ballots", args=[getattr(poll, "pk", poll)])


@pytest.fixture
def scene(make_poll, make_user, client_for) -> Callable[..., tuple[Poll, dict[str, Any]]]:
    """A poll with the given policy, one ballot (the voter's), and a client per caller."""

    def make(
        visibility: str, *, closed: bool = False, **policy: Any
    ) -> tuple[Poll, dict[str, Any]]:
        owner, voter = make_user("owner"), make_user("voter")
        users = {
            "anonymous": None,
            "voter": voter,
            "non-voter": make_user("nonvoter"),
            "owner": owner,
            "staff": make_user("staff", is_staff=True),
        }
        poll = make_poll(created_by=owner)
        cast(poll, voter, option_ids(poll)[:1])
        if closed:
            services.close_poll(poll=poll)
        poll = with_policy(poll, results_visibility=visibility, **policy)
        return poll, {name: client_for(user) for name, user in users.items()}

    return make


# ---------------------------------------------------------------------------------------------
# results/


@pytest.mark.parametrize(("visibility", "closed", "caller", "sees"), CASES, ids=CASE_IDS)
def test_results_answer_those_the_visibility_lets_see_them(scene, visibility, closed, caller, sees):
    poll, clients = scene(visibility, closed=closed)

    response = clients[caller].get(results_url(poll))

    if sees:
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["total_votes"], body["total_voters"]) == (1, 1)
        assert body["is_active"] is not closed
        assert response["ETag"].startswith('W/"')
    else:
        assert_error(response, 403, "results_hidden")
        assert not response.has_header("ETag")


@pytest.mark.parametrize(("visibility", "closed", "caller", "sees"), CASES, ids=CASE_IDS)
def test_total_votes_is_null_for_those_who_may_not_see_results(
    scene, visibility, closed, caller, sees
):
    poll, clients = scene(visibility, closed=closed)

    detail = clients[caller].get(detail_url(poll)).json()
    listed = clients[caller].get(reverse("django_polls:poll-list")).json()["results"]

    expected = 1 if sees else None
    assert detail["total_votes"] == expected
    assert [entry["total_votes"] for entry in listed if entry["id"] == poll.pk] == [expected]


def test_an_expired_poll_counts_as_closed(scene):
    poll, clients = scene("after_close")
    assert_error(clients["non-voter"].get(results_url(poll)), 403, "results_hidden")

    expire(poll)

    assert clients["non-voter"].get(results_url(poll)).status_code == 200
    assert clients["anonymous"].get(detail_url(poll)).json()["total_votes"] == 1


def test_a_voter_who_withdraws_no_longer_sees_after_vote_results(make_poll, alice, client_for):
    poll = with_policy(make_poll(), results_visibility="after_vote")
    cast(poll, alice, option_ids(poll)[:1])
    as_alice = client_for(alice)
    assert as_alice.get(results_url(poll)).status_code == 200

    services.retract_votes(poll_id=poll.pk, voter=alice)

    assert_error(as_alice.get(results_url(poll)), 403, "results_hidden")
    assert as_alice.get(detail_url(poll)).json()["total_votes"] is None


def test_on_a_secret_poll_taking_part_is_what_shows_the_results(make_poll, alice, client_for):
    poll = with_policy(make_poll(), results_visibility="after_vote", anonymity="secret")
    as_alice = client_for(alice)
    assert_error(as_alice.get(results_url(poll)), 403, "results_hidden")

    cast(poll, alice, option_ids(poll)[:1])

    assert not Vote.objects.filter(poll=poll).exists()  # a secret ballot leaves no vote rows
    body = as_alice.get(results_url(poll)).json()
    assert (body["total_votes"], body["total_voters"]) == (1, 1)
    assert as_alice.get(detail_url(poll)).json()["total_votes"] == 1


def test_a_missing_poll_is_404_before_any_visibility(db, anon):
    response = anon.get(results_url(987654))
    assert_error(response, 404, "not_found")


def test_results_carry_the_method_and_the_number_of_voters(make_poll, make_user, anon):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, _ = option_ids(poll)
    cast(poll, make_user(), [pizza, soup])
    cast(poll, make_user(), [pizza])

    body = anon.get(results_url(poll)).json()

    assert body["method"] == "multiple"
    assert (body["total_votes"], body["total_voters"]) == (3, 2)
    assert [option["votes"] for option in body["options"]] == [2, 1, 0]


def test_the_poll_that_answers_a_narrowed_viewset_is_judged_alike(make_poll, alice, bob):
    class Narrowed(PollViewSet):
        def get_queryset(self) -> Any:
            return super().get_queryset().filter(closed_at__isnull=True)

    poll = with_policy(make_poll(), results_visibility="after_vote")
    cast(poll, alice, option_ids(poll)[:1])

    def read(user: Any) -> Any:
        request = APIRequestFactory().get(results_url(poll))
        force_authenticate(request, user=user)
        return Narrowed.as_view({"get": "results"})(request, pk=str(poll.pk))

    seen = read(alice)
    assert seen.status_code == 200
    assert (seen.data["total_votes"], seen.data["total_voters"]) == (1, 1)
    refused = read(bob)
    assert refused.status_code == 403
    assert refused.data["code"] == "results_hidden"


# ---------------------------------------------------------------------------------------------
# ETag


def test_a_refusal_carries_no_etag_and_no_tag_gets_past_it(scene):
    poll, clients = scene("always")
    etag = clients["non-voter"].get(results_url(poll))["ETag"]
    with_policy(poll, results_visibility="owner")

    for sent in (etag, "*", etag[2:]):
        response = clients["non-voter"].get(results_url(poll), HTTP_IF_NONE_MATCH=sent)
        assert_error(response, 403, "results_hidden")
        assert not response.has_header("ETag")
    # Those who still may see them get their 304 as before.
    assert clients["owner"].get(results_url(poll), HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_hidden_results_that_change_answer_the_same_refusal(scene, make_user):
    poll, clients = scene("after_close")
    before = clients["non-voter"].get(results_url(poll), HTTP_IF_NONE_MATCH="*")

    cast(poll, make_user(), option_ids(poll)[1:])

    after = clients["non-voter"].get(results_url(poll), HTTP_IF_NONE_MATCH="*")
    assert (before.status_code, before.json()) == (after.status_code, after.json())
    assert not before.has_header("ETag") and not after.has_header("ETag")


def test_results_shown_to_some_callers_only_are_kept_by_no_shared_cache(scene, make_poll):
    owner_only, clients = scene("owner")
    open_to_all = make_poll()

    assert clients["anonymous"].get(results_url(open_to_all))["Cache-Control"] == "no-cache"
    response = clients["owner"].get(results_url(owner_only))
    assert response["Cache-Control"] == "private, no-cache"


# ---------------------------------------------------------------------------------------------
# ballots/


@pytest.fixture
def public_poll(make_poll, alice) -> Poll:
    poll = make_poll(
        created_by=alice, options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True
    )
    return with_policy(poll, anonymity="public")


def test_a_public_poll_lists_each_voters_ballot(public_poll, make_user, anon):
    pizza, soup, salad = option_ids(public_poll)
    carol, dave = make_user("carol"), make_user("dave")
    cast(public_poll, dave, [salad, pizza])
    cast(public_poll, carol, [soup])
    cast(public_poll, dave, [soup])  # added to later: the ballot is as of its last vote

    response = anon.get(ballots_url(public_poll))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert [(entry["voter"], entry["options"]) for entry in body["results"]] == [
        (shown_as("dave"), [pizza, soup, salad]),
        (shown_as("carol"), [soup]),
    ]
    last = {
        voter: max(
            Vote.objects.filter(poll=public_poll, voter=voter).values_list("created_at", flat=True)
        )
        for voter in (carol, dave)
    }
    assert [entry["created_at"] for entry in body["results"]] == [
        DateTimeField().to_representation(last[dave]),
        DateTimeField().to_representation(last[carol]),
    ]


def test_a_changed_ballot_is_listed_as_it_is_now(public_poll, bob, anon):
    pizza, soup, salad = option_ids(public_poll)
    cast(public_poll, bob, [pizza])
    receipt = services.change_vote(poll_id=public_poll.pk, voter=bob, option_ids=[salad, soup])

    (entry,) = anon.get(ballots_url(public_poll)).json()["results"]

    assert entry["options"] == [soup, salad]
    assert entry["created_at"] == DateTimeField().to_representation(receipt.created_at)


def test_ballots_name_voters_as_the_site_says(public_poll, bob, anon):
    cast(public_poll, bob, option_ids(public_poll)[:1])
    site = {"USER_DISPLAY": "tests.test_visibility.shouting"}
    with override_settings(DJANGO_POLLS=site):
        body = anon.get(ballots_url(public_poll)).json()
    assert [entry["voter"] for entry in body["results"]] == [login_of("bob").upper()]


def shouting(user: Any) -> str:
    return str(user.get_username()).upper()


@pytest.mark.parametrize("anonymity", ["anonymous", "secret"])
@pytest.mark.parametrize("caller", ["anonymous", "voter", "owner", "staff"])
def test_other_polls_list_nobodys_ballot(scene, anonymity, caller):
    poll, clients = scene("always", anonymity=anonymity)

    assert_error(clients[caller].get(ballots_url(poll)), 403, "ballots_hidden")


@pytest.mark.parametrize(("visibility", "closed", "caller", "sees"), CASES, ids=CASE_IDS)
def test_ballots_of_a_public_poll_are_shown_as_its_results(scene, visibility, closed, caller, sees):
    poll, clients = scene(visibility, closed=closed, anonymity="public")

    response = clients[caller].get(ballots_url(poll))

    if sees:
        assert response.status_code == 200, response.content
        assert [entry["voter"] for entry in response.json()["results"]] == [shown_as("voter")]
    else:
        assert_error(response, 403, "results_hidden")


def test_ballots_of_a_missing_poll_are_404(db, anon):
    assert_error(anon.get(ballots_url(987654)), 404, "not_found")


def test_ballots_are_paginated_as_the_poll_list(public_poll, make_user, anon):
    voters = [make_user(f"voter{index}") for index in range(5)]
    for voter in voters:
        cast(public_poll, voter, option_ids(public_poll)[:1])

    first = anon.get(ballots_url(public_poll), {"page_size": 2}).json()
    last = anon.get(ballots_url(public_poll), {"page_size": 2, "page": 3}).json()

    assert first["count"] == 5
    assert [entry["voter"] for entry in first["results"]] == [
        shown_as("voter0"),
        shown_as("voter1"),
    ]
    assert "page=2" in first["next"] and first["previous"] is None
    assert [entry["voter"] for entry in last["results"]] == [shown_as("voter4")]
    assert last["next"] is None
    past = anon.get(ballots_url(public_poll), {"page_size": 2, "page": 4})
    assert_error(past, 404, "not_found")


def test_a_deleted_accounts_ballot_stays_counted_but_is_nobodys(public_poll, make_user, anon):
    gone, kept = make_user("gone"), make_user("kept")
    cast(public_poll, gone, option_ids(public_poll)[:1])
    cast(public_poll, kept, option_ids(public_poll)[1:2])
    gone.delete()

    body = anon.get(ballots_url(public_poll)).json()

    assert [entry["voter"] for entry in body["results"]] == [shown_as("kept")]
    assert anon.get(results_url(public_poll)).json()["total_votes"] == 2


# ---------------------------------------------------------------------------------------------
# Queries: the rule folds into the queries that read the polls


AUTH = 1


@pytest.mark.parametrize("visibility", ["always", "after_vote", "after_close", "owner"])
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "token"])
def test_results_are_still_one_query_whatever_the_visibility(
    make_poll, alice, client_for, django_assert_num_queries, visibility, signed_in
):
    poll = with_policy(make_poll(), results_visibility=visibility)
    cast(poll, alice, option_ids(poll)[:1])
    client = client_for(alice if signed_in else None)

    with django_assert_num_queries((AUTH if signed_in else 0) + 1):
        response = client.get(results_url(poll))

    sees = visibility == "always" or (visibility == "after_vote" and signed_in)
    assert response.status_code == (200 if sees else 403)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "token"])
def test_a_page_of_polls_of_every_policy_takes_the_same_queries(
    make_poll, make_user, alice, client_for, django_assert_num_queries, signed_in
):
    policies = ["always", "after_vote", "after_close", "owner"]
    for index in range(20):
        poll = with_policy(make_poll(), results_visibility=policies[index % 4])
        voter = alice if index % 8 < 4 else make_user()
        cast(poll, voter, option_ids(poll)[:1])
    client = client_for(alice if signed_in else None)

    # COUNT, the page of polls (with whether the caller voted on each), their options.
    with django_assert_num_queries((AUTH if signed_in else 0) + 3):
        response = client.get(reverse("django_polls:poll-list"))

    shown = [poll["total_votes"] for poll in response.json()["results"]]
    assert len(shown) == 20
    # Hidden: after_close (open) and owner polls; after_vote ones alice did not vote on.
    assert shown.count(None) == (12 if signed_in else 15)


def test_a_page_of_ballots_takes_the_same_queries_however_many_ballots(
    public_poll, make_user, anon, django_assert_num_queries
):
    def read() -> Any:
        # The poll (and whether the caller voted), COUNT, the page of voters, their votes.
        with django_assert_num_queries(4):
            return anon.get(ballots_url(public_poll), {"page_size": 50})

    cast(public_poll, make_user(), option_ids(public_poll)[:1])
    assert len(read().json()["results"]) == 1
    for _ in range(30):
        cast(public_poll, make_user(), option_ids(public_poll))
    assert len(read().json()["results"]) == 31


def test_the_streams_of_a_poll_are_judged_in_one_query(make_poll, make_user, alice):
    poll = with_policy(make_poll(created_by=alice), results_visibility="after_vote")
    voters = [make_user() for _ in range(3)]
    for voter in voters[:2]:
        cast(poll, voter, option_ids(poll)[:1])
    viewers = [None, alice, *voters]

    with CaptureQueriesContext(connection) as queries:
        verdicts = services.results_visible_to_each(poll, viewers)

    assert verdicts == [False, True, True, True, False]
    assert len(queries) == 1
