"""Fixtures that run the example project the way its users do: `manage.py` and Gunicorn in their
own processes, configured only through environment variables, spoken to over real HTTP.

The database is PostgreSQL when DATABASE_URL is set (each deployment gets a database of its own,
dropped afterwards), else an SQLite file.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example_project"

# Every variable the example project reads: the tests set them, nothing leaks in from outside.
EXAMPLE_VARIABLES = [
    "ALLOWED_HOSTS",
    "ASGI",
    "AUDIT_TRAIL",
    "ASGI_THREADS",
    "CONN_MAX_AGE",
    "CORS_ALLOWED_ORIGINS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_ASYNC_POOL_SIZE",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_LISTEN_URL",
    "DATABASE_POOL",
    "DATABASE_POOL_SIZE",
    "DATABASE_PREPARED_STATEMENTS",
    "DATABASE_REPLICA_URL",
    "DATABASE_TRANSACTION_POOLER",
    "DATABASE_URL",
    "DEBUG",
    "DEMO_PASSWORD",
    "DJANGO_SETTINGS_MODULE",
    "ENV_FILE",
    "HOST",
    "HTTPS",
    "LOG_LEVEL",
    "MAX_STREAMS",
    "MAX_STREAMS_PER_CLIENT",
    "NUM_PROXIES",
    "PORT",
    "READ_YOUR_WRITES_SECONDS",
    "REDIS_URL",
    "SECRET_KEY",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_HSTS_SECONDS",
    "STATIC_ROOT",
    "THROTTLE",
    "THROTTLE_AUTH_RATE",
    "THROTTLE_CREATE_RATE",
    "THROTTLE_VOTE_RATE",
    "TRUST_X_FORWARDED_PROTO",
    "WEB_CONCURRENCY",
    "WEBHOOK_ALLOWED_NETWORKS",
    "WEBHOOK_RETRY_DELAY",
    "WEBHOOK_TIMEOUT",
    "WEBHOOK_WORKER",
]


def example_env(**values: str) -> dict[str, str]:
    """The process environment minus the example's variables, plus `values`. No `.env` file
    is read (ENV_FILE points at an empty one) unless `values` names one."""
    env = {name: value for name, value in os.environ.items() if name not in EXAMPLE_VARIABLES}
    env["ENV_FILE"] = os.devnull
    env.update(values)
    return env


def run_example(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python <args>` in example_project/ (`run_example("manage.py", "migrate", env=...)`)."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=EXAMPLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Server:
    """A running Gunicorn of the example project."""

    port: int
    process: subprocess.Popen[bytes]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if token:
            sent["Authorization"] = f"Token {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()


@dataclass
class Deployment:
    """One configured copy of the example project: a database, static files, a secret key."""

    database_url: str
    static_root: Path
    settings: dict[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    def env(self, **values: str) -> dict[str, str]:
        return example_env(
            **{
                "DATABASE_URL": self.database_url,
                "STATIC_ROOT": str(self.static_root),
                "SECRET_KEY": self.secret_key,
                "HTTPS": "false",
                "THROTTLE": "off",
                # No webhook sender beside each server: one would count among Gunicorn's
                # children, and senders of servers with other settings would share the outbox.
                # tests/example/test_webhooks.py runs its own, and one beside Gunicorn.
                "WEBHOOK_WORKER": "false",
                **self.settings,
                **values,
            }
        )

    def manage(
        self, *args: str, check: bool = True, **values: str
    ) -> subprocess.CompletedProcess[str]:
        return run_example("manage.py", *args, env=self.env(**values), check=check)

    def prepare(self) -> None:
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")

    @contextmanager
    def serve(self, workers: int = 4, healthy: bool = True, **values: str) -> Iterator[Server]:
        """Run Gunicorn on a port this process bound (no other server can take it in between);
        wait until /api/health/ answers 200 (`healthy`) or answers at all."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = int(listener.getsockname()[1])
        env = self.env(HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY=str(workers), **values)
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"),
                    *("--bind", f"fd://{listener.fileno()}"),
                ],
                cwd=EXAMPLE_DIR,
                env=env,
                stdout=log,
                stderr=log,
                pass_fds=[listener.fileno()],
            )
            listener.close()
            server = Server(port, process)
            try:
                _wait_until_up(server, log, healthy)
                yield server
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_until_up(server: Server, log: Any, healthy: bool, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise AssertionError(f"Gunicorn exited with {server.process.returncode}:\n{output}")
        try:
            status = server.request("GET", "/api/health/").status
        except OSError:
            status = 0
        if status == 200 or (status and not healthy):
            return
        time.sleep(0.2)
    raise AssertionError(f"Gunicorn did not answer /api/health/ within {seconds} s")


# -- the API, as a client uses it ---------------------------------------------------------------

PASSWORD = "correct-horse-battery-9"


def register(server: Server, username: str | None = None) -> Answer:
    username = username or f"user-{secrets.token_hex(4)}"
    return server.request(
        "POST", "/api/v1/auth/register/", {"username": username, "password": PASSWORD}
    )


def new_token(server: Server) -> str:
    answer = register(server)
    assert answer.status == 201, answer.text
    return str(answer.json["token"])


def create_poll(server: Server, token: str, **fields: object) -> dict[str, Any]:
    body = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}], **fields}
    answer = server.request("POST", "/api/v1/polls/", body, token=token)
    assert answer.status == 201, answer.text
    return dict(answer.json)


DATABASE = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"


@pytest.fixture(scope="session")
def database_url_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Makes empty databases: a new PostgreSQL database on DATABASE_URL's server, or a new
    SQLite file. PostgreSQL databases are dropped at the end of the session."""
    created: list[str] = []
    admin_url = os.environ.get("DATABASE_URL", "")

    def make() -> str:
        if DATABASE == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'db.sqlite3'}"
        import psycopg

        name = f"django_polls_example_{secrets.token_hex(4)}"
        with psycopg.connect(_plain(admin_url), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))

    yield make

    if created:
        import psycopg

        with psycopg.connect(_plain(admin_url), autocommit=True) as connection:
            for name in created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _plain(url: str) -> str:
    """A libpq URL from a dj-database-url one (postgres://, postgresql://, pgsql://...)."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


@pytest.fixture(scope="session")
def deployment(database_url_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """The example project, migrated and with its static files collected."""
    prepared = Deployment(
        database_url=database_url_factory(),
        static_root=tmp_path_factory.mktemp("static"),
        settings={"CORS_ALLOWED_ORIGINS": "http://frontend.localhost:5173"},
    )
    prepared.prepare()
    return prepared


@pytest.fixture(scope="session")
def server(deployment: Deployment) -> Iterator[Server]:
    """Gunicorn with four workers serving `deployment`."""
    with deployment.serve(workers=4) as running:
        yield running
