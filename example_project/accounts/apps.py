from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Registration and token sign-in for API clients."""

    name = "accounts"
