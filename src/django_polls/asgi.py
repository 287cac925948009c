"""An ASGI handler for sites that serve django_polls: Django's, with fewer hand-overs between the
event loop and threads. In the site's ``asgi.py``::

    from django_polls.asgi import get_asgi_application

    application = get_asgi_application()

Django's own handler runs a synchronous view, and each hook of each synchronous middleware,
through ``sync_to_async``: about fifteen hand-overs between the loop and a thread per request
with a usual middleware list, and a new thread per request (``ThreadSensitiveContext``). This
handler:

- runs a request to a synchronous view wholly in one thread of a pool it keeps
  (``settings.ASGI_THREADS``, 16 by default): ``request_started``, the middleware, the view and
  ``request_finished`` (which gives the thread's database connection back), as a sync worker
  would; the loop reads the body and sends the answer;
- runs a request to a view with an async variant (the ballot and the results, see
  :mod:`django_polls.async_views`) on the loop itself, middleware included, when every
  middleware of the site is one it knows to do no I/O for such a request (:data:`INLINE`,
  WhiteNoise, and middleware with a native async path such as django-cors-headers') and the
  request carries no session cookie; ``request_started`` and ``request_finished`` are sent on the
  loop too. Otherwise such a request takes the thread, as above;
- leaves every other request (async views such as the live results stream, static files) to
  Django's own handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import MiddlewareNotUsed, RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, ResolverMatch, resolve, set_script_prefix, set_urlconf
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

#: Django's middleware whose hooks do no I/O for a request without a session cookie to a view
#: that neither reads nor changes the session: run on the loop, not in a thread.
INLINE = (
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
)
#: Middleware that serves files under their own paths and passes every other request on
#: untouched: left out for requests to views.
FILES_ONLY = ("whitenoise.middleware.WhiteNoiseMiddleware",)

Inner = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class Inline:
    """A synchronous middleware's hooks, called on the loop around the next layer."""

    def __init__(self, middleware: Any, get_response: Inner) -> None:
        self.middleware, self.get_response = middleware, get_response
        self.process_request = getattr(middleware, "process_request", None)
        self.process_response = getattr(middleware, "process_response", None)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if self.process_request else None
        if response is None:
            response = await self.get_response(request)
        if self.process_response:
            response = self.process_response(request, response)
        return response


class InlineChain(BaseHandler):
    """The site's middleware as one coroutine around a view's async variant, or ``None`` from
    :meth:`build` when some middleware is not known to be safe on the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: Inner | None = None
        self._view_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []

    @classmethod
    def build(cls) -> InlineChain | None:
        chain = cls()
        inline = {import_string(path) for path in INLINE}
        files_only = set()
        for path in FILES_ONLY:
            with contextlib.suppress(ImportError):
                files_only.add(import_string(path))
        handler: Any = convert_exception_to_response(chain._view)
        for path in reversed(settings.MIDDLEWARE):
            middleware_class = import_string(path)
            if middleware_class in files_only:
                continue
            mixin = issubclass(middleware_class, MiddlewareMixin)
            if mixin and middleware_class not in inline:
                return None
            if not mixin and not getattr(middleware_class, "async_capable", False):
                return None
            try:
                middleware = middleware_class(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(middleware, "process_view"):
                chain._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_exception"):
                chain._exception_middleware.append(middleware.process_exception)
            layer = Inline(middleware, handler) if mixin else middleware
            handler = convert_exception_to_response(layer)
        chain.chain = handler
        return chain

    async def _view(self, request: HttpRequest) -> HttpResponseBase:
        # Resolved already, by the handler (no middleware here sets request.urlconf).
        match = request.resolver_match or self.resolve_request(request)
        callback, args, kwargs = match
        for hook in self._view_middleware:
            response = hook(request, callback, args, kwargs)
            if response is not None:
                return response  # type: ignore[no-any-return]
        try:
            response = await callback.polls_async(request, *args, **kwargs)
        except Exception as exc:
            for hook in self._exception_middleware:
                response = hook(request, exc)
                if response is not None:
                    return response  # type: ignore[no-any-return]
            raise
        self.check_response(response, callback)
        return response  # type: ignore[no-any-return]


class Handler(ASGIHandler):
    """See the module's description."""

    def __init__(self) -> None:
        super().__init__()
        # The synchronous chain, with its own lists of view and exception middleware.
        self.synchronous = BaseHandler()
        self.synchronous.load_middleware(is_async=False)
        self.inline = InlineChain.build()
        threads = getattr(settings, "ASGI_THREADS", 16)
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="request")
        self.session_cookie = f"{settings.SESSION_COOKIE_NAME}=".encode()

    # Typed as django-stubs types ASGIHandler.__call__.
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        way, match = self.way(scope)
        if way == "django":
            await super().__call__(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            if way == "loop":
                await self.respond_inline(scope, body_file, send, match)
            else:
                await self.respond_in_thread(scope, body_file, send)
        finally:
            body_file.close()

    def way(self, scope: dict[str, Any]) -> tuple[str, ResolverMatch | None]:
        """How the request is served: on the ``"loop"``, in a ``"thread"``, or by ``"django"``'s
        own handler (static files, async views, anything but HTTP); and where the path led."""
        if scope["type"] != "http":
            return "django", None
        path = scope["path"][len(scope.get("root_path", "")) :] or "/"
        static = settings.STATIC_URL
        if static and path.startswith(f"/{static.lstrip('/')}"):
            return "django", None
        set_urlconf(settings.ROOT_URLCONF)
        try:
            match = resolve(path)
        except Resolver404:
            return "thread", None  # the 404 of the synchronous chain
        if iscoroutinefunction(match.func):
            return "django", None
        if (
            self.inline is not None
            and hasattr(match.func, "polls_async")
            and self.sessionless(scope)
        ):
            return "loop", match
        return "thread", None

    def sessionless(self, scope: dict[str, Any]) -> bool:
        cookies = b"; ".join(value for name, value in scope["headers"] if name == b"cookie")
        return self.session_cookie not in cookies

    async def respond_inline(
        self, scope: dict[str, Any], body_file: Any, send: Any, match: ResolverMatch | None
    ) -> None:
        assert self.inline is not None and self.inline.chain is not None
        set_script_prefix(script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        if request is not None:
            request.resolver_match = match
        response = error if request is None else await self.inline.chain(request)
        assert response is not None
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        await self.send_response(response, send)
        response.close()  # request_finished

    async def respond_in_thread(self, scope: dict[str, Any], body_file: Any, send: Any) -> None:
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

    def respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The whole request but sending the answer, in one thread of the pool."""
        set_script_prefix(script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        response = error if request is None else self.synchronous.get_response(request)
        assert response is not None  # create_request gives a request or an error response
        if not response.streaming:
            # request_finished, in this thread: its database connection goes back to the pool.
            response.close()
        return response


def script_prefix(scope: dict[str, Any]) -> str:
    """The script prefix of a request, as Django's ASGI handler takes it (its own function from
    Django 5.0, a method before)."""
    return str(settings.FORCE_SCRIPT_NAME or scope.get("root_path", "") or "")


def get_asgi_application() -> Handler:
    """What ``django.core.asgi.get_asgi_application`` does, with :class:`Handler`."""
    import django

    django.setup(set_prefix=False)
    return Handler()
