"""The example project's settings, plus the tutorial-style baseline at /naive/api/v1/."""

from __future__ import annotations

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.benchmarks.naive"]
ROOT_URLCONF = "tests.benchmarks.urls"
