"""Optional schema hints, one module per generator: ``yasg`` (drf-yasg, Swagger 2.0) and
``spectacular`` (drf-spectacular, OpenAPI 3). The views describe each operation once with
:func:`operation`; each generator that is installed reads it, and without either every hint is
a no-op."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from django_polls.schema.hints import (
    EXPORT_DOCUMENT,
    EXPORT_PARAMETERS,
    EXPORT_TABLE,
    IDEMPOTENCY_CODES,
    IDEMPOTENCY_KEY,
    LIST_PARAMETERS,
    NO_BODY,
    PAGE_PARAMETERS,
    POLL_ID,
    Operation,
    Parameter,
    Response,
    errors,
    event_stream,
)

__all__ = [
    "AUTO_SCHEMA",
    "EXPORT_DOCUMENT",
    "EXPORT_PARAMETERS",
    "EXPORT_TABLE",
    "IDEMPOTENCY_CODES",
    "IDEMPOTENCY_KEY",
    "LIST_PARAMETERS",
    "NO_BODY",
    "PAGE_PARAMETERS",
    "POLL_ID",
    "DescribedResponses",
    "Operation",
    "Parameter",
    "Response",
    "errors",
    "event_stream",
    "generators",
    "operation",
]

F = TypeVar("F", bound=Callable[..., Any])


def _generator(name: str, library: str) -> ModuleType | None:
    """The app's module for one generator; None where the generator's library is not installed
    (any other import error is the module's own, and shows)."""
    try:
        return importlib.import_module(f"django_polls.schema.{name}")
    except ImportError as error:
        if (error.name or library).split(".")[0] != library:
            raise
        return None


yasg = _generator("yasg", "drf_yasg")
spectacular = _generator("spectacular", "drf_spectacular")

#: drf-yasg's inspector of the app's views, when drf-yasg is installed (``swagger_schema``).
AUTO_SCHEMA: Any = yasg.DescribedResponses if yasg is not None else None
#: Its name before the generators had modules of their own, in sites' SWAGGER_SETTINGS.
DescribedResponses = AUTO_SCHEMA


def generators() -> list[ModuleType]:
    """The modules of the schema generators that are installed."""
    return [module for module in (yasg, spectacular) if module is not None]


def operation(
    id: str,
    *,
    responses: dict[int, Response],
    description: str | None = None,
    request: Any = None,
    parameters: tuple[Parameter, ...] = (),
    public: bool = False,
    method: str | None = None,
    tags: tuple[str, ...] | None = None,
) -> Callable[[F], F]:
    """Describes one operation to every installed generator; the identity without any."""
    described = Operation(
        id=id,
        responses=responses,
        description=description,
        request=request,
        parameters=parameters,
        public=public,
        method=method,
        tags=tags,
    )

    def decorate(view: F) -> F:
        for generator in generators():
            view = generator.document(described)(view)
        return view

    return decorate
