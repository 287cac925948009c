"""The poll API: one viewset, thin, translating HTTP to :mod:`django_polls.services`."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import OperationalError, connection
from django.db.models import F, QuerySet
from django.http import (
    HttpRequest,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.utils.http import parse_etags
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.fields import DateTimeField
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle
from rest_framework.views import APIView

from django_polls import exceptions as api_errors
from django_polls import live, methods, routers, schema, services
from django_polls.conf import polls_settings
from django_polls.exceptions import (  # noqa: F401 (importable from here as before)
    ConflictError,
    DatabaseUnavailable,
    RequestTooLarge,
)
from django_polls.models import (
    CLOCK_ATTRIBUTE,
    VOTE_ROW_METHODS,
    ClockTimestamp,
    Option,
    Poll,
    ResultsVisibility,
    Status,
    WebhookSubscription,
)
from django_polls.serializers import (
    MAX_ID,
    AuditPageSerializer,
    AuditRecordSerializer,
    BallotPageSerializer,
    BallotSerializer,
    MethodBallotSerializer,
    MyVoteSerializer,
    PollSerializer,
    PublicBallotSerializer,
    ResultsSerializer,
    VoteReceiptSerializer,
    WebhookDeliveryPageSerializer,
    WebhookDeliverySerializer,
    WebhookSubscriptionSerializer,
    WebhookSubscriptionWriteSerializer,
)

ORDERINGS = {
    "created_at": (F("created_at").asc(), F("id").asc()),
    "-created_at": (F("created_at").desc(), F("id").desc()),
    "expires_at": (F("expires_at").asc(nulls_last=True), F("id").desc()),
    "-expires_at": (F("expires_at").desc(nulls_last=True), F("id").desc()),
}
logger = logging.getLogger("django_polls")

BOOLEAN_VALUES = {"true": True, "false": False}
MAX_SEARCH_LENGTH = 200
#: The documents' group of the app's operations, whatever path the site mounts it under.
TAGS = ("polls",)

#: Names that moved to :mod:`django_polls.exceptions`, still importable from here (with a
#: DeprecationWarning) until the next major version.
MOVED_TO_EXCEPTIONS = frozenset({"to_api_exception", "with_error_codes"})


def __getattr__(name: str) -> Any:
    if name in MOVED_TO_EXCEPTIONS:
        warnings.warn(
            f"django_polls.views.{name} moved to django_polls.exceptions.{name}; the old path "
            "goes away in the next major version.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(api_errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# DRF's viewsets are generic only to type checkers before DRF 3.15.
if TYPE_CHECKING:
    from django.contrib.auth.models import User

    PollViewSetBase = viewsets.ModelViewSet[Poll]
    WebhookViewSetBase = viewsets.ModelViewSet[WebhookSubscription]
    AppViewSetBase = viewsets.GenericViewSet[Any]
else:
    PollViewSetBase = WebhookViewSetBase = viewsets.ModelViewSet
    AppViewSetBase = viewsets.GenericViewSet


#: Formats timestamps as DRF's DateTimeField does (DATETIME_FORMAT, the current time zone).
TIMESTAMP = DateTimeField()


def plain_ballot(data: Any) -> list[int] | None:
    """The option ids of a well-formed ballot, checked without building a serializer; None for
    anything else, which :class:`BallotSerializer` then checks and explains."""
    options = data.get("options") if isinstance(data, dict) else None
    if (
        type(options) is list
        # Another method's ballot field beside it is the service's to refuse.
        and (len(data) == 1 or not other_ballot_fields(data))
        and 0 < len(options) <= polls_settings.MAX_OPTIONS
        and all(type(option_id) is int and 0 < option_id <= MAX_ID for option_id in options)
        and len(set(options)) == len(options)
    ):
        return options
    return None


def other_ballot_fields(data: dict[str, Any]) -> set[str]:
    """The ballot fields of a body other than ``options`` (``ranking``, ``scores``, a site's)."""
    return (set(data) & methods.ballot_fields()) - {"options"}


def has_nul(request: HttpRequest) -> bool:
    """Whether a header or a cookie of the request holds a NUL character."""
    headers = (value for key, value in request.META.items() if key.startswith("HTTP_"))
    return any(
        isinstance(value, str) and "\x00" in value
        for value in (*headers, *request.COOKIES.values())
    )


def receipt_answer(receipt: services.Receipt, answer: int) -> Response:
    """VoteReceiptSerializer's shape, built directly: this is the hottest write of the API. The
    ballot comes in its method's field (``options``, ``ranking``, ``scores``, ...)."""
    body = {
        "poll": receipt.poll,
        receipt.ballot_field: receipt.options if receipt.ballot is None else receipt.ballot,
        "created_at": TIMESTAMP.to_representation(receipt.created_at),
    }
    return Response(body, status=answer)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == wanted for tag in parse_etags(if_none_match))


def signed_in(request: Request) -> User:
    """The request's user, who must be signed in whatever the permission classes allow:
    polls have creators and votes have voters."""
    user = request.user
    if user is None or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    return user


#: The request header that makes a request act at most once, and the header of an answer given
#: again for a repeat (Stripe's names).
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: The headers of an answer given again with it.
KEPT_HEADERS = ("Location",)


def kept_answer(response: Response) -> services.IdempotentAnswer | None:
    """What to keep of an answer for a repeat of its request: every answer the request itself
    decided, as JSON renders it; none for a 5xx or 429, after which a retry should run again."""
    code = response.status_code
    if code >= 500 or code == status.HTTP_429_TOO_MANY_REQUESTS:
        return None
    body = "" if response.data is None else JSONRenderer().render(response.data).decode()
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    return services.IdempotentAnswer(status=code, body=body, headers=headers)


class CSVRenderer(BaseRenderer):
    """``text/csv``, for schema generators and content negotiation: an export's body is written
    by :func:`django_polls.services.export_chunks`, not rendered."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """JSON 404 for any other path under ``polls/`` (non-integer ids included)."""
    return JsonResponse({"detail": gettext("Not found."), "code": "not_found"}, status=404)


class AppViewSet(AppViewSetBase):
    """What the app's viewsets share: requests checked before they are read, the site's
    throttles and paginator from ``DJANGO_POLLS``, errors with codes."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # HTTP forbids NUL in a header; a test client or a lax server may pass one on, and the
        # token or session lookup would hand it to PostgreSQL, which refuses it (DataError).
        # Django unquotes cookies, so "\000" in a cookie is a NUL too.
        if has_nul(request._request):
            raise exceptions.ParseError(gettext("A request header holds a NUL character."))
        super().initial(request, *args, **kwargs)
        # Once the caller may go on (401 and 403 come first), read the body through Django,
        # which holds it to DATA_UPLOAD_MAX_MEMORY_SIZE (413): DRF before 3.15 streams it to
        # its parser unbounded. A charset that is no text encoding (bz2_codec) would let a
        # small body inflate without bound.
        encoding = request._request.encoding or settings.DEFAULT_CHARSET
        try:
            "".encode(encoding)
        except (LookupError, UnicodeError):
            raise exceptions.ParseError(f'Unsupported charset "{encoding}".') from None
        request._request.body  # noqa: B018

    def get_throttles(self) -> list[BaseThrottle]:
        classes = polls_settings.THROTTLE_CLASSES
        if classes is None:
            return super().get_throttles()
        return [throttle() for throttle in classes]

    @property
    def pagination_class(self) -> Any:  # type: ignore[override]
        # For schema generators that page the list by the class (drf-spectacular).
        return polls_settings.PAGINATION_CLASS

    @property
    def paginator(self) -> Any:
        if not hasattr(self, "_polls_paginator"):
            self._polls_paginator = polls_settings.PAGINATION_CLASS()
        return self._polls_paginator

    def get_exception_handler(self) -> Any:
        return api_errors.with_error_codes(super().get_exception_handler())

    def paged(self, rows: Any, shown: Callable[[Sequence[Any]], Any]) -> Response:
        """``rows`` a page at a time, as the poll list, each page as ``shown`` makes it; whole
        where a site's paginator leaves the request whole."""
        page = self.paginator.paginate_queryset(rows, self.request, view=self)
        if page is None:
            return Response(shown(list(rows)))
        return self.get_paginated_response(shown(page))


class PollViewSet(AppViewSet, PollViewSetBase):
    """Polls: list, create, read, update, delete and close; vote, my vote, retract; results and
    ballots."""

    serializer_class = PollSerializer
    swagger_schema = schema.AUTO_SCHEMA  # drf-yasg's, when installed
    queryset = Poll.objects.all()  # for schema generators; requests use get_queryset()
    # Up to 19 digits (a BIGINT); longer ids fall through to the JSON 404 of ``not_found``.
    lookup_value_regex = "[0-9]{1,19}"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if self.action in ("list", "retrieve"):
            # The poll list and detail: what lags there is someone else's write, so the replica
            # may answer a caller who is not signed in (django_polls.routers).
            routers.allow_replica_reads(request.user)

    # -- pluggable parts, resolved from DJANGO_POLLS on every request -------------------------

    def get_permissions(self) -> Sequence[BasePermission]:
        if self.action == "vote":
            classes = polls_settings.VOTE_PERMISSION_CLASSES
        else:
            classes = polls_settings.POLL_PERMISSION_CLASSES
        return [permission() for permission in classes]

    #: Whether this view answers for results/stream/ (set by :func:`results_stream_view`).
    streaming = False

    @property
    def throttle_scope(self) -> str | None:
        if self.action == "vote" and self.request.method in ("POST", "PUT"):
            return "django_polls.vote"
        if self.action == "create":
            return "django_polls.create"
        if self.action in ("results", "export"):
            scope = {
                "export": "django_polls.export",
                "results": "django_polls.stream" if self.streaming else "django_polls.results",
            }[self.action]
            # Only once the site gives the scope a rate: ScopedRateThrottle answers 500 for a
            # scope without one, and sites that rate the vote and create scopes alone (all that
            # django_polls.E008 asks for) keep working unchanged.
            rated = all(
                scope in (throttle.THROTTLE_RATES or {})
                for throttle in self.get_throttles()
                if isinstance(throttle, ScopedRateThrottle)
            )
            return scope if rated else None
        return None

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # On export/ (whatever the method: OPTIONS, a 405 for TRACE) ``format`` names the
        # export's format (checked by the action, 400 when unknown), not a renderer: what DRF
        # renders there is an error or the metadata, in JSON.
        if "export" in getattr(self, "action_map", {}).values():
            renderer = JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    # -- objects --------------------------------------------------------------------------------

    def get_queryset(self) -> QuerySet[Poll]:
        user = getattr(self.request, "user", None)
        if self.action == "ballots":  # the poll alone: its voters are read page by page
            return services.with_caller_voted(Poll.objects.with_clock(), user)
        # Whether the caller voted, for total_votes under after_vote: part of the same query.
        polls = services.with_caller_voted(Poll.objects.for_listing(), user)
        if self.action != "list":
            return polls
        params = self.request.query_params
        if "is_active" in params:
            wanted = BOOLEAN_VALUES.get(params["is_active"])
            if wanted is None:
                raise exceptions.ValidationError({"is_active": [gettext("Must be true or false.")]})
            # The clock of ballots and closing, read by the query itself (see models.poll_clock).
            polls = polls.open() if wanted else polls.finished()
        if "status" in params:
            statuses = {
                Status.SCHEDULED.value: polls.scheduled,
                Status.OPEN.value: polls.open,
                Status.CLOSED.value: polls.finished,
            }
            wanted_status = statuses.get(params["status"])
            if wanted_status is None:
                raise exceptions.ValidationError(
                    {"status": [gettext("Must be scheduled, open or closed.")]}
                )
            polls = wanted_status()
        search = params.get("search", "").strip()
        if search:
            if len(search) > MAX_SEARCH_LENGTH:
                raise exceptions.ValidationError(
                    {
                        "search": [
                            gettext("Ensure this value has at most %(limit)d characters.")
                            % {"limit": MAX_SEARCH_LENGTH}
                        ]
                    }
                )
            if "\x00" in search:
                raise exceptions.ValidationError(
                    {"search": [gettext("Null characters are not allowed.")]}
                )
            polls = polls.search(search)
        return polls.order_by(*ORDERINGS.get(params.get("ordering", ""), ()), "-created_at", "-id")

    def poll_id(self) -> int:
        """The poll id of the path; too large to be an id is simply not found."""
        poll_id = int(self.kwargs["pk"])
        if poll_id > MAX_ID:
            raise exceptions.NotFound()
        return poll_id

    def get_object(self) -> Poll:
        self.poll_id()
        poll: Poll = super().get_object()
        return poll

    def perform_destroy(self, instance: Poll) -> None:
        services.delete_poll(poll=instance, actor=signed_in(self.request))

    def once(self, request: Request, handler: Callable[[], Response]) -> Response:
        """``handler()``'s answer; with an ``Idempotency-Key`` header, at most once per user and
        key (:func:`django_polls.services.run_once`): a repeat gets the first answer again."""
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler()

        def run() -> Response:
            # Errors are answered here, so that the answer of a refused ballot is kept too.
            try:
                return handler()
            except Exception as exc:
                return self.handle_exception(exc)

        outcome = services.run_once(
            user=signed_in(request),
            key=key,
            request=services.fingerprint(request.method or "", request.path, request.data),
            run=run,
            answer_of=kept_answer,
        )
        if isinstance(outcome, services.IdempotentAnswer):
            headers = {**outcome.headers, REPLAYED_HEADER: "true"}
            # Parsed in its own order, so that it renders as it did the first time.
            body = json.loads(outcome.body) if outcome.body else None
            return Response(body, status=outcome.status, headers=headers)
        return outcome

    # -- documented actions ---------------------------------------------------------------------

    @schema.operation(
        "polls_list",
        description="Polls, newest first. Public.",
        parameters=schema.LIST_PARAMETERS,
        responses={
            200: schema.Response("A page of polls.", PollSerializer, page=True),
            **schema.errors(400, 401, 404),
        },
        public=True,
        tags=TAGS,
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.read_lagging(lambda: super(PollViewSet, self).list(request, *args, **kwargs))

    @schema.operation(
        "polls_create",
        parameters=(schema.IDEMPOTENCY_KEY,),
        responses={
            201: schema.Response("The new poll.", PollSerializer),
            **schema.errors(400, 401, 409, 422, 429, codes=schema.IDEMPOTENCY_CODES),
        },
        tags=TAGS,
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        signed_in(request)
        return self.once(request, lambda: super(PollViewSet, self).create(request, *args, **kwargs))

    @schema.operation(
        "polls_read",
        parameters=(schema.POLL_ID,),
        responses={200: schema.Response("The poll.", PollSerializer), **schema.errors(401, 404)},
        public=True,
        tags=TAGS,
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.read_lagging(
            lambda: super(PollViewSet, self).retrieve(request, *args, **kwargs)
        )

    @staticmethod
    def read_lagging(read: Callable[[], Response]) -> Response:
        """A read that may go to the replica (see ``initial``): read again from the primary
        when the replica cannot be reached, rather than fail (django_polls.routers)."""
        try:
            response = read()
        except OperationalError as exc:
            if not (api_errors.database_unavailable(exc) and routers.replica_unreachable(exc)):
                raise
            return read()
        routers.replica_read()
        return response

    @schema.operation(
        "polls_update",
        parameters=(schema.POLL_ID,),
        responses={
            200: schema.Response("The updated poll.", PollSerializer),
            **schema.errors(400, 401, 403, 404, 409),
        },
        tags=TAGS,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().update(request, *args, **kwargs)

    @schema.operation(
        "polls_partial_update",
        parameters=(schema.POLL_ID,),
        responses={
            200: schema.Response("The updated poll.", PollSerializer),
            **schema.errors(400, 401, 403, 404, 409),
        },
        tags=TAGS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().partial_update(request, *args, **kwargs)

    @schema.operation(
        "polls_delete",
        parameters=(schema.POLL_ID,),
        responses={204: schema.Response("Deleted."), **schema.errors(401, 403, 404)},
        tags=TAGS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    @schema.operation(
        "polls_close",
        parameters=(schema.POLL_ID,),
        request=schema.NO_BODY,
        description="Close the poll for good. Closing a closed poll changes nothing.",
        responses={
            200: schema.Response("The closed poll.", PollSerializer),
            **schema.errors(401, 403, 404),
        },
        tags=TAGS,
    )
    @action(detail=True, methods=["post"])
    def close(self, request: Request, pk: str | None = None) -> Response:
        poll = self.get_object()
        services.close_poll(poll=poll, actor=signed_in(request))
        return Response(self.get_serializer(poll).data)

    @schema.operation(
        "polls_vote_create",
        parameters=(schema.POLL_ID, schema.IDEMPOTENCY_KEY),
        method="post",
        request=MethodBallotSerializer,
        tags=TAGS,
        description="Cast a ballot. All of it is stored, or (on any error) nothing. "
        "403 `not_eligible` for a caller outside the poll's voter group (or refused by the "
        "site's voter policy); 409 `poll_not_open` before the poll opens, `poll_closed` after it "
        "closed, `already_voted` past what the poll allows the caller.",
        responses={
            201: schema.Response("The ballot was stored.", VoteReceiptSerializer),
            **schema.errors(400, 401, 403, 404, 409, 422, 429, codes=schema.IDEMPOTENCY_CODES),
        },
    )
    @schema.operation(
        "polls_vote_update",
        parameters=(schema.POLL_ID, schema.IDEMPOTENCY_KEY),
        method="put",
        request=MethodBallotSerializer,
        tags=TAGS,
        description="Replace the caller's ballot, in one transaction: the results move "
        "from the old options to the new ones at once. 404 `not_voted` without a ballot; 409 "
        "`vote_final` where ballots are final (`allow_vote_change: false`, secret polls), "
        "`poll_closed` or `poll_not_open` while the poll takes no votes.",
        responses={
            200: schema.Response("The new ballot was stored.", VoteReceiptSerializer),
            **schema.errors(400, 401, 403, 404, 409, 422, 429, codes=schema.IDEMPOTENCY_CODES),
        },
    )
    @schema.operation(
        "polls_vote_read",
        parameters=(schema.POLL_ID,),
        method="get",
        tags=TAGS,
        description="Whether the caller voted on the poll, and for which options "
        "(null on a secret poll, where nothing links a voter to a choice).",
        responses={
            200: schema.Response("The caller's ballot.", MyVoteSerializer),
            **schema.errors(401, 404),
        },
    )
    @schema.operation(
        "polls_vote_delete",
        parameters=(schema.POLL_ID,),
        method="delete",
        tags=TAGS,
        description="Withdraw all of the caller's votes on the poll (409 `vote_final` "
        "where ballots are final, else 409 `poll_closed` when it no longer takes votes, else 404 "
        "`not_voted` when there are none).",
        responses={204: schema.Response("Withdrawn."), **schema.errors(401, 404, 409)},
    )
    @action(detail=True, methods=["get", "post", "put", "delete"])
    def vote(self, request: Request, pk: str | None = None) -> Response:
        poll_id = self.poll_id()
        voter = signed_in(request)
        if request.method == "GET":
            mine = services.ballot_of(poll_id=poll_id, voter=voter)
            if mine.ballot_field != "options":
                return Response({"voted": mine.voted, mine.ballot_field: mine.ballot})
            return Response(MyVoteSerializer(mine).data)
        if request.method == "DELETE":
            services.retract_votes(poll_id=poll_id, voter=voter)
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self.once(request, lambda: self.ballot(request, poll_id, voter))

    def ballot(self, request: Request, poll_id: int, voter: User) -> Response:
        """``POST`` and ``PUT vote/``: store the ballot of the body, or replace the caller's."""
        answer = status.HTTP_200_OK if request.method == "PUT" else status.HTTP_201_CREATED
        data = self.ballot_body(poll_id)
        option_ids: Sequence[int] | None = plain_ballot(data)
        if option_ids is None and not (isinstance(data, dict) and other_ballot_fields(data)):
            option_ids = self.options_ballot(poll_id, data)
        if option_ids is None:
            # Any other ballot field, or a body that the poll's method reads otherwise.
            if request.method == "PUT":
                receipt = services.change_ballot(poll_id=poll_id, voter=voter, data=data)
            else:
                receipt = services.cast_ballot(poll_id=poll_id, voter=voter, data=data)
        elif request.method == "PUT":
            receipt = services.change_vote(poll_id=poll_id, voter=voter, option_ids=option_ids)
        else:
            receipt = services.cast_vote(poll_id=poll_id, voter=voter, option_ids=option_ids)
        return receipt_answer(receipt, answer)

    @schema.operation(
        "polls_results",
        parameters=(schema.POLL_ID,),
        public=True,
        tags=TAGS,
        description="Counts and percentages per option, exact as of the last "
        "acknowledged vote. Who may read them: the poll's `results_visibility` (`always` anyone; "
        "`after_vote` callers who voted; `after_close` anyone once the poll is closed; `owner` "
        "its owner), and its owner and staff always; others get `403 results_hidden`. The `ETag` "
        "changes with the results: send it back in `If-None-Match` to get `304` while nothing "
        "changed (only where the results may be read: a refusal carries no ETag).",
        responses={
            200: schema.Response("The results.", ResultsSerializer),
            304: schema.Response(
                "Not modified: the results are those of the ETag sent in If-None-Match."
            ),
            **schema.errors(401, 403, 404, 429, codes={403: ["results_hidden"]}),
        },
    )
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> Response:
        poll_id = self.poll_id()
        user = request.user
        if self.finds_polls_by_id_alone():
            # Every poll is in the queryset: one precomposed query, none for the ORM to build,
            # which also reads the number of voters and whether the caller voted.
            found = services.poll_with_options(poll_id=poll_id, voter=user)
        else:
            # The polls are narrowed (a subclass, filter backends): the options of a poll that
            # get_object() would find, in one query.
            polls = self.filter_queryset(self.get_queryset()).filter(pk=poll_id).values("pk")
            rows = Option.objects.counted().filter(poll__in=polls).select_related("poll")
            carried: dict[str, Any] = {services.VOTERS_ATTRIBUTE: services.voters_subquery()}
            if user is not None and user.is_authenticated:
                carried[services.VOTED_ATTRIBUTE] = services.took_part(user, "poll_id")
            if connection.vendor == "postgresql":  # the time for is_active, as models.poll_clock
                carried[CLOCK_ATTRIBUTE] = ClockTimestamp()
            options = list(rows.annotate(**carried).order_by("order", "id"))
            found = (options[0].poll, options) if options else None
            if found:
                for name in carried:
                    setattr(found[0], name, getattr(options[0], name))
        poll, options = found or (self.get_object(), [])  # a poll without options, or a 404
        return self.results_answer(request, poll, options)

    def results_answer(self, request: Request, poll: Poll, options: Sequence[Option]) -> Response:
        """The results action's answer, once the poll and its options are read."""
        user = request.user
        self.check_object_permissions(request, poll)
        # Before any ETag: a refusal must not tell whether hidden results changed.
        services.check_results_visible(poll=poll, user=user)
        # ResultsSerializer's shape (the same fields, the same order), built directly.
        body = dataclasses.asdict(services.results_for(poll=poll, options=options))
        # Weak: the tag names the results, not the bytes of one renderer's answer. Results that
        # depend on who asks are for that caller alone: no shared cache may keep them.
        headers = {
            "ETag": f'W/"{live.results_tag(body)}"',
            "Cache-Control": "no-cache"
            if poll.results_visibility == ResultsVisibility.ALWAYS
            else "private, no-cache",
        }
        if etag_matches(request.headers.get("If-None-Match"), headers["ETag"]):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, headers=headers)

    @schema.operation(
        "polls_ballots",
        public=True,
        tags=TAGS,
        description="Who chose what, on a `public` poll: one entry per voter, in the "
        "order they first voted, with the options of their current ballot (in the poll's "
        "order) and when it was stored. Paginated as the poll list. Other polls list nobody's "
        "ballot, for anybody (`403 ballots_hidden`); on a public poll, the caller must be "
        "allowed to see the results (`403 results_hidden`).",
        parameters=(schema.POLL_ID, *schema.PAGE_PARAMETERS),
        responses={
            200: schema.Response("A page of ballots.", BallotPageSerializer),
            **schema.errors(401, 403, 404, 429, codes={403: ["ballots_hidden", "results_hidden"]}),
        },
    )
    @action(detail=True, methods=["get"])
    def ballots(self, request: Request, pk: str | None = None) -> Response:
        poll = self.get_object()
        services.check_ballots_visible(poll=poll, user=request.user)
        display = polls_settings.USER_DISPLAY

        def shown(participations: Sequence[Any]) -> list[dict[str, Any]]:
            # PublicBallotSerializer's shape, built directly.
            return [
                {
                    **entry,  # the voter, the ballot in its method's field, when it was stored
                    "voter": str(display(entry["voter"])),
                    "created_at": TIMESTAMP.to_representation(entry["created_at"]),
                }
                for entry in services.public_ballots(poll=poll, participations=participations)
            ]

        return self.paged(services.ballot_voters(poll=poll), shown)

    @schema.operation(
        "polls_audit",
        parameters=(schema.POLL_ID, *schema.PAGE_PARAMETERS),
        tags=TAGS,
        description="The poll's audit trail, first entry first: its creation, edits "
        "(each field changed, old and new), opening, closing and every changed or withdrawn "
        "ballot (the choices on public polls only), each entry chained to the one before by "
        "its hash. For the poll's owner and staff (`403 permission_denied` for others); kept "
        "where the site turns on `DJANGO_POLLS['AUDIT_TRAIL']`. Paginated as the poll list.",
        responses={
            200: schema.Response("A page of the trail.", AuditPageSerializer),
            **schema.errors(401, 403, 404),
        },
    )
    @action(detail=True, methods=["get"])
    def audit(self, request: Request, pk: str | None = None) -> Response:
        user = signed_in(request)
        poll = self.get_object()
        if not services.sees_everything(poll=poll, user=user):
            raise exceptions.PermissionDenied(
                gettext("Only the poll's creator or a staff user may read its audit trail.")
            )

        def shown(entries: Sequence[Any]) -> list[dict[str, Any]]:
            names = services.actor_names([entry.actor for entry in entries])
            return [
                {
                    "seq": entry.seq,
                    "action": entry.action,
                    "at": TIMESTAMP.to_representation(entry.at),
                    "actor": names.get(entry.actor),
                    "data": entry.data,
                    "prev_hash": entry.prev_hash,
                    "hash": entry.hash,
                }
                for entry in entries
            ]

        return self.paged(services.audit_trail(poll.pk), shown)

    @schema.operation(
        "polls_export",
        parameters=(schema.POLL_ID, *schema.EXPORT_PARAMETERS),
        tags=TAGS,
        description="The poll's results and, on a `public` poll, who chose what, as "
        "a file to download, for the poll's owner and staff alone (whatever its "
        "`results_visibility`; others get `403 permission_denied`). `format=csv`: one table, "
        "UTF-8 with a header row, cells that a spreadsheet would run as a formula prefixed with "
        "an apostrophe; `table=results` (default) one row per option with its method's "
        "columns, `table=ballots` one row per voter and a column per option (public polls "
        "only, else `403 ballots_hidden`). `format=json`: one document, `{poll, results, "
        "ballots}`, ballots null on polls that are not public. Streamed: the ballots are read "
        "a chunk at a time as the file is sent, so a long export is not one snapshot. The "
        "columns are documented in docs/exports.md.",
        responses={
            200: schema.Response(
                "The export, as an attachment (Content-Disposition): text/csv or application/json.",
                schema.EXPORT_DOCUMENT,
                alternatives=(("text/csv", schema.EXPORT_TABLE),),
            ),
            **schema.errors(400, 401, 403, 404, 429, codes={403: ["ballots_hidden"]}),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[CSVRenderer, JSONRenderer])
    def export(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        user = signed_in(request)
        poll = self.get_object()
        params = request.query_params
        export = services.plan_export(
            poll=poll, user=user, format=params.get("format"), table=params.get("table")
        )
        chunks = services.export_chunks(export)
        return StreamingHttpResponse(
            in_thread(chunks) if isinstance(request._request, ASGIRequest) else chunks,
            content_type=export.content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{export.filename}"',
                # Who chose what: for the caller alone, kept by nobody on the way.
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    def ballot_body(self, poll_id: int) -> Any:
        """The parsed vote body; a body that does not parse is 400, after a missing poll's 404."""
        try:
            return self.request.data
        except exceptions.APIException:
            if not Poll.objects.filter(pk=poll_id).exists():
                raise exceptions.NotFound() from None
            raise

    def options_ballot(self, poll_id: int, data: Any) -> Sequence[int] | None:
        """The option ids of a body that names no other method's ballot field, checked and
        explained as in v1 (:class:`BallotSerializer`); None when the body is wrong for v1 but
        the poll's method is not single or multiple, whose own rules then explain it."""
        try:
            ballot = BallotSerializer(data=data)
            ballot.is_valid(raise_exception=True)
            option_ids: Sequence[int] = ballot.validated_data["options"]
            return option_ids
        except exceptions.APIException:
            # A missing poll is reported before a malformed body; the query runs only on errors.
            method = Poll.objects.filter(pk=poll_id).values_list("method", flat=True).first()
            if method is None:
                raise exceptions.NotFound() from None
            if method in VOTE_ROW_METHODS:
                raise
            return None

    def finds_polls_by_id_alone(self) -> bool:
        """Whether get_object() finds any poll by its id: no filter backend, and none of the
        methods that choose the polls overridden by a subclass."""
        cls = type(self)
        return (
            not self.filter_backends
            and cls.get_queryset is PollViewSet.get_queryset
            and cls.get_object is PollViewSet.get_object
            and cls.filter_queryset is PollViewSetBase.filter_queryset
        )

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        # Lets schema generators pick the right body for the extra actions.
        by_action: dict[str, type[BaseSerializer[Any]]] = {
            "vote": BallotSerializer,
            "results": ResultsSerializer,
            "ballots": PublicBallotSerializer,
            "audit": AuditRecordSerializer,
        }
        return by_action.get(self.action, PollSerializer)


WEBHOOK_TAGS = ("webhooks",)
WEBHOOK_ID = schema.Parameter("id", "The subscription's id.", type="integer", location="path")
DELIVERY_ID = schema.Parameter("delivery_id", "The delivery's id.", type="integer", location="path")


class WebhookViewSet(AppViewSet, WebhookViewSetBase):
    """Webhook subscriptions: a signed-in user's own (events of the polls they own); staff see
    and manage every one, and may subscribe to every poll's events (``site_wide``)."""

    serializer_class = WebhookSubscriptionWriteSerializer
    swagger_schema = schema.AUTO_SCHEMA
    queryset = WebhookSubscription.objects.all()  # for schema generators
    lookup_value_regex = "[0-9]{1,19}"
    permission_classes = (IsAuthenticated,)

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        user = getattr(self.request, "user", None)
        subscriptions = WebhookSubscription.objects.select_related("created_by").order_by("pk")
        if user is None or not user.is_authenticated:  # a schema generator's request
            return subscriptions.none()
        if user.is_staff:
            return subscriptions
        return subscriptions.filter(created_by=user)

    def check_site_wide(self, serializer: BaseSerializer[Any]) -> None:
        if serializer.validated_data.get("site_wide") and not self.request.user.is_staff:
            raise exceptions.PermissionDenied(
                gettext("Only staff may subscribe to the events of every poll.")
            )

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        self.check_site_wide(serializer)
        serializer.save()

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        self.check_site_wide(serializer)
        serializer.save()

    @schema.operation(
        "webhooks_list",
        parameters=schema.PAGE_PARAMETERS,
        description="Your webhook subscriptions (staff: every one), oldest first.",
        responses={
            200: schema.Response(
                "A page of subscriptions.", WebhookSubscriptionSerializer, page=True
            ),
            **schema.errors(401, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.paged(
            self.get_queryset(), lambda page: self.get_serializer(page, many=True).data
        )

    @schema.operation(
        "webhooks_create",
        request=WebhookSubscriptionWriteSerializer,
        description="Subscribe a URL to events of the polls you own (staff: with `site_wide`, of "
        "every poll). Each event is POSTed as JSON and signed: see docs/webhooks.md. A URL that "
        "reaches an address that is not public is refused (400), as is a secret shorter than 16 "
        "characters or a user's subscription beyond `WEBHOOK_MAX_SUBSCRIPTIONS`.",
        responses={
            201: schema.Response(
                "The subscription (without its secret).", WebhookSubscriptionSerializer
            ),
            **schema.errors(400, 401, 403),
        },
        tags=WEBHOOK_TAGS,
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @schema.operation(
        "webhooks_read",
        parameters=(WEBHOOK_ID,),
        responses={
            200: schema.Response("The subscription.", WebhookSubscriptionSerializer),
            **schema.errors(401, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @schema.operation(
        "webhooks_update",
        request=WebhookSubscriptionWriteSerializer,
        parameters=(WEBHOOK_ID,),
        responses={
            200: schema.Response("The subscription.", WebhookSubscriptionSerializer),
            **schema.errors(400, 401, 403, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().update(request, *args, **kwargs)

    @schema.operation(
        "webhooks_partial_update",
        request=WebhookSubscriptionWriteSerializer,
        parameters=(WEBHOOK_ID,),
        responses={
            200: schema.Response("The subscription.", WebhookSubscriptionSerializer),
            **schema.errors(400, 401, 403, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().partial_update(request, *args, **kwargs)

    @schema.operation(
        "webhooks_delete",
        parameters=(WEBHOOK_ID,),
        description="Remove the subscription and its deliveries: nothing more is sent to it.",
        responses={204: schema.Response("Deleted."), **schema.errors(401, 404)},
        tags=WEBHOOK_TAGS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    @schema.operation(
        "webhooks_deliveries",
        parameters=(WEBHOOK_ID, *schema.PAGE_PARAMETERS),
        description="The events sent (or waiting) to the subscription, newest first: each "
        "delivery's status (`pending`, `delivered`, `failed` once its attempts ran out), "
        "attempts and last answer or error.",
        responses={
            200: schema.Response("A page of deliveries.", WebhookDeliveryPageSerializer),
            **schema.errors(401, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        rows = subscription.deliveries.order_by("-pk")
        return self.paged(rows, lambda page: WebhookDeliverySerializer(page, many=True).data)

    @schema.operation(
        "webhooks_redeliver",
        parameters=(WEBHOOK_ID, DELIVERY_ID),
        request=schema.NO_BODY,
        description="Send a delivery again (a failed one, say) as soon as the sender runs: the "
        "same event with the same id, its attempts counted from 0.",
        responses={
            202: schema.Response("The delivery, pending.", WebhookDeliverySerializer),
            **schema.errors(401, 404),
        },
        tags=WEBHOOK_TAGS,
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_id>[0-9]{1,19})/redeliver",
    )
    def redeliver(
        self, request: Request, pk: str | None = None, delivery_id: str | None = None
    ) -> Response:
        subscription = self.get_object()
        delivery = subscription.deliveries.filter(pk=int(delivery_id or 0)).first()
        if delivery is None:
            raise exceptions.NotFound()
        services.redeliver([delivery])
        delivery.refresh_from_db()
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action in ("deliveries", "redeliver"):
            return WebhookDeliverySerializer
        if self.action in ("create", "update", "partial_update"):
            return WebhookSubscriptionWriteSerializer
        return WebhookSubscriptionSerializer


async def in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` for an ASGI server, each read in the request's thread (the database is
    synchronous): Django would otherwise read a synchronous iterator whole before sending it."""
    step = sync_to_async(lambda: next(chunks, None))
    try:
        while (chunk := await step()) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            await sync_to_async(close)()


# ---------------------------------------------------------------------------------------------
# Live results


class EventStreamRenderer(BaseRenderer):
    """``text/event-stream``, for schema generators: the stream's body is written by
    :class:`django_polls.live.LiveStream`, not rendered."""

    media_type = "text/event-stream"
    format = "event-stream"


class ResultsStreamSchema(APIView):
    """``polls/{id}/results/stream/`` as schema generators see it. The endpoint itself is the
    async view that :func:`results_stream_view` makes: DRF views are synchronous."""

    swagger_schema = schema.AUTO_SCHEMA
    # The events, or a JSON error.
    renderer_classes = [EventStreamRenderer, JSONRenderer]

    @schema.operation(
        "polls_results_stream",
        parameters=(schema.POLL_ID,),
        public=True,
        tags=TAGS,
        description="Server-sent events (`text/event-stream`, for `EventSource`): at "
        "once an event `results` with the results body, then one after each committed change to "
        "the poll's results or state (at most a few per second), each with an `id:`; a comment "
        "line every 15 s while nothing changes. A client that reconnects gets the current state "
        "at once. When the poll is deleted an event `deleted` ends the stream. Needs an ASGI "
        "server. Who may open it: as for the results (`403 results_hidden`). When the caller "
        "may no longer see the results (the poll's results_visibility became stricter, or they "
        "withdrew their vote from an `after_vote` poll), an event `hidden` ends the stream, and "
        "no results after that change are sent. One client (a signed-in user, else an "
        "address) holds a bounded number of streams per server process: beyond it `429 "
        "too_many_client_streams`.",
        responses={
            200: schema.event_stream(
                "Events: `id: <tag>`, `event: results`, `data: <results body as JSON>`."
            ),
            **schema.errors(401, 403, 404, 429, 503, codes={403: ["results_hidden"]}),
        },
    )
    def get(self, request: Request, pk: str) -> Response:
        raise exceptions.MethodNotAllowed("GET")  # never routed: see results_stream_view


def results_stream_view(
    viewset: type[PollViewSet] = PollViewSet,
) -> Callable[[HttpRequest, str], Coroutine[Any, Any, HttpResponseBase]]:
    """The async view of ``polls/{id}/results/stream/``. ``viewset``'s results action decides,
    when a stream opens, who may open it (authentication, permissions, throttles, the polls it
    finds), exactly as for ``results/``, and gives its first event."""
    results = viewset.as_view({"get": "results"}, streaming=True)

    def authorized_results(request: HttpRequest, pk: str) -> HttpResponseBase:
        """The results action's answer to this request, rendered; then the database connection
        goes back (to the pool), so an open stream holds none."""
        request.META.pop("HTTP_IF_NONE_MATCH", None)  # the stream always starts with the state
        # EventSource asks for text/event-stream, which no renderer of the action makes: the
        # action answers JSON (the first event, or the error body).
        request.META["HTTP_ACCEPT"] = "application/json"
        try:
            response = results(request, pk=pk)
            if isinstance(response, Response):
                response.render()
            return response
        finally:
            if not connection.in_atomic_block:
                connection.close()

    async def results_stream(request: HttpRequest, pk: str) -> HttpResponseBase:
        if request.method != "GET":
            return JsonResponse(
                {
                    "detail": gettext('Method "{method}" not allowed.').format(
                        method=request.method
                    ),
                    "code": "method_not_allowed",
                },
                status=405,
                headers={"Allow": "GET"},
            )
        if not isinstance(request, ASGIRequest):
            # Under WSGI each stream would hold a worker for as long as it is open.
            return unavailable(gettext("Live results need an ASGI server."), "streams_need_asgi")
        if live.listener_unavailable() is not None:
            # No driver to LISTEN with (system check django_polls.W002 names it); retrying
            # does not help, so no Retry-After.
            return unavailable(
                gettext("Live results are not available on this server."),
                "streams_unavailable",
                retry_after=None,
            )
        if not live.take_slot(polls_settings.MAX_STREAMS):
            return unavailable(
                gettext(
                    "This server serves as many live results streams as it may; retry shortly."
                ),
                "too_many_streams",
                retry_after=5,
            )
        broker = live.broker()
        subscriber: live.Subscriber | None = None
        try:
            subscriber = await broker.subscribe(int(pk))
            async with broker.opening:
                response = await sync_to_async(authorized_results)(request, pk)
        except BaseException as exc:
            if subscriber is not None:
                broker.unsubscribe(subscriber)
            live.release_slot()
            # The broker's own "could not LISTEN" has no cause; a driver's error is a 503 only
            # when the database is down or busy, as everywhere in the API.
            if isinstance(exc, OperationalError) and (
                exc.__cause__ is None or api_errors.database_unavailable(exc)
            ):
                return unavailable(str(DatabaseUnavailable.default_detail), "service_unavailable")
            raise
        if response.status_code != status.HTTP_200_OK or not isinstance(response, Response):
            broker.unsubscribe(subscriber)
            live.release_slot()
            return response
        # Counted once the results action has authenticated the caller, so a signed-in user is
        # one client wherever they connect from.
        client = stream_client(request)
        if not live.take_client_slot(client, polls_settings.MAX_STREAMS_PER_CLIENT):
            broker.unsubscribe(subscriber)
            live.release_slot()
            return JsonResponse(
                {
                    "detail": gettext(
                        "This client holds as many live results streams as it may; close one first."
                    ),
                    "code": "too_many_client_streams",
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": "5"},
            )
        # From now on each state is sent only while the caller may still see it.
        broker.admit(
            subscriber,
            viewer=getattr(request, "user", None),
            gate=services.results_visible_to_each,
        )
        stream = live.LiveStream(
            broker,
            subscriber,
            response.data,
            heartbeat=polls_settings.STREAM_HEARTBEAT,
            client=client,
        )
        return StreamingHttpResponse(
            stream,
            content_type="text/event-stream",
            # Proxies (nginx) must pass each event on at once, and nobody may cache them.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # A read, like every DRF view exempt from CSRF checks: any other method gets the 405 above.
    results_stream.csrf_exempt = True  # type: ignore[attr-defined]
    # Schema generators (drf-yasg, DRF's) describe a view by its ``cls``.
    results_stream.cls = ResultsStreamSchema  # type: ignore[attr-defined]
    results_stream.initkwargs = {}  # type: ignore[attr-defined]
    return results_stream


def unavailable(detail: str, code: str, *, retry_after: int | None = 1) -> JsonResponse:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return JsonResponse({"detail": detail, "code": code}, status=503, headers=headers)


def stream_client(request: HttpRequest) -> str:
    """Who holds a stream, for MAX_STREAMS_PER_CLIENT: the signed-in user (whom the results
    action authenticated, DRF's or the session's), else the client address as DRF's throttles
    tell it (``REMOTE_ADDR``, or ``X-Forwarded-For`` with ``NUM_PROXIES``)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"address:{BaseThrottle().get_ident(request)}"  # type: ignore[arg-type]


#: The live results stream of the default viewset, as mounted by ``django_polls.urls``.
results_stream = results_stream_view()
