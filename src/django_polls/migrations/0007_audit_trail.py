"""The audit trail: each poll's entries (``AuditRecord``, hash-chained) and where each trail ends
(``AuditHead``). New tables; nothing else changes. Polls made before keep no entries of their
past: their trail begins with their next change."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_polls", "0006_idempotency_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditHead",
            fields=[
                (
                    "poll_id",
                    models.BigIntegerField(primary_key=True, serialize=False, verbose_name="poll"),
                ),
                ("seq", models.PositiveIntegerField(default=0, verbose_name="last number")),
                (
                    "hash",
                    models.CharField(
                        blank=True, default="", max_length=64, verbose_name="last hash"
                    ),
                ),
                ("opened", models.BooleanField(default=False, verbose_name="opening recorded")),
                ("closed", models.BooleanField(default=False, verbose_name="closing recorded")),
            ],
            options={
                "verbose_name": "audit trail head",
                "verbose_name_plural": "audit trail heads",
            },
        ),
        migrations.CreateModel(
            name="AuditRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("poll_id", models.BigIntegerField(verbose_name="poll")),
                ("seq", models.PositiveIntegerField(verbose_name="number")),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("created", "created"),
                            ("edited", "edited"),
                            ("opened", "opened"),
                            ("closed", "closed"),
                            ("deleted", "deleted"),
                            ("ballot_changed", "ballot changed"),
                            ("ballot_retracted", "ballot retracted"),
                        ],
                        max_length=20,
                        verbose_name="action",
                    ),
                ),
                (
                    "actor",
                    models.CharField(blank=True, default="", max_length=64, verbose_name="actor"),
                ),
                ("at", models.DateTimeField(verbose_name="at")),
                ("data", models.JSONField(blank=True, default=dict, verbose_name="data")),
                (
                    "prev_hash",
                    models.CharField(
                        blank=True, default="", max_length=64, verbose_name="previous hash"
                    ),
                ),
                ("hash", models.CharField(max_length=64, verbose_name="hash")),
            ],
            options={
                "verbose_name": "audit record",
                "verbose_name_plural": "audit records",
                "ordering": ("poll_id", "seq"),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("poll_id", "seq"), name="django_polls_audit_seq"
                    )
                ],
            },
        ),
    ]
