"""The API documentation: the Swagger 2.0 document, Swagger UI and ReDoc (drf-yasg), served
with their assets by the project itself, so they work offline; the OpenAPI 3.1 document
(drf-spectacular) for client generators."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularYAMLAPIView
from drf_yasg import openapi
from drf_yasg.views import get_schema_view
from rest_framework.permissions import AllowAny

#: The schema's title and description (also `manage.py generate_swagger`'s, via DEFAULT_INFO).
api_info = openapi.Info(
    title="django-polls API",
    default_version="v1",
    description=(
        "Polls, votes and live-exact results. Reads are public; writes need "
        "`Authorization: Token <key>` (register or sign in under **auth**, then press "
        "**Authorize**). Every error has a JSON body: `{detail, code}`, or "
        "`{field: [messages]}` for invalid input."
    ),
    license=openapi.License(name="MIT"),
)

schema_view = get_schema_view(
    api_info,
    public=True,
    permission_classes=[AllowAny],
    # The documents are public: credentials a browser happens to send are not even looked at.
    authentication_classes=[],
)

# The pages load nothing from elsewhere (ReDoc's footer would fetch a logo from a CDN).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "frame-ancestors 'none'",
    ]
)


def documentation_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page that renders HTML: confined to this site by its Content-Security-Policy, and its
    errors answered as the JSON body DRF prepared (`{"detail", "code"}`), like the API's."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        data = getattr(response, "data", None)
        if response.status_code >= 400 and isinstance(data, dict):
            answer = JsonResponse(data, status=response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    answer[header] = response[header]
            return answer
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    return wrapped


schema = schema_view.without_ui(cache_timeout=0)
swagger_ui = documentation_page(schema_view.with_ui("swagger", cache_timeout=0))
redoc = documentation_page(schema_view.with_ui("redoc", cache_timeout=0))


class OpenAPIJSON(SpectacularJSONAPIView):
    swagger_schema = None  # a document, not an operation of the API


class OpenAPIYAML(SpectacularYAMLAPIView):
    swagger_schema = None


# OpenAPI 3.1, as JSON and YAML (SPECTACULAR_SETTINGS).
openapi_json = OpenAPIJSON.as_view()
openapi_yaml = OpenAPIYAML.as_view()
