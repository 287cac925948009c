"""Voting methods: a poll's ``max_score``; ``method`` holds any name of
``DJANGO_POLLS["METHODS"]`` (a site may add its own), so its list of values leaves the database;
whole ballots (``Ballot``: ranked, score, a site's methods) and the counts kept as they are stored
(``Tally``: per distinct ranking, per option and score, ...).

Existing polls keep their behaviour: single and multiple polls store vote rows as before, and
take no ``max_score``. SQLite rebuilds the poll table to change its constraints, under migration
0002's triggers, which name that table: they are dropped before and created again after, both
ways, as in migration 0004.

Reversing refuses while a poll uses a method that v1.1's 0004 did not know (its ballots would be
lost and its method refused by the restored constraint).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.exceptions import IrreversibleError

from django_polls.compat import check_constraint

#: Migration 0004, whose SQLite trigger steps this one runs again.
MIGRATION_0004 = import_module("django_polls.migrations.0004_ballot_policies")


def check_reversible(apps: Any, schema_editor: Any) -> None:
    poll = apps.get_model("django_polls", "Poll")
    others = poll.objects.exclude(method__in=("single", "multiple"))
    if others.exists():
        raise IrreversibleError(
            "Polls use methods that migration 0004 does not know (ranked, score or a site's "
            f"own). Delete those polls first: {sorted(others.values_list('pk', flat=True))}"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("django_polls", "0004_ballot_policies"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(
            MIGRATION_0004.drop_sqlite_triggers,
            MIGRATION_0004.restore_sqlite_triggers,
            elidable=False,
        ),
        migrations.RemoveConstraint(model_name="poll", name="django_polls_poll_method_known"),
        migrations.AddField(
            model_name="poll",
            name="max_score",
            field=models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="max score"),
        ),
        migrations.AlterField(
            model_name="poll",
            name="method",
            field=models.CharField(default="single", max_length=16, verbose_name="method"),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(max_score__isnull=True)
                | models.Q(max_score__gte=1, max_score__lte=10),
                name="django_polls_poll_max_score_in_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=~models.Q(method="score") | models.Q(max_score__isnull=False),
                name="django_polls_poll_score_has_max",
            ),
        ),
        migrations.RunPython(
            MIGRATION_0004.restore_sqlite_triggers,
            MIGRATION_0004.drop_sqlite_triggers,
            elidable=False,
        ),
        migrations.CreateModel(
            name="Ballot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("choice", models.JSONField(verbose_name="choice")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now,
                        editable=False,
                        verbose_name="created at",
                    ),
                ),
                (
                    "poll",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ballots",
                        to="django_polls.poll",
                        verbose_name="poll",
                    ),
                ),
                (
                    "voter",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="poll_ballots",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="voter",
                    ),
                ),
            ],
            options={
                "verbose_name": "ballot",
                "verbose_name_plural": "ballots",
                "ordering": ("created_at", "id"),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("poll", "voter"), name="django_polls_ballot_once"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Tally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=512, verbose_name="key")),
                ("ballots", models.PositiveIntegerField(default=0, verbose_name="ballots")),
                (
                    "poll",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tallies",
                        to="django_polls.poll",
                        verbose_name="poll",
                    ),
                ),
            ],
            options={
                "verbose_name": "tally",
                "verbose_name_plural": "tallies",
                "constraints": [
                    models.UniqueConstraint(fields=("poll", "key"), name="django_polls_tally_once")
                ],
            },
        ),
        # Last, so that unapplying runs it first.
        migrations.RunPython(migrations.RunPython.noop, check_reversible, elidable=False),
    ]
