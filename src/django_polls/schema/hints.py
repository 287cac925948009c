"""The schema hints themselves, in no generator's terms: what each operation answers, with
which bodies and descriptions, and the limits the settings put on fields. ``schema.yasg`` and
``schema.spectacular`` turn them into their generator's decorators and extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ``request`` of an operation that takes no body (``close``).
NO_BODY = "no body"

#: No NUL character: Django's text fields refuse it (and PostgreSQL cannot store it).
NO_NUL = r"^[^\u0000]*$"
#: That, and something besides whitespace (texts are trimmed, then must not be empty).
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


@dataclass(frozen=True)
class Response:
    """One documented answer: a description and its body, a serializer (class) or a JSON
    Schema (a dict); None for no body. ``media_type`` when it is not the view's renderers'.
    ``page``: the body is a page of the view's paginator holding ``body``s. ``alternatives``:
    other media types of the same answer, with their bodies (a JSON answer that may also be a
    CSV file; Swagger 2.0 has one schema for all, the body's)."""

    description: str
    body: Any = None
    media_type: str | None = None
    page: bool = False
    alternatives: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Parameter:
    """A query (or path, or header) parameter, a string or an integer."""

    name: str
    description: str
    type: str = "string"
    location: str = "query"
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    required: bool = False

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.min_length is not None:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        return schema


@dataclass(frozen=True)
class Operation:
    """Everything the views say about one operation. ``id`` is its operationId in every
    document, whatever prefix the site mounts the app under. ``method`` names the HTTP method
    of an action that has several; ``public`` operations need no credentials."""

    id: str
    responses: dict[int, Response]
    description: str | None = None
    request: Any = None
    parameters: tuple[Parameter, ...] = ()
    public: bool = False
    method: str | None = None
    tags: tuple[str, ...] | None = None


#: What each error status means, and the body it has: a JSON Schema (400), else the error body.
ERROR_DESCRIPTIONS = {
    400: "Invalid input.",
    401: "Missing credentials (`not_authenticated`) or a bad token (`authentication_failed`).",
    403: "Not allowed (`permission_denied`; on ballots `not_eligible`: not in the poll's voter "
    "group, or refused by the site's voter policy).",
    404: "No such poll (`not_found`).",
    409: "Clashes with the poll's state or the caller's votes (`already_voted`, `poll_closed`, "
    "`poll_not_open`, `vote_final`, `poll_has_votes`, `poll_changed`).",
    413: "The body is too large (`request_too_large`).",
    415: "The body is not JSON, form or multipart data (`unsupported_media_type`).",
    422: "The Idempotency-Key was sent before with another request: another method, path or "
    "body (`idempotency_key_reused`).",
    429: "Too many requests (`throttled`); see Retry-After.",
    503: "The database is busy or unavailable (`service_unavailable`); retry after the seconds "
    "in Retry-After.",
}

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

#: The body of a 400: the messages of each invalid field, or ``{detail, code}``.
FIELD_ERRORS: dict[str, Any] = {
    "type": "object",
    "description": "Each invalid field (or query parameter) maps to a list of messages; a body "
    "that is not valid JSON gets `{detail, code: parse_error}` instead.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}

#: One event of a live results stream. OpenAPI 3 describes a ``text/event-stream`` body by its
#: event (as 3.2's ``itemSchema`` does, and as tools such as Schemathesis read 3.1); Swagger 2.0
#: has no word for a stream, and its document describes the body as the array of events.
EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["results", "deleted", "hidden"]},
        "id": {"type": "string"},
        "data": {"type": "string", "description": "The results body, as JSON."},
        "retry": {"type": "integer"},
    },
}
EVENT_STREAM = "text/event-stream"

#: The statuses any operation may answer with, besides those it documents: the database busy
#: or down; for a body, one too large or of a type no parser reads.
ANY_OPERATION = (503,)
ANY_BODY = (413, 415)


def errors(*statuses: int, codes: dict[int, list[str]] | None = None) -> dict[int, Response]:
    """The error answers an operation documents; ``codes`` names the codes of
    :data:`CODE_DESCRIPTIONS` a status may carry besides its usual ones."""
    from django_polls.serializers import ErrorSerializer

    answers = {}
    for status in statuses:
        description = ERROR_DESCRIPTIONS[status]
        extra = (codes or {}).get(status)
        if extra:
            reasons = "; ".join(CODE_DESCRIPTIONS[code] for code in extra)
            description = f"{description.removesuffix('.')}; or {reasons}."
        body = FIELD_ERRORS if status == 400 else ErrorSerializer
        answers[status] = Response(description, body)
    return answers


def event_stream(description: str) -> Response:
    """A ``text/event-stream`` answer, described by its events."""
    return Response(description, EVENT, media_type=EVENT_STREAM)


#: The poll list's query parameters (the pagination ones come from the paginator).
LIST_PARAMETERS = (
    Parameter(
        "is_active", "Only open (`true`) or finished (`false`) polls.", enum=("true", "false")
    ),
    Parameter(
        "status",
        "Only scheduled (not open yet), open or closed (closed or expired) polls.",
        enum=("scheduled", "open", "closed"),
    ),
    Parameter(
        "search",
        "Text in the title or description, case-insensitive (at most 200 characters).",
        max_length=200,
        pattern=NO_NUL,
    ),
    Parameter(
        "ordering",
        "Sort order; default newest first. Polls without expiry come last.",
        enum=("created_at", "-created_at", "expires_at", "-expires_at"),
    ),
)

#: The ``Idempotency-Key`` header of the operations that create something.
IDEMPOTENCY_KEY = Parameter(
    "Idempotency-Key",
    "Optional; a unique value per request (a UUID, say), 1 to 255 printable ASCII characters. A "
    "repeat of the request with the same key by the same user, within 24 hours "
    "(`IDEMPOTENCY_KEY_TTL`), acts no more and gets the first answer again, with the header "
    "`Idempotent-Replayed: true`. The same key with another request is 422 "
    "`idempotency_key_reused`; a repeat while the first still runs is 409 "
    "`idempotency_key_in_progress`.",
    location="header",
    min_length=1,
    max_length=255,
    pattern=r"^[\x21-\x7e]+$",
)

#: ``format`` and ``table``, the query parameters of ``export/``.
EXPORT_PARAMETERS = (
    Parameter(
        "format",
        "`csv`: one table (see `table`), UTF-8 with a header row; `json`: one document with the "
        "poll, its results and (public polls) its ballots.",
        enum=("csv", "json"),
        required=True,
    ),
    Parameter(
        "table",
        "CSV only: `results` (default), one row per option; `ballots`, one row per voter (public "
        "polls only, else `403 ballots_hidden`). The JSON document holds both.",
        enum=("results", "ballots"),
    ),
)

#: A CSV table of ``export/?format=csv``: its columns are described in words (docs/exports.md).
EXPORT_TABLE: dict[str, Any] = {
    "type": "string",
    "description": "format=csv: one table, UTF-8, a header row, then a row per option "
    "(table=results) or per voter (table=ballots).",
}

#: The JSON document of ``export/?format=json`` (its CSV tables are described in words: a
#: document's media types share one schema in Swagger 2.0).
EXPORT_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "format=json: the poll, its results (the body of `results/`) and, on a "
    "`public` poll, its ballots (the entries of `ballots/`; null on other polls).",
    "properties": {
        "poll": {"type": "object"},
        "results": {"type": "object"},
        "ballots": {"type": ["array", "null"], "items": {"type": "object"}},
    },
    "required": ["poll", "results", "ballots"],
}

#: The poll of a path (drf-yasg tells its type from the model; others from the URL pattern).
POLL_ID = Parameter("id", "The poll's id.", type="integer", location="path")

#: ``page`` and ``page_size``, for a paginated action that schema generators do not see as a
#: list (one of a poll's).
PAGE_PARAMETERS = (
    Parameter("page", "A page number within the result set.", type="integer"),
    Parameter("page_size", "Number of results per page.", type="integer"),
)


def setting_limits(field: Any) -> dict[str, Any]:
    """The JSON Schema limits of one serializer field that come from ``DJANGO_POLLS``, read
    when the schema is generated, so the site's own values show and clients and fuzzers generate
    what the app accepts."""
    from django_polls.conf import polls_settings as limits
    from django_polls.serializers import (
        BallotSerializer,
        MethodBallotSerializer,
        OptionSerializer,
        PollSerializer,
        WebhookSubscriptionSerializer,
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
    if isinstance(parent, WebhookSubscriptionSerializer) and name in {"description", "secret"}:
        return {"pattern": NO_NUL}  # DRF refuses NUL in any text
    ballot_fields = {"options", "ranking", "scores"}
    if isinstance(parent, (BallotSerializer, MethodBallotSerializer)) and name in ballot_fields:
        return {"minItems": 1, "maxItems": limits.MAX_OPTIONS, "uniqueItems": True}
    return {}
