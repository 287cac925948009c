"""The poll fields of API v1.1 over HTTP: method, choice limits, opening time, status, results
visibility, anonymity, vote changes and voter group; what a poll with votes keeps; the status
filter. One test per rule of the contract's "New poll fields"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_polls import services
from django_polls.models import Option, Poll
from tests.conftest import assert_error, db_state, expire, option_ids

POLLS = "/api/v1/polls/"


def poll_url(poll_id: int) -> str:
    return f"{POLLS}{poll_id}/"


def options(*texts: str) -> list[dict[str, str]]:
    return [{"text": text} for text in texts]


def create(client: Any, **fields: Any) -> Any:
    body = {"title": "Board election", "options": options("Ann", "Ben", "Cat", "Dan"), **fields}
    return client.post(POLLS, body, format="json")


def assert_field_error(response: Any, field: str) -> None:
    """A 400 that blames exactly ``field``."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [field], body
    assert body[field]


def vote(poll: Poll, voter: Any, count: int = 1) -> None:
    services.cast_vote(poll_id=poll.pk, voter=voter, option_ids=option_ids(poll)[:count])


def soon(**delta: float) -> str:
    return (timezone.now() + timedelta(**delta)).isoformat()


@pytest.fixture
def owner(alice: Any, client_for: Callable[[Any], Any]) -> Any:
    return client_for(alice)


@pytest.fixture
def board() -> Group:
    return Group.objects.create(name="Board")


# ---------------------------------------------------------------------------------------------
# Creating: each field, its default and its 400s


def test_a_v1_body_gets_v1_behaviour_in_the_new_fields(owner: Any) -> None:
    response = create(owner)

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in body if key not in {"id", "created_at", "options"}} == {
        "title": "Board election",
        "description": "",
        "expires_at": None,
        "allow_multiple_votes": False,
        "is_active": True,
        "created_by": "alice",
        "total_votes": 0,
        "method": "single",
        "min_choices": 1,
        "max_choices": 1,
        "opens_at": None,
        "status": "open",
        "results_visibility": "always",
        "anonymity": "anonymous",
        "allow_vote_change": True,
        "voter_group": None,
        "max_score": None,
    }


@pytest.mark.parametrize(
    ("sent", "method", "multiple"),
    [
        ({"method": "multiple"}, "multiple", True),
        ({"method": "single"}, "single", False),
        ({"allow_multiple_votes": True}, "multiple", True),
        ({"allow_multiple_votes": False}, "single", False),
        ({"method": "multiple", "allow_multiple_votes": True}, "multiple", True),
    ],
    ids=["method multiple", "method single", "mode true", "mode false", "both agreeing"],
)
def test_method_and_allow_multiple_votes_set_each_other(
    owner: Any, sent: dict[str, Any], method: str, multiple: bool
) -> None:
    response = create(owner, **sent)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["method"], body["allow_multiple_votes"]) == (method, multiple)
    stored = Poll.objects.get()
    assert (stored.method, stored.allow_multiple_votes) == (method, multiple)


@pytest.mark.parametrize(
    "sent",
    [
        {"method": "single", "allow_multiple_votes": True},
        {"method": "multiple", "allow_multiple_votes": False},
    ],
)
def test_allow_multiple_votes_contradicting_the_method_is_400(
    owner: Any, sent: dict[str, Any]
) -> None:
    response = create(owner, **sent)

    assert_field_error(response, "allow_multiple_votes")
    assert not Poll.objects.exists()


@pytest.mark.parametrize("method", ["approval", "borda", "", None, 1])
def test_a_method_the_site_does_not_list_is_400(owner: Any, method: Any) -> None:
    assert_field_error(create(owner, method=method), "method")
    assert not Poll.objects.exists()


def test_min_and_max_choices_of_a_multiple_poll_are_stored_and_shown(owner: Any) -> None:
    response = create(owner, method="multiple", min_choices=2, max_choices=3)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["min_choices"], body["max_choices"]) == (2, 3)
    stored = Poll.objects.get()
    assert (stored.min_choices, stored.max_choices) == (2, 3)


@pytest.mark.parametrize("sent", [{}, {"max_choices": None}], ids=["left out", "null"])
def test_max_choices_left_out_or_null_is_every_option(owner: Any, sent: dict[str, Any]) -> None:
    response = create(owner, method="multiple", **sent)

    assert response.status_code == 201, response.content
    assert (response.json()["min_choices"], response.json()["max_choices"]) == (1, 4)
    assert Poll.objects.get().max_choices is None


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"min_choices": 0}, "min_choices"),
        ({"min_choices": -1}, "min_choices"),
        ({"max_choices": 0}, "max_choices"),
        ({"max_choices": 5}, "max_choices"),
        ({"min_choices": 5}, "min_choices"),
        ({"min_choices": 3, "max_choices": 2}, "min_choices"),
        ({"min_choices": "two"}, "min_choices"),
        ({"min_choices": None}, "min_choices"),
        ({"max_choices": 40000}, "max_choices"),
    ],
    ids=[
        "min 0",
        "min negative",
        "max 0",
        "max above the options",
        "min above the options",
        "min above max",
        "min not a number",
        "min null",
        "max beyond any column",
    ],
)
def test_choice_limits_out_of_range_are_400(owner: Any, sent: dict[str, Any], field: str) -> None:
    assert_field_error(create(owner, method="multiple", **sent), field)
    assert not Poll.objects.exists()


@pytest.mark.parametrize(
    ("sent", "field"),
    [({"min_choices": 2}, "min_choices"), ({"max_choices": 2}, "max_choices")],
)
def test_a_single_poll_takes_limits_of_1_only(owner: Any, sent: dict[str, Any], field: str) -> None:
    assert_field_error(create(owner, method="single", **sent), field)
    assert not Poll.objects.exists()


def test_a_single_poll_accepts_limits_of_1(owner: Any) -> None:
    response = create(owner, method="single", min_choices=1, max_choices=1)

    assert response.status_code == 201, response.content
    assert (response.json()["min_choices"], response.json()["max_choices"]) == (1, 1)


def test_a_poll_that_opens_later_is_scheduled(owner: Any, anon: Any) -> None:
    opens_at = timezone.now() + timedelta(days=1)

    response = create(owner, opens_at=opens_at.isoformat())

    assert response.status_code == 201, response.content
    body = response.json()
    assert parse_datetime(body["opens_at"]) == opens_at == Poll.objects.get().opens_at
    assert (body["status"], body["is_active"]) == ("scheduled", False)
    read = anon.get(poll_url(body["id"])).json()
    assert (read["status"], read["is_active"]) == ("scheduled", False)


def test_an_opening_time_already_past_opens_the_poll_at_once(owner: Any) -> None:
    # A schedule typed a minute ago: the poll opens now rather than being refused.
    opens_at = timezone.now() - timedelta(minutes=1)

    response = create(owner, opens_at=opens_at.isoformat())

    assert response.status_code == 201, response.content
    assert (response.json()["status"], response.json()["is_active"]) == ("open", True)
    assert Poll.objects.get().opens_at == opens_at


@pytest.mark.parametrize("gap", [timedelta(0), timedelta(hours=1)], ids=["same time", "after"])
def test_opening_at_or_after_the_expiry_is_400(owner: Any, gap: timedelta) -> None:
    expires_at = timezone.now() + timedelta(days=1)

    response = create(
        owner, expires_at=expires_at.isoformat(), opens_at=(expires_at + gap).isoformat()
    )

    assert_field_error(response, "opens_at")
    assert not Poll.objects.exists()


@pytest.mark.parametrize("visibility", ["always", "after_vote", "after_close", "owner"])
def test_each_results_visibility_is_stored(owner: Any, visibility: str) -> None:
    response = create(owner, results_visibility=visibility)

    assert response.status_code == 201, response.content
    assert response.json()["results_visibility"] == visibility
    assert Poll.objects.get().results_visibility == visibility


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("results_visibility", "never"),
        ("results_visibility", None),
        ("anonymity", "private"),
        ("anonymity", None),
        ("allow_vote_change", "maybe"),
        ("allow_vote_change", None),
    ],
)
def test_an_unknown_value_is_400(owner: Any, field: str, value: Any) -> None:
    assert_field_error(create(owner, **{field: value}), field)
    assert not Poll.objects.exists()


@pytest.mark.parametrize(
    ("anonymity", "allow_vote_change"),
    [("anonymous", True), ("public", True), ("anonymous", False), ("public", False)],
)
def test_anonymity_and_vote_change_are_stored(
    owner: Any, anonymity: str, allow_vote_change: bool
) -> None:
    response = create(owner, anonymity=anonymity, allow_vote_change=allow_vote_change)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["anonymity"], body["allow_vote_change"]) == (anonymity, allow_vote_change)


def test_a_secret_poll_makes_ballots_final(owner: Any) -> None:
    response = create(owner, anonymity="secret")

    assert response.status_code == 201, response.content
    assert (response.json()["anonymity"], response.json()["allow_vote_change"]) == (
        "secret",
        False,
    )
    assert Poll.objects.get().allow_vote_change is False


def test_a_secret_poll_with_vote_changes_is_400(owner: Any) -> None:
    assert_field_error(
        create(owner, anonymity="secret", allow_vote_change=True), "allow_vote_change"
    )
    assert not Poll.objects.exists()


def test_a_voter_group_is_named(owner: Any, board: Group) -> None:
    response = create(owner, voter_group="Board")

    assert response.status_code == 201, response.content
    assert response.json()["voter_group"] == "Board"
    assert Poll.objects.get().voter_group == board


@pytest.mark.parametrize(
    "group", ["Bored", 7, ["Board"], {"name": "Board"}, "Bo\x00ard", "B" * 151]
)
def test_an_unknown_voter_group_is_400(owner: Any, board: Group, group: Any) -> None:
    assert_field_error(create(owner, voter_group=group), "voter_group")
    assert not Poll.objects.exists()


def test_a_voter_group_cannot_be_set_where_users_have_no_groups(
    owner: Any, board: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user model without PermissionsMixin: membership could never be checked.
    monkeypatch.setattr(services.polls, "voter_groups_supported", lambda: False)

    assert_field_error(create(owner, voter_group="Board"), "voter_group")
    assert create(owner, voter_group=None).status_code == 201


def test_the_status_is_read_only(owner: Any) -> None:
    response = create(owner, status="closed")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "open"


# ---------------------------------------------------------------------------------------------
# Updating a poll without votes


@pytest.fixture
def election(make_poll: Callable[..., Poll], alice: Any) -> Poll:
    """Alice's multiple-choice poll of four candidates, without votes."""
    return make_poll(
        created_by=alice,
        title="Board election",
        options=("Ann", "Ben", "Cat", "Dan"),
        method="multiple",
    )


def test_patch_changes_each_new_field_of_a_poll_without_votes(
    election: Poll, owner: Any, board: Group
) -> None:
    opens_at = timezone.now() + timedelta(days=1)
    changes = {
        "min_choices": 2,
        "max_choices": 3,
        "opens_at": opens_at.isoformat(),
        "results_visibility": "after_close",
        "anonymity": "public",
        "allow_vote_change": False,
        "voter_group": "Board",
    }

    response = owner.patch(poll_url(election.pk), changes, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: body[key] for key in changes} == {**changes, "opens_at": body["opens_at"]}
    assert parse_datetime(body["opens_at"]) == opens_at
    assert body["status"] == "scheduled"
    stored = Poll.objects.get(pk=election.pk)
    assert (stored.min_choices, stored.max_choices, stored.voter_group) == (2, 3, board)


def test_patch_switches_a_poll_to_single_and_its_limits_to_1(election: Poll, owner: Any) -> None:
    Poll.objects.filter(pk=election.pk).update(min_choices=2, max_choices=3)

    response = owner.patch(poll_url(election.pk), {"method": "single"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["method"], body["allow_multiple_votes"]) == ("single", False)
    assert (body["min_choices"], body["max_choices"]) == (1, 1)
    stored = Poll.objects.get(pk=election.pk)
    assert (stored.min_choices, stored.max_choices) == (1, None)


def test_patch_removes_the_opening_time_and_the_voter_group_with_null(
    make_poll: Callable[..., Poll], alice: Any, owner: Any, board: Group
) -> None:
    poll = make_poll(
        created_by=alice, opens_at=timezone.now() + timedelta(days=1), voter_group=board
    )

    response = owner.patch(
        poll_url(poll.pk), {"opens_at": None, "voter_group": None}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["opens_at"], body["voter_group"], body["status"]) == (None, None, "open")


def test_a_secret_poll_refuses_vote_changes_on_update(
    make_poll: Callable[..., Poll], alice: Any, owner: Any
) -> None:
    poll = make_poll(created_by=alice, anonymity="secret")
    before = db_state()

    response = owner.patch(poll_url(poll.pk), {"allow_vote_change": True}, format="json")

    assert_field_error(response, "allow_vote_change")
    assert db_state() == before


def test_making_a_poll_secret_makes_its_ballots_final(election: Poll, owner: Any) -> None:
    response = owner.patch(poll_url(election.pk), {"anonymity": "secret"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["allow_vote_change"] is False


def test_an_expiry_moved_before_the_opening_time_is_400(
    make_poll: Callable[..., Poll], alice: Any, owner: Any
) -> None:
    poll = make_poll(created_by=alice, opens_at=timezone.now() + timedelta(days=2))
    before = db_state()

    response = owner.patch(poll_url(poll.pk), {"expires_at": soon(days=1)}, format="json")

    assert_field_error(response, "expires_at")
    assert db_state() == before


def test_fewer_options_than_max_choices_is_400(election: Poll, owner: Any) -> None:
    # max_choices is kept as set: "choose up to 3" does not quietly become "up to 2".
    Poll.objects.filter(pk=election.pk).update(max_choices=3)
    before = db_state()

    response = owner.patch(poll_url(election.pk), {"options": options("Ann", "Ben")}, format="json")

    assert_field_error(response, "options")
    assert db_state() == before


def test_fewer_options_with_a_max_choices_that_fits_them_are_accepted(
    election: Poll, owner: Any
) -> None:
    Poll.objects.filter(pk=election.pk).update(max_choices=3)

    response = owner.patch(
        poll_url(election.pk), {"options": options("Ann", "Ben"), "max_choices": 2}, format="json"
    )

    assert response.status_code == 200, response.content
    assert (response.json()["max_choices"], len(response.json()["options"])) == (2, 2)


def test_new_options_move_a_max_choices_of_every_option_along(election: Poll, owner: Any) -> None:
    response = owner.patch(
        poll_url(election.pk), {"options": options("Ann", "Ben", "Cat")}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["max_choices"] == 3
    assert Poll.objects.get(pk=election.pk).max_choices is None


# ---------------------------------------------------------------------------------------------
# A poll with votes


@pytest.fixture
def voted(election: Poll, bob: Any) -> Poll:
    """The election with one ballot (Bob chose Ann)."""
    vote(election, bob)
    return election


FROZEN = {
    "method": "single",
    "allow_multiple_votes": False,
    "min_choices": 2,
    "max_choices": 3,
    "anonymity": "public",
    "allow_vote_change": False,
    "opens_at": "2030-01-01T09:00:00Z",
}


@pytest.mark.parametrize(("field", "value"), FROZEN.items(), ids=FROZEN.keys())
def test_a_frozen_field_of_a_poll_with_votes_cannot_change(
    voted: Poll, owner: Any, field: str, value: Any
) -> None:
    before = db_state()

    response = owner.patch(poll_url(voted.pk), {field: value}, format="json")

    assert_error(response, 409, "poll_has_votes")
    assert db_state() == before


def test_an_opening_time_of_a_poll_with_votes_cannot_be_removed(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, owner: Any
) -> None:
    poll = make_poll(created_by=alice, opens_at=timezone.now() - timedelta(hours=1))
    vote(poll, bob)

    response = owner.patch(poll_url(poll.pk), {"opens_at": None}, format="json")

    assert_error(response, 409, "poll_has_votes")


def test_a_poll_with_votes_accepts_its_whole_body_sent_back(voted: Poll, owner: Any) -> None:
    body = owner.get(poll_url(voted.pk)).json()
    assert body["max_choices"] == 4  # the effective number; stored as null

    response = owner.put(
        poll_url(voted.pk), {**body, "title": "Board election 2027"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json() == {**body, "title": "Board election 2027"}
    assert Poll.objects.get(pk=voted.pk).max_choices is None


@pytest.mark.parametrize("stricter", ["after_vote", "after_close", "owner"])
def test_results_of_a_poll_with_votes_may_be_hidden_further(
    voted: Poll, owner: Any, stricter: str
) -> None:
    response = owner.patch(poll_url(voted.pk), {"results_visibility": stricter}, format="json")

    assert response.status_code == 200, response.content
    assert Poll.objects.get(pk=voted.pk).results_visibility == stricter


@pytest.mark.parametrize(
    ("current", "looser"),
    [("after_vote", "always"), ("after_close", "after_vote"), ("owner", "after_close")],
)
def test_results_of_a_poll_with_votes_may_not_be_revealed_earlier(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, owner: Any, current: str, looser: str
) -> None:
    poll = make_poll(created_by=alice, results_visibility=current)
    vote(poll, bob)

    response = owner.patch(poll_url(poll.pk), {"results_visibility": looser}, format="json")

    assert_error(response, 409, "poll_has_votes")
    assert Poll.objects.get(pk=poll.pk).results_visibility == current


def test_results_of_a_poll_without_votes_may_be_revealed_earlier(
    make_poll: Callable[..., Poll], alice: Any, owner: Any
) -> None:
    poll = make_poll(created_by=alice, results_visibility="owner")

    response = owner.patch(poll_url(poll.pk), {"results_visibility": "always"}, format="json")

    assert response.status_code == 200, response.content


def test_the_voter_group_title_description_and_expiry_of_a_poll_with_votes_stay_editable(
    voted: Poll, owner: Any, board: Group
) -> None:
    expires_at = timezone.now() + timedelta(days=3)

    response = owner.patch(
        poll_url(voted.pk),
        {
            "voter_group": "Board",
            "title": "Board election 2027",
            "description": "Members only.",
            "expires_at": expires_at.isoformat(),
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    stored = Poll.objects.get(pk=voted.pk)
    assert (stored.voter_group, stored.title, stored.expires_at) == (
        board,
        "Board election 2027",
        expires_at,
    )


def test_a_secret_poll_with_a_participation_is_frozen(
    make_poll: Callable[..., Poll], alice: Any, bob: Any, owner: Any
) -> None:
    # A secret poll keeps no vote rows: its participations say it has votes.
    poll = make_poll(created_by=alice, method="multiple", anonymity="secret")
    vote(poll, bob)

    response = owner.patch(poll_url(poll.pk), {"min_choices": 2}, format="json")

    assert_error(response, 409, "poll_has_votes")


def test_a_bad_value_on_a_poll_with_votes_is_400_before_409(voted: Poll, owner: Any) -> None:
    response = owner.patch(poll_url(voted.pk), {"method": "approval"}, format="json")

    assert_field_error(response, "method")


# ---------------------------------------------------------------------------------------------
# The status filter


@pytest.fixture
def by_status(make_poll: Callable[..., Poll]) -> dict[str, list[int]]:
    scheduled = make_poll(title="Later", opens_at=timezone.now() + timedelta(days=1))
    opened = make_poll(title="Opened", opens_at=timezone.now() - timedelta(days=1))
    plain = make_poll(title="Plain")
    closed = make_poll(title="Closed")
    services.close_poll(poll=closed)
    expired = make_poll(title="Expired", opens_at=timezone.now() - timedelta(days=2))
    expire(expired)
    return {
        "scheduled": [scheduled.pk],
        "open": [plain.pk, opened.pk],
        "closed": [expired.pk, closed.pk],
    }


@pytest.mark.parametrize("status", ["scheduled", "open", "closed"])
def test_the_status_filter_lists_the_polls_of_that_status(
    by_status: dict[str, list[int]], anon: Any, status: str
) -> None:
    response = anon.get(POLLS, {"status": status})

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [poll["id"] for poll in results] == by_status[status]
    assert {poll["status"] for poll in results} == {status}


def test_the_status_filter_combines_with_is_active(
    by_status: dict[str, list[int]], anon: Any
) -> None:
    response = anon.get(POLLS, {"status": "scheduled", "is_active": "false"})

    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


@pytest.mark.parametrize("value", ["", "Open", "opened", "active", "open,closed"])
def test_a_status_other_than_scheduled_open_or_closed_is_400(
    make_poll: Callable[..., Poll], anon: Any, value: str
) -> None:
    make_poll()

    response = anon.get(POLLS, {"status": value})

    assert_field_error(response, "status")


def test_option_rows_are_untouched_by_a_rejected_update(voted: Poll, owner: Any) -> None:
    ids = option_ids(voted)

    owner.patch(poll_url(voted.pk), {"method": "single"}, format="json")

    assert option_ids(voted) == ids
    assert Option.objects.filter(poll=voted).count() == 4
