from __future__ import annotations

from django.apps import AppConfig


class BenchmarksConfig(AppConfig):
    """The benchmark's tools as an app: ``manage.py polls_load_votes`` loads votes in bulk."""

    name = "benchmarks"
    default_auto_field = "django.db.models.BigAutoField"
