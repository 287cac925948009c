"""The audit trail (DJANGO_POLLS["AUDIT_TRAIL"]): every lifecycle change and changed or withdrawn
ballot recorded in its own transaction, hash-chained; the owner reads it at ``audit/``;
``polls_verify_audit`` finds entries edited or removed through SQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_polls import services
from django_polls.conf import polls_settings
from django_polls.models import AuditHead, AuditRecord, Poll
from tests.conftest import assert_error, option_ids

POLLS = "/api/v1/polls/"


@pytest.fixture(autouse=True)
def trail_on() -> Iterator[None]:
    with override_settings(DJANGO_POLLS={"AUDIT_TRAIL": True}):
        yield


def actions(poll_id: int) -> list[str]:
    return list(AuditRecord.objects.filter(poll_id=poll_id).values_list("action", flat=True))


def entries(poll_id: int) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(poll_id=poll_id).order_by("seq"))


def verify() -> list[str]:
    return [str(problem) for problem in services.verify_audit()]


def create(client: APIClient, **fields: Any) -> dict[str, Any]:
    body = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}], **fields}
    answer = client.post(POLLS, body, format="json")
    assert answer.status_code == 201, answer.content
    return dict(answer.json())


def test_a_polls_life_is_recorded_in_order_and_chained(
    alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    owner, voter = client_for(alice), client_for(bob)
    poll = create(owner, anonymity="public")
    pizza, soup = (option["id"] for option in poll["options"])
    url = f"{POLLS}{poll['id']}/"

    owner.patch(url, {"title": "Dinner?"}, format="json")
    voter.post(f"{url}vote/", {"options": [pizza]}, format="json")
    voter.put(f"{url}vote/", {"options": [soup]}, format="json")
    voter.delete(f"{url}vote/")
    owner.post(f"{url}close/")
    owner.delete(url)

    trail = entries(poll["id"])
    assert [entry.action for entry in trail] == [
        "created",
        "opened",
        "edited",
        "ballot_changed",
        "ballot_retracted",
        "closed",
        "deleted",
    ]
    assert [entry.seq for entry in trail] == list(range(1, 8))
    assert [entry.prev_hash for entry in trail] == ["", *(entry.hash for entry in trail[:-1])]
    created, _, edited, changed, retracted, closed, deleted = trail
    assert created.data["title"] == "Lunch?" and created.data["options"] == ["Pizza", "Soup"]
    assert edited.data == {"title": ["Lunch?", "Dinner?"]}
    assert changed.data == {"previous": [pizza], "current": [soup]}
    assert retracted.data == {"previous": [soup], "current": []}
    assert deleted.data == {"title": "Dinner?"}
    assert {created.actor, edited.actor, closed.actor, deleted.actor} == {str(alice.pk)}
    assert changed.actor == retracted.actor == str(bob.pk)
    # The trail outlives the poll, and is intact.
    assert not Poll.objects.filter(pk=poll["id"]).exists()
    assert verify() == []


def test_an_anonymous_polls_trail_names_the_voter_but_never_the_choice(
    make_poll: Callable[..., Poll], alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(anonymity="anonymous")
    pizza, soup = option_ids(poll)
    voter = client_for(alice)
    voter.post(f"{POLLS}{poll.pk}/vote/", {"options": [pizza]}, format="json")
    voter.put(f"{POLLS}{poll.pk}/vote/", {"options": [soup]}, format="json")

    changed = AuditRecord.objects.get(poll_id=poll.pk, action="ballot_changed")

    assert changed.actor == str(alice.pk)
    assert changed.data == {}


def test_ballots_cast_and_refused_changes_leave_no_entry(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, client_for: Callable[[Any], APIClient]
) -> None:
    poll = make_poll(created_by=alice)
    before = actions(poll.pk)
    client_for(bob).post(
        f"{POLLS}{poll.pk}/vote/", {"options": option_ids(poll)[:1]}, format="json"
    )
    # Options cannot change once the poll has votes: refused, and nothing recorded.
    refused = client_for(alice).patch(
        f"{POLLS}{poll.pk}/", {"options": [{"text": "A"}, {"text": "B"}]}, format="json"
    )

    assert_error(refused, 409, "poll_has_votes")
    assert actions(poll.pk) == before == ["created", "opened"]


def test_the_owner_and_staff_read_the_trail_others_may_not(
    alice: Any,
    bob: Any,
    make_user: Callable[..., Any],
    client_for: Callable[[Any], APIClient],
    anon: APIClient,
) -> None:
    poll = create(client_for(alice))
    url = f"{POLLS}{poll['id']}/audit/"
    staff = make_user(is_staff=True)

    mine = client_for(alice).get(url)
    theirs = client_for(staff).get(url)

    assert mine.status_code == theirs.status_code == 200
    page = mine.json()
    assert page["count"] == 2
    first = page["results"][0]
    # The actor named as the site names users (DJANGO_POLLS["USER_DISPLAY"]).
    assert (first["seq"], first["action"], first["actor"], first["prev_hash"]) == (
        1,
        "created",
        str(polls_settings.USER_DISPLAY(alice)),
        "",
    )
    assert first["hash"] == AuditRecord.objects.get(poll_id=poll["id"], seq=1).hash
    assert_error(client_for(bob).get(url), 403, "permission_denied")
    assert_error(anon.get(url), 401, "not_authenticated")
    assert_error(client_for(alice).get(f"{POLLS}999999/audit/"), 404, "not_found")


def test_without_the_setting_nothing_is_recorded(
    alice: Any, client_for: Callable[[Any], APIClient]
) -> None:
    with override_settings(DJANGO_POLLS={}):
        poll = create(client_for(alice))
        client_for(alice).post(f"{POLLS}{poll['id']}/close/")

    assert actions(poll["id"]) == []


def test_opening_and_expiry_by_the_clock_are_recorded_once_at_their_time(
    make_poll: Callable[..., Poll],
) -> None:
    soon = timezone.now() + timedelta(hours=1)
    poll = make_poll(opens_at=soon, expires_at=soon + timedelta(hours=1))
    assert actions(poll.pk) == ["created"]

    assert services.record_transitions(now=soon + timedelta(minutes=1)) == 1
    assert services.record_transitions(now=soon + timedelta(hours=2)) == 1
    assert services.record_transitions(now=soon + timedelta(hours=3)) == 0

    _, opened, closed = entries(poll.pk)
    assert (opened.action, opened.at, opened.actor) == ("opened", soon, "")
    assert (closed.action, closed.at, closed.data) == (
        "closed",
        soon + timedelta(hours=1),
        {"expired": True},
    )
    assert verify() == []


def test_a_trail_begun_on_an_older_poll_records_only_what_follows(
    make_poll: Callable[..., Poll], alice: Any
) -> None:
    with override_settings(DJANGO_POLLS={}):
        poll = make_poll(created_by=alice)

    services.close_poll(poll=poll, actor=alice)
    services.record_transitions()

    assert actions(poll.pk) == ["closed"]
    assert AuditHead.objects.get(pk=poll.pk).seq == 1
    assert verify() == []


@pytest.fixture
def trail_of_three(make_poll: Callable[..., Poll], alice: Any) -> Poll:
    poll = make_poll(created_by=alice)
    services.update_poll(poll=poll, title="Dinner?", actor=alice)
    assert [entry.seq for entry in entries(poll.pk)] == [1, 2, 3]
    return poll


def tamper(sql: str, *params: Any) -> None:
    table = connection.ops.quote_name(AuditRecord._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(table=table), params)


def test_an_entry_edited_through_sql_is_found(trail_of_three: Poll) -> None:
    tamper(
        "UPDATE {table} SET data = %s WHERE poll_id = %s AND seq = 3",
        '{"title": ["Lunch?", "Brunch?"]}',
        trail_of_three.pk,
    )

    assert verify() == [f"poll {trail_of_three.pk} entry 3: edited: its hash does not match it"]


def test_an_entry_removed_from_the_middle_is_found(trail_of_three: Poll) -> None:
    tamper("DELETE FROM {table} WHERE poll_id = %s AND seq = 2", trail_of_three.pk)

    assert verify() == [f"poll {trail_of_three.pk} entry 2: missing (the next entry is 3)"]


def test_entries_cut_from_the_end_are_found(trail_of_three: Poll) -> None:
    tamper("DELETE FROM {table} WHERE poll_id = %s AND seq = 3", trail_of_three.pk)

    (problem,) = verify()
    assert problem.startswith(f"poll {trail_of_three.pk}: ends at entry 2, but its head says 3")


def test_polls_verify_audit_exits_1_on_tampering(trail_of_three: Poll) -> None:
    out = StringIO()
    call_command("polls_verify_audit", stdout=out)
    assert out.getvalue().strip() == "The audit trail is intact."

    tamper("UPDATE {table} SET actor = %s WHERE poll_id = %s AND seq = 1", "0", trail_of_three.pk)
    with pytest.raises(CommandError) as refused:
        call_command("polls_verify_audit", stdout=out)

    assert refused.value.returncode == 1
    assert f"poll {trail_of_three.pk} entry 1: edited" in out.getvalue()


@pytest.mark.skipif(
    connection.vendor not in ("postgresql", "mysql"),
    reason="needs PostgreSQL or MySQL/MariaDB (concurrent transactions)",
)
@pytest.mark.django_db(transaction=True)
def test_simultaneous_changes_of_many_voters_chain_without_a_gap(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    from rest_framework.authtoken.models import Token

    poll = make_poll(anonymity="public")
    pizza, soup = option_ids(poll)
    clients = []
    for _ in range(12):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user())}")
        client.post(f"{POLLS}{poll.pk}/vote/", {"options": [pizza]}, format="json")
        clients.append(client)
    barrier = threading.Barrier(len(clients))
    answers: list[int] = []

    def change(client: APIClient) -> None:
        try:
            barrier.wait(timeout=30)
            answers.append(
                client.put(
                    f"{POLLS}{poll.pk}/vote/", {"options": [soup]}, format="json"
                ).status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert answers == [200] * 12
    trail = entries(poll.pk)
    assert [entry.seq for entry in trail] == list(range(1, 15))
    assert actions(poll.pk).count("ballot_changed") == 12
    assert verify() == []
