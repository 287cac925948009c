"""Optional OpenAPI hints for drf-yasg. Without drf-yasg installed every hint is a no-op."""

from __future__ import annotations

import copy
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:
    from drf_yasg import openapi
    from drf_yasg.inspectors import FieldInspector, SwaggerAutoSchema
    from drf_yasg.utils import no_body
    from drf_yasg.utils import swagger_auto_schema as _swagger_auto_schema
except ImportError:  # pragma: no cover - exercised only where drf-yasg is absent
    _swagger_auto_schema = None
    no_body = None
    AUTO_SCHEMA: Any = None
else:

    class SettingLimits(FieldInspector):  # type: ignore[misc]
        """Writes the limits the app enforces from ``DJANGO_POLLS`` (text lengths, how many
        options) into the schema, read when the schema is generated, so the site's own values
        show and clients and fuzzers generate what the app accepts."""

        def process_result(self, result: Any, method_name: str, obj: Any, **kwargs: Any) -> Any:
            if isinstance(result, openapi.Schema):
                result.update(setting_limits(obj))
            return result

    class DescribedResponses(SwaggerAutoSchema):  # type: ignore[misc]
        """Every response gets a description (Swagger 2.0 requires one): the status phrase
        where none was given, such as the paginated list's ``200 OK``. A PATCH body, and every
        field in it, is optional: it changes the fields it sends. Limits from the settings are
        in the schemas (``SettingLimits``)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The site's DEFAULT_FIELD_INSPECTORS, read now, behind the app's own.
            inspectors: list[Any] = list(getattr(self, "field_inspectors", []))
            self.field_inspectors = [SettingLimits, *inspectors]

        def get_request_body_schema(self, serializer: Any) -> Any:
            body = super().get_request_body_schema(serializer)
            if self.method != "PATCH":
                return body
            partial = copy.deepcopy(openapi.resolve_ref(body, self.components))
            partial.pop("required", None)
            return partial

        def get_request_body_parameters(self, consumes: Any) -> Any:
            parameters = super().get_request_body_parameters(consumes)
            if self.method == "PATCH":
                # A PATCH without a body changes nothing and answers the poll.
                for parameter in parameters:
                    parameter.required = False
            return parameters

        def get_response_serializers(self) -> Any:
            # Answers any operation may give, besides those it documents itself: the database
            # busy or down; for a body, one too large or of a type no parser reads.
            responses = super().get_response_serializers()
            statuses = [503]
            if self.method in {"POST", "PUT", "PATCH"} and self._has_body():
                statuses += [413, 415]
            for status, response in errors(*statuses).items():
                if status not in responses and str(status) not in responses:
                    responses[str(status)] = response
            return responses

        def _has_body(self) -> bool:
            return self.overrides.get("request_body") is not no_body

        def get_response_schemas(self, response_serializers: Any) -> Any:
            responses = super().get_response_schemas(response_serializers)
            for code, response in responses.items():
                if not response.get("description") and str(code).isdigit():
                    response["description"] = HTTPStatus(int(code)).phrase
            return responses

    AUTO_SCHEMA = DescribedResponses

#: ``request_body`` of an action that takes no body.
NO_BODY: Any = no_body


def document(**kwargs: Any) -> Callable[[F], F]:
    """``swagger_auto_schema(**kwargs)`` when drf-yasg is installed, else the identity."""
    if _swagger_auto_schema is None:
        return lambda view: view
    return _swagger_auto_schema(**kwargs)  # type: ignore[no-any-return]


def described(description: str, serializer: Any) -> Any:
    """A response entry: ``serializer``'s body with a description."""
    if _swagger_auto_schema is None:
        return None
    return openapi.Response(description, serializer)


def event_stream(description: str) -> Any:
    """A response entry for a ``text/event-stream`` body, described as its sequence of events
    (as OpenAPI 3.2's ``itemSchema`` does; Swagger 2.0 has no word for a stream)."""
    if _swagger_auto_schema is None:
        return None
    text = openapi.Schema(type=openapi.TYPE_STRING)
    event = openapi.Schema(
        type=openapi.TYPE_OBJECT,
        properties={
            "event": openapi.Schema(
                type=openapi.TYPE_STRING, enum=["results", "deleted", "hidden"]
            ),
            "id": text,
            "data": openapi.Schema(
                type=openapi.TYPE_STRING, description="The results body, as JSON."
            ),
            "retry": openapi.Schema(type=openapi.TYPE_INTEGER),
        },
    )
    return openapi.Response(description, openapi.Schema(type=openapi.TYPE_ARRAY, items=event))


def export_body(description: str) -> Any:
    """The 200 entry of ``export/``: a CSV table, or the JSON document described here (Swagger
    2.0 gives one schema to every media type an operation produces)."""
    if _swagger_auto_schema is None:
        return None
    anything = openapi.Schema(type=openapi.TYPE_OBJECT, additional_properties=True)
    document = openapi.Schema(
        type=openapi.TYPE_OBJECT,
        description="format=json: the poll, its results (the body of `results/`) and, on a "
        "`public` poll, its ballots (the entries of `ballots/`; null on other polls).",
        properties={
            "poll": anything,
            "results": anything,
            "ballots": openapi.Schema(type=openapi.TYPE_ARRAY, items=anything, x_nullable=True),
        },
        required=["poll", "results", "ballots"],
    )
    return openapi.Response(description, document)


def export_parameters() -> list[Any]:
    """``format`` and ``table``, the query parameters of ``export/``."""
    if _swagger_auto_schema is None:
        return []
    query, string = openapi.IN_QUERY, openapi.TYPE_STRING
    return [
        openapi.Parameter(
            "format",
            query,
            "`csv`: one table (see `table`), UTF-8 with a header row; `json`: one document "
            "with the poll, its results and (public polls) its ballots.",
            type=string,
            enum=["csv", "json"],
            required=True,
        ),
        openapi.Parameter(
            "table",
            query,
            "CSV only: `results` (default), one row per option; `ballots`, one row per voter "
            "(public polls only, else `403 ballots_hidden`). The JSON document holds both.",
            type=string,
            enum=["results", "ballots"],
        ),
    ]


#: What the codes that only some operations answer with mean, for :func:`errors`' ``codes``.
CODE_DESCRIPTIONS = {
    "results_hidden": "the poll's results are not shown to the caller, by its "
    "results_visibility (`results_hidden`)",
    "ballots_hidden": "the poll does not list who chose what: only public polls do "
    "(`ballots_hidden`)",
    "invalid_idempotency_key": "an Idempotency-Key header that is not 1 to 255 printable ASCII "
    "characters (`invalid_idempotency_key`)",
    "idempotency_key_in_progress": "a request with the same Idempotency-Key is still running "
    "(`idempotency_key_in_progress`)",
}

#: The codes of the operations that take an Idempotency-Key header, for :func:`errors`.
IDEMPOTENCY_CODES = {400: ["invalid_idempotency_key"], 409: ["idempotency_key_in_progress"]}


def errors(*statuses: int, codes: dict[int, list[str]] | None = None) -> dict[int, Any]:
    """Response entries for the error statuses an operation can answer with; ``codes`` names
    the codes of :data:`CODE_DESCRIPTIONS` a status may carry besides its usual one."""
    if _swagger_auto_schema is None:
        return {}
    from django_polls.serializers import ErrorSerializer

    text = openapi.Schema(type=openapi.TYPE_STRING)
    field_errors = openapi.Schema(
        type=openapi.TYPE_OBJECT,
        description="Each invalid field (or query parameter) maps to a list of messages; a body "
        "that is not valid JSON gets `{detail, code: parse_error}` instead.",
        properties={"detail": text, "code": text},
        additional_properties=openapi.Schema(type=openapi.TYPE_ARRAY, items=text),
    )
    described = {
        400: (field_errors, "Invalid input."),
        401: (
            ErrorSerializer,
            "Missing credentials (`not_authenticated`) or a bad token (`authentication_failed`).",
        ),
        403: (
            ErrorSerializer,
            "Not allowed (`permission_denied`; on ballots `not_eligible`: not in the poll's voter "
            "group, or refused by the site's voter policy).",
        ),
        404: (ErrorSerializer, "No such poll (`not_found`)."),
        409: (
            ErrorSerializer,
            "Clashes with the poll's state or the caller's votes (`already_voted`, `poll_closed`, "
            "`poll_not_open`, `vote_final`, `poll_has_votes`, `poll_changed`).",
        ),
        413: (ErrorSerializer, "The body is too large (`request_too_large`)."),
        422: (
            ErrorSerializer,
            "The Idempotency-Key was sent before with another request: another method, path or "
            "body (`idempotency_key_reused`).",
        ),
        415: (
            ErrorSerializer,
            "The body is not JSON, form or multipart data (`unsupported_media_type`).",
        ),
        429: (ErrorSerializer, "Too many requests (`throttled`); see Retry-After."),
        503: (
            ErrorSerializer,
            "The database is busy or unavailable (`service_unavailable`); retry after the "
            "seconds in Retry-After.",
        ),
    }
    for status, extra in (codes or {}).items():
        schema, description = described[status]
        reasons = "; ".join(CODE_DESCRIPTIONS[code] for code in extra)
        described[status] = (schema, f"{description.removesuffix('.')}; or {reasons}.")
    return {
        status: openapi.Response(description, schema)
        for status, (schema, description) in described.items()
        if status in statuses
    }


def idempotency_parameters() -> list[Any]:
    """The ``Idempotency-Key`` header of the operations that create something."""
    if _swagger_auto_schema is None:
        return []
    return [
        openapi.Parameter(
            "Idempotency-Key",
            openapi.IN_HEADER,
            "Optional; a unique value per request (a UUID, say), 1 to 255 printable ASCII "
            "characters. A repeat of the request with the same key by the same user, within "
            "24 hours (`IDEMPOTENCY_KEY_TTL`), acts no more and gets the first answer again, "
            "with the header `Idempotent-Replayed: true`. The same key with another request is "
            "422 `idempotency_key_reused`; a repeat while the first still runs is 409 "
            "`idempotency_key_in_progress`.",
            type=openapi.TYPE_STRING,
            required=False,
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
        )
    ]


def page_parameters() -> list[Any]:
    """``page`` and ``page_size``, for a paginated action that schema generators do not see as a
    list (one of a poll's)."""
    if _swagger_auto_schema is None:
        return []
    query, integer = openapi.IN_QUERY, openapi.TYPE_INTEGER
    return [
        openapi.Parameter("page", query, "A page number within the result set.", type=integer),
        openapi.Parameter("page_size", query, "Number of results per page.", type=integer),
    ]


def setting_limits(field: Any) -> dict[str, Any]:
    """The JSON Schema limits of one serializer field that come from ``DJANGO_POLLS``."""
    from django_polls.conf import polls_settings as limits
    from django_polls.serializers import (
        BallotSerializer,
        MethodBallotSerializer,
        OptionSerializer,
        PollSerializer,
    )

    parent, name = getattr(field, "parent", None), getattr(field, "field_name", None)
    if isinstance(parent, PollSerializer) and name == "title":
        return {"minLength": 1, "maxLength": limits.MAX_TITLE_LENGTH, "pattern": NOT_BLANK}
    if isinstance(parent, PollSerializer) and name == "description":
        return {"maxLength": limits.MAX_DESCRIPTION_LENGTH, "pattern": NO_NUL}
    if isinstance(parent, PollSerializer) and name == "options":
        return {"minItems": limits.MIN_OPTIONS, "maxItems": limits.MAX_OPTIONS, "uniqueItems": True}
    if isinstance(parent, PollSerializer) and name in {"min_choices", "max_choices"}:
        # At most the number of options, which is at most MAX_OPTIONS.
        return {"maximum": limits.MAX_OPTIONS}
    if isinstance(parent, OptionSerializer) and name == "text":
        return {"minLength": 1, "maxLength": limits.MAX_OPTION_LENGTH, "pattern": NOT_BLANK}
    ballot_fields = {"options", "ranking", "scores"}
    if isinstance(parent, (BallotSerializer, MethodBallotSerializer)) and name in ballot_fields:
        return {"minItems": 1, "maxItems": limits.MAX_OPTIONS, "uniqueItems": True}
    return {}


#: No NUL character: Django's text fields refuse it (and PostgreSQL cannot store it).
NO_NUL = r"^[^\u0000]*$"
#: That, and something besides whitespace (texts are trimmed, then must not be empty).
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def list_parameters() -> list[Any]:
    """The poll list's query parameters (the pagination ones come from the paginator)."""
    if _swagger_auto_schema is None:
        return []
    query, string = openapi.IN_QUERY, openapi.TYPE_STRING
    return [
        openapi.Parameter(
            "is_active",
            query,
            "Only open (`true`) or finished (`false`) polls.",
            type=string,
            enum=["true", "false"],
        ),
        openapi.Parameter(
            "status",
            query,
            "Only scheduled (not open yet), open or closed (closed or expired) polls.",
            type=string,
            enum=["scheduled", "open", "closed"],
        ),
        openapi.Parameter(
            "search",
            query,
            "Text in the title or description, case-insensitive (at most 200 characters).",
            type=string,
            max_length=200,
            pattern=NO_NUL,
        ),
        openapi.Parameter(
            "ordering",
            query,
            "Sort order; default newest first. Polls without expiry come last.",
            type=string,
            enum=["created_at", "-created_at", "expires_at", "-expires_at"],
        ),
    ]
