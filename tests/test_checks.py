"""Each system check id fires on the bad setting it names, and stays quiet on good settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from django_polls.checks import check_settings


def ids(**settings: Any) -> list[str]:
    with override_settings(**settings):
        return [message.id for message in check_settings()]


def test_the_defaults_pass() -> None:
    assert check_settings() == []


def test_a_full_valid_dict_passes() -> None:
    assert (
        ids(
            DJANGO_POLLS={
                "PAGE_SIZE": 10,
                "MAX_PAGE_SIZE": 50,
                "MIN_OPTIONS": 3,
                "MAX_OPTIONS": 5,
                "MAX_TITLE_LENGTH": 120,
                "MAX_OPTION_LENGTH": 80,
                "MAX_DESCRIPTION_LENGTH": 100,
                "POLL_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
                "VOTE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
                "THROTTLE_CLASSES": [],
                "PAGINATION_CLASS": "django_polls.pagination.PollPagination",
            }
        )
        == []
    )


def test_e001_when_the_setting_is_not_a_dict() -> None:
    assert ids(DJANGO_POLLS=[("PAGE_SIZE", 10)]) == ["django_polls.E001"]


def test_e002_names_unknown_keys() -> None:
    with override_settings(DJANGO_POLLS={"PAGE_SIZ": 10}):
        (message,) = check_settings()
    assert message.id == "django_polls.E002"
    assert "'PAGE_SIZ'" in message.msg


@pytest.mark.parametrize("value", [0, -1, "20", 2.5, True, None])
def test_e003_when_a_number_is_not_a_positive_integer(value: object) -> None:
    assert ids(DJANGO_POLLS={"MAX_DESCRIPTION_LENGTH": value}) == ["django_polls.E003"]


def test_e004_when_the_page_size_exceeds_its_bound() -> None:
    assert ids(DJANGO_POLLS={"PAGE_SIZE": 101}) == ["django_polls.E004"]
    assert ids(DJANGO_POLLS={"PAGE_SIZE": 30, "MAX_PAGE_SIZE": 25}) == ["django_polls.E004"]


@pytest.mark.parametrize(
    "options", [{"MIN_OPTIONS": 1}, {"MIN_OPTIONS": 5, "MAX_OPTIONS": 4}, {"MAX_OPTIONS": 1}]
)
def test_e005_when_the_option_bounds_make_no_sense(options: dict[str, int]) -> None:
    assert ids(DJANGO_POLLS=options) == ["django_polls.E005"]


@pytest.mark.parametrize("key", ["MAX_TITLE_LENGTH", "MAX_OPTION_LENGTH"])
def test_e006_when_a_length_exceeds_its_column(key: str) -> None:
    assert ids(DJANGO_POLLS={key: 201}) == ["django_polls.E006"]


@pytest.mark.parametrize(
    "settings",
    [
        {"POLL_PERMISSION_CLASSES": ["no.such.Permission"]},
        {"VOTE_PERMISSION_CLASSES": "rest_framework.permissions.IsAuthenticated"},
        {"THROTTLE_CLASSES": ["rest_framework.throttling.NoSuchThrottle"]},
        {"PAGINATION_CLASS": "django_polls.pagination.Missing"},
        {"PAGINATION_CLASS": 42},
    ],
)
def test_e007_when_a_class_path_does_not_import(settings: dict[str, Any]) -> None:
    assert ids(DJANGO_POLLS=settings) == ["django_polls.E007"]


def test_e007_message_names_the_setting() -> None:
    with override_settings(DJANGO_POLLS={"POLL_PERMISSION_CLASSES": ["no.such.Permission"]}):
        (message,) = check_settings()
    assert "DJANGO_POLLS['POLL_PERMISSION_CLASSES']" in message.msg


SCOPED = ["rest_framework.throttling.ScopedRateThrottle"]


# A cache that every process shares (the database's), so only the rate checks speak.
SHARED_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "throttle_counts",
    }
}


def test_e008_when_scoped_throttling_has_no_rate_for_the_polls_scopes() -> None:
    rest = {"DEFAULT_THROTTLE_CLASSES": SCOPED, "DEFAULT_THROTTLE_RATES": {"other": "1/s"}}
    assert ids(REST_FRAMEWORK=rest, CACHES=SHARED_CACHE) == ["django_polls.E008"]
    assert ids(DJANGO_POLLS={"THROTTLE_CLASSES": SCOPED}, CACHES=SHARED_CACHE) == [
        "django_polls.E008"
    ]


def test_scoped_throttling_with_rates_passes() -> None:
    rates = {"django_polls.vote": "30/min", "django_polls.create": None}
    rest = {"DEFAULT_THROTTLE_CLASSES": SCOPED, "DEFAULT_THROTTLE_RATES": rates}
    assert ids(REST_FRAMEWORK=rest, CACHES=SHARED_CACHE) == []


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    ],
)
def test_w001_when_throttle_counts_would_live_in_each_process(backend: str) -> None:
    rates = {"django_polls.vote": "30/min", "django_polls.create": None}
    rest = {"DEFAULT_THROTTLE_CLASSES": SCOPED, "DEFAULT_THROTTLE_RATES": rates}
    per_process = {"default": {"BACKEND": backend}}

    assert ids(REST_FRAMEWORK=rest, CACHES=per_process) == ["django_polls.W001"]
    assert ids(DJANGO_POLLS={"THROTTLE_CLASSES": SCOPED}, CACHES=per_process) == [
        "django_polls.E008",
        "django_polls.W001",
    ]
    # No throttling, nothing to count: no warning, whatever the cache.
    assert ids(CACHES=per_process) == []


def test_checks_run_with_the_project_checks(capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with (
        override_settings(DJANGO_POLLS={"PAGE_SIZE": 0}),
        pytest.raises(SystemCheckError, match=r"django_polls\.E003"),
    ):
        call_command("check")


@pytest.mark.parametrize("value", [0, -1, "20", None])
def test_e003_when_max_streams_per_client_is_not_a_positive_integer(value: object) -> None:
    assert ids(DJANGO_POLLS={"MAX_STREAMS_PER_CLIENT": value}) == ["django_polls.E003"]


def test_max_streams_per_client_is_a_known_key() -> None:
    assert ids(DJANGO_POLLS={"MAX_STREAMS_PER_CLIENT": 5}) == []
