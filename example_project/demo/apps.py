from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for a first run (`manage.py seed_polls`)."""

    name = "demo"
