"""ASGI entry point: Gunicorn with uvicorn workers (gunicorn.conf.py), or `uvicorn config.asgi:app`.

The API's views are synchronous: each request to one runs wholly in one thread of a pool
(:class:`Handler`); the live results streams are async and cost no thread while they wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve, set_script_prefix, set_urlconf

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
            if received > limit:
                raise BodyRefused(413, "The request body is too large.", "request_too_large")
            complete = message["type"] != "http.request" or not message.get("more_body", False)
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


class Handler(ASGIHandler):
    """Django's ASGI handler, except for requests to synchronous views (all of the API but the
    live results streams): the event loop reads the body, then one thread of a pool kept by the
    process runs the whole request, ``request_started``, the middleware, the view and
    ``request_finished`` (which returns the thread's database connection), as a sync worker
    would; the loop sends the answer.

    Django's own handler hands such a request from the loop to a thread and back for every hook
    of every middleware (``MiddlewareMixin`` runs them through ``sync_to_async``) and for the
    view, about fifteen times with the example's middleware, and starts a thread for every
    request (``ThreadSensitiveContext``). Requests to async views (the streams) and to static
    files (WhiteNoise) still take Django's own path; a stream holds no thread while it waits."""

    def __init__(self) -> None:
        super().__init__()
        # The synchronous chain, with its own lists of view and exception middleware.
        self.synchronous = BaseHandler()
        self.synchronous.load_middleware(is_async=False)
        threads = getattr(settings, "ASGI_THREADS", 16)
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="request")

    # Typed as django-stubs types ASGIHandler.__call__.
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.synchronous_view(scope):
            await super().__call__(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        response = await loop.run_in_executor(
            self.threads, context.run, self.respond, scope, body_file
        )
        try:
            await self.send_response(response, send)
        finally:
            if response.streaming:  # closed once sent, which sends request_finished
                await sync_to_async(response.close, thread_sensitive=False)()
            body_file.close()

    def synchronous_view(self, scope: Scope) -> bool:
        """Whether the request goes to a synchronous view (or to none: a 404)."""
        path = scope["path"][len(scope.get("root_path", "")) :] or "/"
        if path.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
            return False
        set_urlconf(settings.ROOT_URLCONF)
        try:
            view = resolve(path).func
        except Resolver404:
            return True
        return not iscoroutinefunction(view)

    def respond(self, scope: Scope, body_file: Any) -> HttpResponseBase:
        """The whole request but sending the answer, in one thread of the pool."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        response = error if request is None else self.synchronous.get_response(request)
        assert response is not None  # create_request gives a request or an error response
        if not response.streaming:
            # request_finished, in this thread: its database connection goes back to the pool.
            response.close()
        return response


def get_application() -> Handler:
    """What ``django.core.asgi.get_asgi_application`` does, with :class:`Handler`."""
    import django

    django.setup(set_prefix=False)
    return Handler()


application = BoundedBodies(get_application())
