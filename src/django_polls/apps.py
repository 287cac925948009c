from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoPollsConfig(AppConfig):
    name = "django_polls"
    verbose_name = _("Polls")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_polls import (
            checks,  # noqa: F401  (registers the system checks)
            live,
        )

        live.note_start_up()
