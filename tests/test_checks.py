"""Each system check id fires on the bad setting it names, and stays quiet on good settings."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings

from django_polls.checks import check_databases, check_settings


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
                "USER_DISPLAY": "django.contrib.auth.get_user_model",
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


@pytest.mark.parametrize(
    "value",
    [
        "django_polls.serializers.no_such_function",
        "no_such_module.display",
        "django_polls.conf.DEFAULTS",  # imports, but is not callable
        42,
        None,
    ],
)
def test_e011_when_the_user_display_is_not_a_callable_that_imports(value: object) -> None:
    assert ids(DJANGO_POLLS={"USER_DISPLAY": value}) == ["django_polls.E011"]


def test_e011_message_names_the_setting() -> None:
    with override_settings(DJANGO_POLLS={"USER_DISPLAY": "no.such.display"}):
        (message,) = check_settings()
    assert "DJANGO_POLLS['USER_DISPLAY']" in message.msg


@pytest.mark.parametrize(
    "value",
    [
        "django_polls.serializers.no_such_policy",
        "no_such_module.may_vote",
        "django_polls.conf.DEFAULTS",  # imports, but is not callable
        42,
        True,
        ["django_polls.serializers.username"],
    ],
)
def test_e012_when_the_voter_policy_is_not_a_callable_that_imports(value: object) -> None:
    assert ids(DJANGO_POLLS={"VOTER_POLICY": value}) == ["django_polls.E012"]


@pytest.mark.parametrize(
    "value",
    [
        {"max_size": 0},
        {"min_size": 9},  # above the default max_size of 8
        {"timeout": 0},
        {"timeout": "5"},
        {"size": 4},
        [1, 8],
    ],
)
def test_e013_when_the_async_pool_makes_no_sense(value: object) -> None:
    assert ids(DJANGO_POLLS={"ASYNC_POOL": value}) == ["django_polls.E014"]


@pytest.mark.parametrize("value", ["nowhere", 3, ""])
def test_e015_when_the_listen_database_is_not_an_alias_of_postgresql(value: object) -> None:
    assert ids(DJANGO_POLLS={"LISTEN_DATABASE": value}) == ["django_polls.E015"]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_e016_when_the_audit_trail_setting_is_not_a_boolean(value: object) -> None:
    assert ids(DJANGO_POLLS={"AUDIT_TRAIL": value}) == ["django_polls.E016"]
    assert ids(DJANGO_POLLS={"AUDIT_TRAIL": True}) == []


@pytest.mark.parametrize("value", ["10.0.0.0/8", ["10.0.0.0/33"], ["intranet"], [None], 3])
def test_e017_when_the_webhook_networks_are_not_networks(value: object) -> None:
    assert ids(DJANGO_POLLS={"WEBHOOK_ALLOWED_NETWORKS": value}) == ["django_polls.E017"]
    assert ids(DJANGO_POLLS={"WEBHOOK_ALLOWED_NETWORKS": ["10.0.0.0/8", "::1/128"]}) == []


@pytest.mark.parametrize("value", ["nowhere.at_all", "django_polls.conf.DEFAULTS", 5])
def test_e018_when_the_webhook_dispatch_names_no_callable(value: object) -> None:
    assert ids(DJANGO_POLLS={"WEBHOOK_DISPATCH": value}) == ["django_polls.E018"]
    assert ids(DJANGO_POLLS={"WEBHOOK_DISPATCH": "django_polls.webhooks.deliver_due"}) == []


@pytest.mark.parametrize("key", ["WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_TIMEOUT", "WEBHOOK_RETRY_DELAY"])
def test_e003_when_a_webhook_number_is_not_a_positive_integer(key: str) -> None:
    assert ids(DJANGO_POLLS={key: 0}) == ["django_polls.E003"]


def test_e015_unless_the_listen_database_is_postgresql() -> None:
    # The test database's own alias: an error unless it is PostgreSQL.
    expected = [] if connection.vendor == "postgresql" else ["django_polls.E015"]
    assert ids(DJANGO_POLLS={"LISTEN_DATABASE": "default"}) == expected
    assert ids(DJANGO_POLLS={"LISTEN_DATABASE": None}) == []


@pytest.mark.parametrize("value", [None, {"max_size": 16}, {"min_size": 2, "timeout": 0.5}])
def test_no_error_for_a_sensible_async_pool(value: object) -> None:
    assert ids(DJANGO_POLLS={"ASYNC_POOL": value}) == []


def test_e012_message_names_the_setting() -> None:
    with override_settings(DJANGO_POLLS={"VOTER_POLICY": "no.such.policy"}):
        (message,) = check_settings()
    assert "DJANGO_POLLS['VOTER_POLICY']" in message.msg


@pytest.mark.parametrize("value", [None, "django_polls.serializers.username"])
def test_a_voter_policy_of_none_or_a_callable_passes(value: object) -> None:
    assert ids(DJANGO_POLLS={"VOTER_POLICY": value}) == []


BUILT_IN = [
    "django_polls.methods.choice.SingleChoice",
    "django_polls.methods.choice.MultipleChoice",
    "django_polls.methods.ranked.RankedChoice",
    "django_polls.methods.score.ScoreVoting",
]


@pytest.mark.parametrize(
    "value",
    [
        "django_polls.methods.ranked.RankedChoice",
        [1],
        [*BUILT_IN, "no.such.Method"],
        [*BUILT_IN, "tests.checks_methods.NotAMethod"],
        [*BUILT_IN, "tests.checks_methods.Unnamed"],
        [*BUILT_IN, "tests.checks_methods.TooLongAName"],
        [*BUILT_IN, "tests.checks_methods.AnotherRanked"],
        [*BUILT_IN, "tests.checks_methods.OptionsApproval"],
        BUILT_IN[1:],
        BUILT_IN[:1],
    ],
    ids=[
        "a string",
        "not paths",
        "does not import",
        "no method",
        "no name",
        "name too long",
        "name twice",
        "options field",
        "no single",
        "no multiple",
    ],
)
def test_e013_when_the_methods_are_not_a_usable_list(value: object) -> None:
    assert set(ids(DJANGO_POLLS={"METHODS": value})) == {"django_polls.E013"}


@pytest.mark.parametrize(
    "value", [BUILT_IN, BUILT_IN[:2], [*BUILT_IN, "tests.borda.Borda"], tuple(BUILT_IN)]
)
def test_methods_with_single_and_multiple_and_distinct_names_pass(value: object) -> None:
    assert ids(DJANGO_POLLS={"METHODS": value}) == []


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


on_mysql = pytest.mark.skipif(
    connection.vendor != "mysql", reason="needs MySQL or MariaDB (set DATABASE_URL=mysql://...)"
)


def database_ids(**kwargs: Any) -> list[str]:
    return [message.id for message in check_databases(**kwargs)]


@pytest.mark.django_db
def test_the_test_database_is_supported_as_it_is() -> None:
    assert database_ids() == []
    assert database_ids(databases=["default"]) == []


def test_an_unsupported_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "oracle")

    assert database_ids() == ["django_polls.E009"]


@on_mysql
@pytest.mark.django_db(transaction=True)
def test_a_table_of_the_app_outside_innodb_is_refused() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE django_polls_scratch (id int) ENGINE=MyISAM")
    try:
        messages = check_databases(databases=["default"])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE django_polls_scratch")

    assert [message.id for message in messages] == ["django_polls.E010"]
    assert "django_polls_scratch" in messages[0].msg
    # Only where Django lets checks use the database (migrate, check --database).
    assert database_ids() == []


@on_mysql
@pytest.mark.django_db
def test_a_default_engine_other_than_innodb_is_refused() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION default_storage_engine = MyISAM")
    try:
        assert database_ids(databases=["default"]) == ["django_polls.E010"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION default_storage_engine = InnoDB")


@on_mysql
@pytest.mark.django_db
def test_a_session_outside_strict_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "sql_mode", {"NO_ENGINE_SUBSTITUTION"})

    assert database_ids(databases=["default"]) == ["django_polls.E010"]


@on_mysql
@pytest.mark.django_db
def test_a_server_too_old_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "mysql_version", (10, 3, 39))
    monkeypatch.setattr(connection, "mysql_is_mariadb", True)

    messages = check_databases(databases=["default"])

    assert [message.id for message in messages] == ["django_polls.E010"]
    assert "10.3.39 is older than 10.4" in messages[0].msg


@on_mysql
def test_a_database_that_does_not_answer_does_not_break_the_check(
    monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    default = connections["default"]
    down = type(default)({**default.settings_dict, "PORT": port}, alias="down")
    monkeypatch.setitem(connections.settings, "down", down.settings_dict)
    connections["down"] = down
    try:
        with django_db_blocker.unblock():
            assert database_ids(databases=["down"]) == []
    finally:
        del connections["down"]


@on_mysql
@pytest.mark.django_db
@pytest.mark.parametrize("level", ["repeatable read", ""])
def test_an_isolation_level_other_than_read_committed_is_refused(
    monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    connection.ensure_connection()
    monkeypatch.setattr(connections["default"], "isolation_level", level)

    messages = check_databases(databases=["default"])

    assert [message.id for message in messages] == ["django_polls.E010"]
    assert "not read committed" in messages[0].msg


@pytest.mark.parametrize("value", [0, -1, "20", None])
def test_e003_when_max_streams_per_client_is_not_a_positive_integer(value: object) -> None:
    assert ids(DJANGO_POLLS={"MAX_STREAMS_PER_CLIENT": value}) == ["django_polls.E003"]


def test_max_streams_per_client_is_a_known_key() -> None:
    assert ids(DJANGO_POLLS={"MAX_STREAMS_PER_CLIENT": 5}) == []
