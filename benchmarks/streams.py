"""Live results at scale: many subscribers on one process, and a second process through PostgreSQL.

    python -m benchmarks.streams [--subscribers 1000] [--updates 20] [--remote 100]

A fresh PostgreSQL database; two servers of the example project (Gunicorn, one uvicorn worker
each). ``--subscribers`` streams are opened on server A and ``--remote`` on server B; a ballot is
then cast on server A every ``--interval`` seconds. For each update the latency of each
subscriber is the time from the ballot's 201 to the event that shows it. Reported: p50, p99 and
max latency on each server, and the memory the worker of server A took per open stream (its
resident set before and after the streams opened). Exits 1 when a target is missed
(``--no-targets``: never). Figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.run import (
    EXAMPLE,
    ROOT,
    database_urls,
    drop_database,
    environment,
    free_port,
    gunicorn,
    recreate_database,
)

TOTAL = re.compile(rb'"total_votes":(\d+)')
#: The target: every subscriber gets each update within a second (p99).
P99_TARGET_MS = 1000.0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000, help="streams on server A")
    parser.add_argument("--remote", type=int, default=100, help="streams on server B")
    parser.add_argument("--updates", type=int, default=20, help="ballots cast, one by one")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between ballots")
    parser.add_argument("--database", default="django_polls_bench_streams")
    parser.add_argument("--no-targets", action="store_true")
    return parser.parse_args()


class Subscriber:
    """One stream over a raw connection: when it saw each total."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.ready = asyncio.Event()

    async def run(self, port: int, poll_id: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /api/v1/polls/{poll_id}/results/stream/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        try:
            while chunk := await reader.read(65536):
                now = time.perf_counter()
                for total in TOTAL.findall(chunk):
                    self.seen.setdefault(int(total), now)
                self.ready.set()
        finally:
            writer.close()


def request(port: int, method: str, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    sent = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method
    )
    with urllib.request.urlopen(sent, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def worker_rss_kib(port: int) -> int:
    """Resident memory of the one worker serving ``port`` (the child of its Gunicorn)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"gunicorn" not in cmdline:
            continue
        environ = (status.parent / "environ").read_bytes()
        if f"PORT={port}\0".encode() not in environ:
            continue
        parent = int(re.search(r"PPid:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        if b"gunicorn" in Path(f"/proc/{parent}/cmdline").read_bytes():
            return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    raise RuntimeError(f"no worker found for port {port}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(options: argparse.Namespace, ports: tuple[int, int]) -> dict[str, Any]:
    first, second = ports
    loop = asyncio.get_running_loop()
    tokens = [
        request(first, "POST", "/api/v1/auth/register/", {"username": f"v{n}", "password": PW})[
            "token"
        ]
        for n in range(options.updates + 1)
    ]
    poll = request(
        first,
        "POST",
        "/api/v1/polls/",
        {"title": "Live?", "options": [{"text": "Yes"}, {"text": "No"}]},
        tokens[0],
    )
    before = worker_rss_kib(first)
    local = [Subscriber() for _ in range(options.subscribers)]
    remote = [Subscriber() for _ in range(options.remote)]
    tasks = [asyncio.create_task(s.run(first, poll["id"])) for s in local]
    tasks += [asyncio.create_task(s.run(second, poll["id"])) for s in remote]
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in local + remote)), 120)
    await asyncio.sleep(1)
    after = worker_rss_kib(first)

    # Latency is counted from the moment a ballot is sent (its own round trip included), so
    # it is never flattered by when this busy client got round to noting the 201.
    acknowledged: dict[int, float] = {}

    def cast(number: int) -> None:
        option = poll["options"][number % 2]["id"]
        path = f"/api/v1/polls/{poll['id']}/vote/"
        acknowledged[number] = time.perf_counter()
        request(first, "POST", path, {"options": [option]}, tokens[number])

    for number in range(1, options.updates + 1):
        await loop.run_in_executor(None, cast, number)
        await asyncio.sleep(options.interval)
    await asyncio.sleep(5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    def latencies(subscribers: list[Subscriber]) -> tuple[list[float], int]:
        found, missing = [], 0
        for subscriber in subscribers:
            for number, at in acknowledged.items():
                if number in subscriber.seen:
                    found.append((subscriber.seen[number] - at) * 1000)
                elif not any(total > number for total in subscriber.seen):
                    missing += 1  # coalesced away is fine; a last state never seen is not
        return found, missing

    last = [max(s.seen, default=-1) for s in local + remote]
    print(f"  last totals seen: {sorted(collections.Counter(last).items())}")
    return {
        "local": latencies(local),
        "remote": latencies(remote),
        "rss_before_kib": before,
        "rss_after_kib": after,
    }


PW = "correct-horse-battery-9"


def main() -> None:
    options = arguments()
    server, url = database_urls(options.database)
    recreate_database(server, options.database)
    ports = (free_port(), free_port())
    try:
        # Every subscriber is the same client (one address): no per-client bound here.
        unbounded = {"MAX_STREAMS": "5000", "MAX_STREAMS_PER_CLIENT": "5000"}
        envs = [{**environment(url, port, 1, ASGI="true"), **unbounded} for port in ports]
        os.environ.update({k: v for k, v in envs[0].items() if k not in ("PORT", "HOST")})
        sys.path[:0] = [str(EXAMPLE), str(ROOT)]
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django.db import connection

        connection.close()
        with gunicorn(envs[0], ports[0]), gunicorn(envs[1], ports[1]):
            out = asyncio.run(measure(options, ports))
    finally:
        drop_database(server, options.database)

    missed = 0
    print(f"Live results: {options.updates} ballots, one every {options.interval} s")
    for label, key, count in (
        ("server A (same process)", "local", options.subscribers),
        ("server B (through PostgreSQL)", "remote", options.remote),
    ):
        found, missing = out[key]
        if not found:
            print(f"  {label}: no event received")
            missed += 1
            continue
        p99 = percentile(found, 0.99)
        met = p99 < P99_TARGET_MS and missing == 0
        missed += not met
        print(
            f"  {label}: {count} subscribers, {len(found)} deliveries, "
            f"p50 {statistics.median(found):.0f} ms, p99 {p99:.0f} ms, max {max(found):.0f} ms, "
            f"last state missed {missing} [{'met' if met else 'MISSED'}: p99 < 1 s]"
        )
    grown = out["rss_after_kib"] - out["rss_before_kib"]
    print(
        f"  memory of server A's worker: {out['rss_before_kib'] / 1024:.1f} MiB before, "
        f"{out['rss_after_kib'] / 1024:.1f} MiB with the streams open: "
        f"{grown / max(options.subscribers, 1):.1f} KiB per stream"
    )
    sys.exit(0 if options.no_targets else min(missed, 1))


if __name__ == "__main__":
    main()
