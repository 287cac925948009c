from __future__ import annotations

from rest_framework.routers import SimpleRouter

from benchmarks.naive.views import PollViewSet

router = SimpleRouter()
router.register("polls", PollViewSet, basename="naive-poll")
urlpatterns = router.urls
