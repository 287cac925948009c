"""The benchmark: django_polls next to a tutorial-style baseline and raw PostgreSQL, in one run.

    make bench                      # or: python -m benchmarks.run [options]

It creates a fresh PostgreSQL database (on ``DATABASE_URL``'s server, default the local one),
starts the example project under Gunicorn on it with the baseline mounted at ``/naive/api/v1/``
(same server, same settings, same workers), loads the data, drives HTTP load from a separate
process (:mod:`benchmarks.client`) and prints one table, with the targets checked. The exit
status is 1 when a target is missed. ``--help`` lists the sizes and counts that can be changed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import pickle
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
SERVER = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass
class Measure:
    per_second: float
    p50_ms: float
    p99_ms: float
    #: CPU milliseconds per request of the server's workers and of PostgreSQL's backends.
    app_cpu_ms: float = float("nan")
    db_cpu_ms: float = float("nan")


# ---------------------------------------------------------------------------------------------
# Set-up


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=3000, help="ballots per vote run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per vote measurement")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="Gunicorn workers of every server (default: the example's own, cores + 1 for "
        "uvicorn workers, 2 x cores + 1 for sync workers, at most 12)",
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="another server of the example beside 'asgi' (as shipped) and 'sync' (ASGI=false), "
        "with these environment variables (e.g. 'pool8:DATABASE_POOL_SIZE=8'), or more variables "
        "for one of those two; django_polls' votes and results are measured on every server, "
        "taking turns",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes instead of about 30: --votes 1500 --rounds 2 --reads 200 "
        "--sizes 1000,100000 --throughput-size 100000 --method-sizes 1000,100000 "
        "--worst-size 100000 (explicit options still apply)",
    )
    parser.add_argument(
        "--votes-only",
        action="store_true",
        help="only the vote runs at concurrency 32, and the hot poll's at 64 (no results, no "
        "bulk loading): for comparing servers quickly; no targets are checked",
    )
    parser.add_argument(
        "--hot-only",
        action="store_true",
        help="only the hot poll and the spread-out votes on the shipped deployment, at "
        f"concurrency 32 and {HOT_CONCURRENCY}, then polls_recount on the hot polls: for tuning "
        "the hot path; no targets are checked",
    )
    parser.add_argument(
        "--no-raw",
        action="store_true",
        help="with --votes-only: leave out raw PostgreSQL (its 32 connections, beside the "
        "servers' pools, may exceed max_connections when many servers run)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="first port of the servers (default: free ports)"
    )
    parser.add_argument(
        "--sizes",
        default="1000,100000,1000000,10000000",
        help="votes in the polls whose results are timed (the first and last are compared)",
    )
    parser.add_argument("--reads", type=int, default=400, help="results requests per size")
    parser.add_argument(
        "--naive-reads",
        type=int,
        default=5,
        help="results requests per size on the naive design (its COUNT reads every vote)",
    )
    parser.add_argument(
        "--charts",
        default="",
        metavar="DIRECTORY",
        help="draw the headline figures there as SVG, bench-results-latency.svg and "
        "bench-votes.svg (make bench: docs/images)",
    )
    parser.add_argument(
        "--method-sizes",
        default="1000,1000000",
        help="ballots in the ranked and in the score polls (5 options) whose results are timed "
        "(the first and last are compared)",
    )
    parser.add_argument(
        "--worst-size",
        type=int,
        default=1_000_000,
        help="full random rankings of 20 options in the worst case of ranked results",
    )
    parser.add_argument(
        "--first-reads",
        type=int,
        default=3,
        help="worst case: how many times a ballot is cast and the results read right after",
    )
    parser.add_argument(
        "--cached-reads",
        type=int,
        default=40,
        help="worst case: results requests of the unchanged poll, one at a time",
    )
    parser.add_argument(
        "--methods-only",
        action="store_true",
        help="only the voting methods: votes at concurrency 32 on single-choice, ranked and score "
        "polls, ranked and score results, the worst case of ranked results; on the shipped "
        "deployment alone, without the baseline and raw PostgreSQL",
    )
    parser.add_argument("--throughput-size", type=int, default=1_000_000)
    parser.add_argument("--database", default="django_polls_bench", help="made afresh, dropped")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--no-targets", action="store_true", help="report the targets but exit 0 when one is missed"
    )
    options = parser.parse_args()
    if options.quick:
        given = set(sys.argv[1:])
        for flag, value in QUICK.items():
            if f"--{flag.replace('_', '-')}" not in given:
                setattr(options, flag, value)
    options.servers = servers(options.server)
    if options.methods_only or options.hot_only:
        options.servers = {DEFAULT: options.servers[DEFAULT]}
    options.votes_only = options.votes_only or options.hot_only
    if options.methods_only:
        options.concurrencies = (32,)
    elif options.votes_only:
        options.concurrencies = (32, HOT_CONCURRENCY)
    else:
        options.concurrencies = (8, 32, HOT_CONCURRENCY)
    options.method_sizes_list = [int(size) for size in options.method_sizes.split(",")]
    return options


#: What --quick changes.
QUICK: dict[str, Any] = {
    "votes": 1500,
    "rounds": 2,
    "reads": 200,
    "sizes": "1000,100000",
    "throughput_size": 100_000,
    "method_sizes": "1000,100000",
    "worst_size": 100_000,
}

#: The deployment `make demo` ships (uvicorn workers, ASGI), then the sync workers beside it, on
#: which the tutorial-style baseline is measured too. ``PLAIN``: the shipped one without the
#: audit trail, for the cost of webhooks and the audit trail.
DEFAULT = "asgi"
SYNC = "sync"
PLAIN = "plain"

#: The concurrency of a poll gone viral: the hot poll, and the shipped deployment's spread-out
#: votes it is compared with in the same rounds, run at it too; nothing else does (raw
#: PostgreSQL's connections beside the servers' pools would come near max_connections).
HOT_CONCURRENCY = 64


def servers(extra: Sequence[str]) -> dict[str, dict[str, str]]:
    """Server name -> the environment variables that make it."""
    made = {DEFAULT: {"ASGI": "true"}, SYNC: {"ASGI": "false"}}
    for spec in extra:
        name, _, variables = spec.partition(":")
        pairs = dict(pair.split("=", 1) for pair in variables.split(",") if pair)
        made[name] = {**made.get(name, {}), **pairs}
    return made


def workers(options: argparse.Namespace, name: str) -> int:
    """How many workers a server runs: as given, else the example's default
    (example_project/gunicorn.conf.py; the benchmark runs on PostgreSQL)."""
    given = options.servers[name].get("WEB_CONCURRENCY") or options.workers
    if given:
        return int(given)
    cores = os.cpu_count() or 1
    asgi = options.servers[name].get("ASGI", "true").lower() not in {"false", "off", "0", "no"}
    return min(cores + 1 if asgi else 2 * cores + 1, 12)


def database_urls(name: str) -> tuple[str, str]:
    """The server's maintenance URL and the benchmark database's URL."""
    server = os.environ.get("DATABASE_URL") or SERVER
    if not server.startswith(("postgres://", "postgresql://")):
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://... (or unset it).")
    return server, server.rsplit("/", 1)[0] + "/" + name


def recreate_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(url: str, port: int, workers: int = 0, **variables: str) -> dict[str, str]:
    """The example's production settings, configured only through the environment; ``workers``
    0 leaves the number to the example."""
    return {
        **_environment(url, port),
        **({"WEB_CONCURRENCY": str(workers)} if workers else {}),
        **variables,
    }


def _environment(url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "ENV_FILE": os.devnull,
        "SECRET_KEY": "benchmark-only-" + "x" * 40,
        "DEBUG": "false",
        "HTTPS": "false",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "DATABASE_URL": url,
        "THROTTLE": "off",  # throttling would refuse the benchmark's own load
        # No webhook sender beside the servers: the vote runs measure the vote path alone (the
        # sender is timed on its own afterwards); webhooks to this machine's receiver.
        "WEBHOOK_WORKER": "false",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int) -> Iterator[int]:
    """Gunicorn serving the example; its master's process id."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(EXAMPLE / "gunicorn.conf.py")],
            env=env,
            cwd=EXAMPLE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=5):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        sys.exit("Gunicorn did not start:\n" + log.read().decode()[-3000:])
                    time.sleep(0.2)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------------------
# CPU time


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state, ppid, ... utime and stime are the 14th and 15th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_of(master: int) -> list[int]:
    """The Gunicorn workers: the master's children."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                children.append(int(stat.parent.name))
    return children


@dataclass
class CpuMeter:
    """CPU seconds used by a server's workers and by PostgreSQL's backends of the benchmark's
    database while a load runs (a backend that appears meanwhile counts from zero)."""

    server: str
    database: str
    #: Kept open: the servers' pools may take every other connection the database allows.
    conn: Any = None

    def backends(self) -> list[int]:
        """PostgreSQL's backends connected to the benchmark's database (the server is local)."""
        import psycopg

        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
        for attempt in range(2):
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.server, autocommit=True)
            try:
                return [pid for (pid,) in self.conn.execute(query, [self.database]).fetchall()]
            except psycopg.OperationalError:  # closed by the server: once more, reconnected
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def snapshot(self, master: int) -> tuple[dict[int, float], dict[int, float]]:
        return (
            {pid: cpu_seconds(pid) for pid in workers_of(master)},
            {pid: cpu_seconds(pid) for pid in self.backends()},
        )

    def used(
        self, master: int, before: tuple[dict[int, float], dict[int, float]]
    ) -> tuple[float, float]:
        after = self.snapshot(master)
        app, db = (
            sum(now - then.get(pid, 0.0) for pid, now in later.items())
            for then, later in zip(before, after, strict=True)
        )
        return app, db


# ---------------------------------------------------------------------------------------------
# Data


def make_voters(count: int, prefix: str = "bench-voter-") -> list[str]:
    """``count`` accounts with tokens, inserted in one statement; their tokens."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH voters AS (
                INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                       email, is_staff, is_active, date_joined)
                SELECT '!', false, %s || n, '', '', '', false, true, now()
                FROM generate_series(1, %s) AS n
                RETURNING id
            )
            INSERT INTO authtoken_token (key, user_id, created)
            SELECT substr(md5(random()::text) || md5(random()::text), 1, 40), id, now()
            FROM voters
            RETURNING key
            """,
            [prefix, count],
        )
        return [key for (key,) in cursor.fetchall()]


def owner(name: str = "bench-owner") -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=name)
    return user


#: The owner of the polls whose ballots are announced to a webhook subscription.
HOOKED_OWNER = "bench-hooked-owner"
#: Where that subscription sends: nothing listens there while votes are measured (no sender
#: runs then); the sender's own run points it at a receiver.
HOOK_URL = "http://127.0.0.1:9/bench"


def our_polls(
    count: int, *, options: int = 4, by: str = "bench-owner"
) -> list[tuple[int, list[int]]]:
    """New polls of django_polls: (poll id, option ids)."""
    from django_polls import services

    made = []
    for index in range(count):
        poll = services.create_poll(
            created_by=owner(by),
            title=f"Benchmark poll {index}",
            options=[f"Option {n}" for n in range(options)],
        )
        made.append((poll.pk, list(poll.options.order_by("order").values_list("pk", flat=True))))
    return made


def naive_polls(count: int, *, options: int = 4) -> list[tuple[int, list[int]]]:
    from benchmarks.naive.models import Option, Poll

    made = []
    for index in range(count):
        poll = Poll.objects.create(title=f"Benchmark poll {index}", created_by=owner())
        made.append(
            (
                poll.pk,
                [Option.objects.create(poll=poll, text=f"Option {n}").pk for n in range(options)],
            )
        )
    return made


def ballots(
    polls: Sequence[tuple[int, list[int]]], tokens: Sequence[str], *, hot: bool = False
) -> list[tuple[str, int, int]]:
    """One ballot per voter: (token, poll, option), spread over the polls and their options, or
    (``hot``) all on the first option of the first poll."""
    spread = []
    for index, token in enumerate(tokens):
        poll, options = polls[0] if hot else polls[index % len(polls)]
        option = options[0] if hot else options[(index // len(polls)) % len(options)]
        spread.append((token, poll, option))
    return spread


def request(method: str, path: str, *, token: str = "", body: bytes = b"") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if token:
        head.append(f"Authorization: Token {token}")
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def vote_requests(prefix: str, spread: Sequence[tuple[str, int, int]]) -> list[tuple[str, bytes]]:
    return [
        (
            "vote",
            request(
                "POST",
                f"{prefix}/polls/{poll}/vote/",
                token=token,
                body=json.dumps({"options": [option]}).encode(),
            ),
        )
        for token, poll, option in spread
    ]


#: The voting methods whose ballots and results are measured beside single choice.
METHODS = ("ranked", "score")
#: The score polls' highest score: 66 tallies for five options.
MAX_SCORE = 10


def method_polls(
    count: int, method: str, *, options: int = 4, min_choices: int | None = None
) -> list[tuple[int, list[int]]]:
    """New ranked or score polls of django_polls: (poll id, option ids)."""
    from django_polls import services

    made = []
    for index in range(count):
        poll = services.create_poll(
            created_by=owner(),
            title=f"Benchmark {method} poll {index}",
            options=[f"Option {n}" for n in range(options)],
            method=method,
            min_choices=min_choices,
            max_score=MAX_SCORE if method == "score" else None,
        )
        made.append((poll.pk, list(poll.options.order_by("order").values_list("pk", flat=True))))
    return made


def method_ballot(method: str, options: Sequence[int], rng: random.Random) -> dict[str, Any]:
    """A random ballot: a ranking of random length, or random scores of a random number of
    options (as ``polls_load_votes`` draws them)."""
    chosen = rng.sample(list(options), rng.randint(1, len(options)))
    if method == "ranked":
        return {"ranking": chosen}
    return {"scores": [{"option": pk, "score": rng.randint(0, MAX_SCORE)} for pk in chosen]}


def method_vote_requests(
    method: str, polls: Sequence[tuple[int, list[int]]], tokens: Sequence[str], seed: int
) -> list[tuple[str, bytes]]:
    """One random ballot per voter, the voters spread over the polls."""
    rng = random.Random(seed)
    made = []
    for index, token in enumerate(tokens):
        poll, options = polls[index % len(polls)]
        body = json.dumps(method_ballot(method, options, rng)).encode()
        made.append(
            ("vote", request("POST", f"/api/v1/polls/{poll}/vote/", token=token, body=body))
        )
    return made


# ---------------------------------------------------------------------------------------------
# Load


@dataclass
class Server:
    """A running server of the example: its name, port, Gunicorn master and kind of worker."""

    name: str
    port: int
    master: int
    asgi: bool


def drive(
    server: Server,
    requests: list[tuple[str, bytes]],
    concurrency: int,
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    """The client's JSON; with a meter, also the CPU milliseconds per request that the server's
    workers (``app_cpu_ms``) and PostgreSQL's backends (``db_cpu_ms``) used meanwhile."""
    with tempfile.NamedTemporaryFile(suffix=".pickle") as file:
        pickle.dump(requests, file)
        file.flush()
        before = meter.snapshot(server.master) if meter else None
        result = run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.client",
                file.name,
                "127.0.0.1",
                str(server.port),
                str(concurrency),
                "asgi" if server.asgi else "wsgi",
            ]
        )
        if meter and before:
            app, db = meter.used(server.master, before)
            result["app_cpu_ms"] = 1000 * app / result["requests"]
            result["db_cpu_ms"] = 1000 * db / result["requests"]
        return result


def measure(result: dict[str, Any]) -> Measure:
    return Measure(
        result["per_second"],
        result["p50_ms"],
        result["p99_ms"],
        result.get("app_cpu_ms", float("nan")),
        result.get("db_cpu_ms", float("nan")),
    )


def run_json(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def expect_only(result: dict[str, Any], status: str, what: str) -> None:
    if set(result["statuses"]) != {status}:
        sys.exit(f"{what}: expected only {status}, got {result['statuses']}")


def raw_ballots(url: str, spread: Sequence[tuple[str, int, int]], concurrency: int) -> Measure:
    """The same ballot statement as the service's, sent directly through psycopg."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from django_polls import services
    from django_polls.services import ballots

    voter_of = dict(Token.objects.values_list("key", "user_id"))
    assert get_user_model().objects.exists()
    job = {
        "dsn": url,
        "sql": ballots._ballot_sql(),
        "params": [
            {
                "namespace": services.ADVISORY_LOCK_NAMESPACE,
                "poll": poll,
                "options": [option],
                "voter": voter_of[token],
                "count": 1,
            }
            for token, poll, option in spread
        ],
    }
    with tempfile.NamedTemporaryFile(suffix=".pickle") as file:
        pickle.dump(job, file)
        file.flush()
        result = run_json([sys.executable, "-m", "benchmarks.rawpg", file.name, str(concurrency)])
    expect_only(result, "201", f"raw PostgreSQL at {concurrency}")
    return Measure(result["per_second"], result["p50_ms"], result["p99_ms"])


def median(measures: Sequence[Measure]) -> Measure:
    return Measure(
        statistics.median(m.per_second for m in measures),
        statistics.median(m.p50_ms for m in measures),
        statistics.median(m.p99_ms for m in measures),
        statistics.median(m.app_cpu_ms for m in measures),
        statistics.median(m.db_cpu_ms for m in measures),
    )


def statements_on_the_wire(call: Callable[[], Any]) -> tuple[int, Any]:
    """What ``call()`` returns, and the statements it sends PostgreSQL (libpq's trace, in which
    BEGIN and COMMIT count too)."""
    from django.db import close_old_connections, connection

    # What a server does when a request starts (the test client leaves it out): return an
    # expired connection, or mark a persistent one for its health check, which then counts.
    close_old_connections()
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        try:
            value = call()
        finally:
            pgconn.untrace()
        trace.seek(0)
        return value, sum(
            1
            for line in trace.read().decode().splitlines()
            if len(fields := line.split("\t")) > 4
            and fields[1] == "F"
            and fields[3] in {"Query", "Execute"}
        )


def count_statements(tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(django_polls, naive) statements per vote and per results request."""
    from django.test import Client

    counts: dict[str, list[int]] = {"vote": [], "results": []}
    for prefix, (poll, options), token in (
        ("/api/v1", our_polls(1)[0], tokens[0]),
        ("/naive/api/v1", naive_polls(1)[0], tokens[1]),
    ):
        client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        ballot = {"options": options[:1]}
        vote = f"{prefix}/polls/{poll}/vote/"
        results = f"{prefix}/polls/{poll}/results/"
        for kind, call in (
            ("vote", functools.partial(client.post, vote, ballot, "application/json")),
            ("results", functools.partial(Client().get, results)),  # public: no token
        ):
            answer, count = statements_on_the_wire(call)
            if answer.status_code not in (200, 201):
                sys.exit(f"{prefix} {kind} failed: {answer.status_code} {answer.content!r}")
            counts[kind].append(count)
    return {kind: (ours, naive) for kind, (ours, naive) in counts.items()}


def count_method_statements(tokens: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Statements of a ranked and of a score poll (4 options, a ballot naming 3): per ballot,
    per results read of a new state of the counts (the tallies read, the rounds computed) and
    per results read of a state this process computed already."""
    from django.test import Client

    counts = {}
    for method, token in zip(METHODS, tokens[2:], strict=False):
        ((poll, options),) = method_polls(1, method)
        ballot: dict[str, Any]
        if method == "ranked":
            ballot = {"ranking": options[:3]}
        else:
            ballot = {"scores": [{"option": pk, "score": 5} for pk in options[:3]]}
        client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        made = []
        for call in (
            functools.partial(
                client.post, f"/api/v1/polls/{poll}/vote/", ballot, "application/json"
            ),
            functools.partial(Client().get, f"/api/v1/polls/{poll}/results/"),
            functools.partial(Client().get, f"/api/v1/polls/{poll}/results/"),
        ):
            answer, count = statements_on_the_wire(call)
            if answer.status_code not in (200, 201):
                sys.exit(f"{method} poll failed: {answer.status_code} {answer.content!r}")
            made.append(count)
        counts[method] = (made[0], made[1], made[2])
    return counts


# ---------------------------------------------------------------------------------------------
# The run


def main() -> None:
    options = arguments()
    sizes = [int(size) for size in options.sizes.split(",")]
    name = options.database
    server, url = database_urls(name)
    ports = {
        kind: options.port + index if options.port else free_port()
        for index, kind in enumerate(options.servers)
    }
    envs = {
        kind: environment(url, ports[kind], options.workers, **variables)
        for kind, variables in options.servers.items()
    }
    # This process sets up the data with the settings of the deployment that is shipped.
    os.environ.update(
        {key: value for key, value in envs[DEFAULT].items() if key not in ("PORT", "HOST")}
    )
    sys.path[:0] = [str(EXAMPLE), str(ROOT)]

    where = server.rsplit("@", 1)[-1].rsplit("/", 1)[0]
    print(f"Database {name} on {where}: made afresh.", flush=True)
    recreate_database(server, name)
    try:
        meter = CpuMeter(server, name)
        results = benchmark(options, sizes, url, envs, meter)
        if not (options.methods_only or options.hot_only):
            webhook_runs(options, envs[DEFAULT], meter, results)
    finally:
        from django.db import connection

        connection.close()
        if getattr(connection, "pool", None):  # this process's pool, before its database goes
            connection.close_pool()
        if not options.keep:
            drop_database(server, name)
    missed = report(options, sizes, results)
    sys.exit(0 if options.no_targets else missed)


def benchmark(
    options: argparse.Namespace,
    sizes: list[int],
    url: str,
    envs: dict[str, dict[str, str]],
    meter: CpuMeter,
) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    # WhiteNoise's note that collectstatic has not run: no static file is served here.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    django.setup()
    call_command("migrate", verbosity=0)
    tokens = make_voters(options.votes)
    out: dict[str, Any] = {
        "statements": count_statements(tokens),
        "method_statements": count_method_statements(tokens),
    }

    with contextlib.ExitStack() as stack:
        running = [
            Server(
                kind,
                int(env["PORT"]),
                stack.enter_context(gunicorn(env, int(env["PORT"]))),
                env.get("ASGI", "true").lower() not in {"false", "off", "0", "no"},
            )
            for kind, env in envs.items()
        ]
        for each in running:
            warm_up(each, tokens)
        # Votes first, while both designs' tables are small alike.
        print("Votes ...", flush=True)
        hot_polls: list[int] = []
        out["votes"], out["ratios"] = vote_runs(options, running, url, tokens, meter, hot_polls)
        if hot_polls:
            # The counters of the polls that took every ballot on one option, proved.
            out["recount"] = recount(hot_polls)
            print(f"polls_recount on the hot polls: {out['recount'][1].strip()}", flush=True)
        if options.votes_only:
            out["server"] = server_facts()
            return out
        if not options.methods_only:
            single_choice_results(options, sizes, running, meter, out)
        method_results(options, running, tokens, out)
    out["server"] = server_facts()
    return out


def single_choice_results(
    options: argparse.Namespace,
    sizes: list[int],
    running: list[Server],
    meter: CpuMeter,
    out: dict[str, Any],
) -> None:
    """Results latency and throughput of single-choice polls loaded in bulk, and of the
    baseline."""
    from django.core.management import call_command
    from django.db import connection

    print("Loading the polls whose results are timed ...", flush=True)
    loaded = {}
    for size in sorted({*sizes, options.throughput_size}):
        ((poll, _),) = our_polls(1)
        started = time.perf_counter()
        call_command("polls_load_votes", poll, size, stdout=io.StringIO())
        seconds = time.perf_counter() - started
        loaded[size] = poll
        print(f"  {size:>12,} votes in {seconds:6.1f} s", flush=True)
        out.setdefault("load", {})[size] = seconds
    naive = {size: copy_to_naive(loaded[size]) for size in sorted(loaded)}
    naive_big = naive[options.throughput_size]
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

    print("Results ...", flush=True)
    out["latency"] = results_latency(options, running, sizes, loaded)
    out["naive_latency"] = naive_results_latency(options, running, sizes, naive)
    out["throughput"] = results_throughput(
        running, loaded[options.throughput_size], naive_big, meter
    )


def method_results(
    options: argparse.Namespace, running: list[Server], tokens: Sequence[str], out: dict[str, Any]
) -> None:
    """Ranked and score results at the method sizes, and the worst case of ranked results, on
    the deployment that is shipped."""
    from django.db import connection

    shipped = next(server for server in running if server.name == DEFAULT)
    sizes = options.method_sizes_list
    print("Loading the ranked and score polls ...", flush=True)
    loaded = load_method_polls(options, sizes)
    out["method_load"] = loaded
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print("Ranked and score results ...", flush=True)
    out["method_latency"] = method_results_latency(options, shipped, loaded, sizes)
    print("The worst case of ranked results ...", flush=True)
    out["worst"] = worst_case(options, shipped, loaded["worst"], tokens)


def copy_to_naive(poll_id: int) -> int:
    """A baseline poll with the same votes as one of ours (same voters, same options)."""
    from django.db import connection

    from django_polls.models import Option

    ((naive, naive_options),) = naive_polls(1)
    ours = list(
        Option.objects.filter(poll_id=poll_id).order_by("order").values_list("pk", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO naive_vote (poll_id, option_id, user_id, created_at)
            SELECT %s, (%s::bigint[])[array_position(%s::bigint[], v.option_id)], v.voter_id,
                   v.created_at
            FROM django_polls_vote AS v WHERE v.poll_id = %s
            """,
            [naive, naive_options, ours, poll_id],
        )
    return naive


def warm_up(server: Server, tokens: Sequence[str]) -> None:
    """Every worker imports, connects and answers a few of each request before timing."""
    ours = our_polls(1)
    naive = naive_polls(1)
    requests = vote_requests("/api/v1", ballots(ours, tokens[:200])) + vote_requests(
        "/naive/api/v1", ballots(naive, tokens[:200])
    )
    for prefix, polls in (("/api/v1", ours), ("/naive/api/v1", naive)):
        requests += [("results", request("GET", f"{prefix}/polls/{polls[0][0]}/results/"))] * 100
    for method in METHODS:
        polls = method_polls(1, method)
        requests += method_vote_requests(method, polls, tokens[:100], seed=0)
        requests += [("results", request("GET", f"/api/v1/polls/{polls[0][0]}/results/"))] * 50
    drive(server, requests, 8)


def subscribe_hooked_owner() -> None:
    """One webhook subscription, to every event of the polls of ``HOOKED_OWNER``."""
    from django_polls import services
    from django_polls.models import WebhookEvent

    services.create_subscription(
        created_by=owner(HOOKED_OWNER),
        url=HOOK_URL,
        secret="benchmark-webhook-secret",
        events=list(WebhookEvent.values),
    )


def webhook_runs(
    options: argparse.Namespace, env: dict[str, str], meter: CpuMeter, out: dict[str, Any]
) -> None:
    """What webhooks and the audit trail cost a ballot, once the other servers have stopped:
    the shipped deployment (audit trail on) voting on polls whose every event a webhook
    subscription hears, against the same deployment without the audit trail voting on polls
    that none hears, taking turns at concurrency 32 over the rounds; then the sender, sending
    what the runs wrote."""
    from django.db import connection

    subscribe_hooked_owner()
    tokens = make_voters(options.votes, prefix="bench-hooked-voter-")
    connection.close()
    plain_port, hooked_port = free_port(), free_port()
    print("Votes with and without webhooks and the audit trail ...", flush=True)
    with contextlib.ExitStack() as stack:
        servers = {
            "plain": Server(
                PLAIN,
                plain_port,
                stack.enter_context(
                    gunicorn({**env, "PORT": str(plain_port), "AUDIT_TRAIL": "false"}, plain_port)
                ),
                True,
            ),
            "hooked": Server(
                DEFAULT,
                hooked_port,
                stack.enter_context(gunicorn({**env, "PORT": str(hooked_port)}, hooked_port)),
                True,
            ),
        }
        for each in servers.values():
            warm_up(each, tokens)
        runs: dict[str, list[Measure]] = {"plain": [], "hooked": []}
        for round_ in range(options.rounds):
            order = ["plain", "hooked"] if round_ % 2 == 0 else ["hooked", "plain"]
            for kind in order:
                by = HOOKED_OWNER if kind == "hooked" else "bench-owner"
                requests = vote_requests("/api/v1", ballots(our_polls(50, by=by), tokens))
                result = drive(servers[kind], requests, 32, meter)
                expect_only(result, "201", f"{kind} votes at 32")
                runs[kind].append(measure(result))
            share = runs["hooked"][-1].per_second / runs["plain"][-1].per_second
            out["ratios"].setdefault("hooked", []).append(share)
            print(f"  round {round_ + 1} of {options.rounds}: {share:.0%}", flush=True)
    for kind, measures in runs.items():
        out["votes"][f"ours {kind} 32"] = median(measures)
    # Once the servers have stopped, their pools holding no connection.
    out["sender"] = time_the_sender(env)


def time_the_sender(env: dict[str, str]) -> dict[str, float]:
    """The deliveries the vote runs left in the outbox, sent by ``polls_deliver --once`` to a
    receiver in this process that answers 204 at once: how many, in how long."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from django_polls.models import WebhookDelivery, WebhookSubscription

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    WebhookSubscription.objects.update(url=f"http://127.0.0.1:{receiver.server_port}/bench")
    pending = WebhookDelivery.objects.filter(status="pending").count()
    print(f"Sending {pending:,} webhook deliveries ...", flush=True)
    started = time.monotonic()
    subprocess.run(
        [
            *(sys.executable, "manage.py", "polls_deliver", "--once"),
            *("--batch", "200", "--concurrency", "8"),
        ],
        cwd=EXAMPLE,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    receiver.shutdown()
    delivered = WebhookDelivery.objects.filter(status="delivered").count()
    return {"pending": pending, "delivered": delivered, "seconds": seconds}


def vote_runs(
    options: argparse.Namespace,
    running: list[Server],
    url: str,
    tokens: list[str],
    meter: CpuMeter,
    hot_polls: list[int],
) -> tuple[dict[str, Measure], dict[str, list[float]]]:
    """Every design on every server at every concurrency once per round, the order flipped each
    round; the medians over the rounds, and the ratios that the runs of each round make with each
    other (so a machine that changes speed between rounds moves both sides of a ratio).

    django_polls runs on every server; the baseline, as the tutorial deploys it, on the sync
    workers; the hot poll, and the ranked and score polls, on the deployment that is shipped, at
    concurrency 32; the hot poll and that deployment's spread-out votes at
    :data:`HOT_CONCURRENCY` too. With ``--methods-only``: single choice, ranked and score alone;
    with ``--hot-only``: the hot poll and the spread-out votes alone.

    The ids of the hot polls go to ``hot_polls``, for polls_recount."""
    by_name = {server.name: server for server in running}
    # (label, prefix, server, kind): kind is "spread", "hot" or a voting method.
    designs = [(f"ours {server.name}", "/api/v1", server, "spread") for server in running]
    if options.hot_only:
        designs.append(("ours hot", "/api/v1", by_name[DEFAULT], "hot"))
    elif not options.methods_only:
        designs += [
            ("naive", "/naive/api/v1", by_name[SYNC], "spread"),
            ("ours hot", "/api/v1", by_name[DEFAULT], "hot"),
            ("naive hot", "/naive/api/v1", by_name[SYNC], "hot"),
        ]
    if not options.hot_only:
        designs += [(f"ours {method}", "/api/v1", by_name[DEFAULT], method) for method in METHODS]
    runs: dict[str, list[Measure]] = {}
    ratios: dict[str, list[float]] = {}
    for round_ in range(options.rounds):
        for concurrency in options.concurrencies:
            measured: dict[str, Measure] = {}
            for label, prefix, server, kind in designs if round_ % 2 == 0 else designs[::-1]:
                if not runs_at(label, kind, concurrency):
                    continue
                if kind in METHODS:
                    polls = method_polls(50, kind)
                    requests = method_vote_requests(kind, polls, tokens, seed=round_)
                else:
                    hot = kind == "hot"
                    make = naive_polls if prefix.startswith("/naive") else our_polls
                    polls = make(1 if hot else 50)
                    if label == "ours hot":
                        hot_polls.append(polls[0][0])
                    requests = vote_requests(prefix, ballots(polls, tokens, hot=hot))
                result = drive(server, requests, concurrency, meter)
                expect_only(result, "201", f"{label} votes at {concurrency}")
                measured[label] = measure(result)
            if (
                not (options.no_raw and options.votes_only)
                and not options.methods_only
                and concurrency != HOT_CONCURRENCY
            ):
                measured["raw"] = raw_ballots(url, ballots(our_polls(50), tokens), concurrency)
            for label, each in measured.items():
                runs.setdefault(f"{label} {concurrency}", []).append(each)
            for server in running:
                if f"ours {server.name}" not in measured:
                    continue
                ours = measured[f"ours {server.name}"].per_second
                if "naive" in measured:
                    ratios.setdefault(f"{server.name}/naive {concurrency}", []).append(
                        ours / measured["naive"].per_second
                    )
                if "raw" in measured:
                    ratios.setdefault(f"{server.name}/raw {concurrency}", []).append(
                        ours / measured["raw"].per_second
                    )
            default = measured[f"ours {DEFAULT}"].per_second
            for server in running[1:]:
                if f"ours {server.name}" not in measured:
                    continue
                ratios.setdefault(f"{DEFAULT}/{server.name} {concurrency}", []).append(
                    default / measured[f"ours {server.name}"].per_second
                )
            if "ours hot" in measured:
                ratios.setdefault(f"hot {concurrency}", []).append(
                    measured["ours hot"].per_second / default
                )
            for method in METHODS:
                if f"ours {method}" in measured:
                    ratios.setdefault(f"{method}/single {concurrency}", []).append(
                        measured[f"ours {method}"].per_second / default
                    )
        shown = ", ".join(
            f"{key} {values[-1]:.2f}"
            for key, values in ratios.items()
            if key.endswith((" 32", f" {HOT_CONCURRENCY}"))
        )
        print(f"  round {round_ + 1} of {options.rounds}: {shown}", flush=True)
    return {key: median(measures) for key, measures in runs.items()}, ratios


def runs_at(label: str, kind: str, concurrency: int) -> bool:
    """Whether a design runs at that concurrency: spread-out votes at every one but
    :data:`HOT_CONCURRENCY`, the others at 32; at :data:`HOT_CONCURRENCY` the hot poll and the
    shipped deployment's spread-out votes alone."""
    if concurrency == HOT_CONCURRENCY:
        return label in (f"ours {DEFAULT}", "ours hot")
    return kind == "spread" or concurrency == 32


def recount(poll_ids: Sequence[int]) -> tuple[int, str]:
    """polls_recount on these polls: how many counts drift, and what it printed."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    printed = io.StringIO()
    arguments = [argument for poll in poll_ids for argument in ("--poll", str(poll))]
    try:
        call_command("polls_recount", *arguments, stdout=printed, no_color=True)
    except CommandError as exc:
        return int(str(exc).split()[0]), printed.getvalue() + str(exc)
    return 0, printed.getvalue()


def results_latency(
    options: argparse.Namespace, running: list[Server], sizes: list[int], loaded: dict[int, int]
) -> dict[str, dict[int, Measure]]:
    """One request at a time, the polls taking turns, so every size sees the same conditions;
    the servers taking turns in halves (A B B A)."""
    half = [
        (str(size), request("GET", f"/api/v1/polls/{loaded[size]}/results/"))
        for _ in range(max(1, options.reads // 2))
        for size in sizes
    ]
    latencies: dict[str, dict[str, list[float]]] = {}
    for server in [*running, *running[::-1]]:
        result = drive(server, half, 1)
        expect_only(result, "200", f"results latency on {server.name}")
        for size in sizes:
            each = latencies.setdefault(server.name, {}).setdefault(str(size), [])
            each += result["latencies"][str(size)]
    return {
        name: {
            size: Measure(
                0.0,
                1000 * statistics.quantiles(by_size[str(size)], n=100)[49],
                1000 * statistics.quantiles(by_size[str(size)], n=100)[98],
            )
            for size in sizes
        }
        for name, by_size in latencies.items()
    }


def naive_results_latency(
    options: argparse.Namespace, running: list[Server], sizes: list[int], naive: dict[int, int]
) -> dict[int, Measure]:
    """The baseline's results (its COUNT over every vote), one request at a time on the sync
    workers, a few per size."""
    sync = next(server for server in running if server.name == SYNC)
    paths = [
        (str(size), request("GET", f"/naive/api/v1/polls/{naive[size]}/results/"))
        for _ in range(options.naive_reads)
        for size in sizes
    ]
    result = drive(sync, paths, 1)
    expect_only(result, "200", "naive results latency")
    return {
        size: Measure(
            0.0,
            1000 * statistics.median(result["latencies"][str(size)]),
            1000 * max(result["latencies"][str(size)]),
        )
        for size in sizes
    }


def results_throughput(
    running: list[Server], ours: int, naive: int, meter: CpuMeter
) -> dict[str, Measure]:
    """django_polls on every server, the baseline on the sync workers, concurrency 8."""
    sync = next(server for server in running if server.name == SYNC)
    measured = {}
    for label, server, path, count in [
        *((f"ours {s.name}", s, f"/api/v1/polls/{ours}/results/", 4000) for s in running),
        ("naive", sync, f"/naive/api/v1/polls/{naive}/results/", 80),
    ]:
        result = drive(server, [("results", request("GET", path))] * count, 8, meter)
        expect_only(result, "200", f"{label} results")
        measured[label] = measure(result)
    return measured


@dataclass
class Loaded:
    """A poll loaded with ``polls_load_votes``: its id, options, ballots and loading time."""

    poll: int
    options: list[int]
    ballots: int
    seconds: float


#: The worst case of ranked results: every option ranked, so nearly every ballot is a ranking of
#: its own.
WORST_OPTIONS = 20


def load_method_polls(options: argparse.Namespace, sizes: list[int]) -> dict[str, Loaded]:
    """The ranked and score polls whose results are timed (5 options; ``"ranked 1000"``, ...)
    and the worst case (``"worst"``: full rankings of 20 options), loaded in bulk."""
    from django.core.management import call_command

    wanted: list[tuple[str, str, int, int | None, int]] = [
        (f"{method} {size}", method, 5, None, size) for method in METHODS for size in sizes
    ]
    wanted.append(("worst", "ranked", WORST_OPTIONS, WORST_OPTIONS, options.worst_size))
    loaded = {}
    for label, method, count, min_choices, size in wanted:
        ((poll, option_ids),) = method_polls(1, method, options=count, min_choices=min_choices)
        started = time.perf_counter()
        call_command("polls_load_votes", poll, size, stdout=io.StringIO())
        seconds = time.perf_counter() - started
        loaded[label] = Loaded(poll, option_ids, size, seconds)
        shown = "ranked, 20 options, full rankings" if label == "worst" else f"{method}, 5 options"
        print(f"  {size:>12,} ballots ({shown}) in {seconds:6.1f} s", flush=True)
    return loaded


def distinct_rankings(poll: int) -> int:
    """The poll's tallies other than the app's own (``#...``): one per distinct ranking."""
    from django_polls.models import Tally

    return Tally.objects.filter(poll_id=poll).exclude(key__startswith="#").count()


def method_results_latency(
    options: argparse.Namespace, server: Server, loaded: dict[str, Loaded], sizes: list[int]
) -> dict[str, Measure]:
    """Results of the ranked and score polls, one request at a time, the polls taking turns."""
    labels = [f"{method} {size}" for method in METHODS for size in sizes]
    requests = [
        (label, request("GET", f"/api/v1/polls/{loaded[label].poll}/results/"))
        for _ in range(options.reads)
        for label in labels
    ]
    result = drive(server, requests, 1)
    expect_only(result, "200", f"ranked and score results on {server.name}")
    return {label: percentiles(result["latencies"][label]) for label in labels}


def percentiles(latencies: Sequence[float]) -> Measure:
    """p50 and p99 in milliseconds of latencies in seconds (the rate left out)."""
    if len(latencies) == 1:
        return Measure(0.0, 1000 * latencies[0], 1000 * latencies[0])
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Measure(0.0, 1000 * cuts[49], 1000 * cuts[98])


def worst_case(
    options: argparse.Namespace, server: Server, worst: Loaded, tokens: Sequence[str]
) -> dict[str, Any]:
    """Ranked results with nearly one tally per ballot: repeated reads of the unchanged poll, one
    at a time (each worker computes the rounds on its first read of the state, then answers from
    its memo); then, ``--first-reads`` times, a fresh ballot and the read right after it, which
    computes the rounds of the new state."""
    path = f"/api/v1/polls/{worst.poll}/results/"
    distinct = distinct_rankings(worst.poll)
    cached = drive(server, [("results", request("GET", path))] * options.cached_reads, 1)
    expect_only(cached, "200", "worst case: repeated results reads")
    rng = random.Random(worst.poll)
    first: list[float] = []
    for token in tokens[: options.first_reads]:
        ranking = rng.sample(worst.options, len(worst.options))
        body = json.dumps({"ranking": ranking}).encode()
        vote = drive(
            server,
            [("vote", request("POST", path[: -len("results/")] + "vote/", token=token, body=body))],
            1,
        )
        expect_only(vote, "201", "worst case: a ballot")
        read = drive(server, [("results", request("GET", path))], 1)
        expect_only(read, "200", "worst case: the read after a ballot")
        first += read["latencies"]["results"]
    latencies = cached["latencies"]["results"]
    return {
        "distinct": distinct,
        "cached": percentiles(latencies),
        "cached_max_ms": 1000 * max(latencies),
        "cached_slow": sum(1 for latency in latencies if latency >= 1.0),
        "first": [1000 * latency for latency in first],
    }


def server_facts() -> dict[str, str]:
    import django
    import rest_framework
    import uvicorn
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401

        loop = "uvloop + httptools"
    except ImportError:
        loop = "asyncio + h11"
    return {
        "postgresql": version.split()[0],
        "python": platform.python_version(),
        "django": django.get_version(),
        "drf": rest_framework.VERSION,
        "cpus": str(os.cpu_count()),
        "uvicorn": f"{uvicorn.__version__}, {loop}",
    }


# ---------------------------------------------------------------------------------------------
# The table


def ms(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: not measured


def describe(name: str, options: argparse.Namespace) -> str:
    if name == DEFAULT:
        return "django_polls, uvicorn workers (as shipped)"
    if name == SYNC:
        return "django_polls, sync workers"
    variables = ",".join(f"{k}={v}" for k, v in options.servers[name].items())
    return f"django_polls, {name} ({variables})"


def report(options: argparse.Namespace, sizes: list[int], out: dict[str, Any]) -> int:
    votes = out["votes"]
    facts = out["server"]
    names = list(options.servers)
    lines = [
        "",
        f"django_polls benchmark: PostgreSQL {facts['postgresql']}, {facts['cpus']} CPUs, "
        "Gunicorn workers: "
        + ", ".join(f"{name} {workers(options, name)}" for name in names)
        + f" (uvicorn {facts['uvicorn']}), "
        f"Python {facts['python']}, Django {facts['django']}, DRF {facts['drf']}",
        "",
        f"1. Votes: {options.votes:,} ballots per run, one voter each; {options.rounds} rounds, "
        "the designs taking turns; medians over the rounds. CPU: milliseconds per vote of the "
        "server's Gunicorn workers and of PostgreSQL's backends, read from /proc",
        "| design | concurrency | votes/s | p50 ms | p99 ms | app CPU ms/vote "
        "| PostgreSQL CPU ms/vote |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = out["ratios"]
    shipped = describe(DEFAULT, options).removeprefix("django_polls, ")
    rows = [(describe(name, options), f"ours {name}") for name in names] + [
        ("naive (check, then insert; COUNT), sync workers", "naive"),
        ("raw PostgreSQL (psycopg, the same ballot statement)", "raw"),
        (f"django_polls ranked (4 options, rankings of random length), {shipped}", "ours ranked"),
        (f"django_polls score (4 options, random scores 0-{MAX_SCORE}), {shipped}", "ours score"),
    ]
    for concurrency in options.concurrencies:
        for label, key in rows:
            if f"{key} {concurrency}" not in votes:
                continue
            each = votes[f"{key} {concurrency}"]
            lines.append(
                f"| {label} | {concurrency} | {each.per_second:,.0f} | {each.p50_ms:.1f} "
                f"| {each.p99_ms:.1f} | {ms(each.app_cpu_ms)} | {ms(each.db_cpu_ms)} |"
            )
    lines.append("")

    def ratio(key: str, text: str, shown: str = "{:.2f}x") -> str:
        each = ratios[key]
        return (
            f"{text}: {shown.format(statistics.median(each))} (rounds: "
            + ", ".join(shown.format(value) for value in each)
            + ")"
        )

    for concurrency in options.concurrencies:
        for name in names:
            if f"{name}/naive {concurrency}" in ratios:
                lines.append(
                    ratio(
                        f"{name}/naive {concurrency}",
                        f"{name} / the naive design at concurrency {concurrency}",
                    )
                )
        for name in names[1:]:
            if f"{DEFAULT}/{name} {concurrency}" not in ratios:
                continue
            lines.append(
                ratio(f"{DEFAULT}/{name} {concurrency}", f"{DEFAULT} / {name} at {concurrency}")
            )
        if f"{DEFAULT}/raw {concurrency}" in ratios:
            lines.append(
                ratio(
                    f"{DEFAULT}/raw {concurrency}",
                    f"{DEFAULT} / raw PostgreSQL at concurrency {concurrency}",
                    "{:.0%}",
                )
            )
    for method in METHODS:
        if f"{method}/single 32" not in ratios:
            continue
        lines.append(
            ratio(
                f"{method}/single 32",
                f"{method} / single-choice votes/s on {DEFAULT} at concurrency 32",
                "{:.0%}",
            )
        )
    targets: list[tuple[str, float, float, str]] = []
    hooked = "ours hooked 32" in votes
    if options.votes_only:
        if "ours hot 32" in votes:
            hot_report(options, out, lines)
        if hooked:
            webhooks_report(out, lines, ratio)
        print("\n".join(lines))
        return 0
    if not options.methods_only:
        targets += single_choice_report(options, sizes, out, lines)
    targets += methods_report(options, out, lines)
    if hooked:
        targets += webhooks_report(out, lines, ratio)
    lines += ["", "Targets:"]
    missed = 0
    for text, value, bound, shown in targets:
        if " >= " in text:
            ok = value >= bound
        elif " < " in text:
            ok = value < bound
        else:
            ok = value <= bound
        missed += not ok
        lines.append(f"  [{'met' if ok else 'MISSED'}] {text}: {shown.format(value)}")
    print("\n".join(lines))
    if options.charts and not options.methods_only:
        draw(options, sizes, out, Path(options.charts))
    return 1 if missed else 0


def draw(options: argparse.Namespace, sizes: list[int], out: dict[str, Any], where: Path) -> None:
    """The headline figures as SVG: results latency by the size of the poll against the naive
    design, and votes/s of each design at the highest concurrency."""
    from benchmarks import charts

    latency = out["latency"]
    series = {
        describe(name, options).removeprefix("django_polls, "): [
            (size, latency[name][size].p50_ms) for size in sizes
        ]
        for name in options.servers
    }
    series["naive design (COUNT)"] = [(size, out["naive_latency"][size].p50_ms) for size in sizes]
    charts.line_chart(
        where / "bench-results-latency.svg",
        title="Results: p50 latency by the votes in the poll",
        x_label="votes in the poll",
        y_label="milliseconds per request",
        series=series,
    )
    # The highest concurrency every design ran at.
    top = max(c for c in options.concurrencies if c != HOT_CONCURRENCY)
    votes = out["votes"]
    bars = [
        (label, votes[f"{key} {top}"].per_second)
        for label, key in [
            *((f"django_polls, {name}", f"ours {name}") for name in options.servers),
            ("naive design", "naive"),
            ("raw PostgreSQL", "raw"),
        ]
        if f"{key} {top}" in votes
    ]
    charts.bar_chart(
        where / "bench-votes.svg",
        title=f"Votes per second at concurrency {top}",
        unit="votes/s",
        bars=bars,
    )
    print(f"Charts: {where / 'bench-results-latency.svg'}, {where / 'bench-votes.svg'}")


def single_choice_report(
    options: argparse.Namespace, sizes: list[int], out: dict[str, Any], lines: list[str]
) -> list[tuple[str, float, float, str]]:
    """Sections 2 to 5 of the table (added to ``lines``); their targets."""
    latency, throughput, ratios = (
        out["latency"],
        out["throughput"],
        out["ratios"],
    )
    names = list(options.servers)
    lines += [
        "",
        f"2. Results latency, one poll, one request at a time ({options.reads} per size and "
        "server, sizes taking turns)",
        "| votes in the poll | " + " | ".join(f"{n} p50 ms | {n} p99 ms" for n in names) + " |",
        "|---" * (1 + 2 * len(names)) + "|",
    ]
    lines += [
        f"| {size:,} | "
        + " | ".join(
            f"{latency[n][size].p50_ms:.2f} | {latency[n][size].p99_ms:.2f}" for n in names
        )
        + " |"
        for size in sizes
    ]
    flat = latency[DEFAULT][sizes[-1]].p50_ms / latency[DEFAULT][sizes[0]].p50_ms
    results_vs_sync = statistics.median(
        latency[DEFAULT][size].p50_ms / latency[SYNC][size].p50_ms for size in sizes
    )
    naive_latency = out["naive_latency"]
    lines.append(
        f"naive design (COUNT), sync workers, {options.naive_reads} requests per size: p50 "
        + ", ".join(f"{naive_latency[size].p50_ms:.2f} ms at {size:,}" for size in sizes)
    )
    lines.append(f"{DEFAULT}: p50 at {sizes[-1]:,} / p50 at {sizes[0]:,}: {flat:.2f}")
    lines.append(f"results p50, {DEFAULT} / {SYNC} (median over the sizes): {results_vs_sync:.2f}")
    naive_r = throughput["naive"]
    lines += [
        "",
        f"3. Results throughput at {options.throughput_size:,} votes, concurrency 8",
        "| design | results/s | p50 ms | p99 ms | app CPU ms/request | PostgreSQL CPU ms/request |",
        "|---|---|---|---|---|---|",
        *(
            f"| {describe(n, options)} (stored counters) | {each.per_second:,.0f} "
            f"| {each.p50_ms:.1f} | {each.p99_ms:.1f} | {ms(each.app_cpu_ms)} "
            f"| {ms(each.db_cpu_ms)} |"
            for n in names
            for each in [throughput[f"ours {n}"]]
        ),
        f"| naive (COUNT), sync workers | {naive_r.per_second:,.1f} | {naive_r.p50_ms:.1f} "
        f"| {naive_r.p99_ms:.1f} | {ms(naive_r.app_cpu_ms)} | {ms(naive_r.db_cpu_ms)} |",
        f"{DEFAULT} / naive: {throughput[f'ours {DEFAULT}'].per_second / naive_r.per_second:,.0f}x",
    ]
    targets = hot_report(options, out, lines)
    statements = out["statements"]
    lines += [
        "",
        "5. SQL statements per request, counted on the wire (a vote with its token lookup, "
        "results read anonymously)",
        "| request | django_polls | naive |",
        "|---|---|---|",
        *(f"| {kind} | {ours} | {naive} |" for kind, (ours, naive) in statements.items()),
        "",
        "Bulk loading (polls_load_votes): "
        + ", ".join(f"{size:,} votes in {seconds:.1f} s" for size, seconds in out["load"].items()),
    ]
    targets += [
        (
            f"{DEFAULT} votes/s at concurrency 32 >= 2x naive",
            statistics.median(ratios[f"{DEFAULT}/naive 32"]),
            2.0,
            "{:.2f}x",
        ),
        (
            f"{DEFAULT} votes/s at concurrency 32 >= 1x {SYNC}",
            statistics.median(ratios[f"{DEFAULT}/{SYNC} 32"]),
            1.0,
            "{:.2f}x",
        ),
        (f"{DEFAULT} results p50 <= 1.1x {SYNC}", results_vs_sync, 1.1, "{:.2f}x"),
        (f"results p50 at {sizes[-1]:,} <= 1.2x p50 at {sizes[0]:,}", flat, 1.2, "{:.2f}x"),
        (
            f"results/s at {options.throughput_size:,} votes >= 50x naive",
            throughput[f"ours {DEFAULT}"].per_second / naive_r.per_second,
            50,
            "{:,.0f}x",
        ),
        ("statements per vote <= 5", statements["vote"][0], 5, "{}"),
        ("statements per results request <= 2", statements["results"][0], 2, "{}"),
    ]
    if 1_000_000 in out["load"]:
        targets.append(
            (
                "polls_load_votes: 1,000,000 votes in <= 120 s",
                out["load"][1_000_000],
                120,
                "{:.1f} s",
            )
        )
    return targets


def hot_report(
    options: argparse.Namespace, out: dict[str, Any], lines: list[str]
) -> list[tuple[str, float, float, str]]:
    """Section 4 of the table (added to ``lines``): the hot poll beside the spread-out votes of
    the same rounds, and what polls_recount found on the hot polls afterwards; its targets."""
    votes, ratios = out["votes"], out["ratios"]
    lines += [
        "",
        "4. A hot poll: every ballot on one option of one poll, beside the spread-out votes "
        "(50 polls) of the same rounds",
        "| design | concurrency | votes/s | p50 ms | p99 ms | spread-out votes/s "
        "| of the spread-out rate (per round) |",
        "|---|---|---|---|---|---|---|",
    ]
    shares: dict[int, float] = {}
    for concurrency in (32, HOT_CONCURRENCY):
        if f"ours hot {concurrency}" not in votes:
            continue
        hot, spread = votes[f"ours hot {concurrency}"], votes[f"ours {DEFAULT} {concurrency}"]
        each = ratios[f"hot {concurrency}"]
        shares[concurrency] = statistics.median(each)
        lines.append(
            f"| {describe(DEFAULT, options)} | {concurrency} | {hot.per_second:,.0f} "
            f"| {hot.p50_ms:.1f} | {hot.p99_ms:.1f} | {spread.per_second:,.0f} "
            f"| {shares[concurrency]:.0%} ({', '.join(f'{v:.0%}' for v in each)}) |"
        )
    if "naive hot 32" in votes:
        naive_hot = votes["naive hot 32"]
        lines.append(
            f"| naive, sync workers | 32 | {naive_hot.per_second:,.0f} | {naive_hot.p50_ms:.1f} "
            f"| {naive_hot.p99_ms:.1f} | {votes['naive 32'].per_second:,.0f} "
            f"| {naive_hot.per_second / votes['naive 32'].per_second:.0%} |"
        )
    drift, printed = out["recount"]
    lines.append("polls_recount on the hot polls: " + " ".join(printed.split()))
    targets = [("polls_recount finds no drift on the hot polls", drift, 0, "{} drifting counts")]
    if 32 in shares:
        targets.append(
            (
                "hot poll at concurrency 32 keeps >= 70% of spread-out votes/s",
                shares[32],
                0.7,
                "{:.0%}",
            )
        )
    if HOT_CONCURRENCY in shares:
        targets.append(
            (
                f"hot poll at concurrency {HOT_CONCURRENCY} keeps >= 95% of spread-out votes/s",
                shares[HOT_CONCURRENCY],
                0.95,
                "{:.0%}",
            )
        )
    return targets


def webhooks_report(
    out: dict[str, Any], lines: list[str], ratio: Callable[..., str]
) -> list[tuple[str, float, float, str]]:
    """Votes with one webhook subscription and the audit trail on, against neither; the
    sender's rate; their target."""
    votes, sender = out["votes"], out["sender"]
    hooked, plain = votes["ours hooked 32"], votes["ours plain 32"]
    rate = sender["delivered"] / sender["seconds"] if sender["seconds"] else 0.0
    lines += [
        "",
        f"8. Webhooks and the audit trail: votes at concurrency 32 on {DEFAULT}",
        "| polls | votes/s | p50 ms | p99 ms | app CPU ms/vote | PostgreSQL CPU ms/vote |",
        "|---|---|---|---|---|---|",
        *(
            f"| {label} | {each.per_second:,.0f} | {each.p50_ms:.1f} | {each.p99_ms:.1f} "
            f"| {ms(each.app_cpu_ms)} | {ms(each.db_cpu_ms)} |"
            for label, each in (
                ("no webhook subscription, audit trail off", plain),
                ("one subscription to every event, audit trail on", hooked),
            )
        ),
        ratio("hooked", "with them / without them", "{:.0%}"),
        f"The sender afterwards (polls_deliver --once, 8 at a time, to a receiver on this "
        f"machine): {sender['delivered']:,} of {sender['pending']:,} deliveries in "
        f"{sender['seconds']:.1f} s, {rate:,.0f}/s",
    ]
    return [
        (
            "votes/s with a webhook subscription and the audit trail on >= 85% of without",
            statistics.median(out["ratios"]["hooked"]),
            0.85,
            "{:.0%}",
        )
    ]


def methods_report(
    options: argparse.Namespace, out: dict[str, Any], lines: list[str]
) -> list[tuple[str, float, float, str]]:
    """The voting methods' sections of the table (added to ``lines``); their targets."""
    sizes = options.method_sizes_list
    latency, loaded, worst = out["method_latency"], out["method_load"], out["worst"]
    small, large = sizes[0], sizes[-1]
    describe_poll = {
        "ranked": "ranked, 5 options, rankings of random length",
        "score": f"score, 5 options, random scores 0-{MAX_SCORE}",
    }
    lines += [
        "",
        f"6. Voting methods: results latency on {DEFAULT}, one request at a time "
        f"({options.reads} per poll, the polls taking turns)",
        "| poll | ballots | p50 ms | p99 ms |",
        "|---|---|---|---|",
        *(
            f"| {describe_poll[method]} | {size:,} | {latency[f'{method} {size}'].p50_ms:.2f} "
            f"| {latency[f'{method} {size}'].p99_ms:.2f} |"
            for method in METHODS
            for size in sizes
        ),
    ]
    flat = {
        method: latency[f"{method} {large}"].p50_ms / latency[f"{method} {small}"].p50_ms
        for method in METHODS
    }
    lines += [
        f"{method}: p50 at {large:,} / p50 at {small:,}: {flat[method]:.2f}" for method in METHODS
    ]
    lines += [
        "SQL statements on the wire (4 options, a ballot naming 3; a vote with its token lookup, "
        "results read anonymously)",
        "| poll | vote | results, first read of a state | results, state computed already |",
        "|---|---|---|---|",
        *(
            f"| {method} | {vote} | {first} | {memo} |"
            for method, (vote, first, memo) in out["method_statements"].items()
        ),
    ]
    first = worst["first"]
    cached = worst["cached"]
    first_shown = (
        f"{statistics.median(first):,.0f} ms (each: "
        + ", ".join(f"{value:,.0f}" for value in first)
        + ")"
        if first
        else "-"
    )
    lines += [
        "",
        f"7. The worst case of ranked results: {WORST_OPTIONS} options, "
        f"{options.worst_size:,} full random rankings ({worst['distinct']:,} distinct), on "
        f"{DEFAULT}",
        "| read | reads | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| repeated reads of the unchanged poll (each worker computes on its first) "
        f"| {options.cached_reads} | {cached.p50_ms:,.2f} | {cached.p99_ms:,.2f} "
        f"| {worst['cached_max_ms']:,.2f} |",
        f"| the first read after a change (a fresh ballot, then a read) | {len(first)} "
        f"| {statistics.median(first) if first else float('nan'):,.2f} | - "
        f"| {max(first) if first else float('nan'):,.2f} |",
        f"worst case, first read after a change: {first_shown}; repeated reads p50 "
        f"{cached.p50_ms:,.2f} ms ({worst['cached_slow']} of {options.cached_reads} took 1 s "
        "or more)",
        "",
        "Bulk loading of ballots (polls_load_votes): "
        + ", ".join(
            f"{each.ballots:,} {kind} in {each.seconds:.1f} s"
            for label, each in loaded.items()
            for kind in [label.split()[0] if label != "worst" else "full rankings (worst case)"]
        ),
    ]
    targets = [
        (
            f"{method} results p50 at {large:,} <= 1.2x p50 at {small:,}",
            flat[method],
            1.2,
            "{:.2f}x",
        )
        for method in METHODS
    ]
    targets.append(
        (
            f"worst case ranked results ({options.worst_size:,} full rankings of "
            f"{WORST_OPTIONS} options), repeated reads p50 < 1000 ms",
            cached.p50_ms,
            1000,
            "{:,.2f} ms",
        )
    )
    targets += [
        (
            f"{method} votes/s at concurrency 32 >= 80% of single-choice",
            statistics.median(out["ratios"][f"{method}/single 32"]),
            0.8,
            "{:.0%}",
        )
        for method in METHODS
    ]
    return targets


if __name__ == "__main__":
    main()
