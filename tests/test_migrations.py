"""The committed migrations match the models and can be unapplied and applied again."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

from django_polls import services
from django_polls.models import Participation, Poll, VoterCount


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "django_polls", check=True, dry_run=True, stdout=out)
    except SystemExit:  # pragma: no cover - only when they differ
        pytest.fail(f"Models and migrations differ:\n{out.getvalue()}")


POSTGRESQL_RULES = {"django_polls_vote_option_in_poll", "django_polls_vote_mode_of_poll"}
MYSQL_RULES = {
    "foreign key django_polls_vote_option_in_poll",
    "foreign key django_polls_vote_mode_of_poll",
    "unique django_polls_vote_once_per_poll",
}
# Where the server has no expression indexes (MariaDB), 0003 adds the case-insensitive one.
MYSQL_TEXT_RULE = "unique django_polls_option_unique_text"
SQLITE_RULES = {
    "django_polls_vote_matches_poll_insert",
    "django_polls_vote_matches_poll_update",
    "django_polls_poll_mode_frozen",
    "django_polls_option_poll_frozen",
}


def _rules_in_schema() -> set[str]:
    """Names of the composite keys (PostgreSQL) or triggers (SQLite) of migration 0002, or the
    keys and unique indexes of migration 0003 (MySQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT CONCAT(LOWER(constraint_type), ' ', constraint_name)"
                " FROM information_schema.table_constraints"
                " WHERE table_schema = DATABASE() AND constraint_name IN ("
                "'django_polls_vote_option_in_poll', 'django_polls_vote_mode_of_poll',"
                " 'django_polls_vote_once_per_poll', 'django_polls_option_unique_text')"
            )
        elif connection.vendor == "postgresql":
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conname LIKE 'django_polls_vote_%%'"
                " AND contype = 'f' AND array_length(conkey, 1) = 2"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master"
                " WHERE type = 'trigger' AND name LIKE 'django_polls%'"
            )
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_migrations_reverse_and_reapply() -> None:
    before = _rules_in_schema()
    rules = {"postgresql": POSTGRESQL_RULES, "mysql": MYSQL_RULES, "sqlite": SQLITE_RULES}
    if not connection.features.supports_expression_indexes:
        rules["mysql"] = MYSQL_RULES | {MYSQL_TEXT_RULE}
    assert before == rules[connection.vendor]
    executor = MigrationExecutor(connection)
    executor.migrate([("django_polls", "0001_initial")])
    assert _rules_in_schema() == set()
    executor = MigrationExecutor(connection)
    executor.migrate([("django_polls", None)])
    assert "django_polls_vote" not in connection.introspection.table_names()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("django_polls"))
    assert "django_polls_vote" in connection.introspection.table_names()
    assert _rules_in_schema() == before


def _migrate(target: str) -> Any:
    """Migrate django_polls to ``target``; returns the historical apps of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate([("django_polls", target)])
    return MigrationExecutor(connection).loader.project_state(("django_polls", target)).apps


@pytest.mark.django_db(transaction=True)
def test_v1_polls_keep_their_behaviour_and_their_voters_are_counted(
    make_user: Callable[..., Any],
) -> None:
    """Polls and votes made before ballot policies: after migration 0004 each poll is single or
    multiple by its old flag, with v1's policies, and each voter took part once."""
    alice, bob = make_user(), make_user()
    old = _migrate("0003_mysql_vote_integrity")
    poll_model, option_model, vote_model = (
        old.get_model("django_polls", name) for name in ("Poll", "Option", "Vote")
    )
    polls = {}
    for multiple in (False, True):
        poll = poll_model.objects.create(
            title="Lunch?", allow_multiple_votes=multiple, created_by_id=alice.pk
        )
        options = [
            option_model.objects.create(poll=poll, text=text, order=order)
            for order, text in enumerate(("Pizza", "Soup", "Salad"))
        ]
        polls[multiple] = (poll.pk, [option.pk for option in options])
    ballots = {False: {alice: [0], bob: [1]}, True: {alice: [0, 1, 2], bob: [2]}}
    for multiple, by_voter in ballots.items():
        poll_id, option_ids = polls[multiple]
        for voter, chosen in by_voter.items():
            for index in chosen:
                vote_model.objects.create(
                    poll_id=poll_id,
                    option_id=option_ids[index],
                    voter_id=voter.pk,
                    poll_allows_multiple=multiple,
                )
    # A vote of a deleted account (no voter), on the single-vote poll.
    vote_model.objects.create(
        poll_id=polls[False][0],
        option_id=polls[False][1][2],
        voter_id=None,
        poll_allows_multiple=False,
    )

    _migrate("0004_ballot_policies")
    _migrate("0005_methods")  # the current models' columns: voting methods' too

    single, multiple = (Poll.objects.get(pk=polls[flag][0]) for flag in (False, True))
    assert (single.method, multiple.method) == ("single", "multiple")
    for poll in (single, multiple):
        assert (
            poll.results_visibility,
            poll.anonymity,
            poll.allow_vote_change,
            poll.opens_at,
            poll.voter_group,
            poll.min_choices,
            poll.max_choices,
            poll.max_score,
        ) == ("always", "anonymous", True, None, None, 1, None, None)
    held = dict(Participation.objects.filter(poll=multiple).values_list("voter", "choices"))
    assert held == {alice.pk: 3, bob.pk: 1}
    assert Participation.objects.filter(poll=single).count() == 3  # alice, bob, a deleted account
    voters = VoterCount.objects.values("poll").annotate(n=Sum("voters"))
    assert {row["poll"]: row["n"] for row in voters} == {single.pk: 3, multiple.pk: 2}
    # They vote on as before: alice may add nothing more past the options, bob may add one.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("django_polls"))  # every table the app uses
    services.cast_vote(poll_id=multiple.pk, voter=bob, option_ids=[polls[True][1][0]])
    with pytest.raises(services.AlreadyVoted):
        services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[polls[False][1][1]])
    assert services.ballot_of(poll_id=multiple.pk, voter=bob).options == sorted(
        [polls[True][1][0], polls[True][1][2]]
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("django_polls"))


@pytest.mark.django_db(transaction=True)
def test_migration_0005_reverses_only_without_polls_of_the_new_methods(
    make_user: Callable[..., Any],
) -> None:
    """Unapplying the voting methods keeps single and multiple polls, and refuses while a poll
    uses a method that migration 0004 does not know."""
    alice = make_user()
    single = services.create_poll(created_by=alice, title="Lunch?", options=["Pizza", "Soup"])
    ranked = services.create_poll(
        created_by=alice, title="Rank", options=["Pizza", "Soup"], method="ranked"
    )
    services.cast_ballot(
        poll_id=ranked.pk,
        voter=alice,
        data={"ranking": list(ranked.options.values_list("pk", flat=True))},
    )
    with pytest.raises(IrreversibleError):
        _migrate("0004_ballot_policies")
    # The later migrations were unapplied before 0005 refused: the poll goes with the models of
    # that state (today's would reach tables that are gone, such as the options' slots).
    state = MigrationExecutor(connection).loader.project_state(("django_polls", "0005_methods"))
    state.apps.get_model("django_polls", "Poll").objects.filter(pk=ranked.pk).delete()
    _migrate("0004_ballot_policies")
    assert _rules_in_schema() == _expected_rules()
    _migrate("0005_methods")
    assert Poll.objects.get(pk=single.pk).method == "single"
    assert _rules_in_schema() == _expected_rules()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("django_polls"))  # every table the app uses
    services.cast_vote(poll_id=single.pk, voter=alice, option_ids=[single.options.first().pk])


def _expected_rules() -> set[str]:
    rules = {"postgresql": POSTGRESQL_RULES, "mysql": MYSQL_RULES, "sqlite": SQLITE_RULES}
    if not connection.features.supports_expression_indexes:
        rules["mysql"] = MYSQL_RULES | {MYSQL_TEXT_RULE}
    return rules[connection.vendor]
