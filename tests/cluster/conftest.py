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
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest

from tests.example.conftest import EXAMPLE_DIR, Deployment, Server, example_env, free_port
from tests.faults.conftest import (
    Ballot,
    Outcome,
    assert_stored_exactly,
    is_already_voted,
    make_voters,
    stored_voters,
)

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


@pytest.fixture(autouse=True)
def every_host_serving(request: pytest.FixtureRequest) -> None:
    """A test of the cluster starts with every host in the balancer's rotation: the fault of the
    test before (a host restarted, the database back a moment ago) is over."""
    if "cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("cluster")
    for number in cluster.layout.numbers:
        in_rotation(cluster, f"app{number}", seconds=30)


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


def new_poll(cluster: Cluster, title: str, owner: str | None = None) -> tuple[int, list[int]]:
    """A poll with two options, made through the balancer by `owner` (a token; else a new
    user): its id, its options."""
    body = {"title": title, "options": [{"text": "Yes"}, {"text": "No"}]}
    created = cluster.balancer.request(
        "POST", "/api/v1/polls/", body, token=owner or token_of(cluster.balancer)
    )
    assert created.status == 201, created.text
    return created.json["id"], [option["id"] for option in created.json["options"]]


def kill_host(cluster: Cluster, number: int) -> int:
    """SIGKILL every process in the host's namespace (Gunicorn's master and workers); how many."""
    listed = subprocess.run(
        ["ip", "netns", "pids", cluster.layout.namespace(number)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for pid in listed:
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    return len(listed)


def host_up(cluster: Cluster, number: int, **settings: str) -> None:
    """Start the host's Gunicorn again (after a fault), with the cluster's settings and these."""
    env = cluster.env
    if settings:
        env = {**cluster.env, **settings}
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "host-up", str(number)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    in_rotation(cluster, f"app{number}")


def in_rotation(cluster: Cluster, name: str, seconds: float = 15) -> float:
    """Wait until the balancer sends requests to host `name` (app1 ...) again; how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        answered = {
            cluster.balancer.request("GET", "/api/health/").headers["X-App-Host"]
            for _ in range(cluster.layout.hosts)
        }
        if name in answered:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{name} was not back in the balancer's rotation within {seconds} s")


@dataclass
class Voting:
    """Ballots sent through the balancer by `clients` threads while a fault comes and goes.

    Each client takes the next ballot, sends it until it is stored (201) or refused as stored by
    an earlier attempt whose answer was lost (409), `pause` apart, then waits `pace` before the
    next: a steady, bounded load. A request gets `timeout` seconds, as an impatient client would
    give it; every attempt is recorded with its times. Used as a context manager: the clients
    start on entry and stop taking new ballots on exit.
    """

    cluster: Cluster
    poll: int
    ballots: list[Ballot]
    clients: int = 6
    pace: float = 0.03
    pause: float = 0.1
    timeout: float = 5
    #: Seconds after which a client gives up on a ballot (a test that failed, not a slow one).
    patience: float = 60
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _taken: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Voting:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.patience + self.timeout)

    def _client(self) -> None:
        balancer = self.cluster.balancer
        while not self._stop.is_set():
            with self._lock:
                if self._taken == len(self.ballots):
                    return
                ballot = self.ballots[self._taken]
                self._taken += 1
            given_up = time.monotonic() + self.patience
            while True:
                outcome = ballot.cast(balancer, self.poll, timeout=self.timeout)
                if outcome.status in (201, 409) or time.monotonic() > given_up:
                    break
                time.sleep(self.pause)
            time.sleep(self.pace)

    @property
    def sent(self) -> list[Ballot]:
        with self._lock:
            return [ballot for ballot in self.ballots[: self._taken] if ballot.attempts]

    @property
    def attempts(self) -> list[Outcome]:
        return [outcome for ballot in self.sent for outcome in list(ballot.attempts)]

    def acknowledged_since(self, moment: float) -> int:
        return sum(o.status == 201 and o.sent >= moment for o in self.attempts)

    def wait_for(self, count: int, since: float = 0, seconds: float = 30) -> float:
        """Wait until `count` ballots sent from `since` on were stored; when the first was."""
        deadline = time.monotonic() + seconds
        while self.acknowledged_since(since) < count:
            assert time.monotonic() < deadline, f"{count} ballots not stored within {seconds} s"
            assert len(self.sent) < len(self.ballots), "ran out of ballots: make more voters"
            time.sleep(0.05)
        return min(o.received for o in self.attempts if o.status == 201 and o.sent >= since)

    def check(self) -> tuple[set[int], set[int]]:
        """Every ballot sent ended stored (201) or, after a failed attempt, refused as stored
        before (409); the database holds exactly those, once each, and counts them exactly."""
        sent = self.sent
        unfinished = [
            ballot.final.describe()
            for ballot in sent
            if not (ballot.final.ok or (ballot.retried and is_already_voted(ballot.final)))
        ]
        assert not unfinished, unfinished[:5]
        acknowledged = {b.voter.id for b in sent if any(o.ok for o in b.attempts)}
        conflicts = {b.voter.id for b in sent if is_already_voted(b.final)}
        rows = stored_voters(self.cluster.deployment.database_url, self.poll)
        assert_stored_exactly(
            self.cluster.balancer,
            self.cluster.deployment,
            self.poll,
            rows,
            acknowledged,
            conflicts,
            voters=len(sent),
        )
        return acknowledged, conflicts


def ballots_for(cluster: Cluster, options: list[int], count: int) -> list[Ballot]:
    voters = make_voters(cluster.deployment, count)
    return [Ballot(voter, options[n % len(options)]) for n, voter in enumerate(voters)]
