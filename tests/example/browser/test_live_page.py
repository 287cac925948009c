"""The live results page in headless Chromium: bars and percentages from the results stream, moved
by a vote cast through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.example.conftest import DATABASE, Deployment, Server, create_poll, new_token

#: The spec's bound: a vote acknowledged by the API shows on the page within a second.
ONE_SECOND_MS = 1000


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[Server]:
    """On SQLite a stream hears only of its own process's changes: one worker there."""
    with deployment.serve(workers=2 if DATABASE == "postgresql" else 1) as running:
        yield running


def vote(server: Server, poll_id: int, option_id: int) -> None:
    answer = server.request(
        "POST", f"/api/v1/polls/{poll_id}/vote/", {"options": [option_id]}, token=new_token(server)
    )
    assert answer.status == 201, answer.text


def test_a_vote_moves_the_bar_within_a_second(page: Page, server: Server) -> None:
    poll = create_poll(server, new_token(server), title="Live lunch?")
    pizza, soup = (option["id"] for option in poll["options"])
    page.goto(f"http://127.0.0.1:{server.port}/polls/{poll['id']}/live/")
    expect(page.locator("#title")).to_have_text("Live lunch?")
    expect(page.locator("#status")).to_have_text("Live")
    pizza_row = page.locator(f"[data-option='{pizza}']")
    soup_row = page.locator(f"[data-option='{soup}']")
    expect(pizza_row.locator(".text")).to_have_text("Pizza")
    expect(pizza_row).to_have_attribute("data-votes", "0")

    vote(server, poll["id"], soup)
    expect(soup_row).to_have_attribute("data-votes", "1", timeout=ONE_SECOND_MS)
    expect(soup_row.locator(".figures")).to_have_text("1 · 100.00 %")
    expect(soup_row.locator(".bar")).to_have_attribute("style", "width: 100%;")

    vote(server, poll["id"], pizza)
    expect(pizza_row).to_have_attribute("data-percentage", "50", timeout=ONE_SECOND_MS)
    expect(soup_row.locator(".bar")).to_have_attribute("style", "width: 50%;")
    expect(page.locator("#total")).to_have_text("2 votes")
    assert page.elsewhere == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_closing_and_deleting_show_on_the_page(page: Page, server: Server) -> None:
    owner = new_token(server)
    poll = create_poll(server, owner)
    page.goto(f"http://127.0.0.1:{server.port}/polls/{poll['id']}/live/")
    expect(page.locator("#status")).to_have_text("Live")
    assert server.request("POST", f"/api/v1/polls/{poll['id']}/close/", token=owner).status == 200
    expect(page.locator("#status")).to_have_text("Closed")
    assert server.request("DELETE", f"/api/v1/polls/{poll['id']}/", token=owner).status == 204
    expect(page.locator("#status")).to_have_text("This poll was deleted.")
    assert page.errors == []  # type: ignore[attr-defined]
