"""`make demo`'s script, example_project/demo.sh: migrate, seed, collect static files, serve,
and print what a newcomer needs: the demo account, its token and the URLs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.example.conftest import (
    EXAMPLE_DIR,
    Deployment,
    Server,
    example_env,
    free_port,
    run_example,
)


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
    # the vote is still there, and the demo writes a key of its own to the settings file, where
    # manage.py finds it too.
    env_file = tmp_path / "demo.env"
    env_file.touch(mode=0o600)
    deployment.settings["ENV_FILE"] = str(env_file)
    printed, server = run_demo(deployment, free_port(), tmp_path / "second.log", "SECRET_KEY")
    try:
        key = re.search(r"^SECRET_KEY=(.+)$", env_file.read_text(), re.MULTILINE)
        assert key and len(key.group(1)) >= 50, env_file.read_text()
        assert f"The demo's secret key is in {env_file}" in printed
        checked = run_example("manage.py", "check", env=example_env(ENV_FILE=str(env_file)))
        assert "System check identified no issues" in checked.stdout
        assert "(0 added now)" in printed
        polls = server.request("GET", "/api/v1/polls/").json
        assert polls["count"] == 6
        results = server.request("GET", f"/api/v1/polls/{open_poll['id']}/results/").json
        assert results["total_votes"] == open_poll["total_votes"] + 1
    finally:
        stop(server)


def test_the_demos_local_settings_are_where_manage_py_finds_them(tmp_path: Path) -> None:
    """`make demo` writes its settings to example_project/.env on the first run, so that
    `manage.py createsuperuser` (or `shell`, `check`) works after it, without any variable set."""
    copy = tmp_path / "example_project"
    shutil.copytree(
        EXAMPLE_DIR,
        copy,
        ignore=shutil.ignore_patterns(".env", ".demo", "*.sqlite3*", "staticfiles", "__pycache__"),
    )
    env = example_env(PYTHON=sys.executable)
    del env["ENV_FILE"]  # the project's own file, example_project/.env
    without_key = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=copy, env=env, capture_output=True, text=True
    )
    assert "SECRET_KEY is not set" in without_key.stderr

    subprocess.run([str(copy / "demo.sh"), "settings"], env=env, check=True, capture_output=True)

    written = (copy / ".env").read_text()
    assert re.search(r"^SECRET_KEY=[A-Za-z0-9_-]{50,}$", written, re.MULTILINE), written
    assert re.search(r"^HTTPS=false$", written, re.MULTILINE), written
    assert (copy / ".env").stat().st_mode & 0o077 == 0  # the owner's alone
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=copy, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    # Run again: the same settings, not a second key.
    subprocess.run([str(copy / "demo.sh"), "settings"], env=env, check=True, capture_output=True)
    assert (copy / ".env").read_text() == written
