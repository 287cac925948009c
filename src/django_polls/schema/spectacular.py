"""The schema hints for drf-spectacular (OpenAPI 3.0 and 3.1, as the site's ``OAS_VERSION``
says). Importable only where drf-spectacular is installed: ``django_polls.schema`` leaves it out
otherwise. Importing it registers the extensions below with drf-spectacular."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.settings import api_settings

from django_polls.schema.hints import (
    ANY_BODY,
    ANY_OPERATION,
    NO_BODY,
    Operation,
    Parameter,
    Response,
    errors,
    setting_limits,
)

F = TypeVar("F", bound=Callable[..., Any])

#: The HTTP method of each viewset action that has one only, by its function's name.
ACTION_METHODS = {
    "list": "GET",
    "create": "POST",
    "retrieve": "GET",
    "update": "PUT",
    "partial_update": "PATCH",
    "destroy": "DELETE",
}
BODY_METHODS = {"POST", "PUT", "PATCH"}


class SettingLimits(OpenApiSerializerExtension):
    """Writes the limits the app enforces from ``DJANGO_POLLS`` (text lengths, how many
    options) into the schema of the serializers that have them, read when the schema is
    generated."""

    target_class = "django_polls.serializers.PollSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        fields = force_instance(self.target).fields
        for name, part in schema.get("properties", {}).items():
            if name in fields:
                part.update(setting_limits(fields[name]))
        return schema


class OptionLimits(SettingLimits):
    target_class = "django_polls.serializers.OptionSerializer"


class BallotLimits(SettingLimits):
    target_class = "django_polls.serializers.BallotSerializer"


class MethodBallotLimits(SettingLimits):
    """The vote body, named ``Ballot`` as in the Swagger 2.0 document since v1."""

    target_class = "django_polls.serializers.MethodBallotSerializer"

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return "Ballot"


class TokenScheme(OpenApiAuthenticationExtension):
    """The app's cached DRF token: an API key in the ``Authorization`` header, ``Token <key>``,
    named ``Token`` as sites name it in their Swagger 2.0 documents."""

    target_class = "django_polls.authentication.CachedTokenAuthentication"
    name = "Token"
    match_subclasses = True

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>`: DRF's token, with its keyword.",
        }


def uses_spectacular() -> bool:
    """Whether the site's views are described by drf-spectacular (``DEFAULT_SCHEMA_CLASS``)."""
    schema_class = api_settings.DEFAULT_SCHEMA_CLASS
    return isinstance(schema_class, type) and issubclass(schema_class, AutoSchema)


def signed_in_only(view: Any) -> None:
    """The operation needs credentials even where the permission classes let anonymous reads
    through (the action checks): drf-spectacular's optional ``{}`` requirement goes."""
    hinted = view.kwargs["schema"]

    class SignedIn(hinted):  # type: ignore[misc, valid-type]
        def get_auth(self) -> list[dict[str, Any]]:
            return [requirement for requirement in super().get_auth() if requirement]

    view.kwargs["schema"] = SignedIn


def spectacular_body(response: Response) -> Any:
    if response.page:  # drf-spectacular pages a list of them by the view's pagination_class
        return response.body(many=True)
    return response.body  # serializers and JSON Schemas alike; None for no body


def spectacular_parameter(parameter: Parameter) -> OpenApiParameter:
    return OpenApiParameter(
        parameter.name,
        type=parameter.json_schema(),
        location=cast("Literal['query', 'path', 'header']", parameter.location),
        description=parameter.description,
        required=parameter.location == "path" or parameter.required,
    )


def document(operation: Operation) -> Callable[[F], F]:
    """``extend_schema`` for one operation of the hints, with the answers any operation may
    give (drf-yasg's :class:`~django_polls.schema.yasg.DescribedResponses` adds those). Only on
    a site whose ``DEFAULT_SCHEMA_CLASS`` is drf-spectacular's: elsewhere its annotations would
    break DRF's own schema generator, so a site that merely has drf-spectacular installed is
    left as it was."""

    def decorate(view: F) -> F:
        if not uses_spectacular():
            return view
        method = (operation.method or ACTION_METHODS.get(view.__name__, "")).upper()
        if not method and view.__name__ in {"get", "post", "put", "patch", "delete"}:
            method = view.__name__.upper()
        statuses = list(ANY_OPERATION)
        if method in BODY_METHODS and operation.request is not NO_BODY:
            statuses += ANY_BODY
        answers = {**errors(*statuses), **operation.responses}
        media_types = {r.media_type for r in answers.values() if r.media_type is not None}
        media_types |= {kind for r in answers.values() for kind, _ in r.alternatives}
        responses: dict[Any, Any] = {}
        for status, response in sorted(answers.items()):
            # Where one answer has a media type of its own, the others are JSON.
            key: Any = status
            if media_types:
                key = (status, response.media_type or "application/json")
            responses[key] = OpenApiResponse(spectacular_body(response), response.description)
            for kind, body in response.alternatives:
                responses[(status, kind)] = OpenApiResponse(body, response.description)
        kwargs: dict[str, Any] = {"operation_id": operation.id, "responses": responses}
        if operation.description:
            kwargs["description"] = operation.description
        if operation.request is NO_BODY:
            kwargs["request"] = None
        elif operation.request is not None:
            kwargs["request"] = operation.request
        parameters = [spectacular_parameter(p) for p in operation.parameters]
        if media_types and not any(p.name == "format" for p in operation.parameters):
            # Its media types are negotiated by Accept (the stream's): no ?format= to choose one.
            parameters.append(OpenApiParameter("format", exclude=True))
        if parameters:
            kwargs["parameters"] = parameters
        if operation.public:
            # No requirement: anyone may call it (the document sets none for the whole API).
            kwargs["auth"] = []
        if operation.method:
            kwargs["methods"] = [operation.method.upper()]
        if operation.tags:
            kwargs["tags"] = list(operation.tags)
        hinted = extend_schema(**kwargs)(view)
        if not operation.public:
            signed_in_only(hinted)
        return hinted

    return decorate
