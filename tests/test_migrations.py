"""The committed migrations match the models and can be unapplied and applied again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


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
