"""Ballot policies: a poll's method, choice limits, opening time, results visibility, anonymity,
vote changes and voter group; who took part in a poll (``Participation``), a poll's count of voters
(``VoterCount``) and the history of changed ballots (``BallotChange``).

Every existing poll keeps its behaviour: ``single`` or ``multiple`` by its
``allow_multiple_votes``, results visible to all, anonymous, votes that may change. Each voter
with votes on a poll gets a participation; votes of deleted accounts (no voter) count as one voter
each, which is exact on single-vote polls.

SQLite rebuilds the poll table to add these columns and constraints, under migration 0002's
triggers, which name that table: they are dropped before and created again after, both ways.

Reversing drops the new data. It refuses while a secret poll has votes: v1 cannot hold a ballot
that is not linked to its voter.
"""

from __future__ import annotations

from collections import Counter
from importlib import import_module
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.exceptions import IrreversibleError

from django_polls.compat import check_constraint

#: Migration 0002, whose SQLite triggers this one takes down and puts back.
MIGRATION_0002 = import_module("django_polls.migrations.0002_vote_integrity")
#: Rows per INSERT while counting existing votes.
BATCH = 1000
#: As :data:`django_polls.models.VOTER_COUNT_STRIPES` (a migration keeps its own copy).
VOTER_COUNT_STRIPES = 8


def fill_in(apps: Any, schema_editor: Any) -> None:
    poll = apps.get_model("django_polls", "Poll")
    poll.objects.filter(allow_multiple_votes=True).update(method="multiple")


def check_reversible(apps: Any, schema_editor: Any) -> None:
    poll = apps.get_model("django_polls", "Poll")
    secret = poll.objects.filter(anonymity="secret", participations__isnull=False)
    if secret.exists():
        raise IrreversibleError(
            "Secret polls have votes; v1 keeps no ballot apart from its voter. Delete those "
            f"polls first: {sorted(set(secret.values_list('pk', flat=True)))}"
        )


def count_participations(apps: Any, schema_editor: Any) -> None:
    """A participation per voter and poll with votes, and the counts of voters."""
    vote = apps.get_model("django_polls", "Vote")
    option = apps.get_model("django_polls", "Option")
    participation = apps.get_model("django_polls", "Participation")
    voter_count = apps.get_model("django_polls", "VoterCount")
    options = dict(
        option.objects.order_by()
        .values("poll_id")
        .annotate(n=models.Count("id"))
        .values_list("poll_id", "n")
    )
    batch = []
    for poll_id, voter_id, multiple, chosen in (
        vote.objects.order_by("poll_id", "voter_id")
        .values("poll_id", "voter_id", "poll_allows_multiple")
        .annotate(n=models.Count("id"))
        .values_list("poll_id", "voter_id", "poll_allows_multiple", "n")
        .iterator()
    ):
        limit = options[poll_id] if multiple else 1
        voters = [(voter_id, chosen)] if voter_id is not None else [(None, 1)] * chosen
        for voter, choices in voters:
            batch.append(
                participation(
                    poll_id=poll_id,
                    voter_id=voter,
                    choices=choices,
                    min_choices=1,
                    max_choices=max(limit, choices),
                )
            )
        if len(batch) >= BATCH:
            participation.objects.bulk_create(batch)
            batch = []
    participation.objects.bulk_create(batch)
    stripes: Counter[tuple[int, int]] = Counter(
        (poll_id, pk % VOTER_COUNT_STRIPES)
        for poll_id, pk in participation.objects.values_list("poll_id", "pk").iterator()
    )
    voter_count.objects.bulk_create(
        (
            voter_count(poll_id=poll_id, stripe=stripe, voters=voters)
            for (poll_id, stripe), voters in sorted(stripes.items())
        ),
        batch_size=BATCH,
    )


def drop_sqlite_triggers(apps: Any, schema_editor: Any) -> None:
    """Migration 0002's triggers name the poll table, which SQLite refuses to rebuild under them."""
    if schema_editor.connection.vendor != "sqlite":
        return
    for sql in MIGRATION_0002.SQLITE_BACKWARD:
        schema_editor.execute(sql)


def restore_sqlite_triggers(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    drop_sqlite_triggers(apps, schema_editor)
    for sql in MIGRATION_0002.SQLITE_FORWARD:
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_polls", "0003_mysql_vote_integrity"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(drop_sqlite_triggers, restore_sqlite_triggers, elidable=False),
        migrations.CreateModel(
            name="BallotChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[("replaced", "replaced"), ("retracted", "retracted")],
                        max_length=16,
                        verbose_name="action",
                    ),
                ),
                ("previous", models.JSONField(verbose_name="previous options")),
                ("current", models.JSONField(default=list, verbose_name="new options")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
            ],
            options={
                "verbose_name": "ballot change",
                "verbose_name_plural": "ballot changes",
                "ordering": ("created_at", "id"),
            },
        ),
        migrations.CreateModel(
            name="Participation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "choices",
                    models.PositiveSmallIntegerField(editable=False, verbose_name="choices"),
                ),
                (
                    "min_choices",
                    models.PositiveSmallIntegerField(editable=False, verbose_name="min choices"),
                ),
                (
                    "max_choices",
                    models.PositiveSmallIntegerField(editable=False, verbose_name="max choices"),
                ),
            ],
            options={
                "verbose_name": "participation",
                "verbose_name_plural": "participations",
                "ordering": ("id",),
            },
        ),
        migrations.CreateModel(
            name="VoterCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("stripe", models.PositiveSmallIntegerField(verbose_name="stripe")),
                ("voters", models.PositiveIntegerField(default=0, verbose_name="voters")),
            ],
            options={
                "verbose_name": "voter count",
                "verbose_name_plural": "voter counts",
            },
        ),
        migrations.AddField(
            model_name="poll",
            name="allow_vote_change",
            field=models.BooleanField(default=True, verbose_name="allow vote change"),
        ),
        migrations.AddField(
            model_name="poll",
            name="anonymity",
            field=models.CharField(
                choices=[
                    ("anonymous", "anonymous: kept, shown to nobody"),
                    ("public", "public: who chose what is listed"),
                    ("secret", "secret: only that one voted, and the counts"),
                ],
                default="anonymous",
                max_length=16,
                verbose_name="anonymity",
            ),
        ),
        migrations.AddField(
            model_name="poll",
            name="max_choices",
            field=models.PositiveSmallIntegerField(
                blank=True, null=True, verbose_name="max choices"
            ),
        ),
        migrations.AddField(
            model_name="poll",
            name="method",
            field=models.CharField(
                choices=[("single", "single choice"), ("multiple", "multiple choice")],
                default="single",
                max_length=16,
                verbose_name="method",
            ),
        ),
        migrations.AddField(
            model_name="poll",
            name="min_choices",
            field=models.PositiveSmallIntegerField(default=1, verbose_name="min choices"),
        ),
        migrations.AddField(
            model_name="poll",
            name="opens_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="opens at"),
        ),
        migrations.AddField(
            model_name="poll",
            name="results_visibility",
            field=models.CharField(
                choices=[
                    ("always", "anyone, always"),
                    ("after_vote", "those who voted"),
                    ("after_close", "anyone, once the poll is closed"),
                    ("owner", "the owner only"),
                ],
                default="always",
                max_length=16,
                verbose_name="results visibility",
            ),
        ),
        migrations.AddField(
            model_name="poll",
            name="voter_group",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="auth.group",
                verbose_name="voter group",
            ),
        ),
        migrations.RunPython(fill_in, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(("method__in", ["single", "multiple"])),
                name="django_polls_poll_method_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(
                    models.Q(("allow_multiple_votes", True), ("method", "multiple")),
                    models.Q(
                        models.Q(("method", "multiple"), _negated=True),
                        ("allow_multiple_votes", False),
                    ),
                    _connector="OR",
                ),
                name="django_polls_poll_mode_of_method",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(
                    ("min_choices__gte", 1),
                    models.Q(
                        ("max_choices__isnull", True),
                        ("max_choices__gte", models.F("min_choices")),
                        _connector="OR",
                    ),
                    models.Q(
                        models.Q(("method", "single"), _negated=True),
                        models.Q(("min_choices", 1), ("max_choices__isnull", True)),
                        _connector="OR",
                    ),
                ),
                name="django_polls_poll_choices_in_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(
                    ("results_visibility__in", ["always", "after_vote", "after_close", "owner"])
                ),
                name="django_polls_poll_visibility_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(("anonymity__in", ["anonymous", "public", "secret"])),
                name="django_polls_poll_anonymity_known",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(
                    models.Q(("anonymity", "secret"), _negated=True),
                    ("allow_vote_change", False),
                    _connector="OR",
                ),
                name="django_polls_poll_secret_is_final",
            ),
        ),
        migrations.AddConstraint(
            model_name="poll",
            constraint=check_constraint(
                condition=models.Q(
                    ("opens_at__isnull", True),
                    ("expires_at__isnull", True),
                    ("opens_at__lt", models.F("expires_at")),
                    _connector="OR",
                ),
                name="django_polls_poll_opens_before_expiry",
            ),
        ),
        migrations.RunPython(restore_sqlite_triggers, drop_sqlite_triggers, elidable=False),
        migrations.AddField(
            model_name="ballotchange",
            name="poll",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="ballot_changes",
                to="django_polls.poll",
                verbose_name="poll",
            ),
        ),
        migrations.AddField(
            model_name="ballotchange",
            name="voter",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="voter",
            ),
        ),
        migrations.AddField(
            model_name="participation",
            name="poll",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="participations",
                to="django_polls.poll",
                verbose_name="poll",
            ),
        ),
        migrations.AddField(
            model_name="participation",
            name="voter",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="poll_participations",
                to=settings.AUTH_USER_MODEL,
                verbose_name="voter",
            ),
        ),
        migrations.AddField(
            model_name="votercount",
            name="poll",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="voter_counts",
                to="django_polls.poll",
                verbose_name="poll",
            ),
        ),
        migrations.AddConstraint(
            model_name="participation",
            constraint=models.UniqueConstraint(
                fields=("poll", "voter"), name="django_polls_participation_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="participation",
            constraint=check_constraint(
                condition=models.Q(
                    ("choices__gte", models.F("min_choices")),
                    ("choices__lte", models.F("max_choices")),
                ),
                name="django_polls_participation_within_limits",
            ),
        ),
        migrations.AddConstraint(
            model_name="votercount",
            constraint=models.UniqueConstraint(
                fields=("poll", "stripe"), name="django_polls_voter_count_once"
            ),
        ),
        migrations.RunPython(count_participations, check_reversible, elidable=False),
    ]
