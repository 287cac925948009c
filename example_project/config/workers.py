"""The Gunicorn worker class of the example project: uvicorn's, serving config.asgi."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):  # type: ignore[misc]  # uvicorn_worker ships no types
    """Uvicorn in a Gunicorn worker. On shutdown, requests still open after 5 s (live results
    streams, which never finish by themselves) are cancelled, so a restart is not held up for
    Gunicorn's whole graceful timeout; their clients reconnect."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "timeout_graceful_shutdown": 5,
        # Django has no use for ASGI lifespan events.
        "lifespan": "off",
        # The client's address is the connection's: X-Forwarded-For is DRF's to read, as far as
        # NUM_PROXIES trusts it (uvicorn would otherwise take it from any local proxy).
        "proxy_headers": False,
    }
