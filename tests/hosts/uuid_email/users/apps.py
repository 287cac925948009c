from __future__ import annotations

from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "tests.hosts.uuid_email.users"
    label = "users"
    default_auto_field = "django.db.models.BigAutoField"
