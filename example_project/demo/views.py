"""The live results page: plain HTML and JavaScript over the API (EventSource), no build step."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

#: The page loads nothing from elsewhere and runs only its own script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'"
)


@require_GET
def live_results(request: HttpRequest, poll_id: int) -> HttpResponse:
    """``/polls/{id}/live/``: the poll's results as bars, moved by the results stream. The page
    itself reads nothing: its script asks the API, so a missing poll shows as one."""
    response = render(request, "demo/live.html", {"poll_id": poll_id})
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
