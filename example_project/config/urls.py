"""URLs of the example project: the poll API, auth, API docs, health and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_yasg import openapi
from drf_yasg.views import get_schema_view
from rest_framework.permissions import AllowAny

from accounts.views import RegisterView, TokenView
from config.errors import api_not_found, json_errors
from config.health import HealthView

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

urlpatterns = [
    path("api/v1/", include("django_polls.urls")),
    path("api/v1/auth/register/", RegisterView.as_view(), name="register"),
    path("api/v1/auth/token/", TokenView.as_view(), name="token"),
    path("api/health/", HealthView.as_view(), name="health"),
    path(
        "api/docs/", json_errors(schema_view.with_ui("swagger", cache_timeout=0)), name="swagger-ui"
    ),
    path("api/redoc/", json_errors(schema_view.with_ui("redoc", cache_timeout=0)), name="redoc"),
    re_path(
        r"^api/swagger(?P<format>\.json|\.yaml)$",
        schema_view.without_ui(cache_timeout=0),
        name="schema",
    ),
    path("admin/", admin.site.urls),
    # Anything else under /api/ is a JSON 404 (newlines included), not an HTML page.
    re_path(r"^api/[\s\S]*$", api_not_found),
]

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
