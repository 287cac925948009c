"""Raw SQL composed from the models' own tables and columns, so a site's db_table or db_column
changes reach it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from django_polls.models import Poll, Vote


def column(model: type[Model], name: str) -> str:
    """The quoted column of a model field."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def poll_columns() -> list[str]:
    return [column(Poll, field.name) for field in Poll._meta.concrete_fields]


def voter_param(voter: Any, bigint: Callable[[int], Any] = int) -> Any:
    """The voter's key as raw SQL binds it: converted by the key's own field, as the ORM would
    (a UUID, a string, ...), and an integer key through ``bigint`` (the ballot statement passes
    psycopg's ``Int8``, so that one prepared statement serves every ballot whatever the user
    model)."""
    key = Vote._meta.get_field("voter").target_field
    value = key.get_db_prep_value(getattr(voter, key.attname), connection, prepared=False)
    if isinstance(value, int) and not isinstance(value, bool):
        return bigint(value)
    return value
