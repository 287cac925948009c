"""One clock judges whether a poll is open: ballots, retraction, ``is_active`` and the
``is_active=`` filter agree, even when this process's clock disagrees with the database's.

The process's clock is really moved (``django.utils.timezone.now`` shifted by an hour); the
database's cannot be, and on PostgreSQL it is the clock that counts (shared by every app server).
Where the process's clock is the only one (SQLite), every answer moves with it, alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIRequestFactory, force_authenticate

from django_polls import live, services
from django_polls.models import Poll, Vote
from django_polls.views import PollViewSet
from tests.conftest import option_ids

HOUR = timedelta(hours=1)


def ballot_clock() -> datetime:
    """The time by the clock that stamps ballots."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            now: datetime = cursor.fetchone()[0]
            return now
    return timezone.now()


@pytest.fixture
def shift_process_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    def shift(by: timedelta) -> None:
        real = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real() + by)

    return shift


def answers(client: Any, poll: Poll) -> dict[str, Any]:
    """Whether the poll is open, as every endpoint that tells says it."""
    detail = client.get(reverse("django_polls:poll-detail", args=[poll.pk])).json()
    results = client.get(reverse("django_polls:poll-results", args=[poll.pk])).json()
    listed = reverse("django_polls:poll-list")
    open_ids = [p["id"] for p in client.get(listed, {"is_active": "true"}).json()["results"]]
    finished_ids = [p["id"] for p in client.get(listed, {"is_active": "false"}).json()["results"]]
    return {
        "poll body": detail["is_active"],
        "results": results["is_active"],
        "in is_active=true": poll.pk in open_ids,
        "in is_active=false": poll.pk in finished_ids,
    }


def test_a_poll_open_by_the_ballot_clock_is_open_everywhere_while_the_process_runs_late(
    make_poll, alice, bob, client_for, shift_process_clock
):
    poll = make_poll(created_by=alice)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    shift_process_clock(HOUR)  # this process believes it is an hour later than it is
    # Expires half an hour from now by the ballot clock: an expiry past by the process's clock.
    Poll.objects.filter(pk=poll.pk).update(expires_at=ballot_clock() + HOUR / 2)
    client = client_for(bob)

    assert answers(client, poll) == {
        "poll body": True,
        "results": True,
        "in is_active=true": True,
        "in is_active=false": False,
    }
    vote = reverse("django_polls:poll-vote", args=[poll.pk])
    assert client.delete(vote).status_code == 204
    assert client.post(vote, {"options": option_ids(poll)[1:]}, format="json").status_code == 201


def test_a_poll_expired_by_the_ballot_clock_is_closed_everywhere_while_the_process_runs_early(
    make_poll, alice, bob, client_for, shift_process_clock
):
    poll = make_poll(created_by=alice)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
    shift_process_clock(-HOUR)  # this process believes it is an hour earlier than it is
    # Expired half an hour ago by the ballot clock: an expiry still to come by the process's.
    Poll.objects.filter(pk=poll.pk).update(expires_at=ballot_clock() - HOUR / 2)
    client = client_for(bob)

    assert answers(client, poll) == {
        "poll body": False,
        "results": False,
        "in is_active=true": False,
        "in is_active=false": True,
    }
    vote = reverse("django_polls:poll-vote", args=[poll.pk])
    refused = client.delete(vote)
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "poll_closed"
    assert client.post(vote, {"options": option_ids(poll)[1:]}, format="json").status_code == 409
    assert Vote.objects.filter(poll=poll, voter=bob).count() == 1


@pytest.mark.parametrize("skew", [HOUR, -HOUR], ids=["process late", "process early"])
def test_a_live_stream_waits_for_the_expiry_by_the_clock_of_is_active(
    make_poll, shift_process_clock, skew
):
    """A stream reads the results again once the poll expires: by the clock that judges
    ``is_active``, not too early (reading again and again while the poll stays open) nor an hour
    late (the expiry unannounced)."""
    poll = make_poll()
    shift_process_clock(skew)
    Poll.objects.filter(pk=poll.pk).update(expires_at=ballot_clock() + HOUR / 2)

    found = live.read_results(poll.pk)

    assert found is not None
    body, expires_at, _ = found
    assert body["is_active"] is True
    assert expires_at is not None
    wait = (expires_at - timezone.now()).total_seconds()
    assert 29 * 60 < wait <= 30 * 60


class OwnPollsOnly(PollViewSet):
    """A host's narrowing, which the results action serves by a query of its own."""

    def get_queryset(self) -> Any:
        return super().get_queryset().filter(created_by=self.request.user)


@pytest.mark.parametrize(
    ("skew", "expiry", "is_active"),
    [(HOUR, HOUR / 2, True), (-HOUR, -HOUR / 2, False)],
    ids=["process late", "process early"],
)
def test_results_of_a_narrowed_viewset_follow_the_ballot_clock(
    make_poll, alice, shift_process_clock, skew, expiry, is_active
):
    poll = make_poll(created_by=alice)
    shift_process_clock(skew)
    Poll.objects.filter(pk=poll.pk).update(expires_at=ballot_clock() + expiry)
    request = APIRequestFactory().get(reverse("django_polls:poll-results", args=[poll.pk]))
    force_authenticate(request, user=alice)

    response = OwnPollsOnly.as_view({"get": "results"})(request, pk=str(poll.pk))

    assert response.status_code == 200
    assert response.data["is_active"] is is_active


@pytest.mark.parametrize(
    ("skew", "expiry", "status"),
    [(HOUR, HOUR / 2, 201), (-HOUR, -HOUR / 2, 400)],
    ids=["process late", "process early"],
)
def test_a_new_expiry_must_lie_in_the_future_by_the_ballot_clock(
    alice, client_for, shift_process_clock, skew, expiry, status
):
    """Else a poll could be born expired, or refused an expiry it would keep for half an hour."""
    shift_process_clock(skew)
    body = {
        "title": "Lunch?",
        "options": [{"text": "Pizza"}, {"text": "Soup"}],
        "expires_at": (ballot_clock() + expiry).isoformat(),
    }

    response = client_for(alice).post(reverse("django_polls:poll-list"), body, format="json")

    assert response.status_code == status, response.content
    if status == 201:
        assert response.json()["is_active"] is True
    else:
        assert set(response.json()) == {"expires_at"}


@pytest.mark.parametrize(
    ("skew", "expiry", "active"),
    [(HOUR, HOUR / 2, True), (-HOUR, -HOUR / 2, False)],
    ids=["process late", "process early"],
)
def test_the_admin_list_shows_active_by_the_ballot_clock(
    make_poll, admin_client, shift_process_clock, skew, expiry, active
):
    poll = make_poll()
    shift_process_clock(skew)
    Poll.objects.filter(pk=poll.pk).update(expires_at=ballot_clock() + expiry)

    page = admin_client.get(reverse("admin:django_polls_poll_changelist")).content.decode()

    # "active" is the list's only yes/no column.
    assert ('alt="True"' in page) is active
    assert ('alt="False"' in page) is not active
