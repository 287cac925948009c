"""What differs between the Django versions the app supports (4.2 to 6.x)."""

from __future__ import annotations

from typing import Any

import django
from django.db import models


def check_constraint(*, condition: Any, name: str) -> models.CheckConstraint:
    """A check constraint: Django 5.1 renamed ``check=`` to ``condition=``, and 6.0 dropped
    ``check=``."""
    if django.VERSION >= (5, 1):
        return models.CheckConstraint(condition=condition, name=name)
    return models.CheckConstraint(check=condition, name=name)  # type: ignore[call-arg,unused-ignore]
