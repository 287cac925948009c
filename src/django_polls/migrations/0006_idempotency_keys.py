"""Idempotency keys: a user's request sent with an ``Idempotency-Key`` header and the answer kept
for it, so that a repeat gets that answer instead of acting twice. A new table; nothing else
changes."""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_polls", "0005_methods"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="IdempotencyKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=255, verbose_name="key")),
                ("fingerprint", models.CharField(max_length=64, verbose_name="fingerprint")),
                (
                    "created_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="created at"
                    ),
                ),
                ("expires_at", models.DateTimeField(db_index=True, verbose_name="expires at")),
                (
                    "status",
                    models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="status"),
                ),
                ("body", models.TextField(blank=True, default="", verbose_name="body")),
                ("headers", models.JSONField(blank=True, default=dict, verbose_name="headers")),
                (
                    "user",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "idempotency key",
                "verbose_name_plural": "idempotency keys",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("user", "key"), name="django_polls_idempotency_key"
                    )
                ],
            },
        ),
    ]
