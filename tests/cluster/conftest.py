"""The example project as `make cluster` builds it: three app hosts in network namespaces behind
HAProxy, PgBouncer in transaction mode before a PostgreSQL primary and its streaming replica, and
the machine's Redis. Built once for the session (on a network and ports of its own, so a
`make cluster` of the machine is left alone) and removed afterwards.

Runs in `tox -e cluster` (which sets CLUSTER_TESTS); needs root, iproute2, HAProxy, PgBouncer,
PostgreSQL's server binaries and Redis on 127.0.0.1:6379. Without them the tests are skipped and
say what is missing, unless REQUIRE_CLUSTER is set: then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest

from tests.example.conftest import EXAMPLE_DIR, Deployment, Server, example_env, free_port

SCRIPT = EXAMPLE_DIR / "cluster" / "cluster.py"
NAME = "ptest"
SUBNET = "10.78.0"


def load_script() -> ModuleType:
    """example_project/cluster/cluster.py as a module (it does nothing on import)."""
    spec = importlib.util.spec_from_file_location("polls_cluster", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("polls_cluster", module)
    spec.loader.exec_module(module)
    return module


def unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_CLUSTER"):
        pytest.fail(f"{reason} (REQUIRE_CLUSTER is set)")
    pytest.skip(f"{reason}; set REQUIRE_CLUSTER to fail instead")


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports of 127.0.0.1."""
    for _ in range(50):
        first = free_port()
        if first + count > 65535:
            continue
        probes = []
        try:
            for port in range(first, first + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError(f"no {count} consecutive free ports")


@dataclass
class Cluster:
    """The cluster under test: the balancer, the databases, the script that built it."""

    balancer: Server
    layout: Any
    env: dict[str, str]
    deployment: Deployment

    def script(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def conninfo(self, port: int) -> str:
        return f"host=127.0.0.1 port={port} user=postgres dbname=polls"

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """The replica stops applying the primary's changes (it still receives them): it lags
        for as long as the block runs."""
        import psycopg

        replica = self.conninfo(self.layout.replica_port)
        with psycopg.connect(replica, autocommit=True) as connection:
            connection.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            with psycopg.connect(replica, autocommit=True) as connection:
                connection.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not os.environ.get("CLUSTER_TESTS"):
        pytest.skip("the cluster's tests build network namespaces: tox -e cluster runs them")
    script = load_script()
    lacking = script.missing()
    try:
        socket.create_connection(("127.0.0.1", 6379), 2).close()
    except OSError:
        lacking.append("Redis on 127.0.0.1:6379")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        lacking.append("psycopg")
    if lacking:
        unavailable("the cluster needs " + "; ".join(lacking))
    port, database_port = free_port(), free_ports(4)
    env = example_env(
        CLUSTER_NAME=NAME,
        CLUSTER_SUBNET=SUBNET,
        CLUSTER_PORT=str(port),
        CLUSTER_DB_PORT=str(database_port),
        CLUSTER_SEED="off",
        CLUSTER_REDIS="127.0.0.1:6379/14",
        THROTTLE="off",
        WEB_CONCURRENCY="2",
    )
    built = Cluster(
        balancer=Server(port, cast(Any, None)),
        layout=None,
        env=env,
        deployment=Deployment(
            database_url=f"postgres://postgres@127.0.0.1:{database_port}/polls",
            static_root=tmp_path_factory.mktemp("static"),
        ),
    )
    built.script("down")  # what an interrupted run left
    try:
        started = built.script("up")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"balancer: http://127.0.0.1:{port}/" in started.stdout
        built.layout = script.Layout.load(Path(f"/tmp/django-polls-cluster-{NAME}"))
        assert built.layout is not None
        yield built
    finally:
        removed = built.script("down")
        assert removed.returncode == 0, removed.stdout + removed.stderr


def token_of(balancer: Server, username: str | None = None) -> str:
    """A new user, signed up through the balancer: its token."""
    answer = balancer.request(
        "POST",
        "/api/v1/auth/register/",
        {"username": username or f"user-{secrets.token_hex(4)}", "password": PASSWORD},
    )
    assert answer.status == 201, answer.text
    return str(answer.json["token"])


PASSWORD = "correct-horse-battery-9"
