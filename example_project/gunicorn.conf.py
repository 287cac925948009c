"""Gunicorn settings for the example project, from the environment or `.env` (config/env.py).

HOST (default 127.0.0.1), PORT (default 8000), WEB_CONCURRENCY (default CPU cores + 1 under
ASGI, 2 x CPU cores + 1 with sync workers, at most 12; 1 on SQLite under ASGI) and ASGI (default
true: uvicorn workers serving config.asgi, the API and the live results streams; false: sync
workers serving config.wsgi, where streams answer 503). WEBHOOK_WORKER (default true): the
webhook sender (manage.py polls_deliver) runs beside the server, started and stopped with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Every top-level name here is read as a Gunicorn setting, hence the alias.
from config import serving
from config.env import config as env

host = env("HOST", default="") or "127.0.0.1"
port = env("PORT", default="") or "8000"
bind = f"{host}:{port}"
_asgi = serving.asgi()
# One on SQLite under ASGI, where a live results stream hears only its own worker; the settings
# read the same number (config/serving.py).
workers = serving.worker_processes()
worker_class = "config.workers.Worker" if _asgi else "sync"
# Uvicorn workers (uvloop, on libuv) share the listening socket, and each takes every pending
# connection it can when it wakes: one busy worker can hold requests that an idle one would have
# taken. With this set, libuv accepts one connection at a time and lets the others in between
# (measured in docs/performance.md: a shorter tail at concurrency 32).
os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
wsgi_app = "config.asgi:application" if _asgi else "config.wsgi:application"
accesslog = "-"
timeout = 30
graceful_timeout = 20
# No control socket: its default path is per user, so two servers on one machine (a demo and a
# test run) would fight over it.
control_socket_disable = True


_sender: list[subprocess.Popen[bytes]] = []


def when_ready(server: object) -> None:
    """Start the webhook sender; say where everything is, once the server listens."""
    if env("WEBHOOK_WORKER", default=True, cast=bool):
        manage = Path(__file__).resolve().parent / "manage.py"
        _sender.append(subprocess.Popen([sys.executable, str(manage), "polls_deliver"]))
    # A server on every address is reached, from this machine, on 127.0.0.1.
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", "[::]"} else host
    base = f"http://{shown}:{port}"
    print(
        f"\n  API      {base}/api/v1/polls/"
        f"\n  Swagger  {base}/api/docs/"
        f"\n  ReDoc    {base}/api/redoc/"
        f"\n  Admin    {base}/admin/"
        f"\n  Health   {base}/api/health/"
        f"\n  Live     {base}/polls/<id>/live/\n",
        flush=True,
    )


def on_exit(server: object) -> None:
    """Stop the webhook sender with the server (it finishes the round it is in)."""
    for process in _sender:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
