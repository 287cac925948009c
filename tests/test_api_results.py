"""Reading a poll's results: GET ``polls/{id}/results/``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIRequestFactory, force_authenticate

from django_polls import services
from django_polls.models import Option, Poll
from django_polls.serializers import ResultsSerializer
from django_polls.views import PollViewSet
from tests.conftest import option_ids
from tests.taking_part import cast


def results_url(poll_id: int | str) -> str:
    return f"/api/v1/polls/{poll_id}/results/"


def vote_url(poll_id: int | str) -> str:
    return f"/api/v1/polls/{poll_id}/vote/"


def detail_url(poll_id: int | str) -> str:
    return f"/api/v1/polls/{poll_id}/"


def cast_ballots(poll: Poll, counts: Sequence[int], make_user: Callable[..., Any]) -> None:
    """``counts[i]`` voters each vote for the poll's i-th option."""
    for option_id, count in zip(option_ids(poll), counts, strict=True):
        for _ in range(count):
            cast(poll, make_user(), [option_id])


def tally(body: dict[str, Any]) -> list[tuple[str, int, float]]:
    return [(option["text"], option["votes"], option["percentage"]) for option in body["options"]]


def test_results_have_the_shape_of_the_contract(make_poll, make_user, anon):
    poll = make_poll(options=("Pizza", "Soup"))
    pizza, soup = option_ids(poll)
    cast_ballots(poll, [2, 1], make_user)

    response = anon.get(results_url(poll.pk))

    assert response.status_code == 200
    assert response.json() == {
        "poll": poll.pk,
        "method": "single",
        "is_active": True,
        "total_votes": 3,
        "total_voters": 3,
        "options": [
            {"id": pizza, "text": "Pizza", "votes": 2, "percentage": 66.67},
            {"id": soup, "text": "Soup", "votes": 1, "percentage": 33.33},
        ],
    }


def test_results_list_options_in_their_creation_order(make_poll, make_user, anon):
    # Neither alphabetical nor by votes: the order the poll's creator gave.
    poll = make_poll(options=("Zucchini", "Apple", "Mango", "Banana"))
    cast_ballots(poll, [1, 0, 3, 2], make_user)

    body = anon.get(results_url(poll.pk)).json()

    assert [option["text"] for option in body["options"]] == [
        "Zucchini",
        "Apple",
        "Mango",
        "Banana",
    ]
    assert [option["id"] for option in body["options"]] == option_ids(poll)
    assert [option["votes"] for option in body["options"]] == [1, 0, 3, 2]


def test_a_poll_without_votes_shows_zero_percent_everywhere(make_poll, anon):
    poll = make_poll(options=("Pizza", "Soup", "Salad"))

    response = anon.get(results_url(poll.pk))

    assert response.status_code == 200
    body = response.json()
    assert body["total_votes"] == 0
    assert tally(body) == [("Pizza", 0, 0.0), ("Soup", 0, 0.0), ("Salad", 0, 0.0)]
    assert all(isinstance(option["percentage"], float) for option in body["options"])


PERCENTAGES = {
    # counts per option -> percentage per option
    "1 of 3 and 2 of 3": ([1, 2], [33.33, 66.67]),
    "thirds that sum to 99.99": ([1, 1, 1], [33.33, 33.33, 33.33]),
    "1 of 6 rounds up": ([1, 5], [16.67, 83.33]),
    "1 of 8 is exact": ([1, 7], [12.5, 87.5]),
    "all or nothing": ([0, 4], [0.0, 100.0]),
    # 100 / 32 = 3.125 exactly: half-up gives 3.13, banker's rounding (and round()) 3.12.
    "1 of 32 rounds half up": ([1, 31], [3.13, 96.88]),
    # 500 / 32 = 15.625 exactly: half-up gives 15.63, banker's rounding 15.62.
    "5 of 32 rounds half up": ([5, 27], [15.63, 84.38]),
}


@pytest.mark.parametrize(("counts", "expected"), PERCENTAGES.values(), ids=PERCENTAGES.keys())
def test_percentages_are_rounded_half_up_to_two_decimals(
    make_poll, make_user, anon, counts, expected
):
    texts = [f"Option {index}" for index in range(len(counts))]
    poll = make_poll(options=texts)
    cast_ballots(poll, counts, make_user)

    body = anon.get(results_url(poll.pk)).json()

    assert body["total_votes"] == sum(counts)
    assert tally(body) == list(zip(texts, counts, expected, strict=True))


def test_percentages_are_json_numbers(make_poll, make_user, anon):
    poll = make_poll()
    cast_ballots(poll, [1, 31], make_user)

    response = anon.get(results_url(poll.pk))

    assert b'"percentage":3.13' in response.content.replace(b" ", b"")
    assert b'"percentage":96.88' in response.content.replace(b" ", b"")


def test_a_multiple_vote_poll_counts_every_selection(make_poll, alice, bob, client_for, anon):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    client_for(alice).post(vote_url(poll.pk), {"options": [pizza, soup, salad]}, format="json")
    client_for(bob).post(vote_url(poll.pk), {"options": [pizza]}, format="json")

    body = anon.get(results_url(poll.pk)).json()

    assert body["total_votes"] == 4
    assert tally(body) == [("Pizza", 2, 50.0), ("Soup", 1, 25.0), ("Salad", 1, 25.0)]
    assert anon.get(detail_url(poll.pk)).json()["total_votes"] == 4


def test_results_of_an_open_poll_say_it_is_active(make_poll, anon):
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))

    assert anon.get(results_url(poll.pk)).json()["is_active"] is True


def test_results_of_a_closed_poll_say_it_is_inactive_and_keep_its_votes(make_poll, make_user, anon):
    poll = make_poll()
    cast_ballots(poll, [2, 1], make_user)
    services.close_poll(poll=poll)

    body = anon.get(results_url(poll.pk)).json()

    assert body["is_active"] is False
    assert body["total_votes"] == 3
    assert tally(body) == [("Pizza", 2, 66.67), ("Soup", 1, 33.33)]


def test_results_of_an_expired_poll_say_it_is_inactive(make_poll, make_user, anon):
    poll = make_poll(expires_at=timezone.now() + timedelta(hours=1))
    cast_ballots(poll, [1, 0], make_user)
    Poll.objects.filter(pk=poll.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    body = anon.get(results_url(poll.pk)).json()

    assert body["is_active"] is False
    assert tally(body) == [("Pizza", 1, 100.0), ("Soup", 0, 0.0)]


def test_results_are_public_and_the_same_for_everyone(make_poll, make_user, alice, client_for):
    poll = make_poll()
    cast_ballots(poll, [1, 1], make_user)

    anonymous = client_for(None).get(results_url(poll.pk))
    signed_in = client_for(alice).get(results_url(poll.pk))

    assert (anonymous.status_code, signed_in.status_code) == (200, 200)
    assert anonymous.json() == signed_in.json()


@pytest.mark.parametrize(
    "poll_id",
    [987_654_321, 2**63 - 1, 10**30, "1" * 5000],
    ids=["unused", "max", "huge", "5000 digits"],
)
def test_results_of_a_missing_poll_are_404(db, anon, poll_id):
    response = anon.get(results_url(poll_id))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_results_of_a_deleted_poll_are_404(make_poll, anon):
    poll = make_poll()
    poll_id = poll.pk
    services.delete_poll(poll=poll)

    response = anon.get(results_url(poll_id))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_every_acknowledged_vote_and_retraction_shows_in_the_next_read(
    make_poll, alice, bob, client_for, anon
):
    poll = make_poll(options=("Pizza", "Soup", "Salad"), allow_multiple_votes=True)
    pizza, soup, salad = option_ids(poll)
    as_alice, as_bob = client_for(alice), client_for(bob)

    def read() -> tuple[int, list[int], int]:
        body = anon.get(results_url(poll.pk)).json()
        detail = anon.get(detail_url(poll.pk)).json()
        return (
            body["total_votes"],
            [option["votes"] for option in body["options"]],
            detail["total_votes"],
        )

    steps = [
        (as_alice.post, {"options": [pizza]}, 201, (1, [1, 0, 0], 1)),
        (as_bob.post, {"options": [pizza, soup]}, 201, (3, [2, 1, 0], 3)),
        (as_alice.post, {"options": [salad]}, 201, (4, [2, 1, 1], 4)),
        (as_alice.delete, None, 204, (2, [1, 1, 0], 2)),
        (as_bob.delete, None, 204, (0, [0, 0, 0], 0)),
        (as_bob.post, {"options": [salad]}, 201, (1, [0, 0, 1], 1)),
    ]
    for send, body, status, expected in steps:
        response = send(vote_url(poll.pk), body, format="json")
        assert response.status_code == status, response.content
        assert read() == expected


def test_a_rejected_ballot_leaves_the_results_as_they_were(make_poll, alice, client_for, anon):
    poll = make_poll()
    pizza, soup = option_ids(poll)
    as_alice = client_for(alice)
    as_alice.post(vote_url(poll.pk), {"options": [pizza]}, format="json")
    before = anon.get(results_url(poll.pk)).json()

    refused = as_alice.post(vote_url(poll.pk), {"options": [soup]}, format="json")

    assert refused.status_code == 409
    assert anon.get(results_url(poll.pk)).json() == before
    assert tally(before) == [("Pizza", 1, 100.0), ("Soup", 0, 0.0)]


def test_results_are_exactly_what_their_documented_serializer_renders(make_poll, make_user, anon):
    poll = make_poll(options=["Pizza", "Soup", "Salad"])
    cast_ballots(poll, [2, 1, 0], make_user)

    response = anon.get(results_url(poll.pk))

    assert response.status_code == 200
    expected = ResultsSerializer(
        services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    )
    assert response.content == JSONRenderer().render(expected.data)


class OwnPollsOnly(PollViewSet):
    """A host's narrowing: a signed-in user sees only their own polls."""

    def get_queryset(self) -> Any:
        return super().get_queryset().filter(created_by=self.request.user)


class NoReadingOthersResults(BasePermission):
    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return bool(obj.created_by_id == request.user.id)


def results_of(view: Any, poll_id: int, user: Any) -> Any:
    request = APIRequestFactory().get(results_url(poll_id))
    force_authenticate(request, user=user)
    return view.as_view({"get": "results"})(request, pk=str(poll_id))


def test_a_subclass_that_narrows_the_polls_narrows_their_results(make_poll, make_user, alice):
    own, foreign = make_poll(created_by=alice), make_poll()
    cast_ballots(own, [2, 1], make_user)

    found = results_of(OwnPollsOnly, own.pk, alice)
    hidden = results_of(OwnPollsOnly, foreign.pk, alice)

    assert found.status_code == 200
    assert [option["votes"] for option in found.data["options"]] == [2, 1]
    assert hidden.status_code == 404


class OnlyOpenPolls(BaseFilterBackend):
    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        return queryset.filter(closed_at__isnull=True)


class FilteredPolls(PollViewSet):
    filter_backends = [OnlyOpenPolls]


def test_filter_backends_narrow_results_as_they_narrow_the_poll(make_poll, alice):
    open_poll, closed = make_poll(created_by=alice), make_poll(created_by=alice)
    services.close_poll(poll=closed)

    assert results_of(FilteredPolls, open_poll.pk, alice).status_code == 200
    assert results_of(FilteredPolls, closed.pk, alice).status_code == 404


def test_object_permissions_apply_to_results(make_poll, alice, bob):
    class Guarded(PollViewSet):
        def get_permissions(self) -> Any:
            return [NoReadingOthersResults()]

    poll = make_poll(created_by=alice)

    assert results_of(Guarded, poll.pk, alice).status_code == 200
    assert results_of(Guarded, poll.pk, bob).status_code == 403


@pytest.mark.parametrize("view", [PollViewSet, OwnPollsOnly], ids=["every poll", "narrowed"])
def test_a_poll_without_options_has_empty_results(make_poll, alice, view):
    poll = make_poll(created_by=alice)
    Option.objects.filter(poll=poll).delete()  # only by hand: the services never allow it

    response = results_of(view, poll.pk, alice)

    assert response.status_code == 200
    assert response.data["total_votes"] == 0
    assert response.data["options"] == []
