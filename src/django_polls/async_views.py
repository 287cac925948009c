"""The hottest requests of the API, a ballot (``POST polls/{id}/vote/``) and the results
(``GET polls/{id}/results/``), natively async where the server is ASGI: no thread, the database
through psycopg's async pool (:mod:`django_polls.services.aio`).

Each is the viewset's own action, answered by the viewset's own parts (content negotiation,
permissions, throttles, the exception handler, the renderers), so the answers, their errors and
their codes are those of the synchronous views; only the waits are awaited. A request that needs
anything the async path does not do (a session cookie, HTTP Basic, an authentication or
permission class it does not know, a ballot that is neither a plain list of ids nor the ballot
field of a ranked, score or site method, a method with rules of its own, a ``VOTER_POLICY``,
receivers of ``vote_cast``, ``ATOMIC_REQUESTS``, a database other than PostgreSQL through
psycopg 3) is answered by the synchronous view in a thread, as it would be without this module.

A server finds the async variant of a view as its ``polls_async`` attribute, set by
:func:`with_async_variants` (which ``django_polls.urls`` applies); the ASGI handler of
:mod:`django_polls.asgi` runs it. Under WSGI nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern
from rest_framework import exceptions, permissions, status
from rest_framework.authentication import (
    BasicAuthentication,
    SessionAuthentication,
    TokenAuthentication,
    get_authorization_header,
)
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from django_polls import services
from django_polls.authentication import CachedTokenAuthentication, read_token
from django_polls.models import VOTE_ROW_METHODS
from django_polls.permissions import IsOwnerOrStaffOrReadOnly
from django_polls.services import aio
from django_polls.views import (
    IDEMPOTENCY_HEADER,
    PollViewSet,
    has_nul,
    other_ballot_fields,
    plain_ballot,
    receipt_answer,
    signed_in,
)

#: Permission classes that decide from the request's user and the poll alone, so they run on the
#: event loop.
INLINE_PERMISSIONS = frozenset(
    {
        permissions.AllowAny,
        permissions.IsAuthenticated,
        permissions.IsAuthenticatedOrReadOnly,
        permissions.IsAdminUser,
        IsOwnerOrStaffOrReadOnly,
    }
)
#: Authentication classes the async path knows; a request to a view with any other is answered
#: synchronously.
KNOWN_AUTHENTICATION = frozenset(
    {SessionAuthentication, BasicAuthentication, TokenAuthentication, CachedTokenAuthentication}
)

View = Callable[..., HttpResponseBase]
T = TypeVar("T")


def with_async_variants(patterns: Iterable[Any]) -> list[Any]:
    """``patterns`` (a router's URLs of :class:`PollViewSet` or a subclass), the vote and results
    routes given their async variants."""
    patterns = list(patterns)
    for pattern in patterns:
        callback = getattr(pattern, "callback", None) if isinstance(pattern, URLPattern) else None
        cls = getattr(callback, "cls", None)
        if callback is None or not (isinstance(cls, type) and issubclass(cls, PollViewSet)):
            continue
        actions = getattr(callback, "actions", {})
        if getattr(callback, "initkwargs", {}).get("streaming"):
            continue
        if actions.get("post") == "vote":
            callback.polls_async = functools.partial(vote, sync_view=callback)
        elif actions.get("get") == "results":
            callback.polls_async = functools.partial(results, sync_view=callback)
    return patterns


async def vote(request: HttpRequest, *, sync_view: View, **kwargs: Any) -> HttpResponseBase:
    """``POST polls/{id}/vote/``: the ballot statement awaited on the loop's pool."""
    view = _prepared(request, sync_view, kwargs)
    if (
        view is None
        or request.method != "POST"
        or not services.runs_alone()
        or IDEMPOTENCY_HEADER in request.headers  # its answer kept in the ballot's transaction
    ):
        return await in_thread(sync_view, request, kwargs)
    drf_request = view.request
    try:
        # Read before anything is counted (throttles): a ballot that is neither a plain list of
        # ids nor another method's ballot field, or a body that cannot be read, goes to the
        # synchronous view, which explains it (or answers 404 first). Django reads the body
        # first, so that the viewset can read it again (DRF before 3.15 would take the stream
        # itself).
        request.body  # noqa: B018
        data = drf_request.data
        option_ids = plain_ballot(data)
        whole = option_ids is None and type(data) is dict and bool(other_ballot_fields(data))
    except Exception:
        option_ids, whole = None, False
    if option_ids is None and not whole:
        return await in_thread(sync_view, request, kwargs)
    try:
        # Errors (a database that is down) are answered as DRF answers them.
        async with aio.one_connection():
            receipt = None
            if await _authenticated(drf_request):
                await _initial(view, drf_request, kwargs)
                poll_id = view.poll_id()
                voter = signed_in(drf_request)
                if option_ids is not None:
                    receipt = await services.acast_vote(
                        poll_id=poll_id, voter=voter, option_ids=option_ids
                    )
                else:
                    # A ranked, score or site method's ballot (None: the poll's method or its
                    # rules are the synchronous path's).
                    receipt = await services.acast_ballot(poll_id=poll_id, voter=voter, data=data)
        if receipt is None:  # credentials that only the synchronous view can judge
            return await in_thread(sync_view, request, kwargs)
        response = receipt_answer(receipt, status.HTTP_201_CREATED)
    except Exception as exc:
        response = view.handle_exception(exc)
    return _finalized(view, response, kwargs)


async def results(request: HttpRequest, *, sync_view: View, **kwargs: Any) -> HttpResponseBase:
    """``GET polls/{id}/results/``: the poll and its options read on the loop's pool."""
    view = _prepared(request, sync_view, kwargs)
    if view is None or request.method not in ("GET", "HEAD") or not view.finds_polls_by_id_alone():
        return await in_thread(sync_view, request, kwargs)
    drf_request = view.request
    try:
        if not await _authenticated(drf_request):
            return await in_thread(sync_view, request, kwargs)
        await _initial(view, drf_request, kwargs)
        poll_id = view.poll_id()
        found = await services.apoll_with_options(poll_id=poll_id, voter=drf_request.user)
        if found is None:
            if not await services.apoll_exists(poll_id=poll_id):
                raise exceptions.NotFound()
            found = await in_a_thread(view.get_object), []  # a poll without options
        poll, options = found
        if poll.method in VOTE_ROW_METHODS:
            response = view.results_answer(drf_request, poll, options)
        else:
            # Ranked, score and a site's methods read their tallies, or only the poll's count of
            # changes where the rounds of that state were computed already (the memo of
            # services.results_for): their own queries, in a thread.
            response = await in_a_thread(view.results_answer, drf_request, poll, options)
    except Exception as exc:
        response = view.handle_exception(exc)
    return _finalized(view, response, kwargs)


async def in_thread(
    sync_view: View, request: HttpRequest, kwargs: dict[str, Any]
) -> HttpResponseBase:
    """The synchronous view's answer, rendered, from a thread."""

    def respond() -> HttpResponseBase:
        response = sync_view(request, **kwargs)
        render = getattr(response, "render", None)
        return render() if callable(render) else response

    return await in_a_thread(respond)


async def in_a_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a thread that then gives its database connection back
    (to Django's pool, where there is one)."""

    def run() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return await sync_to_async(run, thread_sensitive=False)()


def _prepared(request: HttpRequest, sync_view: View, kwargs: dict[str, Any]) -> PollViewSet | None:
    """The viewset as its view function sets it up; None when only the synchronous view can
    answer."""
    if not aio.available() or has_nul(request):
        return None
    cls: type[PollViewSet] = sync_view.cls  # type: ignore[attr-defined]
    actions: dict[str, str] = dict(sync_view.actions)  # type: ignore[attr-defined]
    if "get" in actions:  # as DRF's view function adds it
        actions.setdefault("head", actions["get"])
    view = cls(**sync_view.initkwargs)  # type: ignore[attr-defined]
    view.action_map = actions
    for method, action in actions.items():
        setattr(view, method, getattr(view, action))
    view.args, view.kwargs = (), kwargs
    drf_request = view.initialize_request(request, **kwargs)
    view.request = drf_request
    view.headers = view.default_response_headers
    if not all(type(permission) in INLINE_PERMISSIONS for permission in view.get_permissions()):
        return None
    return view


async def _authenticated(request: Request) -> bool:
    """Authenticate as DRF would, where that needs no more than a token read (on the loop's
    pool) or nothing; False where DRF would read a session or check a password, or refuse the
    credentials (the synchronous view answers that 401 as DRF does)."""
    authenticators = request.authenticators or ()
    if not all(type(authenticator) in KNOWN_AUTHENTICATION for authenticator in authenticators):
        return False
    header = get_authorization_header(request).split()
    keyword = header[0].lower() if header else b""
    for authenticator in authenticators:
        if isinstance(authenticator, SessionAuthentication):
            if settings.SESSION_COOKIE_NAME in request._request.COOKIES:
                return False
            # Without a session cookie no session is read: DRF's SessionAuthentication finds
            # the anonymous user (and, like it, marks the session accessed: Vary: Cookie).
            user = getattr(request._request, "user", None)
            if user and user.is_active:
                return False
            continue
        if isinstance(authenticator, BasicAuthentication):
            if keyword == b"basic":
                return False
            continue
        assert isinstance(authenticator, TokenAuthentication)
        if keyword != authenticator.keyword.lower().encode():
            continue
        if len(header) != 2:
            return False
        try:
            key = header[1].decode()
        except UnicodeError:
            return False
        if isinstance(authenticator, CachedTokenAuthentication):
            found = await authenticator.aauthenticate_credentials(key)
        else:
            found = await read_token(authenticator.get_model(), key)
        if found is None:
            return False
        request._authenticator = authenticator  # type: ignore[attr-defined]
        request.user, request.auth = found
        return True
    request._not_authenticated()  # type: ignore[attr-defined]
    return True


async def _initial(view: PollViewSet, request: Request, kwargs: dict[str, Any]) -> None:
    """The viewset's ``initial()`` (negotiation, the authentication done above, permissions,
    throttles): in a thread when a throttle counts the request in its cache, else here."""
    if any(_counts(throttle, view) for throttle in view.get_throttles()):
        await in_a_thread(view.initial, request, **kwargs)
    else:
        view.initial(request, **kwargs)


def _counts(throttle: Any, view: PollViewSet) -> bool:
    """Whether a throttle reads its cache for this request: DRF's scoped throttles let a view
    without a scope through untouched."""
    return not (isinstance(throttle, ScopedRateThrottle) and view.throttle_scope is None)


def _finalized(view: PollViewSet, response: Any, kwargs: dict[str, Any]) -> HttpResponseBase:
    response = view.finalize_response(view.request, response, **kwargs)
    view.response = response
    return response.render()  # type: ignore[no-any-return]
