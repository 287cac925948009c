"""How the example project is served, read by gunicorn.conf.py and by the settings alike: under
ASGI (uvicorn workers) or WSGI (sync workers), and by how many worker processes."""

from __future__ import annotations

import multiprocessing

from config.env import config


def asgi() -> bool:
    """Uvicorn workers serving config.asgi (the default), else sync workers serving config.wsgi."""
    return bool(config("ASGI", default=True, cast=bool))


def worker_processes() -> int:
    """WEB_CONCURRENCY, else the default: on a database other than PostgreSQL under ASGI one
    worker, since a live results stream hears only of the changes made in its own process
    (PostgreSQL's LISTEN/NOTIFY reaches every worker); else a uvicorn worker per core and one
    more, or two sync workers per core and one more (a sync worker waits for the database with
    the CPU idle; measured in docs/performance.md), at most 12."""
    chosen = config("WEB_CONCURRENCY", default="")
    if chosen:
        return int(chosen)
    postgres = config("DATABASE_URL", default="").startswith(("postgres://", "postgresql://"))
    if asgi() and not postgres:
        return 1
    cores = multiprocessing.cpu_count()
    return min(cores + 1 if asgi() else 2 * cores + 1, 12)
