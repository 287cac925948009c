"""`make demo`'s script, example_project/demo.sh: migrate, seed, collect static files, serve,
and print what a newcomer needs: the demo account, its token and the URLs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.example.conftest import EXAMPLE_DIR, Deployment, Server, free_port


def run_demo(deployment: Deployment, port: int, log: Path, *unset: str) -> tuple[str, Server]:
    """Start demo.sh, its output going to `log`; return what it printed up to the URLs (which
    Gunicorn prints only once it listens), and the server it started."""
    env = deployment.env(PORT=str(port), WEB_CONCURRENCY="2", PYTHON=sys.executable)
    del env["HTTPS"]  # demo.sh chooses plain HTTP itself
    for name in unset:
        del env[name]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(EXAMPLE_DIR / "demo.sh")],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # demo.sh execs Gunicorn, which starts workers
        )
    server = Server(port, process)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        printed = log.read_text(errors="replace")
        if re.search(r"^\s*Health\s+http", printed, re.MULTILINE):
            return printed, server
        if process.poll() is not None:
            raise AssertionError(f"demo.sh exited with {process.returncode}:\n{printed}")
        time.sleep(0.2)
    stop(server)
    raise AssertionError("demo.sh did not print its URLs within 120 s:\n" + printed)


def stop(server: Server) -> None:
    os.killpg(server.process.pid, signal.SIGTERM)
    server.process.wait(timeout=30)


def test_demo_serves_the_api_and_prints_the_account_token_and_urls(
    database_url_factory: Any, tmp_path: Path
) -> None:
    deployment = Deployment(database_url=database_url_factory(), static_root=tmp_path / "static")
    port = free_port()
    printed, server = run_demo(deployment, port, tmp_path / "first.log")
    try:
        assert "username: demo" in printed
        assert "password: demo" in printed
        for url in ("/api/v1/polls/", "/api/docs/", "/api/redoc/", "/admin/", "/api/health/"):
            assert f"http://127.0.0.1:{port}{url}" in printed
            # The admin's front page sends a visitor to its sign-in page.
            assert server.request("GET", url).status == (302 if url == "/admin/" else 200), url
        token = re.search(r"token:\s+([0-9a-f]{40})", printed)
        assert token, printed

        # The printed credentials work, and so does the printed token.
        signed_in = server.request(
            "POST", "/api/v1/auth/token/", {"username": "demo", "password": "demo"}
        )
        assert signed_in.json == {"token": token.group(1)}
        polls = server.request("GET", "/api/v1/polls/").json
        assert polls["count"] == 6
        open_poll = next(
            poll for poll in polls["results"] if poll["is_active"] and poll["method"] == "single"
        )
        voted = server.request(
            "POST",
            f"/api/v1/polls/{open_poll['id']}/vote/",
            {"options": [open_poll["options"][0]["id"]]},
            token=token.group(1),
        )
        assert voted.status == 201, voted.text
    finally:
        stop(server)

    # Run again on the same database, this time without a SECRET_KEY: nothing is loaded twice,
    # the vote is still there, and the demo uses a key of its own that only its owner can read.
    printed, server = run_demo(deployment, free_port(), tmp_path / "second.log", "SECRET_KEY")
    try:
        key_file = EXAMPLE_DIR / ".demo" / "secret-key"
        assert len(key_file.read_text().strip()) >= 50
        assert key_file.stat().st_mode & 0o077 == 0
        assert "(0 added now)" in printed
        polls = server.request("GET", "/api/v1/polls/").json
        assert polls["count"] == 6
        results = server.request("GET", f"/api/v1/polls/{open_poll['id']}/results/").json
        assert results["total_votes"] == open_poll["total_votes"] + 1
    finally:
        stop(server)
