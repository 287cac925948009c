"""The voting rules on MySQL and MariaDB, which Django's model layer cannot declare there.

Django creates neither the partial unique index of ``Vote`` (one row per voter and poll on a
single-vote poll) on MySQL nor, on MariaDB (no expression indexes), the unique index on
``Lower("text")`` of ``Option``; and migration 0002 leaves these databases alone. Here, on MySQL and
MariaDB only (PostgreSQL and SQLite have all of this from 0001 and 0002):

* the two composite foreign keys of 0002: a vote's option belongs to the vote's poll, and a vote's
  copy of ``allow_multiple_votes`` equals its poll's (so a poll with votes keeps its mode);
* a stored generated column ``voter_if_single_vote``, the voter on a single-vote poll and NULL on
  a multiple-vote poll, unique together with the poll: one vote row per voter on single-vote polls;
* where the server has no expression indexes (MariaDB), a stored generated column
  ``text_lowercase`` in a binary collation that keeps trailing spaces (``utf8mb4_nopad_bin``),
  unique together with the poll: option texts unique per poll ignoring case, compared like
  ``lower()`` elsewhere (not by the table's accent-insensitive collation).

Column types come from the historical models, so the voter column matches the site's user key
(``bigint``, ``char(32)`` for UUIDs, ...). A later migration that alters ``Vote.voter``,
``Vote.poll_allows_multiple`` or ``Option.text`` on MySQL must drop these columns first and add
them again.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

VOTE = "django_polls_vote"
OPTION = "django_polls_option"
POLL = "django_polls_poll"


def _statements(apps: Any, schema_editor: Any) -> tuple[list[str], list[str]]:
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    vote = apps.get_model("django_polls", "Vote")
    option = apps.get_model("django_polls", "Option")
    voter_type = vote._meta.get_field("voter").db_type(connection)
    text_length = option._meta.get_field("text").max_length
    forward = [
        f"CREATE INDEX {quote('django_polls_vote_option_poll')} ON {quote(VOTE)}"
        " (option_id, poll_id)",
        f"ALTER TABLE {quote(VOTE)} ADD CONSTRAINT {quote('django_polls_vote_option_in_poll')}"
        f" FOREIGN KEY (option_id, poll_id) REFERENCES {quote(OPTION)} (id, poll_id)",
        f"CREATE INDEX {quote('django_polls_vote_poll_mode')} ON {quote(VOTE)}"
        " (poll_id, poll_allows_multiple)",
        f"ALTER TABLE {quote(VOTE)} ADD CONSTRAINT {quote('django_polls_vote_mode_of_poll')}"
        f" FOREIGN KEY (poll_id, poll_allows_multiple)"
        f" REFERENCES {quote(POLL)} (id, allow_multiple_votes)",
        f"ALTER TABLE {quote(VOTE)} ADD COLUMN {quote('voter_if_single_vote')} {voter_type}"
        " AS (IF(poll_allows_multiple, NULL, voter_id)) STORED",
        f"CREATE UNIQUE INDEX {quote('django_polls_vote_once_per_poll')} ON {quote(VOTE)}"
        " (poll_id, voter_if_single_vote)",
    ]
    backward = [
        f"DROP INDEX {quote('django_polls_vote_once_per_poll')} ON {quote(VOTE)}",
        f"ALTER TABLE {quote(VOTE)} DROP COLUMN {quote('voter_if_single_vote')}",
        f"ALTER TABLE {quote(VOTE)} DROP FOREIGN KEY {quote('django_polls_vote_mode_of_poll')}",
        f"DROP INDEX {quote('django_polls_vote_poll_mode')} ON {quote(VOTE)}",
        f"ALTER TABLE {quote(VOTE)} DROP FOREIGN KEY {quote('django_polls_vote_option_in_poll')}",
        # InnoDB dropped the index it had made for the foreign key of option_id when 0003 added
        # one that serves it too; the key needs an index of its own again (see backward()).
        f"DROP INDEX {quote('django_polls_vote_option_poll')} ON {quote(VOTE)}",
    ]
    # MySQL 8.0.13+ has expression indexes: Django created Lower("text") there in 0001. The
    # system check refuses older MySQL servers, so this is MariaDB's branch.
    if not connection.features.supports_expression_indexes:
        forward += [
            f"ALTER TABLE {quote(OPTION)} ADD COLUMN {quote('text_lowercase')}"
            f" varchar({text_length}) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
            " AS (LOWER(text)) STORED",
            f"CREATE UNIQUE INDEX {quote('django_polls_option_unique_text')} ON {quote(OPTION)}"
            " (poll_id, text_lowercase)",
        ]
        backward = [
            f"DROP INDEX {quote('django_polls_option_unique_text')} ON {quote(OPTION)}",
            f"ALTER TABLE {quote(OPTION)} DROP COLUMN {quote('text_lowercase')}",
            *backward,
        ]
    return forward, backward


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "mysql":
        return
    for sql in _statements(apps, schema_editor)[0]:
        schema_editor.execute(sql)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "mysql":
        return
    statements = _statements(apps, schema_editor)[1]
    if not _other_index_leads_with_option(schema_editor):
        quote = schema_editor.quote_name
        statements.insert(
            -1, f"CREATE INDEX {quote('django_polls_vote_option_id')} ON {quote(VOTE)} (option_id)"
        )
    for sql in statements:
        schema_editor.execute(sql)


def _other_index_leads_with_option(schema_editor: Any) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE()"
            " AND table_name = %s AND seq_in_index = 1 AND column_name = 'option_id'"
            " AND index_name <> 'django_polls_vote_option_poll'",
            [VOTE],
        )
        return cursor.fetchone() is not None


class Migration(migrations.Migration):
    dependencies = [("django_polls", "0002_vote_integrity")]

    # MySQL cannot roll DDL back: each statement commits on its own, outside a transaction.
    atomic = False

    operations = [migrations.RunPython(forward, backward, elidable=False)]
