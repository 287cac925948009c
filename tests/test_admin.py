"""The admin: polls written through the services, options with read-only counts, votes read-only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from django_polls import services
from django_polls.models import BallotChange, Option, Participation, Poll, Vote


@pytest.fixture
def admin_user(make_user: Callable[..., Any]) -> Any:
    return make_user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def page(response: Any) -> str:
    return str(response.content.decode())


def first_option(poll: Poll) -> int:
    return int(poll.options.order_by("order")[0].pk)


#: The policy fields of a new poll in the form, as the admin offers them (v1's behaviour).
POLICIES = {
    "method": "single",
    "min_choices": "1",
    "max_choices": "",
    "opens_at_0": "",
    "opens_at_1": "",
    "results_visibility": "always",
    "anonymity": "anonymous",
    "allow_vote_change": "on",
    "voter_group": "",
    "max_score": "",
}


def add_form(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Lunch?",
        "description": "",
        "option_texts": "Pizza\nSoup",
        **POLICIES,
        "expires_at_0": "",
        "expires_at_1": "",
        "options-TOTAL_FORMS": "0",
        "options-INITIAL_FORMS": "0",
        **fields,
    }


def change_form(poll: Poll, **fields: Any) -> dict[str, Any]:
    texts = "\n".join(poll.options.order_by("order").values_list("text", flat=True))
    count = str(poll.options.count())
    return {
        "title": poll.title,
        "description": poll.description,
        "option_texts": texts,
        "method": poll.method,
        "min_choices": str(poll.min_choices),
        "max_choices": "" if poll.max_choices is None else str(poll.max_choices),
        "opens_at_0": "",
        "opens_at_1": "",
        "results_visibility": poll.results_visibility,
        "anonymity": poll.anonymity,
        "allow_vote_change": "on" if poll.allow_vote_change else "",
        "voter_group": "" if poll.voter_group_id is None else str(poll.voter_group_id),
        "max_score": "" if poll.max_score is None else str(poll.max_score),
        "expires_at_0": "",
        "expires_at_1": "",
        "options-TOTAL_FORMS": count,
        "options-INITIAL_FORMS": count,
        **fields,
    }


def test_adding_a_poll_creates_it_with_its_options(
    staff_client: Client, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(
            "/admin/django_polls/poll/add/", add_form(created_by=admin_user.pk)
        )
    assert response.status_code == 302, page(response)
    poll = Poll.objects.get()
    assert poll.title == "Lunch?"
    assert poll.created_by == admin_user
    assert list(poll.options.values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert callbacks, "poll_created is sent on commit, as through the API"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"option_texts": "Pizza\nPIZZA"}, "Option texts must be unique within a poll."),
        ({"option_texts": "Pizza"}, "A poll needs between 2 and 20 options."),
        ({"title": "   "}, "This field"),
    ],
    ids=["duplicate options", "one option", "blank title"],
)
def test_adding_a_poll_that_breaks_a_rule_shows_the_error_and_stores_nothing(
    staff_client: Client, admin_user: Any, fields: dict[str, str], message: str
) -> None:
    response = staff_client.post(
        "/admin/django_polls/poll/add/", add_form(created_by=admin_user.pk, **fields)
    )
    assert response.status_code == 200
    assert message in page(response)
    assert not Poll.objects.exists()
    assert not Option.objects.exists()


def test_an_expiry_in_the_past_is_refused(staff_client: Client, admin_user: Any) -> None:
    past = timezone.now() - timedelta(days=1)
    response = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(
            created_by=admin_user.pk,
            expires_at_0=past.strftime("%Y-%m-%d"),
            expires_at_1=past.strftime("%H:%M:%S"),
        ),
    )
    assert response.status_code == 200
    assert "The expiry must be in the future." in page(response)
    assert not Poll.objects.exists()


def test_changing_the_options_of_a_poll_without_votes_replaces_them(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, title="Dinner?", option_texts="Curry\nRamen\nTacos"),
    )
    assert response.status_code == 302, page(response)
    poll.refresh_from_db()
    assert poll.title == "Dinner?"
    texts = list(poll.options.order_by("order").values_list("text", flat=True))
    assert texts == ["Curry", "Ramen", "Tacos"]


def test_once_voted_options_and_mode_are_frozen_but_the_title_is_not(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll(title="Lunch?")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])

    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    assert 'name="option_texts"' in page(change) and "disabled" in page(change)

    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, title="Lunch today?", option_texts="Other\nTexts", method="multiple"),
    )
    assert response.status_code == 302, page(response)
    poll.refresh_from_db()
    assert poll.title == "Lunch today?"
    assert poll.allow_multiple_votes is False
    assert list(poll.options.values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert Vote.objects.filter(poll=poll).count() == 1


def test_the_change_page_shows_options_with_read_only_counts(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    listing = staff_client.get("/admin/django_polls/poll/")

    assert change.status_code == 200
    assert listing.status_code == 200 and "Lunch?" in page(listing)
    assert 'name="options-0-votes"' not in page(change)
    assert 'name="options-0-text"' not in page(change)
    assert "Pizza" in page(change) and "Soup" in page(change)


def test_deleting_a_poll_with_votes_deletes_its_votes(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    confirm = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/delete/")
    assert confirm.status_code == 200
    assert "permission to delete" not in page(confirm)

    response = staff_client.post(f"/admin/django_polls/poll/{poll.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Poll.objects.exists()
    assert not Vote.objects.exists()


def test_deleting_polls_in_bulk(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    first, second = make_poll(), make_poll()
    services.cast_vote(poll_id=first.pk, voter=bob, option_ids=[first_option(first)])
    response = staff_client.post(
        "/admin/django_polls/poll/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Poll.objects.exists()
    assert not Vote.objects.exists()


def test_the_close_action_closes_through_the_rules(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    first, second = make_poll(), make_poll()
    response = staff_client.post(
        "/admin/django_polls/poll/",
        {"action": "close_polls", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert not Poll.objects.open().filter(pk__in=[first.pk, second.pk]).exists()


def test_votes_are_listed_but_cannot_be_added_changed_or_deleted_on_their_own(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
    vote = Vote.objects.get()

    listing = staff_client.get("/admin/django_polls/vote/?q=bob")
    assert listing.status_code == 200
    assert "bob" in page(listing)
    assert "delete_selected" not in page(listing)
    assert staff_client.get("/admin/django_polls/vote/add/").status_code == 403
    delete = staff_client.post(f"/admin/django_polls/vote/{vote.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    change = staff_client.get(f"/admin/django_polls/vote/{vote.pk}/change/")
    assert change.status_code == 200  # a read-only view
    assert 'name="_save"' not in page(change)
    assert Vote.objects.filter(pk=vote.pk).exists()


def test_participations_and_ballot_changes_are_listed_read_only(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll()
    pizza, soup = Option.objects.filter(poll=poll).order_by("order").values_list("pk", flat=True)
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[pizza])
    services.change_vote(poll_id=poll.pk, voter=bob, option_ids=[soup])

    for model, record in (
        ("participation", Participation.objects.get()),
        ("ballotchange", BallotChange.objects.get()),
    ):
        listing = staff_client.get(f"/admin/django_polls/{model}/?q=bob")
        assert listing.status_code == 200
        assert "bob" in page(listing)
        assert "delete_selected" not in page(listing)
        assert staff_client.get(f"/admin/django_polls/{model}/add/").status_code == 403
        delete = staff_client.post(
            f"/admin/django_polls/{model}/{record.pk}/delete/", {"post": "yes"}
        )
        assert delete.status_code == 403
        change = staff_client.get(f"/admin/django_polls/{model}/{record.pk}/change/")
        assert change.status_code == 200
        assert 'name="_save"' not in page(change)
    changes = page(staff_client.get("/admin/django_polls/ballotchange/"))
    assert "replaced" in changes
    assert f"[{pizza}]" in changes and f"[{soup}]" in changes


def history(poll: Poll) -> list[str]:
    """The poll's entries in the admin's history, oldest first: "Added", "Changed" ..."""
    from django.contrib.admin.models import LogEntry

    entries = LogEntry.objects.filter(object_id=str(poll.pk)).order_by("action_time", "pk")
    return [str(entry) for entry in entries]


def test_a_change_that_commits_is_recorded_in_the_history(
    staff_client: Client, make_poll: Callable[..., Poll]
) -> None:
    poll = make_poll()
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/", change_form(poll, title="Dinner?")
    )
    assert response.status_code == 302, page(response)
    assert len(history(poll)) == 1
    assert history(poll)[0].startswith("Changed “Dinner?”")


def test_a_change_refused_by_the_rules_leaves_no_history_entry(
    staff_client: Client,
    make_poll: Callable[..., Poll],
    bob: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poll = make_poll(title="Lunch?")
    update_poll = services.update_poll

    def vote_lands_first(**kwargs: Any) -> Poll:
        # The form saw no votes and let the options be edited; a ballot commits before the save.
        services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])
        return update_poll(**kwargs)

    monkeypatch.setattr(services, "update_poll", vote_lands_first)
    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, title="Dinner?", option_texts="Curry\nRamen"),
        follow=True,
    )

    assert response.status_code == 200
    assert str(services.PollHasVotes.default_message) in page(response)
    poll.refresh_from_db()
    assert poll.title == "Lunch?"
    assert list(poll.options.order_by("order").values_list("text", flat=True)) == ["Pizza", "Soup"]
    assert history(poll) == []
    listing = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/history/")
    assert "Changed" not in page(listing)


def test_adding_a_poll_with_every_policy(staff_client: Client, admin_user: Any) -> None:
    group = Group.objects.create(name="Board")
    opens_at = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    response = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(
            created_by=admin_user.pk,
            option_texts="Ann\nBen\nCat",
            method="multiple",
            min_choices="2",
            max_choices="2",
            opens_at_0=opens_at.strftime("%Y-%m-%d"),
            opens_at_1=opens_at.strftime("%H:%M:%S"),
            results_visibility="after_close",
            anonymity="public",
            allow_vote_change="",
            voter_group=str(group.pk),
        ),
    )

    assert response.status_code == 302, page(response)
    poll = Poll.objects.get()
    assert (poll.method, poll.allow_multiple_votes, poll.min_choices, poll.max_choices) == (
        "multiple",
        True,
        2,
        2,
    )
    assert (poll.opens_at, poll.results_visibility, poll.anonymity) == (
        opens_at,
        "after_close",
        "public",
    )
    assert (poll.allow_vote_change, poll.voter_group) == (False, group)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"anonymity": "secret", "allow_vote_change": "on"},
            "allow_vote_change",
            "A secret ballot cannot be changed",
        ),
        ({"method": "multiple", "max_choices": "3"}, "max_choices", "exceeds the number"),
        ({"method": "single", "min_choices": "2"}, "min_choices", "exactly 1"),
    ],
    ids=["secret with changes", "max above the options", "single with min 2"],
)
def test_a_policy_that_breaks_a_rule_shows_the_error_on_its_field(
    staff_client: Client, admin_user: Any, fields: dict[str, str], field: str, message: str
) -> None:
    response = staff_client.post(
        "/admin/django_polls/poll/add/", add_form(created_by=admin_user.pk, **fields)
    )

    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert not Poll.objects.exists()


def test_a_secret_poll_added_without_vote_changes_is_final(
    staff_client: Client, admin_user: Any
) -> None:
    response = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(created_by=admin_user.pk, anonymity="secret", allow_vote_change=""),
    )

    assert response.status_code == 302, page(response)
    assert Poll.objects.get().allow_vote_change is False


def test_once_voted_the_terms_are_read_only_and_results_only_hide_further(
    staff_client: Client, make_poll: Callable[..., Poll], bob: Any
) -> None:
    poll = make_poll(results_visibility="after_vote")
    services.cast_vote(poll_id=poll.pk, voter=bob, option_ids=[first_option(poll)])

    change = staff_client.get(f"/admin/django_polls/poll/{poll.pk}/change/")
    form = change.context["adminform"].form
    frozen = ["method", "min_choices", "max_choices", "anonymity", "allow_vote_change", "opens_at"]
    assert all(form.fields[name].disabled for name in frozen)
    assert [value for value, _ in form.fields["results_visibility"].choices] == [
        "after_vote",
        "after_close",
        "owner",
    ]

    response = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, method="multiple", anonymity="public", results_visibility="owner"),
    )
    assert response.status_code == 302, page(response)
    poll.refresh_from_db()
    assert (poll.method, poll.anonymity, poll.results_visibility) == (
        "single",
        "anonymous",
        "owner",
    )

    loosened = staff_client.post(
        f"/admin/django_polls/poll/{poll.pk}/change/",
        change_form(poll, results_visibility="always"),
    )
    assert loosened.status_code == 200  # not a choice any more
    poll.refresh_from_db()
    assert poll.results_visibility == "owner"


def test_without_user_groups_the_admin_does_not_offer_a_voter_group(
    staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "voter_groups_supported", lambda: False)

    add = staff_client.get("/admin/django_polls/poll/add/")

    assert add.status_code == 200
    assert 'name="voter_group"' not in page(add)


# ---------------------------------------------------------------------------------------------
# Voting methods


def test_the_admin_creates_a_score_poll_with_its_max_score(
    staff_client: Client, admin_user: Any
) -> None:
    response = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(created_by=admin_user.pk, method="score", max_score="7"),
    )

    assert response.status_code == 302, page(response)
    poll = Poll.objects.get()
    assert (poll.method, poll.max_score) == ("score", 7)
    refused = staff_client.post(
        "/admin/django_polls/poll/add/",
        add_form(created_by=admin_user.pk, method="ranked", max_score="7", title="Other"),
    )
    assert "takes no max_score" in page(refused)
    assert Poll.objects.count() == 1


def test_the_admin_shows_each_methods_results_read_only(
    staff_client: Client, make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    ranked = make_poll(method="ranked", options=("Ann", "Ben", "Cat"))
    ann, ben, cat = ranked.options.order_by("order").values_list("pk", flat=True)
    for ranking in ([ann], [ann, ben], [ben], [cat, ben]):
        services.cast_ballot(poll_id=ranked.pk, voter=make_user(), data={"ranking": ranking})
    scored = make_poll(method="score", options=("Red", "Blue"))
    red = first_option(scored)
    for score in (4, 5):
        data = {"scores": [{"option": red, "score": score}]}
        services.cast_ballot(poll_id=scored.pk, voter=make_user(), data=data)

    ranked_page = page(staff_client.get(f"/admin/django_polls/poll/{ranked.pk}/change/"))
    scored_page = page(staff_client.get(f"/admin/django_polls/poll/{scored.pk}/change/"))

    assert "Ann: 2 votes, 33.33%, 2 first choices" in ranked_page
    assert "Round 1: Ann 2, Ben 1, Cat 1; exhausted 0; eliminated Cat" in ranked_page
    assert "No winner: tied Ann, Ben" in ranked_page
    assert "Red: 2 votes, 100.0%, average 4.5, scores [0, 0, 0, 0, 1, 1]" in scored_page
    assert 'name="results"' not in ranked_page  # shown, not a field to send
    for model in ("ballot", "tally"):
        listing = staff_client.get(f"/admin/django_polls/{model}/")
        assert listing.status_code == 200
        assert staff_client.get(f"/admin/django_polls/{model}/add/").status_code == 403
