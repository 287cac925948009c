"""ASGI entry point: Gunicorn with uvicorn workers (gunicorn.conf.py), or `uvicorn config.asgi:app`.

django_polls' handler (:mod:`django_polls.asgi`): a ballot and the results are served on the
event loop (their async views, the database through psycopg's async pool), every other request
to a synchronous view wholly in one thread of a pool; the live results streams are async and
cost no thread while they wait. Bodies are bounded before Django reads them
(:class:`BoundedBodies`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

from django_polls.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: How long a client may pause while it sends a body, in seconds.
BODY_TIMEOUT = 10.0
#: How much of a refused body is still read, and thrown away, before the answer: a client that
#: sends its body before reading the answer then gets the 413 rather than a broken connection.
DRAIN = 4


class BodyRefused(Exception):
    def __init__(self, status: int, detail: str, code: str) -> None:
        self.status, self.detail, self.code = status, detail, code


class BoundedBodies:
    """Django's ASGI handler reads a whole request body (spooling it to disk) before any view
    runs, however large it is and however slowly it comes. This refuses, before that, a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE (413 `request_too_large`, as Django's own check answers) and a
    client that stops sending one for BODY_TIMEOUT seconds (408 `request_timeout`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        received, complete = 0, False

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:
                # The body is in: what follows is the wait for a disconnect (an open stream).
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), BODY_TIMEOUT)
            except asyncio.TimeoutError:
                raise BodyRefused(
                    408, "The request body did not arrive.", "request_timeout"
                ) from None
            received += len(message.get("body", b""))
            # Known before the limit is judged: a body whose last part crosses it is in whole,
            # and waiting for more of it would hold the answer for BODY_TIMEOUT.
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > limit:
                raise BodyRefused(413, "The request body is too large.", "request_too_large")
            return message

        try:
            if declared > DRAIN * limit:
                # Not worth reading: answered at once, the connection closed.
                complete = True
                raise BodyRefused(413, "The request body is too large.", "request_too_large")
            await self.app(scope, bounded_receive, send)
        except BodyRefused as refused:
            # Raised while Django reads the body: no answer has started.
            if refused.status == 413 and not complete:
                await drain(receive, DRAIN * limit - received)
            body = json.dumps({"detail": refused.detail, "code": refused.code}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": refused.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


async def drain(receive: Receive, most: int) -> None:
    """Read and drop the rest of a body, up to `most` bytes and while it keeps coming."""
    while most > 0:
        try:
            message = await asyncio.wait_for(receive(), BODY_TIMEOUT)
        except asyncio.TimeoutError:
            return
        most -= len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


application = BoundedBodies(get_asgi_application())
