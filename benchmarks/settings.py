"""The example project's settings, plus the tutorial-style baseline at /naive/api/v1/."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks", "benchmarks.naive"]
ROOT_URLCONF = "benchmarks.urls"
