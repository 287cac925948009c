"""Optional OpenAPI hints for drf-yasg. Without drf-yasg installed every hint is a no-op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:
    from drf_yasg.utils import swagger_auto_schema as _swagger_auto_schema
except ImportError:  # pragma: no cover - exercised only where drf-yasg is absent
    _swagger_auto_schema = None


def document(**kwargs: Any) -> Callable[[F], F]:
    """``swagger_auto_schema(**kwargs)`` when drf-yasg is installed, else the identity."""
    if _swagger_auto_schema is None:
        return lambda view: view
    return _swagger_auto_schema(**kwargs)  # type: ignore[no-any-return]


def errors(*statuses: int) -> dict[int, Any]:
    """Response entries for the error statuses an operation can answer with."""
    from django_polls.serializers import ErrorSerializer, ValidationErrorSerializer

    described = {
        400: (ValidationErrorSerializer, "Invalid input: field errors."),
        401: (ErrorSerializer, "Authentication required (`not_authenticated`)."),
        403: (ErrorSerializer, "Not allowed (`permission_denied`)."),
        404: (ErrorSerializer, "No such poll (`not_found`)."),
        409: (ErrorSerializer, "Clashes with the poll's state or the caller's votes."),
        429: (ErrorSerializer, "Too many requests (`throttled`); see Retry-After."),
    }
    if _swagger_auto_schema is None:
        return {}
    from drf_yasg import openapi

    return {
        status: openapi.Response(description, serializer)
        for status, (serializer, description) in described.items()
        if status in statuses
    }
