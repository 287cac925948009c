"""The documentation pages in a real browser (headless Chromium): Swagger UI and ReDoc load with
no request leaving the machine, and a token entered under Authorize is sent with "Try it out"
requests."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.example.conftest import Server, create_poll, new_token


def test_swagger_ui_loads_offline_and_lists_the_api(page: Page, server: Server) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/api/docs/")
    expect(page.locator(".info .title")).to_contain_text("django-polls API")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible()
    shown = set(paths.all_inner_texts())
    for path in ("/v1/polls/", "/v1/polls/{id}/vote/", "/v1/polls/{id}/results/"):
        assert any(text.replace("\u200b", "").strip() == path for text in shown), shown
    assert page.elsewhere == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_authorize_sends_the_token_with_try_it_out(page: Page, server: Server) -> None:
    token = new_token(server)
    poll = create_poll(server, token, title="Swagger?")
    yes = poll["options"][0]["id"]
    assert (
        server.request(
            "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [yes]}, token=token
        ).status
        == 201
    )

    page.goto(f"http://127.0.0.1:{server.port}/api/docs/")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").fill(f"Token {token}")
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    # GET /polls/{id}/vote/ answers 401 without a token, the caller's votes with one.
    operation = page.locator(".opblock-get").filter(
        has=page.locator(".opblock-summary-path[data-path='/v1/polls/{id}/vote/']")
    )
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("tr[data-param-name='id'] input").fill(str(poll["id"]))
    operation.locator("button.execute").click()

    response = operation.locator(".live-responses-table .response").first
    expect(response.locator(".response-col_status")).to_have_text("200")
    expect(response.locator(".response-col_description")).to_contain_text(
        f'"options": [\n    {yes}'
    )
    assert page.elsewhere == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


def test_redoc_renders_offline(page: Page, server: Server) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/api/redoc/")
    expect(page.locator("h1").first).to_contain_text("django-polls API")
    expect(page.get_by_text("/v1/polls/{id}/vote/").first).to_be_attached()
    assert page.elsewhere == []  # type: ignore[attr-defined]
    # The one error: the page's policy stops ReDoc's footer from fetching its logo from a CDN.
    unexpected = [e for e in page.errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in e]  # type: ignore[attr-defined]
    assert unexpected == []
