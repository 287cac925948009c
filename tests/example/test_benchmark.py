"""`make bench` works: a small run of the benchmark starts the example under Gunicorn on a fresh
PostgreSQL database, drives every kind of load and prints its whole table. The figures of a run
this small mean nothing; the statement counts, which do not depend on size, are checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.example.conftest import DATABASE, EXAMPLE_DIR, example_env

pytestmark = pytest.mark.skipif(
    DATABASE != "postgresql", reason="the benchmark runs on PostgreSQL only (DATABASE_URL)"
)


def test_a_small_benchmark_run_prints_the_whole_table() -> None:
    database = f"django_polls_bench_check_{os.getpid()}"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            *("--votes", "60", "--rounds", "1", "--workers", "2", "--reads", "20"),
            *("--sizes", "100,2000", "--throughput-size", "2000", "--database", database),
            "--no-targets",
        ],
        cwd=EXAMPLE_DIR.parent,
        env=example_env(DATABASE_URL=os.environ["DATABASE_URL"]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    table = finished.stdout
    for heading in (
        "1. Votes: 60 ballots per run",
        # The deployment make demo ships and the sync workers, side by side, with their CPU.
        "| django_polls, uvicorn workers (as shipped) | 32 |",
        "| django_polls, sync workers | 32 |",
        "app CPU ms/vote | PostgreSQL CPU ms/vote |",
        "asgi / the naive design at concurrency 32:",
        "sync / the naive design at concurrency 32:",
        "asgi / sync at 32:",
        "asgi / raw PostgreSQL at concurrency 8:",
        "2. Results latency",
        "asgi: p50 at 2,000 / p50 at 100:",
        "results p50, asgi / sync",
        "3. Results throughput at 2,000 votes",
        "4. A hot poll",
        "Bulk loading (polls_load_votes): 100 votes in",
        "Targets:",
    ):
        assert heading in table, table
    # A ballot is its token lookup and one statement; results one query; the baseline 5 and 2.
    assert "| vote | 2 | 5 |" in table, table
    assert "| results | 1 | 2 |" in table, table
    assert table.count("[met]") + table.count("[MISSED]") == 8, table
