"""`make bench` works: a small run of the benchmark starts the example under Gunicorn on a fresh
PostgreSQL database, drives every kind of load and prints its whole table. The figures of a run
this small mean nothing; the statement counts, which do not depend on size, are checked, and every
row of the voting methods is printed with its figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example.conftest import DATABASE, EXAMPLE_DIR, example_env

pytestmark = pytest.mark.skipif(
    DATABASE != "postgresql", reason="the benchmark runs on PostgreSQL only (DATABASE_URL)"
)


#: A number as the table prints it: 1,234 or 5.67 (a dash would be a figure not measured).
NUMBER = r"\d[\d,]*(?:\.\d+)?"

#: The voting methods' sizes: tiny, for a run that only proves the rows come out.
METHOD_SIZES = ("--method-sizes", "50,500", "--worst-size", "300", "--cached-reads", "10")


def run_benchmark(*arguments: str) -> str:
    """The benchmark's output, run to the end with these options on a database of its own."""
    database = f"django_polls_bench_check_{os.getpid()}"
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", *arguments, "--database", database],
        cwd=EXAMPLE_DIR.parent,
        env=example_env(DATABASE_URL=os.environ["DATABASE_URL"]),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert finished.returncode == 0, finished.stdout + finished.stderr
    return finished.stdout


def assert_the_method_rows(table: str) -> None:
    """Every row of the voting methods is printed, with numbers; so are their targets."""
    n = NUMBER
    for row in (
        rf"\| django_polls ranked \(4 options, rankings of random length\), uvicorn workers "
        rf"\(as shipped\) \| 32 \| {n} \| {n} \| {n} \| {n} \| {n} \|",
        rf"\| django_polls score \(4 options, random scores 0-10\), uvicorn workers "
        rf"\(as shipped\) \| 32 \| {n} \| {n} \| {n} \| {n} \| {n} \|",
        rf"ranked / single-choice votes/s on asgi at concurrency 32: {n}% \(rounds: {n}%\)",
        rf"score / single-choice votes/s on asgi at concurrency 32: {n}% \(rounds: {n}%\)",
        rf"\| ranked, 5 options, rankings of random length \| 50 \| {n} \| {n} \|",
        rf"\| ranked, 5 options, rankings of random length \| 500 \| {n} \| {n} \|",
        rf"\| score, 5 options, random scores 0-10 \| 50 \| {n} \| {n} \|",
        rf"\| score, 5 options, random scores 0-10 \| 500 \| {n} \| {n} \|",
        rf"ranked: p50 at 500 / p50 at 50: {n}",
        rf"score: p50 at 500 / p50 at 50: {n}",
        rf"\| ranked \| {n} \| {n} \| {n} \|",
        rf"\| score \| {n} \| {n} \| {n} \|",
        rf"7\. The worst case of ranked results: 20 options, 300 full random rankings "
        rf"\({n} distinct\)",
        rf"\| repeated reads of the unchanged poll [^|]*\| 10 \| {n} \| {n} \| {n} \|",
        rf"\| the first read after a change \(a fresh ballot, then a read\) \| 3 \| {n} "
        rf"\| - \| {n} \|",
        rf"worst case, first read after a change: {n} ms \(each: {n}, {n}, {n}\); "
        rf"repeated reads p50 {n} ms",
        rf"Bulk loading of ballots \(polls_load_votes\): 50 ranked in {n} s, 500 ranked in "
        rf"{n} s, 50 score in {n} s, 500 score in {n} s, 300 full rankings \(worst case\) "
        rf"in {n} s",
        rf"\[(met|MISSED)\] ranked results p50 at 500 <= 1\.2x p50 at 50: {n}x",
        rf"\[(met|MISSED)\] score results p50 at 500 <= 1\.2x p50 at 50: {n}x",
        rf"\[(met|MISSED)\] worst case ranked results \(300 full rankings of 20 options\), "
        rf"repeated reads p50 < 1000 ms: {n} ms",
        rf"\[(met|MISSED)\] ranked votes/s at concurrency 32 >= 80% of single-choice: {n}%",
        rf"\[(met|MISSED)\] score votes/s at concurrency 32 >= 80% of single-choice: {n}%",
    ):
        assert re.search(row, table), f"{row}\n{table}"


def test_a_small_benchmark_run_prints_the_whole_table(tmp_path: Path) -> None:
    table = run_benchmark(
        *("--votes", "60", "--rounds", "1", "--workers", "2", "--reads", "20"),
        *("--sizes", "100,2000", "--throughput-size", "2000", *METHOD_SIZES),
        *("--naive-reads", "2", "--charts", str(tmp_path)),
        "--no-targets",
    )

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
        "naive design (COUNT), sync workers, 2 requests per size: p50 ",
        "results p50, asgi / sync",
        "3. Results throughput at 2,000 votes",
        "4. A hot poll",
        # The hot poll at 32 and 64 beside the spread-out votes of the same rounds, and the
        # recount of its counts afterwards.
        "| django_polls, uvicorn workers (as shipped) | 64 |",
        "polls_recount on the hot polls: No drift: every count matches its vote rows.",
        "Bulk loading (polls_load_votes): 100 votes in",
        # One webhook subscription and the audit trail on, against neither; then the sender.
        "8. Webhooks and the audit trail: votes at concurrency 32 on asgi",
        "| no webhook subscription, audit trail off | ",
        "| one subscription to every event, audit trail on | ",
        "with them / without them: ",
        "The sender afterwards (polls_deliver --once, 8 at a time, to a receiver on this machine)",
        "Targets:",
    ):
        assert heading in table, table
    # A ballot is its token lookup and one statement; results one query; the baseline 5 and 2.
    assert "| vote | 2 | 5 |" in table, table
    assert "| results | 1 | 2 |" in table, table
    assert_the_method_rows(table)
    assert re.search(
        rf"\[(met|MISSED)\] votes/s with a webhook subscription and the audit trail on >= 85% "
        rf"of without: {NUMBER}%",
        table,
    ), table
    # Every ballot the vote runs announced was delivered afterwards.
    sent = re.search(r"(\d[\d,]*) of (\d[\d,]*) deliveries in", table)
    assert sent and sent[1] == sent[2] and sent[1] != "0", table
    assert re.search(r"\[met\] polls_recount finds no drift on the hot polls: 0 ", table), table
    assert re.search(
        rf"\[(met|MISSED)\] hot poll at concurrency 64 keeps >= 95% of spread-out votes/s: "
        rf"{NUMBER}%",
        table,
    ), table
    assert table.count("[met]") + table.count("[MISSED]") == 10 + 5 + 1, table
    # The headline figures drawn: a line per design over the sizes, a bar per design.
    latency = (tmp_path / "bench-results-latency.svg").read_text()
    for design in ("uvicorn workers (as shipped)", "sync workers", "naive design (COUNT)"):
        assert design in latency
    assert latency.count("<polyline") == 3
    assert latency.count("<circle") == 3 * 2
    votes = (tmp_path / "bench-votes.svg").read_text()
    assert votes.count("<rect") == 1 + 4  # the background, then the asgi, sync, naive, raw bars
    assert re.search(rf"{NUMBER} votes/s", votes)


def test_the_methods_alone() -> None:
    """--methods-only: the shipped deployment alone, single choice beside ranked and score,
    without the baseline, raw PostgreSQL or the single-choice results."""
    table = run_benchmark(
        *("--methods-only", "--votes", "60", "--rounds", "1", "--workers", "2", "--reads", "20"),
        *METHOD_SIZES,
        "--no-targets",
    )

    assert "| django_polls, uvicorn workers (as shipped) | 32 |" in table, table
    for left_out in ("sync workers", "naive", "raw PostgreSQL", "2. Results latency"):
        assert left_out not in table, table
    assert_the_method_rows(table)
    assert table.count("[met]") + table.count("[MISSED]") == 5, table
