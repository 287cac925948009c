"""Options' counts spread over slots (``OptionCount``): on PostgreSQL a ballot adds to one slot
of each option it names, so that ballots on one option of a hot poll do not queue for one row.
An option's count is its ``votes`` plus its slots; existing counts stay in ``votes``."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_polls", "0008_webhooks"),
    ]

    operations = [
        migrations.CreateModel(
            name="OptionCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slot", models.PositiveSmallIntegerField(verbose_name="slot")),
                ("votes", models.PositiveIntegerField(default=0, verbose_name="votes")),
                (
                    "option",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="counts",
                        to="django_polls.option",
                        verbose_name="option",
                    ),
                ),
            ],
            options={
                "verbose_name": "option count",
                "verbose_name_plural": "option counts",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("option", "slot"), name="django_polls_option_count_once"
                    )
                ],
            },
        ),
    ]
