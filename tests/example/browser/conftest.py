"""Headless Chromium (Debian's; CHROMIUM=path) driven by Playwright, confined to the server
under test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from tests.example.conftest import Server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# How long an expectation waits for the page unless it names its own bound: a first load
# generates the schema and renders it, which takes seconds on a busy machine.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    """A fresh page whose requests may only go to the server under test; any other is refused
    and recorded in `page.elsewhere`. Script errors (a blocked asset, a policy violation) are
    recorded in `page.errors`."""
    context = browser.new_context()
    opened = context.new_page()
    elsewhere: list[str] = []

    def only_local(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == f"127.0.0.1:{server.port}":
            route.continue_()
        else:
            elsewhere.append(request.url)
            route.abort()

    opened.route("**/*", only_local)
    opened.elsewhere = elsewhere  # type: ignore[attr-defined]
    errors: list[str] = []
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors  # type: ignore[attr-defined]
    yield opened
    context.close()
