"""Fault injection against the example project under Gunicorn: a PostgreSQL cluster of the tests'
own (so it can be restarted without disturbing anything else), voters made in bulk, and a client
that records every answer and every dropped connection.

The cluster needs PostgreSQL's server binaries (`pg_config --bindir`, else the newest
/usr/lib/postgresql/*/bin). Without them the tests are skipped, unless REQUIRE_POSTGRES is set.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.example.conftest import Deployment, Server, free_port

# -- a private PostgreSQL cluster ---------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The directory of initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        try:
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(found.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def unavailable(reason: str) -> None:
    """Skip, or fail when the environment says PostgreSQL must be there."""
    if os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(f"{reason} (REQUIRE_POSTGRES is set)")
    pytest.skip(f"{reason}; set REQUIRE_POSTGRES to fail instead")


@dataclass
class PrivatePostgres:
    """A throwaway cluster on 127.0.0.1 with fsync on: committed means on disk."""

    bindir: Path
    root: Path
    port: int
    run_as: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def conninfo(self, name: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={name}"

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args, timeout=timeout)

    def _run(self, program: str, *args: str, timeout: float) -> None:
        result = subprocess.run(
            [*self.run_as, str(self.bindir / program), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise AssertionError(
                f"{program} {' '.join(args)} exited {result.returncode}\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )

    def initdb(self) -> None:
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
            # --no-sync only skips flushing initdb's own files; the server runs with fsync on.
            *("--no-locale", "--encoding=UTF8", "--no-sync"),
            timeout=120,
        )

    def start(self, *, wait: bool = True) -> subprocess.Popen[bytes] | None:
        """Start the server; with `wait=False`, return at once (pg_ctl's own process)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c shared_buffers=32MB -c max_connections=60"
        )
        args = ["start", "-l", str(self.log), "-o", options]
        if wait:
            self.pg_ctl(*args, "-w", "-t", "60")
            return None
        return subprocess.Popen(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args, "-W"],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-m", mode, "-w", "-t", "60")

    def checkpoint(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=5) as connection:
            connection.execute("CHECKPOINT")

    def accepts(self) -> bool:
        """Whether a new connection succeeds and answers a query."""
        import psycopg

        try:
            with psycopg.connect(self.conninfo(), connect_timeout=1) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster for this module alone, deleted afterwards."""
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres)")
    assert bindir is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="django-polls-faults-", dir="/tmp"))
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        runuser = shutil.which("runuser")
        try:
            shutil.chown(root, user="postgres", group=None)
        except (LookupError, OSError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            unavailable(f"running as root and no usable postgres user ({exc})")
        if runuser is None:
            shutil.rmtree(root, ignore_errors=True)
            unavailable("running as root and no runuser to become postgres")
        assert runuser is not None
        run_as = [runuser, "-u", "postgres", "--"]
    root.chmod(0o700)
    cluster = PrivatePostgres(bindir=bindir, root=root, port=free_port(), run_as=run_as)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            try:
                cluster.stop("immediate")
            except (AssertionError, subprocess.SubprocessError):
                _kill_postmaster(cluster)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(cluster: PrivatePostgres) -> None:
    try:
        pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError, IndexError):
        pass


@pytest.fixture(scope="module")
def fault_deployment(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    """The example project on a fresh database of the private cluster, migrated. Static files are
    not collected: only the JSON API is driven."""
    import psycopg

    with psycopg.connect(private_postgres.conninfo(), autocommit=True) as connection:
        connection.execute("CREATE DATABASE polls")
    deployment = Deployment(
        database_url=private_postgres.url("polls"),
        static_root=tmp_path_factory.mktemp("static"),
    )
    deployment.manage("migrate", "--noinput")
    return deployment


# -- voters -------------------------------------------------------------------------------------

# Registering over HTTP hashes a password per user (a few hundred ms each on a small machine):
# the voters are made in one transaction instead, with tokens and no usable password.
MAKE_VOTERS = """
import json, secrets, django
django.setup()
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token
User = get_user_model()
prefix = secrets.token_hex(4)
with transaction.atomic():
    users = [User(username=f"voter-{prefix}-{n}") for n in range(%d)]
    for user in users:
        user.set_unusable_password()
    users = User.objects.bulk_create(users)
    tokens = Token.objects.bulk_create(Token(user=user, key=Token.generate_key()) for user in users)
print(json.dumps([[token.user.pk, token.key] for token in tokens]))
"""


@dataclass(frozen=True)
class Voter:
    id: int
    token: str


def make_voters(deployment: Deployment, count: int) -> list[Voter]:
    made = deployment.manage("shell", "--no-imports", "-c", MAKE_VOTERS % count)
    return [Voter(user_id, token) for user_id, token in json.loads(made.stdout)]


def stored_voters(database_url: str, poll_id: int) -> list[int]:
    """The voter of every vote row of the poll, read straight from the database."""
    import psycopg

    conninfo = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT voter_id FROM django_polls_vote WHERE poll_id = %s", [poll_id]
        ).fetchall()
    return [int(voter_id) for (voter_id,) in rows]


def counted_votes(database_url: str, poll_id: int) -> int:
    """The sum of the poll's option counts: their counters and their slots."""
    import psycopg

    conninfo = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=5) as connection:
        row = connection.execute(
            "SELECT coalesce(sum(o.votes), 0) + coalesce((SELECT sum(c.votes)"
            " FROM django_polls_optioncount AS c JOIN django_polls_option AS s"
            " ON s.id = c.option_id WHERE s.poll_id = %s), 0)"
            " FROM django_polls_option AS o WHERE o.poll_id = %s",
            [poll_id, poll_id],
        ).fetchone()
    assert row is not None
    return int(row[0])


# -- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request: an HTTP answer (`status` > 0) or a connection that failed (`error`)."""

    sent: float
    received: float
    status: int = 0
    headers: dict[str, str] | None = None
    body: bytes = b""
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status > 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        if not self.answered:
            return f"no answer ({self.error})"
        return f"{self.status} {self.headers} {self.body[:300]!r}"


#: Gunicorn workers of the server under test.
WORKERS = 4


@dataclass
class Ballot:
    """One voter's ballot and every attempt to cast it."""

    voter: Voter
    option: int
    attempts: list[Outcome] = field(default_factory=list)

    @property
    def final(self) -> Outcome:
        return self.attempts[-1]

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1

    def cast(self, server: Server, poll_id: int, *, timeout: float = 20) -> Outcome:
        """Send the ballot once more and record what came back."""
        outcome = send(
            server,
            "POST",
            vote_path(poll_id),
            {"options": [self.option]},
            token=self.voter.token,
            timeout=timeout,
        )
        self.attempts.append(outcome)
        return outcome


@pytest.fixture(scope="module")
def server(fault_deployment: Deployment) -> Iterator[Server]:
    with fault_deployment.serve(workers=WORKERS) as running:
        yield running


def send(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout: float = 20,
) -> Outcome:
    """One request on a connection of its own; a reset, an empty reply or a timeout is recorded
    as an outcome, not raised."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Token {token}"
    payload = json.dumps(body).encode() if body is not None else None
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    sent = time.monotonic()
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        content = response.read()
        return Outcome(
            sent=sent,
            received=time.monotonic(),
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=content,
        )
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(sent=sent, received=time.monotonic(), error=repr(exc))
    finally:
        connection.close()


def is_service_unavailable(outcome: Outcome) -> bool:
    """503 as the API promises it: JSON `{"detail", "code": "service_unavailable"}` and a
    Retry-After header."""
    if outcome.status != 503 or outcome.headers is None:
        return False
    if outcome.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return False
    if not outcome.headers.get("retry-after", "").isdigit():
        return False
    try:
        body = outcome.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and set(body) == {"detail", "code"}
        and body["code"] == "service_unavailable"
        and isinstance(body["detail"], str)
        and bool(body["detail"])
    )


def is_already_voted(outcome: Outcome) -> bool:
    if outcome.status != 409:
        return False
    try:
        return bool(outcome.json().get("code") == "already_voted")
    except ValueError:
        return False


def vote_path(poll_id: int) -> str:
    return f"/api/v1/polls/{poll_id}/vote/"


# -- Gunicorn's processes -----------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, oldest first (Gunicorn's master: its workers)."""
    found: list[tuple[int, int]] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may hold spaces: split after it.
        fields = text[text.rindex(")") + 2 :].split()
        state, parent, started = fields[0], int(fields[1]), int(fields[19])
        if parent == pid and state not in ("Z", "X"):
            found.append((started, int(stat.parent.name)))
    return [child for _, child in sorted(found)]


def wait_for_workers(server: Server, count: int, seconds: float = 30) -> list[int]:
    """Wait until the master has `count` workers and the service answers /api/health/ 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        workers = children(server.process.pid)
        if len(workers) == count and send(server, "GET", "/api/health/", timeout=5).status == 200:
            return workers
        time.sleep(0.1)
    raise AssertionError(
        f"Gunicorn has {len(children(server.process.pid))} workers, not {count}, "
        f"{seconds} s on (or /api/health/ is not 200)"
    )


def assert_stored_exactly(
    server: Server,
    deployment: Deployment,
    poll_id: int,
    rows: list[int],
    acknowledged: set[int],
    conflicts: set[int],
    *,
    voters: int,
) -> None:
    """The poll's stored voters (`rows`) are exactly the acknowledged ones and those whose retry
    was refused as a duplicate, once each; counters, results and polls_recount agree."""
    assert len(rows) == len(set(rows)), "a voter has two votes on a single-vote poll"
    assert not acknowledged - set(rows), f"acknowledged votes lost: {acknowledged - set(rows)}"
    assert not conflicts - set(rows), f"409 on retry, yet no vote stored: {conflicts - set(rows)}"
    assert set(rows) == acknowledged | conflicts
    assert len(rows) == voters
    assert counted_votes(deployment.database_url, poll_id) == len(rows)
    results = server.request("GET", f"/api/v1/polls/{poll_id}/results/")
    assert results.status == 200, results.text
    assert results.json["total_votes"] == len(rows)
    recount = deployment.manage("polls_recount", check=False)
    assert recount.returncode == 0, recount.stdout + recount.stderr
    assert "No drift" in recount.stdout
