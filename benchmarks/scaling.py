"""What HAProxy and PgBouncer cost, and what one core sustains: the figures of docs/scaling.md.

    make bench-scaling              # or: python -m benchmarks.scaling [options]

One run, on this machine, of the deployment that is shipped (the example under Gunicorn with
uvicorn workers) reached three ways, taking turns round after round (the order flipped each
round, so a machine that changes speed moves every side of a ratio alike):

- ``direct``: the client to Gunicorn, Gunicorn to PostgreSQL;
- ``pgbouncer``: the same, with Debian's PgBouncer in transaction mode between Gunicorn and
  PostgreSQL (``DATABASE_TRANSACTION_POOLER=true``, ``LISTEN`` straight to PostgreSQL), as
  ``make cluster`` runs it;
- ``haproxy``: the client to HAProxy, HAProxy to that Gunicorn, Gunicorn through PgBouncer: the
  whole path of an app host of ``make cluster``.

Then the ceiling of one primary's commits (pgbench, as PostgreSQL's own client): transactions
that insert a row, the same with a ``NOTIFY`` in the transaction (as every ballot sends for live
results), and the ``NOTIFY`` sent after the commit instead.

Each run casts ballots (one per voter, spread over 50 polls) at a concurrency and reports
votes/s, latency, and the CPU time per vote of Gunicorn's workers, of PostgreSQL's backends, of
PgBouncer and of HAProxy; then the capacity those CPU costs imply. PostgreSQL is the machine's
(``DATABASE_URL``'s server, default 127.0.0.1:5432), in a database made afresh and dropped
afterwards. Needs
``haproxy`` and ``pgbouncer`` (Debian's packages); as root, PgBouncer runs as the postgres user.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from benchmarks.run import (
    EXAMPLE,
    ROOT,
    CpuMeter,
    Server,
    ballots,
    cpu_seconds,
    database_urls,
    drive,
    drop_database,
    environment,
    expect_only,
    free_port,
    gunicorn,
    make_voters,
    our_polls,
    recreate_database,
    server_facts,
    vote_requests,
)


def _cluster_script() -> ModuleType:
    """example_project/cluster/cluster.py (it does nothing on import): the settings of PgBouncer
    and HAProxy that `make cluster` runs with, measured here as they are."""
    path = EXAMPLE / "cluster" / "cluster.py"
    spec = importlib.util.spec_from_file_location("polls_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("polls_cluster", module)
    spec.loader.exec_module(module)
    return module


CLUSTER = _cluster_script()

PATHS = ("direct", "pgbouncer", "haproxy")
DESCRIBED = {
    "direct": "client → Gunicorn → PostgreSQL",
    "pgbouncer": "client → Gunicorn → PgBouncer → PostgreSQL",
    "haproxy": "client → HAProxy → Gunicorn → PgBouncer → PostgreSQL",
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=3000, help="ballots per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each path")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at once (default 32)")
    parser.add_argument("--database", default="django_polls_scaling", help="made afresh, dropped")
    return parser.parse_args()


def program(name: str) -> str:
    found = shutil.which(name) or next(
        (str(path) for path in (Path("/usr/sbin") / name,) if path.exists()), None
    )
    if found is None:
        sys.exit(f"make bench-scaling needs {name} (Debian: apt-get install {name}).")
    return found


@dataclass
class Daemon:
    """A helper process (PgBouncer, HAProxy): its process id, for its CPU time."""

    pid: int


@contextlib.contextmanager
def pgbouncer(url: str, workdir: Path) -> Iterator[tuple[int, Daemon]]:
    """Debian's PgBouncer in transaction mode before ``url``'s server: its port."""
    host, port, name = _parts(url)
    listen = free_port()
    config = workdir / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"{name} = host={host} port={port} dbname={name} user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
        + CLUSTER.PGBOUNCER_SETTINGS
    )
    command = [program("pgbouncer"), str(config)]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(workdir, user="postgres")
        config.chmod(0o644)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(listen, process, "PgBouncer")
        yield listen, Daemon(_pid_file(workdir / "pgbouncer.pid", process.pid))
    finally:
        _stop(process)


@contextlib.contextmanager
def haproxy(backend_port: int, workdir: Path) -> Iterator[tuple[int, Daemon]]:
    """HAProxy in HTTP mode before one Gunicorn, configured as make cluster's: its port."""
    listen = free_port()
    config = workdir / "haproxy.cfg"
    config.write_text(
        f"""global
    maxconn 4000

{CLUSTER.haproxy_defaults(workdir)}
frontend balancer
    bind 127.0.0.1:{listen}
    option forwardfor
    default_backend apps
    http-response set-header X-App-Host %[srv_name]

backend apps
    balance roundrobin
    server app1 127.0.0.1:{backend_port}
"""
    )
    process = subprocess.Popen(
        [program("haproxy"), "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(listen, process, "HAProxy")
        yield listen, Daemon(process.pid)
    finally:
        _stop(process)


def _parts(url: str) -> tuple[str, int, str]:
    rest = url.split("://", 1)[1].rsplit("@", 1)[-1]
    hostport, _, name = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host or "127.0.0.1", int(port or 5432), name


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited at start ({process.returncode}).")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        time.sleep(0.1)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within 30 s.")


def _pid_file(path: Path, fallback: int) -> int:
    """The daemon's own process id (under runuser it is a child of the process started)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().split()[0])
        time.sleep(0.05)
    return fallback


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Run:
    per_second: float
    p50_ms: float
    p99_ms: float
    #: CPU milliseconds per vote.
    app: float
    db: float
    pgbouncer: float
    haproxy: float
    #: Bytes of write-ahead log per vote (the whole server's, while the run lasted).
    wal: float


def main() -> None:
    options = arguments()
    server, url = database_urls(options.database)
    recreate_database(server, options.database)
    try:
        with tempfile.TemporaryDirectory(prefix="polls-scaling-") as temporary:
            Path(temporary).chmod(0o755)  # PgBouncer's user reaches its directory inside
            runs, facts = measure(options, server, url, Path(temporary))
    finally:
        from django.db import connection

        connection.close()
        if getattr(connection, "pool", None):
            connection.close_pool()
        drop_database(server, options.database)
    report(options, runs, facts)


def measure(
    options: argparse.Namespace, server: str, url: str, workdir: Path
) -> tuple[dict[str, list[Run]], dict[str, str]]:
    import django
    from django.core.management import call_command

    direct_port, pooled_port = free_port(), free_port()
    direct_env = environment(url, direct_port)
    os.environ.update({k: v for k, v in direct_env.items() if k not in ("PORT", "HOST")})
    sys.path[:0] = [str(EXAMPLE), str(ROOT)]
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    django.setup()
    call_command("migrate", verbosity=0)
    tokens = make_voters(options.votes * options.rounds * len(PATHS) + 200)
    meter = CpuMeter(server, options.database)
    bouncer_dir = workdir / "pgbouncer"
    bouncer_dir.mkdir()
    runs: dict[str, list[Run]] = {path: [] for path in PATHS}
    with contextlib.ExitStack() as stack:
        bouncer_port, bouncer = stack.enter_context(pgbouncer(url, bouncer_dir))
        name = _parts(url)[2]
        pooled_env = environment(
            f"postgres://postgres@127.0.0.1:{bouncer_port}/{name}",
            pooled_port,
            DATABASE_TRANSACTION_POOLER="true",
            DATABASE_LISTEN_URL=url,
        )
        direct = Server(
            "direct", direct_port, stack.enter_context(gunicorn(direct_env, direct_port)), True
        )
        pooled_master = stack.enter_context(gunicorn(pooled_env, pooled_port))
        balancer_port, balancer = stack.enter_context(haproxy(pooled_port, workdir))
        servers = {
            "direct": direct,
            "pgbouncer": Server("pgbouncer", pooled_port, pooled_master, True),
            "haproxy": Server("haproxy", balancer_port, pooled_master, True),
        }
        unused = iter(range(200, len(tokens), options.votes))
        for server_ in servers.values():  # every worker connects and answers before timing
            warm = vote_requests("/api/v1", ballots(our_polls(5), tokens[:200]))
            drive(server_, warm, 8)
        for round_ in range(options.rounds):
            order = PATHS if round_ % 2 == 0 else PATHS[::-1]
            shown = []
            for path in order:
                start = next(unused)
                batch = tokens[start : start + options.votes]
                requests = vote_requests("/api/v1", ballots(our_polls(50), batch))
                helpers = {"pgbouncer": bouncer.pid, "haproxy": balancer.pid}
                before = {key: cpu_seconds(pid) for key, pid in helpers.items()}
                wal_before = wal_position(meter)
                result = drive(servers[path], requests, options.concurrency, meter)
                wal = wal_position(meter) - wal_before
                expect_only(result, "201", f"{path} votes")
                used = {
                    key: 1000 * (cpu_seconds(pid) - before[key]) / result["requests"]
                    for key, pid in helpers.items()
                }
                runs[path].append(
                    Run(
                        result["per_second"],
                        result["p50_ms"],
                        result["p99_ms"],
                        result["app_cpu_ms"],
                        result["db_cpu_ms"],
                        used["pgbouncer"] if path != "direct" else 0.0,
                        used["haproxy"] if path == "haproxy" else 0.0,
                        wal / result["requests"],
                    )
                )
                shown.append(f"{path} {result['per_second']:.0f}/s")
            print(f"  round {round_ + 1} of {options.rounds}: " + ", ".join(shown), flush=True)
        facts = server_facts()
    print("Commits (pgbench) ...", flush=True)
    ceiling = commit_ceiling(url, workdir, options.concurrency)
    facts["ceiling"] = json.dumps(ceiling)
    return runs, facts


#: pgbench's scripts: what one primary commits per second, with and without a NOTIFY.
PROBES = {
    "insert": "INSERT INTO commit_probe (v) VALUES (1);\n",
    "insert + NOTIFY in its transaction": (
        "BEGIN;\nINSERT INTO commit_probe (v) VALUES (1);\n"
        "SELECT pg_notify('commit_probe', '1');\nEND;\n"
    ),
    "insert, then NOTIFY after the commit": (
        "INSERT INTO commit_probe (v) VALUES (1);\nSELECT pg_notify('commit_probe', '1');\n"
    ),
}


def commit_ceiling(url: str, workdir: Path, concurrency: int, rounds: int = 2) -> dict[str, float]:
    """Transactions per second of each probe (pgbench, ``concurrency`` clients, 8 s each, the
    order flipped each round; the median)."""
    import psycopg

    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE commit_probe (id bigserial PRIMARY KEY, v bigint)")
    host, port, name = _parts(url)
    rates: dict[str, list[float]] = {probe: [] for probe in PROBES}
    for round_ in range(rounds):
        for probe in PROBES if round_ % 2 == 0 else list(PROBES)[::-1]:
            script = workdir / "probe.sql"
            script.write_text(PROBES[probe])
            done = subprocess.run(
                [pgbench, "-h", host, "-p", str(port), "-U", "postgres", "-n", "-j", "2",
                 "-c", str(concurrency), "-T", "8", "-f", str(script), name],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            found = [line for line in done.stdout.splitlines() if line.startswith("tps = ")]
            if done.returncode or not found:
                sys.exit(f"pgbench failed:\n{done.stdout}{done.stderr}")
            rates[probe].append(float(found[0].split()[2]))
    return {probe: statistics.median(values) for probe, values in rates.items()}


def wal_position(meter: CpuMeter) -> int:
    """Where the server's write-ahead log ends now, in bytes from its start."""
    meter.backends()  # (re)connects
    row = meter.conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    return int(row[0])


def med(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def report(options: argparse.Namespace, runs: dict[str, list[Run]], facts: dict[str, str]) -> None:
    direct = runs["direct"]
    print(
        f"\nThe shipped deployment three ways, {options.rounds} rounds of {options.votes} ballots "
        f"at concurrency {options.concurrency} (medians; PostgreSQL {facts['postgresql']}, "
        f"Python {facts['python']}, Django {facts['django']}, {facts['cpus']} CPUs, one machine "
        "for client, servers and database)\n"
    )
    print(
        "| path | votes/s | vs direct (rounds) | p50 ms | p99 ms | Gunicorn CPU ms/vote "
        "| PostgreSQL CPU ms/vote | PgBouncer CPU ms/vote | HAProxy CPU ms/vote | WAL bytes/vote |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in PATHS:
        each = runs[path]
        ratios = [run.per_second / base.per_second for run, base in zip(each, direct, strict=True)]
        print(
            f"| {DESCRIBED[path]} | {med(each, 'per_second'):,.0f} "
            f"| {statistics.median(ratios):.0%} ("
            + ", ".join(f"{ratio:.0%}" for ratio in ratios)
            + f") | {med(each, 'p50_ms'):.1f} | {med(each, 'p99_ms'):.1f} "
            f"| {med(each, 'app'):.2f} | {med(each, 'db'):.2f} | {med(each, 'pgbouncer'):.2f} "
            f"| {med(each, 'haproxy'):.2f} | {med(each, 'wal'):,.0f} |"
        )
    app, db = med(direct, "app"), med(direct, "db")
    bouncer, balancer = med(runs["haproxy"], "pgbouncer"), med(runs["haproxy"], "haproxy")
    print(
        "\nCapacity from CPU time alone (a core at 100 %; plan for 60-70 %):\n"
        f"- one app core: {1000 / app:,.0f} votes/s ({app:.2f} ms per vote in Gunicorn's workers)\n"
        f"- one PostgreSQL core: {1000 / db:,.0f} votes/s ({db:.2f} ms per vote in its backends)\n"
        f"- one PgBouncer (a single process: one core at most): {1000 / bouncer:,.0f} votes/s\n"
        f"- one HAProxy core: {1000 / balancer:,.0f} votes/s\n"
        f"- write-ahead log: {med(direct, 'wal'):,.0f} bytes per vote"
    )
    for target in (10_000, 100_000):
        print(
            f"- {target:,} votes/s: {target * app / 1000:,.0f} app cores, "
            f"{target * db / 1000:,.0f} PostgreSQL cores, "
            f"{target * bouncer / 1000:,.1f} PgBouncer cores, "
            f"{target * balancer / 1000:,.1f} HAProxy cores, "
            f"{target * med(direct, 'wal') / 2**20:,.1f} MiB/s of write-ahead log"
        )

    ceiling = json.loads(facts.get("ceiling", "{}"))
    if ceiling:
        print(
            f"\nOne primary's commits per second (pgbench, {options.concurrency} clients, "
            "8 s per probe, 2 rounds, median):\n"
        )
        print("| transaction | commits/s |\n|---|---|")
        for probe, rate in ceiling.items():
            print(f"| {probe} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
