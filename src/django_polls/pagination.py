from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

from django_polls.conf import polls_settings


class PollPagination(PageNumberPagination):
    """Page-number pagination whose size and bound come from ``DJANGO_POLLS`` on every request.

    ``page_size`` above the bound is clamped to it; a non-numeric size falls back to the default.
    """

    page_size_query_param = "page_size"

    @property
    def page_size(self) -> int:  # type: ignore[override]
        return polls_settings.PAGE_SIZE

    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return polls_settings.MAX_PAGE_SIZE
