"""Idempotency keys (``Idempotency-Key`` on ``POST polls/``, ``POST vote/`` and ``PUT vote/``):
a repeat acts no more and gets the first answer again; the key with another request is 422; a
repeat while the first runs is 409; keys are per user and expire."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from django_polls.models import BallotChange, IdempotencyKey, Option, Poll, Vote, counted_votes
from tests.conftest import assert_error, option_ids

POLLS = "/api/v1/polls/"
REPLAYED = "Idempotent-Replayed"


def vote_url(poll: Poll) -> str:
    return f"{POLLS}{poll.pk}/vote/"


def keyed(key: str) -> dict[str, str]:
    return {"HTTP_IDEMPOTENCY_KEY": key}


def votes(poll: Poll) -> list[int]:
    return list(
        Option.objects.filter(poll=poll)
        .order_by("order")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


@pytest.fixture
def poll(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(options=("Pizza", "Soup", "Salad"))


@pytest.fixture
def voter(alice: Any, client_for: Callable[[Any], APIClient]) -> APIClient:
    return client_for(alice)


def test_a_repeated_ballot_is_stored_once_and_answered_alike(poll: Poll, voter: APIClient) -> None:
    pizza = option_ids(poll)[0]

    first = voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("k-1"))
    again = voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("k-1"))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert REPLAYED not in first
    assert again[REPLAYED] == "true"
    assert votes(poll) == [1, 0, 0]
    assert Vote.objects.filter(poll=poll).count() == 1


def test_the_same_body_in_another_key_order_is_the_same_request(
    make_poll: Callable[..., Poll], voter: APIClient
) -> None:
    body = {
        "title": "Tea?",
        "options": [{"text": "Green"}, {"text": "Black"}],
        "description": "Which one",
    }
    reordered = dict(reversed(list(body.items())))

    first = voter.post(POLLS, body, format="json", **keyed("poll-1"))
    again = voter.post(POLLS, reordered, format="json", **keyed("poll-1"))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert Poll.objects.filter(title="Tea?").count() == 1


def test_a_key_with_another_body_or_path_is_refused_and_changes_nothing(
    poll: Poll, make_poll: Callable[..., Poll], voter: APIClient
) -> None:
    pizza, soup, _ = option_ids(poll)
    voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("k-2"))
    other_poll = make_poll()

    other_body = voter.post(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-2"))
    other_path = voter.post(
        vote_url(other_poll), {"options": option_ids(other_poll)[:1]}, format="json", **keyed("k-2")
    )

    assert_error(other_body, 422, "idempotency_key_reused")
    assert_error(other_path, 422, "idempotency_key_reused")
    assert votes(poll) == [1, 0, 0]
    assert votes(other_poll) == [0, 0]


def test_keys_belong_to_their_user(
    poll: Poll, voter: APIClient, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    pizza = option_ids(poll)[0]
    voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("shared"))

    bobs = client_for(bob).post(
        vote_url(poll), {"options": [pizza]}, format="json", **keyed("shared")
    )

    assert bobs.status_code == 201
    assert REPLAYED not in bobs
    assert votes(poll) == [2, 0, 0]


def test_a_refusal_is_kept_and_answered_again(poll: Poll, voter: APIClient) -> None:
    pizza, soup, _ = option_ids(poll)
    voter.post(vote_url(poll), {"options": [pizza]}, format="json")

    first = voter.post(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-3"))
    again = voter.post(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-3"))

    assert_error(first, 409, "already_voted")
    assert again.status_code == 409
    assert again.content == first.content
    assert again[REPLAYED] == "true"


def test_a_repeated_change_of_ballot_is_made_once(poll: Poll, voter: APIClient) -> None:
    pizza, soup, _ = option_ids(poll)
    voter.post(vote_url(poll), {"options": [pizza]}, format="json")

    first = voter.put(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-4"))
    again = voter.put(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-4"))

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert votes(poll) == [0, 1, 0]
    assert BallotChange.objects.filter(poll=poll).count() == 1  # one replacement, not two


def test_a_ranked_ballot_is_stored_once(make_poll: Callable[..., Poll], voter: APIClient) -> None:
    ranked = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    ranking = {"ranking": option_ids(ranked)[::-1]}

    first = voter.post(vote_url(ranked), ranking, format="json", **keyed("k-5"))
    again = voter.post(vote_url(ranked), ranking, format="json", **keyed("k-5"))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert votes(ranked) == [1, 1, 1]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_key_the_api_does_not_take_is_400_and_nothing_is_stored(
    poll: Poll, voter: APIClient, key: str
) -> None:
    answer = voter.post(
        vote_url(poll), {"options": option_ids(poll)[:1]}, format="json", **keyed(key)
    )

    assert_error(answer, 400, "invalid_idempotency_key")
    assert votes(poll) == [0, 0, 0]
    assert not IdempotencyKey.objects.exists()


def test_an_expired_key_may_name_another_request(poll: Poll, voter: APIClient) -> None:
    pizza, soup, _ = option_ids(poll)
    voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("k-6"))
    voter.delete(vote_url(poll))
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    answer = voter.post(vote_url(poll), {"options": [soup]}, format="json", **keyed("k-6"))

    assert answer.status_code == 201
    assert REPLAYED not in answer
    assert votes(poll) == [0, 1, 0]


def test_requests_without_a_key_are_untouched(poll: Poll, voter: APIClient) -> None:
    answer = voter.post(vote_url(poll), {"options": option_ids(poll)[:1]}, format="json")

    assert answer.status_code == 201
    assert not IdempotencyKey.objects.exists()


def test_purging_deletes_expired_keys_only(poll: Poll, voter: APIClient) -> None:
    pizza, soup, _ = option_ids(poll)
    voter.post(vote_url(poll), {"options": [pizza]}, format="json", **keyed("old"))
    voter.put(vote_url(poll), {"options": [soup]}, format="json", **keyed("new"))
    IdempotencyKey.objects.filter(key="old").update(expires_at=timezone.now())
    out = StringIO()

    call_command("polls_purge_idempotency_keys", stdout=out)

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert out.getvalue().strip() == "1 expired idempotency key(s) deleted."


@pytest.mark.skipif(
    connection.vendor not in ("postgresql", "mysql"),
    reason="needs PostgreSQL or MySQL/MariaDB (row locks; SQLite runs one writer at a time)",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["vote", "create"])
def test_twenty_simultaneous_requests_with_one_key_act_once(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], action: str
) -> None:
    from rest_framework.authtoken.models import Token

    poll = make_poll()
    user = make_user()
    token = Token.objects.create(user=user).key
    if action == "vote":
        path, body = vote_url(poll), {"options": option_ids(poll)[:1]}
    else:
        path, body = POLLS, {"title": "Once?", "options": [{"text": "Yes"}, {"text": "No"}]}
    barrier = threading.Barrier(20)
    answers: list[Any] = [None] * 20

    def send(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(timeout=30)
            answers[index] = client.post(path, body, format="json", **keyed("once"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    others = [(answer.status_code, answer.content) for answer in answers]
    done = [answer for answer in answers if answer.status_code == 201]
    busy = [answer for answer in answers if answer.status_code == 409]
    assert len(done) + len(busy) == 20, others
    assert len([answer for answer in done if REPLAYED not in answer]) == 1
    assert len({answer.content for answer in done}) == 1
    assert all(answer.json()["code"] == "idempotency_key_in_progress" for answer in busy)
    if action == "vote":
        assert votes(poll) == [1, 0]
    else:
        assert Poll.objects.filter(title="Once?").count() == 1
