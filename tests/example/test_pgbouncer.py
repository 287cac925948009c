"""The example project through PgBouncer in transaction pooling mode (Debian's PgBouncer 1.18,
which keeps no prepared statements in that mode), as docs/operating.md tells a site to run it:
DATABASE_URL through PgBouncer with DATABASE_TRANSACTION_POOLER=true, and live results
listening around it (DATABASE_LISTEN_URL straight to PostgreSQL).

A real PgBouncer on a free port of 127.0.0.1, in front of DATABASE_URL's server. Skipped without
PostgreSQL or without the ``pgbouncer`` program (Debian: apt-get install pgbouncer), unless
REQUIRE_PGBOUNCER is set (``.ci/run`` installs it and sets it): then a missing program fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.example.conftest import (
    DATABASE,
    Deployment,
    Server,
    create_poll,
    free_port,
    new_token,
    run_example,
)
from tests.example.test_live import PATIENCE, EventStream

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
REQUIRED = bool(os.environ.get("REQUIRE_PGBOUNCER"))

pytestmark = [
    pytest.mark.skipif(DATABASE != "postgresql", reason="needs PostgreSQL (DATABASE_URL)"),
    pytest.mark.skipif(
        PGBOUNCER is None and not REQUIRED,
        reason="needs PgBouncer (Debian: apt-get install pgbouncer; REQUIRE_PGBOUNCER=1 fails "
        "instead)",
    ),
]

#: Ballots sent at once through PgBouncer.
BALLOTS = 60


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[str]:
    """PgBouncer in transaction mode on 127.0.0.1:<port> in front of DATABASE_URL's server; its
    ``host:port``. Run as ``postgres`` when the tests run as root (PgBouncer refuses root)."""
    assert PGBOUNCER is not None, "REQUIRE_PGBOUNCER is set but pgbouncer is not installed"
    server = urlsplit(os.environ["DATABASE_URL"])
    # Not under pytest's own temporary directory, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="django-polls-pgbouncer-"))
    root.chmod(0o777)
    port = free_port()
    config = root / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}"
        f" user={server.username or 'postgres'}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        "max_client_conn = 400\ndefault_pool_size = 20\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    config.chmod(0o644)
    command = [PGBOUNCER, str(config)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = root / "pgbouncer.log"
                raise AssertionError(
                    f"PgBouncer exited: {log.read_text() if log.exists() else process.returncode}"
                )
            try:
                import psycopg

                with psycopg.connect(
                    host="127.0.0.1",
                    port=port,
                    user=server.username or "postgres",
                    dbname="postgres",
                    connect_timeout=2,
                ) as probe:
                    probe.execute("SELECT 1")
                break
            except Exception:
                time.sleep(0.2)
        else:
            raise AssertionError("PgBouncer did not accept connections within 20 s")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pooled(
    pgbouncer: str, database_url_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The example, migrated straight on PostgreSQL, served through PgBouncer by two uvicorn
    workers, listening for live results around it."""
    direct = database_url_factory()
    parts = urlsplit(direct)
    through = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@{pgbouncer}"))
    deployment = Deployment(
        database_url=through,
        static_root=tmp_path_factory.mktemp("static"),
        settings={
            "DATABASE_TRANSACTION_POOLER": "true",
            "DATABASE_LISTEN_URL": direct,
        },
    )
    run_example("manage.py", "migrate", "--noinput", env=deployment.env(DATABASE_URL=direct))
    with deployment.serve(workers=2) as running:
        yield running


def test_ballots_changes_and_live_results_work_through_pgbouncer(pooled: Server) -> None:
    owner = new_token(pooled)
    poll = create_poll(pooled, owner)
    first, second = (option["id"] for option in poll["options"][:2])
    tokens = [new_token(pooled) for _ in range(BALLOTS)]
    stream = EventStream(pooled, poll["id"])
    try:
        assert stream.next()["event"] == "results"

        def cast(token: str) -> int:
            path = f"/api/v1/polls/{poll['id']}/vote/"
            return pooled.request("POST", path, {"options": [first]}, token=token).status

        # Every ballot at once: the async views' statements through PgBouncer, none prepared.
        with ThreadPoolExecutor(16) as threads:
            statuses = list(threads.map(cast, tokens))
        assert statuses == [201] * BALLOTS
        # A second ballot of a voter: refused by the same statement.
        again = pooled.request(
            "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [first]}, token=tokens[0]
        )
        assert again.status == 409 and again.json["code"] == "already_voted"
        # A changed ballot: the synchronous path, its transaction and locks through PgBouncer.
        changed = pooled.request(
            "PUT", f"/api/v1/polls/{poll['id']}/vote/", {"options": [second]}, token=tokens[1]
        )
        assert changed.status == 200, changed.text
        # The stream heard the ballots: LISTEN on its own session, straight to PostgreSQL.
        # (Heartbeats keep a silent stream's reads from timing out: the wait is bounded here.)
        with ThreadPoolExecutor(1) as reader:
            waiting = reader.submit(stream.until, total=BALLOTS)
            try:
                heard = waiting.result(timeout=PATIENCE)
            except TimeoutError:
                stream.close()
                raise AssertionError(f"the stream heard no ballot within {PATIENCE} s") from None
        assert heard["data"]["total_voters"] == BALLOTS
    finally:
        stream.close()
    results = pooled.request("GET", f"/api/v1/polls/{poll['id']}/results/").json
    assert [option["votes"] for option in results["options"][:2]] == [BALLOTS - 1, 1]
    assert json.loads(json.dumps(results))["total_votes"] == BALLOTS
