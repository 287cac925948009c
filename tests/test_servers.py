"""Drivers and servers: what a site learns at start-up about live results.

Servers run for real, in subprocesses, with the test settings (SQLite in memory) and the app
mounted at ``api/v1/``: Django's ``runserver`` and Gunicorn's sync worker (WSGI), uvicorn (ASGI).
The psycopg2 tests run in the tox environment ``py311-django52-psycopg2-pg``, where psycopg 3 is
not installed and Django runs on psycopg2 (``REQUIRE_PSYCOPG2`` makes them fail elsewhere).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core import checks
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import AsyncClient, RequestFactory
from django.urls import reverse

from django_polls import live

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a server may take to start (never a bound on speed).
PATIENCE = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A server in a subprocess; its output (stdout and stderr) is collected line by line."""

    def __init__(self, *command: str, settings: str = "tests.settings", path: str = "") -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), path])),
            "PYTHONUNBUFFERED": "1",  # each line as it is written, through the pipe
        }
        env.pop("DATABASE_URL", None)  # SQLite in memory: the servers start, no database work
        self.process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> str:
        """The output up to the line that holds ``text``."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            for index, line in enumerate(list(self.lines)):
                if text in line:
                    return "".join(self.lines[: index + 1])
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never came; the server said:\n{self.output}")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(PATIENCE)
        self.reader.join(PATIENCE)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.output


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=PATIENCE) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


# A path that the app answers without the database: its JSON 404.
MISSING = "/api/v1/polls/nope/"


def test_runserver_warns_at_start_up_that_streams_need_asgi(servers: list[Server]) -> None:
    port = free_port()
    server = Server("django", "runserver", f"127.0.0.1:{port}", "--noreload")
    servers.append(server)
    before_serving = server.wait_for("Quit the server with")
    assert "(django_polls.W003)" in before_serving
    assert "live results streams (results/stream/) answer 503 streams_need_asgi" in before_serving


def test_a_gunicorn_sync_worker_logs_at_start_up_that_streams_need_asgi(
    servers: list[Server],
) -> None:
    port = free_port()
    app = "django.core.wsgi:get_wsgi_application()"
    server = Server("gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", app)
    servers.append(server)
    # Gunicorn runs no system checks: the worker logs the warning as it loads the app, before
    # any request.
    server.wait_for("(django_polls.W003)")
    assert get(port, MISSING) == 404
    assert get(port, MISSING) == 404
    output = server.stop()
    assert output.count("(django_polls.W003)") == 1, output  # once, not per request


def test_a_silenced_warning_is_not_logged_either(servers: list[Server], tmp_path: Path) -> None:
    (tmp_path / "silenced.py").write_text(
        'from tests.settings import *\n\nSILENCED_SYSTEM_CHECKS = ["django_polls.W003"]\n'
    )
    port = free_port()
    app = "django.core.wsgi:get_wsgi_application()"
    server = Server(
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        app,
        settings="silenced",
        path=str(tmp_path),
    )
    servers.append(server)
    server.wait_for("Booting worker")
    assert get(port, MISSING) == 404  # the worker has loaded the app
    assert "W003" not in server.stop()


def test_an_asgi_server_starts_and_serves_without_the_warning(servers: list[Server]) -> None:
    port = free_port()
    app = "django.core.asgi:get_asgi_application"
    server = Server("uvicorn", "--factory", app, "--port", str(port), "--lifespan", "off")
    servers.append(server)
    server.wait_for("Uvicorn running on")
    assert get(port, MISSING) == 404
    output = server.stop()
    assert "W003" not in output
    assert "WSGI" not in output


@pytest.mark.django_db
def test_set_up_otherwise_the_first_request_through_a_wsgi_handler_logs_it_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a process whose wsgi.py set Django up before get_wsgi_application(): ready() found
    # no WSGI handler being made, so the first request tells.
    monkeypatch.setattr(live, "_serves_wsgi", False)
    monkeypatch.setattr(live, "_wsgi_logged", False)
    live.note_start_up()
    handler = WSGIHandler()
    environ = RequestFactory()._base_environ(PATH_INFO=MISSING)
    for _ in range(2):
        response = handler(environ, lambda status, headers: None)
        assert json.loads(b"".join(response)) == {"detail": "Not found.", "code": "not_found"}
        response.close()
    logged = [r for r in caplog.records if "(django_polls.W003)" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelname == "WARNING"
    assert [m.id for m in checks.run_checks() if m.id == "django_polls.W003"] == [
        "django_polls.W003"
    ]


def test_the_check_is_quiet_outside_a_server() -> None:
    assert [m for m in checks.run_checks() if m.id == "django_polls.W003"] == []


# ---------------------------------------------------------------------------------------------
# PostgreSQL drivers

DRIVER = connection.Database.__name__ if connection.vendor == "postgresql" else None  # type: ignore[attr-defined]
REQUIRE_PSYCOPG2 = bool(os.environ.get("REQUIRE_PSYCOPG2"))

on_psycopg2 = pytest.mark.skipif(
    DRIVER != "psycopg2" and not REQUIRE_PSYCOPG2,
    reason="Django runs on psycopg2 only without psycopg 3 (tox -e py311-django52-psycopg2-pg)",
)
on_psycopg3 = pytest.mark.skipif(
    DRIVER != "psycopg" or REQUIRE_PSYCOPG2, reason="needs PostgreSQL through psycopg 3"
)


@on_psycopg2
@pytest.mark.django_db
def test_on_psycopg2_a_check_says_streams_cannot_run_and_they_answer_503_at_once(
    make_poll, alice, client_for
) -> None:
    assert DRIVER == "psycopg2"
    with pytest.raises(ImportError):
        import psycopg  # noqa: F401
    (warning,) = [m for m in checks.run_checks() if m.id == "django_polls.W002"]
    assert "the PostgreSQL driver is psycopg2 2." in warning.msg
    assert "psycopg 3.2 or later" in warning.msg

    poll = make_poll()
    started = time.monotonic()
    url = reverse("django_polls:poll-results-stream", args=[poll.pk])
    refused = async_to_sync(AsyncClient().get)(url)
    assert time.monotonic() - started < 2
    assert refused.status_code == 503
    assert refused.json() == {
        "detail": "Live results are not available on this server.",
        "code": "streams_unavailable",
    }
    assert "Retry-After" not in refused

    # The rest of the API works on psycopg2.
    pizza = poll.options.order_by("order").first()
    assert pizza is not None
    voted = client_for(alice).post(
        f"/api/v1/polls/{poll.pk}/vote/", {"options": [pizza.pk]}, format="json"
    )
    assert voted.status_code == 201
    results = client_for(None).get(reverse("django_polls:poll-results", args=[poll.pk]))
    assert results.json()["total_votes"] == 1


@on_psycopg3
def test_on_psycopg_3_2_the_driver_check_is_quiet() -> None:
    assert [m for m in checks.run_checks() if m.id == "django_polls.W002"] == []
