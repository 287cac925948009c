"""Webhooks: subscriptions through the API, events written in the transaction of their change,
and deliveries to real receivers on 127.0.0.1 (signed, retried, parked, never sent to an address
that is not public). The sender killed mid-batch and a thousand ballots delivered once are in
tests/example/test_webhooks.py, against the example project under Gunicorn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from django_polls import services, webhooks
from django_polls.models import (
    Poll,
    WebhookClock,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from tests.conftest import assert_error, option_ids

SECRET = "a-secret-of-some-length"
LOCAL = ["127.0.0.1/32"]


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every request and answers as told: ``status``,
    after ``delay`` seconds."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        self.headers: dict[str, str] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(request["body"]) for request in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def local_hooks(settings: Any) -> None:
    """Webhooks may reach 127.0.0.1, where the tests' receivers listen."""
    settings.DJANGO_POLLS = {
        **getattr(settings, "DJANGO_POLLS", {}),
        "WEBHOOK_ALLOWED_NETWORKS": LOCAL,
        "WEBHOOK_TIMEOUT": 2,
        "WEBHOOK_MAX_ATTEMPTS": 3,
    }


@pytest.fixture
def subscribe(local_hooks: None, receiver: Receiver) -> Callable[..., WebhookSubscription]:
    def make(user: Any, events: list[str] | None = None, **fields: Any) -> WebhookSubscription:
        return services.create_subscription(
            created_by=user,
            url=fields.pop("url", receiver.url),
            secret=SECRET,
            events=events or list(WebhookEvent.values),
            **fields,
        )

    return make


def sent(*, poll: Poll | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The events in the outbox (of ``poll``), oldest first: (type, data)."""
    rows = WebhookDelivery.objects.order_by("pk")
    if poll is not None:
        rows = rows.filter(poll_id=poll.pk)
    return [(row.event, row.data) for row in rows]


def deliver_all() -> int:
    total = 0
    while (done := webhooks.deliver_due(limit=50)) > 0:
        total += done
    return total


# -- subscriptions through the API ------------------------------------------------------------


@pytest.mark.django_db
def test_a_subscription_is_made_read_and_listed_without_its_secret(
    local_hooks: None, receiver: Receiver, alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    url = reverse("django_polls:webhook-list")

    made = client.post(
        url, {"url": receiver.url, "events": ["vote.cast"], "secret": SECRET}, format="json"
    )

    assert made.status_code == 201, made.content
    assert made.json()["events"] == ["vote.cast"]
    detail = reverse("django_polls:webhook-detail", args=[made.json()["id"]])
    for answer in (made, client.get(url), client.get(detail)):
        assert SECRET not in answer.content.decode()
    assert client.get(url).json()["count"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
    ],
)
def test_urls_that_reach_no_public_address_are_refused(
    url: str, alice: Any, client_for: Any
) -> None:
    answer = client_for(alice).post(
        reverse("django_polls:webhook-list"),
        {"url": url, "events": ["vote.cast"], "secret": SECRET},
        format="json",
    )

    assert answer.status_code == 400, answer.content
    assert "url" in answer.json()
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["vote.cast"], "secret": "short"}, "secret"),
        ({"events": ["vote.exploded"], "secret": SECRET}, "events"),
        ({"events": [], "secret": SECRET}, "events"),
        ({"events": "vote.cast", "secret": SECRET}, "events"),
        ({"events": ["vote.cast"]}, "secret"),
    ],
)
def test_bad_subscriptions_are_400_and_change_nothing(
    local_hooks: None,
    receiver: Receiver,
    body: dict[str, Any],
    field: str,
    alice: Any,
    client_for: Any,
) -> None:
    answer = client_for(alice).post(
        reverse("django_polls:webhook-list"), {"url": receiver.url, **body}, format="json"
    )

    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_only_staff_subscribe_to_every_poll(
    local_hooks: None, receiver: Receiver, alice: Any, make_user: Any, client_for: Any
) -> None:
    body = {"url": receiver.url, "events": ["poll.created"], "secret": SECRET, "site_wide": True}
    url = reverse("django_polls:webhook-list")

    assert_error(client_for(alice).post(url, body, format="json"), 403, "permission_denied")
    staff = make_user("staff", is_staff=True)
    assert client_for(staff).post(url, body, format="json").status_code == 201


@pytest.mark.django_db
def test_a_users_subscriptions_are_theirs_alone(
    subscribe: Any, alice: Any, bob: Any, client_for: Any
) -> None:
    mine = subscribe(alice)
    detail = reverse("django_polls:webhook-detail", args=[mine.pk])

    assert client_for(bob).get(reverse("django_polls:webhook-list")).json()["count"] == 0
    assert_error(client_for(bob).get(detail), 404, "not_found")
    assert_error(client_for(bob).delete(detail), 404, "not_found")
    assert_error(client_for(None).get(detail), 401, "not_authenticated")
    assert client_for(alice).patch(detail, {"is_active": False}, format="json").status_code == 200
    assert WebhookSubscription.objects.get().is_active is False


@pytest.mark.django_db
def test_a_user_holds_at_most_the_subscriptions_allowed(
    settings: Any, subscribe: Any, receiver: Receiver, alice: Any, client_for: Any
) -> None:
    settings.DJANGO_POLLS = {**settings.DJANGO_POLLS, "WEBHOOK_MAX_SUBSCRIPTIONS": 2}
    body = {"url": receiver.url, "events": ["vote.cast"], "secret": SECRET}
    client = client_for(alice)
    url = reverse("django_polls:webhook-list")

    assert [client.post(url, body, format="json").status_code for _ in range(3)] == [201, 201, 400]


# -- events, written with their change -----------------------------------------------------------


@pytest.mark.django_db
def test_a_polls_lifecycle_is_announced_to_its_owner_and_site_wide_subscriptions(
    subscribe: Any, alice: Any, bob: Any, make_user: Any, make_poll: Any
) -> None:
    subscribe(alice)
    site = subscribe(make_user("staff", is_staff=True), site_wide=True)

    poll = make_poll(created_by=alice)
    services.close_poll(poll=poll, actor=alice)
    services.delete_poll(poll=poll, actor=alice)
    make_poll(created_by=bob)  # heard by the site-wide subscription alone

    events = [event for event, _ in sent(poll=poll)]
    assert (
        events
        == ["poll.created"] * 2 + ["poll.opened"] * 2 + ["poll.closed"] * 2 + ["poll.deleted"] * 2
    )
    assert WebhookDelivery.objects.filter(subscription=site).count() == 4 + 2
    created = sent(poll=poll)[0][1]
    assert created["id"] == poll.pk and created["title"] == "Lunch?"
    # One event, one id, whichever subscription it goes to.
    ids = WebhookDelivery.objects.filter(poll_id=poll.pk, event="poll.closed")
    assert len({row.event_id for row in ids}) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("anonymity", "shown"),
    [("public", {"voter", "ballot"}), ("anonymous", {"ballot"}), ("secret", {"counts"})],
)
def test_vote_events_tell_what_the_polls_anonymity_allows(
    subscribe: Any,
    alice: Any,
    bob: Any,
    make_poll: Any,
    client_for: Any,
    anonymity: str,
    shown: set[str],
) -> None:
    subscribe(alice, ["vote.cast", "vote.changed", "vote.retracted"])
    poll = make_poll(created_by=alice, anonymity=anonymity, options=("A", "B", "C"))
    first, second = option_ids(poll)[:2]
    vote = reverse("django_polls:poll-vote", args=[poll.pk])
    client = client_for(bob)

    assert client.post(vote, {"options": [first]}, format="json").status_code == 201
    if anonymity == "secret":  # ballots are final there: nothing to change or withdraw
        assert sent(poll=poll) == [("vote.cast", {"poll": poll.pk, "counts": None})]
        return
    assert client.put(vote, {"options": [second]}, format="json").status_code == 200
    assert client.delete(vote).status_code == 204

    events = sent(poll=poll)
    assert [event for event, _ in events] == ["vote.cast", "vote.changed", "vote.retracted"]
    cast, changed, retracted = (data for _, data in events)
    assert set(cast) == {"poll", *shown}
    assert cast["ballot"] == {"options": [first]}
    assert changed["ballot"] == {"options": [second]}
    assert changed["previous"] == {"options": [first]}
    assert retracted["previous"] == {"options": [second]} and "ballot" not in retracted
    if anonymity == "public":
        assert cast["voter"] == str(bob.pk)
    else:
        assert all("voter" not in data for _, data in events)


@pytest.mark.django_db
def test_a_ranked_ballot_is_announced_as_its_ranking(
    subscribe: Any, alice: Any, bob: Any, make_poll: Any, client_for: Any
) -> None:
    subscribe(alice, ["vote.cast"])
    poll = make_poll(created_by=alice, method="ranked", options=("A", "B", "C"))
    ranking = list(reversed(option_ids(poll)))

    answer = client_for(bob).post(
        reverse("django_polls:poll-vote", args=[poll.pk]), {"ranking": ranking}, format="json"
    )

    assert answer.status_code == 201, answer.content
    assert sent(poll=poll) == [("vote.cast", {"poll": poll.pk, "ballot": {"ranking": ranking}})]


@pytest.mark.django_db
def test_a_refused_ballot_announces_nothing(
    subscribe: Any, alice: Any, bob: Any, make_poll: Any, client_for: Any
) -> None:
    subscribe(alice, ["vote.cast"])
    poll = make_poll(created_by=alice)
    vote = reverse("django_polls:poll-vote", args=[poll.pk])
    client = client_for(bob)
    client.post(vote, {"options": option_ids(poll)[:1]}, format="json")

    assert_error(
        client.post(vote, {"options": option_ids(poll)[1:]}, format="json"), 409, "already_voted"
    )
    assert client.post(vote, {"options": [0]}, format="json").status_code == 400

    assert [event for event, _ in sent(poll=poll)] == ["vote.cast"]


@pytest.mark.django_db
def test_nothing_is_announced_of_a_change_rolled_back(
    subscribe: Any, alice: Any, bob: Any, make_poll: Any
) -> None:
    subscribe(alice)
    poll = make_poll(created_by=alice)

    with pytest.raises(RuntimeError), transaction.atomic():
        services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=option_ids(poll)[:1])
        services.close_poll(poll=poll, actor=alice)
        assert [event for event, _ in sent(poll=poll)][-2:] == ["vote.cast", "poll.closed"]
        raise RuntimeError("rolled back")

    assert [event for event, _ in sent(poll=poll)] == ["poll.created", "poll.opened"]


@pytest.mark.django_db
def test_inactive_subscriptions_and_events_not_chosen_get_nothing(
    subscribe: Any, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["vote.cast"])
    subscribe(alice, is_active=False)

    make_poll(created_by=alice)

    assert sent() == []


@pytest.mark.django_db
def test_opening_and_expiry_by_the_clock_are_announced_once(
    subscribe: Any, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.opened", "poll.closed"])
    webhooks.deliver_due()  # the first round marks the time
    now = timezone.now()
    scheduled = make_poll(created_by=alice, opens_at=now + timedelta(minutes=1))
    expiring = make_poll(created_by=alice, expires_at=now + timedelta(minutes=2))
    opened_at_once = [event for event, _ in sent(poll=expiring)]

    later = now + timedelta(minutes=3)
    assert services.webhooks.announce_transitions(now=later) == 2
    assert services.webhooks.announce_transitions(now=later + timedelta(seconds=1)) == 0

    assert (
        sent(poll=scheduled) == [("poll.opened", sent(poll=scheduled)[0][1])]
        and sent(poll=scheduled)[0][1]["id"] == scheduled.pk
    )
    closing = sent(poll=expiring)[len(opened_at_once) :]
    assert [(event, data["expired"]) for event, data in closing] == [("poll.closed", True)]
    assert WebhookClock.objects.get().swept_at == later


# -- delivery to real receivers ------------------------------------------------------------------


@pytest.mark.django_db
def test_an_event_is_posted_signed_with_its_id(
    subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    poll = make_poll(created_by=alice, title="Signed")

    assert deliver_all() == 1

    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    event = json.loads(body)
    row = WebhookDelivery.objects.get()
    assert event["id"] == str(row.event_id) == headers["X-Polls-Event-Id"]
    assert event["type"] == headers["X-Polls-Event"] == "poll.created"
    assert event["data"]["title"] == "Signed" and event["data"]["id"] == poll.pk
    assert webhooks.verify_signature(body, headers["X-Polls-Signature"], SECRET)
    assert not webhooks.verify_signature(body, headers["X-Polls-Signature"], "another-secret-x")
    assert not webhooks.verify_signature(body + b" ", headers["X-Polls-Signature"], SECRET)
    # An old signature is a replay.
    assert not webhooks.verify_signature(
        body, headers["X-Polls-Signature"], SECRET, now=time.time() + 600
    )
    assert row.status == "delivered" and row.response_status == 200 and row.attempts == 1
    assert SECRET not in json.dumps(headers) + body.decode()


@pytest.mark.django_db
def test_a_receiver_that_fails_is_retried_with_backoff_then_parked_and_can_be_resent(
    subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any, client_for: Any
) -> None:
    subscription = subscribe(alice, ["poll.created"])
    make_poll(created_by=alice)
    receiver.status = 500

    delays = []
    for attempt in (1, 2, 3):
        before = timezone.now()
        assert webhooks.deliver_due() == 1
        row = WebhookDelivery.objects.get()
        assert row.attempts == attempt and row.response_status == 500
        assert row.last_error == "answered 500"
        if attempt < 3:
            assert row.status == "pending"
            delays.append((row.next_attempt_at - before).total_seconds())
            WebhookDelivery.objects.update(next_attempt_at=timezone.now())  # skip the wait
    assert row.status == "failed"  # WEBHOOK_MAX_ATTEMPTS is 3 here
    # 30 s, then 60 s, each drawn between half and all of it, counted from before the attempt.
    assert 15 <= delays[0] <= 36 and 30 <= delays[1] <= 66
    assert len(receiver.requests) == 3
    assert len({request["headers"]["X-Polls-Event-Id"] for request in receiver.requests}) == 1

    receiver.status = 204
    client = client_for(alice)
    resend = reverse("django_polls:webhook-redeliver", args=[subscription.pk, row.pk])
    answer = client.post(resend)
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    assert deliver_all() == 1
    listed = client.get(reverse("django_polls:webhook-deliveries", args=[subscription.pk]))
    assert listed.json()["results"][0]["status"] == "delivered"
    assert listed.json()["results"][0]["response_status"] == 204


@pytest.mark.django_db
def test_a_receiver_that_is_down_is_an_attempt_failed(
    local_hooks: None, alice: Any, make_poll: Any
) -> None:
    down = Receiver()
    down.close()  # its port answers nothing now
    services.create_subscription(
        created_by=alice, url=down.url, secret=SECRET, events=["poll.created"]
    )
    make_poll(created_by=alice)

    assert webhooks.deliver_due() == 1

    row = WebhookDelivery.objects.get()
    assert row.status == "pending" and row.response_status is None
    assert row.last_error.startswith("no answer")


@pytest.mark.django_db
def test_a_slow_receiver_is_cut_off_at_the_timeout(
    subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    make_poll(created_by=alice)
    receiver.delay = 6  # WEBHOOK_TIMEOUT is 2 here

    started = time.monotonic()
    webhooks.deliver_due()
    took = time.monotonic() - started

    row = WebhookDelivery.objects.get()
    assert row.status == "pending" and row.last_error == "no answer: timed out"
    assert took < 5


@pytest.mark.django_db
def test_redirects_are_not_followed(
    subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    make_poll(created_by=alice)
    receiver.status = 302
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}

    webhooks.deliver_due()

    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().last_error == "answered 302"


@pytest.mark.django_db
def test_an_address_allowed_once_and_no_longer_gets_nothing(
    settings: Any, subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    make_poll(created_by=alice)
    settings.DJANGO_POLLS = {**settings.DJANGO_POLLS, "WEBHOOK_ALLOWED_NETWORKS": []}

    webhooks.deliver_due()

    assert receiver.requests == []
    assert "not a public address" in WebhookDelivery.objects.get().last_error


@pytest.mark.django_db
def test_a_secret_polls_counts_are_read_when_first_sent_and_kept_for_retries(
    subscribe: Any, receiver: Receiver, alice: Any, bob: Any, make_poll: Any, make_user: Any
) -> None:
    subscribe(alice, ["vote.cast"])
    poll = make_poll(created_by=alice, anonymity="secret")
    first, second = option_ids(poll)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first])
    receiver.status = 503

    webhooks.deliver_due()
    services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=[second])
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    webhooks.deliver_due()
    events = [str(row.event_id) for row in WebhookDelivery.objects.order_by("pk")]

    first_event, *retries = [body for body in receiver.events() if body["id"] == events[0]]
    (second_event,) = [body for body in receiver.events() if body["id"] == events[1]]
    expected = {"voters": 1, "options": [{"id": first, "votes": 1}, {"id": second, "votes": 0}]}
    assert first_event["data"] == {"poll": poll.pk, "counts": expected}
    assert [retry["data"] for retry in retries] == [first_event["data"]]
    assert second_event["data"]["counts"]["voters"] == 2


@pytest.mark.django_db
def test_polls_deliver_once_sends_everything_due(
    subscribe: Any, receiver: Receiver, alice: Any, make_poll: Any, capsys: Any
) -> None:
    subscribe(alice, ["poll.created"])
    for _ in range(3):
        make_poll(created_by=alice)

    call_command("polls_deliver", "--once", "--batch", "2")

    assert "3 deliveries sent." in capsys.readouterr().out
    assert len(receiver.requests) == 3
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


# -- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff_client(make_user: Any) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


@pytest.mark.django_db
def test_the_admin_adds_a_subscription_checked_and_never_shows_its_secret(
    local_hooks: None, receiver: Receiver, staff_client: Any, alice: Any
) -> None:
    form = {
        "created_by": alice.pk,
        "url": "http://10.0.0.1/hook",
        "secret": SECRET,
        "events": ["vote.cast"],
        "is_active": "on",
        "description": "",
    }

    refused = staff_client.post("/admin/django_polls/webhooksubscription/add/", form)
    assert refused.status_code == 200 and "not a public address" in refused.content.decode()
    assert not WebhookSubscription.objects.exists()

    added = staff_client.post(
        "/admin/django_polls/webhooksubscription/add/", {**form, "url": receiver.url}
    )
    assert added.status_code == 302
    subscription = WebhookSubscription.objects.get()
    assert subscription.secret == SECRET and subscription.events == ["vote.cast"]
    change = staff_client.get(f"/admin/django_polls/webhooksubscription/{subscription.pk}/change/")
    assert SECRET not in change.content.decode()
    # Saved without a secret, it keeps its secret.
    staff_client.post(
        f"/admin/django_polls/webhooksubscription/{subscription.pk}/change/",
        {**form, "url": receiver.url, "secret": "", "description": "renamed"},
    )
    subscription.refresh_from_db()
    assert subscription.description == "renamed" and subscription.secret == SECRET


@pytest.mark.django_db
def test_failed_deliveries_are_listed_and_sent_again_from_the_admin(
    subscribe: Any, receiver: Receiver, staff_client: Any, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    make_poll(created_by=alice)
    WebhookDelivery.objects.update(status="failed", attempts=3, last_error="answered 500")
    row = WebhookDelivery.objects.get()

    listing = staff_client.get("/admin/django_polls/webhookdelivery/?status__exact=failed")
    assert "answered 500" in listing.content.decode()
    assert staff_client.get("/admin/django_polls/webhookdelivery/add/").status_code == 403
    staff_client.post(
        "/admin/django_polls/webhookdelivery/",
        {"action": "send_again", "_selected_action": [row.pk]},
    )
    assert deliver_all() == 1

    row.refresh_from_db()
    assert row.status == "delivered" and row.attempts == 1
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_old_deliveries_are_removed_once_delivered_or_failed(
    subscribe: Any, alice: Any, make_poll: Any
) -> None:
    subscribe(alice, ["poll.created"])
    for _ in range(3):
        make_poll(created_by=alice)
    old = timezone.now() - timedelta(days=31)
    first, second, third = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=first.pk).update(status="delivered", created_at=old)
    WebhookDelivery.objects.filter(pk=second.pk).update(status="failed", created_at=old)
    WebhookDelivery.objects.filter(pk=third.pk).update(created_at=old)  # still pending

    assert services.webhooks.purge_old_deliveries(batch=1) == 2

    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [third.pk]
