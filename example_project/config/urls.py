"""URLs of the example project: the poll API, auth, API docs, health, the admin and the live
results page."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from accounts.views import RegisterView, TokenView
from config.docs import openapi_json, openapi_yaml, redoc, schema, swagger_ui
from config.health import HealthView
from demo.views import live_results
from django_polls.views import not_found

urlpatterns = [
    path("api/v1/", include("django_polls.urls")),
    path("api/v1/auth/register/", RegisterView.as_view(), name="register"),
    path("api/v1/auth/token/", TokenView.as_view(), name="token"),
    path("api/health/", HealthView.as_view(), name="health"),
    path("api/docs/", swagger_ui, name="swagger-ui"),
    path("api/redoc/", redoc, name="redoc"),
    re_path(r"^api/swagger(?P<format>\.json|\.yaml)$", schema, name="schema"),
    path("api/openapi.json", openapi_json, name="openapi-json"),
    path("api/openapi.yaml", openapi_yaml, name="openapi-yaml"),
    path("admin/", admin.site.urls),
    path("polls/<int:poll_id>/live/", live_results, name="live-results"),
    # Anything else under /api/ is the app's JSON 404 (newlines included), not an HTML page.
    re_path(r"^api/[\s\S]*$", not_found),
]

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
