"""Each host's own tests run under that host's settings only (they need its user model).

The app's suite runs under every host; ``tests/hosts/<host>/`` adds what is particular to one.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    here = Path(__file__).parent
    if collection_path.parent != here or not collection_path.is_dir():
        return None
    active = f"tests.hosts.{collection_path.name}.settings" == settings.SETTINGS_MODULE
    return None if active else True
