from __future__ import annotations

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from django_polls.async_views import with_async_variants
from django_polls.views import PollViewSet, WebhookViewSet, not_found, results_stream

app_name = "django_polls"

router = SimpleRouter()
router.register("polls", PollViewSet, basename="poll")
router.register("webhooks", WebhookViewSet, basename="webhook")

# Anything else under polls/ (newlines included) is a JSON 404, not the host's HTML page.
urlpatterns = [
    # The ballot and the results also have async variants, which django_polls.asgi runs.
    *with_async_variants(router.urls),
    # An async view (server-sent events): DRF's views are synchronous.
    re_path(
        r"^polls/(?P<pk>[0-9]{1,19})/results/stream/$",
        results_stream,
        name="poll-results-stream",
    ),
    re_path(r"^polls/[\s\S]*$", not_found, name="not-found"),
]
