"""The pictures in the README and the docs: the live results page and Swagger UI as a visitor sees
them, taken in headless Chromium. Each run takes them into its own directory; with
``SCREENSHOTS_DIR`` set (``make screenshots``: ``docs/images``) they replace the committed ones."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.example.conftest import DATABASE, Deployment, Server, create_poll, new_token

WIDTH, HEIGHT = 1200, 760
#: The live page holds a title and a few bars: a shorter picture.
LIVE_HEIGHT = 400


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[Server]:
    """On SQLite a stream hears only of its own process's changes: one worker there."""
    with deployment.serve(workers=2 if DATABASE == "postgresql" else 1) as running:
        yield running


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    target = os.environ.get("SCREENSHOTS_DIR")
    return Path(target) if target else tmp_path


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_live_results_page(page: Page, server: Server, pictures: Path) -> None:
    token = new_token(server)
    poll = create_poll(
        server,
        token,
        title="Where should the team offsite be?",
        options=[{"text": text} for text in ("Lisbon", "Kraków", "Valencia", "Tallinn")],
    )
    ids = [option["id"] for option in poll["options"]]
    for option_id in [ids[0]] * 5 + [ids[1]] * 3 + [ids[2]] * 2 + [ids[3]]:
        answer = server.request(
            "POST",
            f"/api/v1/polls/{poll['id']}/vote/",
            {"options": [option_id]},
            token=new_token(server),
        )
        assert answer.status == 201, answer.text
    page.set_viewport_size({"width": WIDTH, "height": LIVE_HEIGHT})
    page.goto(f"http://127.0.0.1:{server.port}/polls/{poll['id']}/live/")
    expect(page.locator("#status")).to_have_text("Live")
    expect(page.locator("#total")).to_have_text("11 votes")
    expect(page.locator(f"[data-option='{ids[0]}'] .figures")).to_have_text("5 · 45.45 %")

    path = pictures / "live-results.png"
    page.screenshot(path=str(path))

    assert png_size(path) == (WIDTH, LIVE_HEIGHT)
    assert page.errors == []  # type: ignore[attr-defined]


def test_swagger_ui(page: Page, server: Server, pictures: Path) -> None:
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    page.goto(f"http://127.0.0.1:{server.port}/api/docs/")
    expect(page.locator(".info .title")).to_contain_text("django-polls API")
    # The poll operations, under their tag.
    listing = page.locator(".opblock-summary-path[data-path='/v1/polls/']").first
    expect(listing).to_be_visible()
    listing.evaluate("e => window.scrollTo(0, e.getBoundingClientRect().top + scrollY - 90)")
    vote = page.locator(".opblock-summary-path[data-path='/v1/polls/{id}/vote/']").first
    expect(vote).to_be_attached()

    path = pictures / "swagger-ui.png"
    page.screenshot(path=str(path))

    assert png_size(path) == (WIDTH, HEIGHT)
    assert page.errors == []  # type: ignore[attr-defined]
