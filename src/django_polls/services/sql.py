"""Raw SQL composed from the models' own tables and columns, so a site's db_table or db_column
changes reach it."""

from __future__ import annotations

from django.db import connection
from django.db.models import Field, Model

from django_polls.models import Poll


def column(model: type[Model], name: str) -> str:
    """The quoted column of a model field."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


def poll_columns() -> list[str]:
    return [column(Poll, field.name) for field in Poll._meta.concrete_fields]
