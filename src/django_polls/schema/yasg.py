"""The schema hints for drf-yasg (Swagger 2.0). Importable only where drf-yasg is installed:
``django_polls.schema`` leaves it out otherwise."""

from __future__ import annotations

import copy
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from drf_yasg import openapi
from drf_yasg.inspectors import FieldInspector, SwaggerAutoSchema
from drf_yasg.utils import no_body, swagger_auto_schema

from django_polls.schema.hints import (
    ANY_BODY,
    ANY_OPERATION,
    EVENT_STREAM,
    NO_BODY,
    Operation,
    Parameter,
    Response,
    errors,
    setting_limits,
)

F = TypeVar("F", bound=Callable[..., Any])


class SettingLimits(FieldInspector):  # type: ignore[misc]
    """Writes the limits the app enforces from ``DJANGO_POLLS`` (text lengths, how many
    options) into the schema, read when the schema is generated."""

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
        # Answers any operation may give, besides those it documents itself.
        responses = super().get_response_serializers()
        statuses = list(ANY_OPERATION)
        if self.method in {"POST", "PUT", "PATCH"} and self._has_body():
            statuses += ANY_BODY
        for status, response in errors(*statuses).items():
            if status not in responses and str(status) not in responses:
                responses[str(status)] = yasg_response(response)
        return responses

    def _has_body(self) -> bool:
        return self.overrides.get("request_body") is not no_body

    def get_response_schemas(self, response_serializers: Any) -> Any:
        responses = super().get_response_schemas(response_serializers)
        for code, response in responses.items():
            if not response.get("description") and str(code).isdigit():
                response["description"] = HTTPStatus(int(code)).phrase
        return responses


def yasg_schema(schema: dict[str, Any]) -> openapi.Schema:
    """A JSON Schema of the hints (types, properties, items, enums, descriptions) as drf-yasg's.
    Swagger 2.0 has no list of types: ``["array", "null"]`` is an array with ``x-nullable``."""
    nested = {
        "properties": lambda value: {name: yasg_schema(part) for name, part in value.items()},
        "items": yasg_schema,
        "additionalProperties": yasg_schema,
    }
    keywords = {"additionalProperties": "additional_properties"}
    converted = {
        keywords.get(key, key): nested[key](value) if key in nested else value
        for key, value in schema.items()
    }
    kinds = schema.get("type")
    if isinstance(kinds, list) and "null" in kinds:
        (converted["type"],) = (kind for kind in kinds if kind != "null")
        converted["x_nullable"] = True
    return openapi.Schema(**converted)


def yasg_response(response: Response) -> Any:
    if response.body is None or response.page:  # drf-yasg pages the list's answer itself
        return response.description
    body = response.body
    if response.media_type == EVENT_STREAM:  # Swagger 2.0: the array of the stream's events
        body = {"type": "array", "items": body}
    if isinstance(body, dict):
        body = yasg_schema(body)
    return openapi.Response(response.description, body)


def yasg_parameter(parameter: Parameter) -> openapi.Parameter:
    return openapi.Parameter(
        parameter.name,
        {"query": openapi.IN_QUERY, "header": openapi.IN_HEADER}[parameter.location],
        parameter.description,
        type=parameter.type,
        required=parameter.required,
        enum=list(parameter.enum) if parameter.enum is not None else None,
        min_length=parameter.min_length,
        max_length=parameter.max_length,
        pattern=parameter.pattern,
    )


def document(operation: Operation) -> Callable[[F], F]:
    """``swagger_auto_schema`` for one operation of the hints."""
    kwargs: dict[str, Any] = {
        "operation_id": operation.id,
        "responses": {
            status: yasg_response(response)
            for status, response in operation.responses.items()
            # drf-yasg describes a page of the list itself, from the paginator.
            if not response.page
        },
    }
    if operation.description:
        kwargs["operation_description"] = operation.description
    if operation.request is NO_BODY:
        kwargs["request_body"] = no_body
    elif operation.request is not None:
        kwargs["request_body"] = operation.request
    # drf-yasg tells the path's parameters from the model.
    query = [yasg_parameter(p) for p in operation.parameters if p.location != "path"]
    if query:
        kwargs["manual_parameters"] = query
    if operation.public:
        kwargs["security"] = []
    if operation.method:
        kwargs["method"] = operation.method
    if operation.tags:
        kwargs["tags"] = list(operation.tags)
    return swagger_auto_schema(**kwargs)  # type: ignore[no-any-return]
