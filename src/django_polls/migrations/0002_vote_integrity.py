"""Database rules that Django's model layer cannot declare.

* A vote's option belongs to the vote's poll.
* A vote's copy of ``allow_multiple_votes`` equals its poll's value, which also means a poll with
  votes cannot switch between single and multiple votes.

PostgreSQL gets composite foreign keys. SQLite cannot add constraints to an existing table, so it
gets triggers that raise the same integrity error; note that a later migration which makes Django
rebuild one of these SQLite tables drops its triggers, and must create them again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

POSTGRESQL_FORWARD = [
    """
    ALTER TABLE django_polls_vote
    ADD CONSTRAINT django_polls_vote_option_in_poll
    FOREIGN KEY (option_id, poll_id) REFERENCES django_polls_option (id, poll_id)
    """,
    """
    ALTER TABLE django_polls_vote
    ADD CONSTRAINT django_polls_vote_mode_of_poll
    FOREIGN KEY (poll_id, poll_allows_multiple)
    REFERENCES django_polls_poll (id, allow_multiple_votes)
    """,
]
POSTGRESQL_BACKWARD = [
    "ALTER TABLE django_polls_vote DROP CONSTRAINT django_polls_vote_option_in_poll",
    "ALTER TABLE django_polls_vote DROP CONSTRAINT django_polls_vote_mode_of_poll",
]

_SQLITE_VOTE_CHECK = """
    WHEN NOT EXISTS (
        SELECT 1 FROM django_polls_option
        WHERE id = NEW.option_id AND poll_id = NEW.poll_id
    ) OR NOT EXISTS (
        SELECT 1 FROM django_polls_poll
        WHERE id = NEW.poll_id AND allow_multiple_votes = NEW.poll_allows_multiple
    )
    BEGIN
        SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: vote does not match its poll');
    END
"""
SQLITE_FORWARD = [
    "CREATE TRIGGER django_polls_vote_matches_poll_insert BEFORE INSERT ON django_polls_vote"
    + _SQLITE_VOTE_CHECK,
    "CREATE TRIGGER django_polls_vote_matches_poll_update"
    " BEFORE UPDATE OF poll_id, option_id, poll_allows_multiple ON django_polls_vote"
    + _SQLITE_VOTE_CHECK,
    """
    CREATE TRIGGER django_polls_poll_mode_frozen
    BEFORE UPDATE OF allow_multiple_votes ON django_polls_poll
    WHEN OLD.allow_multiple_votes <> NEW.allow_multiple_votes
        AND EXISTS (SELECT 1 FROM django_polls_vote WHERE poll_id = OLD.id)
    BEGIN
        SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the poll has votes');
    END
    """,
    """
    CREATE TRIGGER django_polls_option_poll_frozen
    BEFORE UPDATE OF poll_id ON django_polls_option
    WHEN OLD.poll_id <> NEW.poll_id
        AND EXISTS (SELECT 1 FROM django_polls_vote WHERE option_id = OLD.id)
    BEGIN
        SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the option has votes');
    END
    """,
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS django_polls_vote_matches_poll_insert",
    "DROP TRIGGER IF EXISTS django_polls_vote_matches_poll_update",
    "DROP TRIGGER IF EXISTS django_polls_poll_mode_frozen",
    "DROP TRIGGER IF EXISTS django_polls_option_poll_frozen",
]

STATEMENTS = {
    "postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_BACKWARD),
    "sqlite": (SQLITE_FORWARD, SQLITE_BACKWARD),
}


def _run(schema_editor: Any, direction: int) -> None:
    statements = STATEMENTS.get(schema_editor.connection.vendor)
    if statements is None:  # other databases rely on the service layer alone
        return
    for sql in statements[direction]:
        schema_editor.execute(sql)


def forward(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, 0)


def backward(apps: Any, schema_editor: Any) -> None:
    _run(schema_editor, 1)


class Migration(migrations.Migration):
    dependencies = [("django_polls", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
