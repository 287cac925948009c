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
import socket
import statistics
import subprocess
import sys
import tempfile
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


# ---------------------------------------------------------------------------------------------
# Set-up


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=3000, help="ballots per vote run")
    parser.add_argument("--rounds", type=int, default=5, help="runs per vote measurement")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="Gunicorn workers (default: the example's own, 2 x cores + 1, at most 12)",
    )
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="uvicorn workers (the example's default, needed for live results streams) instead "
        "of sync workers (ASGI=false), which the figures in docs/performance.md are for",
    )
    parser.add_argument(
        "--sizes",
        default="1000,100000,1000000,10000000",
        help="votes in the polls whose results are timed (the first and last are compared)",
    )
    parser.add_argument("--reads", type=int, default=400, help="results requests per size")
    parser.add_argument("--throughput-size", type=int, default=1_000_000)
    parser.add_argument("--database", default="django_polls_bench", help="made afresh, dropped")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--no-targets", action="store_true", help="report the targets but exit 0 when one is missed"
    )
    return parser.parse_args()


def default_workers() -> int:
    """The example's default (example_project/gunicorn.conf.py)."""
    return min(2 * (os.cpu_count() or 1) + 1, 12)


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


def environment(url: str, port: int, workers: int, asgi: bool = False) -> dict[str, str]:
    """The example's production settings, configured only through the environment."""
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
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "ASGI": "true" if asgi else "false",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int) -> Iterator[None]:
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
            yield
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---------------------------------------------------------------------------------------------
# Data


def make_voters(count: int) -> list[str]:
    """``count`` accounts with tokens, inserted in one statement; their tokens."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH voters AS (
                INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                       email, is_staff, is_active, date_joined)
                SELECT '!', false, 'bench-voter-' || n, '', '', '', false, true, now()
                FROM generate_series(1, %s) AS n
                RETURNING id
            )
            INSERT INTO authtoken_token (key, user_id, created)
            SELECT substr(md5(random()::text) || md5(random()::text), 1, 40), id, now()
            FROM voters
            RETURNING key
            """,
            [count],
        )
        return [key for (key,) in cursor.fetchall()]


def owner() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-owner")
    return user


def our_polls(count: int, *, options: int = 4) -> list[tuple[int, list[int]]]:
    """New polls of django_polls: (poll id, option ids)."""
    from django_polls import services

    made = []
    for index in range(count):
        poll = services.create_poll(
            created_by=owner(),
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


# ---------------------------------------------------------------------------------------------
# Load


def drive(port: int, requests: list[tuple[str, bytes]], concurrency: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".pickle") as file:
        pickle.dump(requests, file)
        file.flush()
        return run_json(
            [
                sys.executable,
                "-m",
                "benchmarks.client",
                file.name,
                "127.0.0.1",
                str(port),
                str(concurrency),
            ]
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


# ---------------------------------------------------------------------------------------------
# The run


def main() -> None:
    options = arguments()
    sizes = [int(size) for size in options.sizes.split(",")]
    name = options.database
    server, url = database_urls(name)
    port = free_port()
    env = environment(url, port, options.workers, options.asgi)
    os.environ.update({key: env[key] for key in env if key not in ("PORT", "HOST")})
    sys.path[:0] = [str(EXAMPLE), str(ROOT)]

    where = server.rsplit("@", 1)[-1].rsplit("/", 1)[0]
    print(f"Database {name} on {where}: made afresh.", flush=True)
    recreate_database(server, name)
    try:
        results = benchmark(options, sizes, url, env, port)
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
    options: argparse.Namespace, sizes: list[int], url: str, env: dict[str, str], port: int
) -> dict[str, Any]:
    import django
    from django.core.management import call_command
    from django.db import connection

    # WhiteNoise's note that collectstatic has not run: no static file is served here.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    django.setup()
    call_command("migrate", verbosity=0)
    tokens = make_voters(options.votes)
    out: dict[str, Any] = {"statements": count_statements(tokens)}

    with gunicorn(env, port):
        warm_up(port, tokens)
        # Votes first, while both designs' tables are small alike.
        print("Votes ...", flush=True)
        out["votes"], out["ratios"] = vote_runs(options, port, url, tokens)

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
        naive_big = copy_to_naive(loaded[options.throughput_size])
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")

        print("Results ...", flush=True)
        out["latency"] = results_latency(options, port, sizes, loaded)
        out["throughput"] = results_throughput(
            port, loaded[options.throughput_size], naive_big, options.throughput_size
        )
    out["server"] = server_facts()
    return out


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


def warm_up(port: int, tokens: Sequence[str]) -> None:
    """Every worker imports, connects and answers a few of each request before timing."""
    ours = our_polls(1)
    naive = naive_polls(1)
    requests = vote_requests("/api/v1", ballots(ours, tokens[:200])) + vote_requests(
        "/naive/api/v1", ballots(naive, tokens[:200])
    )
    for prefix, polls in (("/api/v1", ours), ("/naive/api/v1", naive)):
        requests += [("results", request("GET", f"{prefix}/polls/{polls[0][0]}/results/"))] * 100
    drive(port, requests, 8)


def vote_runs(
    options: argparse.Namespace, port: int, url: str, tokens: list[str]
) -> tuple[dict[str, Measure], dict[str, list[float]]]:
    """Every design at every concurrency once per round, the order flipped each round; the
    medians over the rounds, and the ratios that the runs of each round make with each other (so
    a machine that changes speed between rounds moves both sides of a ratio)."""
    designs = [
        ("ours", "/api/v1", our_polls, False),
        ("naive", "/naive/api/v1", naive_polls, False),
        ("ours hot", "/api/v1", our_polls, True),
        ("naive hot", "/naive/api/v1", naive_polls, True),
    ]
    runs: dict[str, list[Measure]] = {}
    ratios: dict[str, list[float]] = {}
    for round_ in range(options.rounds):
        for concurrency in (8, 32):
            measured: dict[str, Measure] = {}
            for label, prefix, make, hot in designs if round_ % 2 == 0 else designs[::-1]:
                if hot and concurrency != 32:
                    continue
                spread = ballots(make(1 if hot else 50), tokens, hot=hot)
                result = drive(port, vote_requests(prefix, spread), concurrency)
                expect_only(result, "201", f"{label} votes at {concurrency}")
                measured[label] = Measure(result["per_second"], result["p50_ms"], result["p99_ms"])
            measured["raw"] = raw_ballots(url, ballots(our_polls(50), tokens), concurrency)
            for label, measure in measured.items():
                runs.setdefault(f"{label} {concurrency}", []).append(measure)
            ours = measured["ours"].per_second
            ratios.setdefault(f"naive {concurrency}", []).append(
                ours / measured["naive"].per_second
            )
            ratios.setdefault(f"raw {concurrency}", []).append(ours / measured["raw"].per_second)
            if concurrency == 32:
                ratios.setdefault("hot", []).append(measured["ours hot"].per_second / ours)
        shown = ", ".join(f"{key} {values[-1]:.2f}" for key, values in ratios.items())
        print(f"  round {round_ + 1} of {options.rounds}: django_polls / {shown}", flush=True)
    return {key: median(measures) for key, measures in runs.items()}, ratios


def results_latency(
    options: argparse.Namespace, port: int, sizes: list[int], loaded: dict[int, int]
) -> dict[int, Measure]:
    """One request at a time, the polls taking turns, so every size sees the same conditions."""
    requests = [
        (str(size), request("GET", f"/api/v1/polls/{loaded[size]}/results/"))
        for _ in range(options.reads)
        for size in sizes
    ]
    result = drive(port, requests, 1)
    expect_only(result, "200", "results latency")
    return {
        size: Measure(
            0.0, result["labels"][str(size)]["p50_ms"], result["labels"][str(size)]["p99_ms"]
        )
        for size in sizes
    }


def results_throughput(port: int, ours: int, naive: int, size: int) -> dict[str, Measure]:
    measured = {}
    for label, path, count in (
        ("ours", f"/api/v1/polls/{ours}/results/", 4000),
        ("naive", f"/naive/api/v1/polls/{naive}/results/", 80),
    ):
        result = drive(port, [("results", request("GET", path))] * count, 8)
        expect_only(result, "200", f"{label} results")
        measured[label] = Measure(result["per_second"], result["p50_ms"], result["p99_ms"])
    return measured


def server_facts() -> dict[str, str]:
    import django
    import rest_framework
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return {
        "postgresql": version.split()[0],
        "python": platform.python_version(),
        "django": django.get_version(),
        "drf": rest_framework.VERSION,
        "cpus": str(os.cpu_count()),
    }


# ---------------------------------------------------------------------------------------------
# The table


def report(options: argparse.Namespace, sizes: list[int], out: dict[str, Any]) -> int:
    votes, latency, throughput = out["votes"], out["latency"], out["throughput"]
    facts = out["server"]
    lines = [
        "",
        f"django_polls benchmark: PostgreSQL {facts['postgresql']}, {facts['cpus']} CPUs, "
        f"Gunicorn {options.workers} {'uvicorn' if options.asgi else 'sync'} workers, "
        f"Python {facts['python']}, "
        f"Django {facts['django']}, DRF {facts['drf']}",
        "",
        f"1. Votes: {options.votes:,} ballots per run, one voter each; {options.rounds} rounds, "
        "the designs taking turns; medians over the rounds",
        "| design | concurrency | votes/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    ratios = out["ratios"]
    for concurrency in (8, 32):
        for label, key in (
            ("django_polls", "ours"),
            ("naive (check, then insert; COUNT)", "naive"),
            ("raw PostgreSQL (psycopg, the same ballot statement)", "raw"),
        ):
            measure = votes[f"{key} {concurrency}"]
            lines.append(
                f"| {label} | {concurrency} | {measure.per_second:,.0f} | {measure.p50_ms:.1f} "
                f"| {measure.p99_ms:.1f} |"
            )
    lines.append("")
    for concurrency in (8, 32):
        for key, text, shown in (
            ("naive", "the naive design", "{:.2f}x"),
            ("raw", "raw PostgreSQL", "{:.0%}"),
        ):
            each = ratios[f"{key} {concurrency}"]
            lines.append(
                f"django_polls / {text} at concurrency {concurrency}: "
                f"{shown.format(statistics.median(each))} (rounds: "
                + ", ".join(shown.format(value) for value in each)
                + ")"
            )
    lines += [
        "",
        f"2. Results latency, one poll, one request at a time ({options.reads} per size, "
        "sizes taking turns)",
        "| votes in the poll | p50 ms | p99 ms |",
        "|---|---|---|",
    ]
    lines += [
        f"| {size:,} | {latency[size].p50_ms:.2f} | {latency[size].p99_ms:.2f} |" for size in sizes
    ]
    flat = latency[sizes[-1]].p50_ms / latency[sizes[0]].p50_ms
    lines.append(f"p50 at {sizes[-1]:,} / p50 at {sizes[0]:,}: {flat:.2f}")
    ours_r, naive_r = throughput["ours"], throughput["naive"]
    lines += [
        "",
        f"3. Results throughput at {options.throughput_size:,} votes, concurrency 8",
        "| design | results/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| django_polls (stored counters) | {ours_r.per_second:,.0f} | {ours_r.p50_ms:.1f} "
        f"| {ours_r.p99_ms:.1f} |",
        f"| naive (COUNT) | {naive_r.per_second:,.1f} | {naive_r.p50_ms:.1f} "
        f"| {naive_r.p99_ms:.1f} |",
        f"django_polls / naive: {ours_r.per_second / naive_r.per_second:,.0f}x",
    ]
    hot, naive_hot = votes["ours hot 32"], votes["naive hot 32"]
    hot_share = statistics.median(ratios["hot"])
    lines += [
        "",
        "4. A hot poll: 32 voters at once, all on one option of one poll",
        "| design | votes/s | p50 ms | p99 ms | of its spread-out rate |",
        "|---|---|---|---|---|",
        f"| django_polls | {hot.per_second:,.0f} | {hot.p50_ms:.1f} | {hot.p99_ms:.1f} "
        f"| {hot_share:.0%} (rounds: " + ", ".join(f"{v:.0%}" for v in ratios["hot"]) + ") |",
        f"| naive | {naive_hot.per_second:,.0f} | {naive_hot.p50_ms:.1f} "
        f"| {naive_hot.p99_ms:.1f} | {naive_hot.per_second / votes['naive 32'].per_second:.0%} |",
    ]
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
    targets = [
        (
            "votes/s at concurrency 32 >= 1.5x naive",
            statistics.median(ratios["naive 32"]),
            1.5,
            "{:.2f}x",
        ),
        (f"results p50 at {sizes[-1]:,} <= 1.2x p50 at {sizes[0]:,}", flat, 1.2, "{:.2f}x"),
        (
            f"results/s at {options.throughput_size:,} votes >= 50x naive",
            ours_r.per_second / naive_r.per_second,
            50,
            "{:,.0f}x",
        ),
        ("statements per vote <= 5", statements["vote"][0], 5, "{}"),
        ("statements per results request <= 2", statements["results"][0], 2, "{}"),
        (
            "hot poll keeps >= 70% of spread-out votes/s",
            hot_share,
            0.7,
            "{:.0%}",
        ),
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
    lines += ["", "Targets:"]
    missed = 0
    for text, value, bound, shown in targets:
        ok = value >= bound if " >= " in text else value <= bound
        missed += not ok
        lines.append(f"  [{'met' if ok else 'MISSED'}] {text}: {shown.format(value)}")
    print("\n".join(lines))
    return 1 if missed else 0


if __name__ == "__main__":
    main()
