"""The example project under Gunicorn, over real HTTP: what a frontend team does on day one."""

from __future__ import annotations

import re
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

from tests.example.conftest import (
    DATABASE,
    PASSWORD,
    Answer,
    Deployment,
    Server,
    create_poll,
    new_token,
    register,
)


def test_register_token_create_vote_results_and_swagger(server: Server) -> None:
    username = f"alice-{secrets.token_hex(4)}"
    registered = register(server, username)
    assert registered.status == 201, registered.text
    assert set(registered.json) == {"id", "username", "token"}
    assert registered.json["username"] == username
    assert "Set-Cookie" not in registered.headers

    signed_in = server.request(
        "POST", "/api/v1/auth/token/", {"username": username, "password": PASSWORD}
    )
    assert signed_in.status == 200, signed_in.text
    assert signed_in.json == {"token": registered.json["token"]}
    token = signed_in.json["token"]

    created = server.request(
        "POST",
        "/api/v1/polls/",
        {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}]},
        token=token,
    )
    assert created.status == 201, created.text
    poll = created.json
    assert poll["created_by"] == username
    assert poll["is_active"] is True
    assert poll["total_votes"] == 0
    pizza, soup = (option["id"] for option in poll["options"])

    voted = server.request(
        "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [pizza]}, token=token
    )
    assert voted.status == 201, voted.text
    assert voted.json["poll"] == poll["id"]
    assert voted.json["options"] == [pizza]

    # A second voter, so the percentages are not trivially 100 and 0.
    other = new_token(server)
    assert (
        server.request(
            "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [soup]}, token=other
        ).status
        == 201
    )

    again = server.request(
        "POST", f"/api/v1/polls/{poll['id']}/vote/", {"options": [soup]}, token=token
    )
    assert again.status == 409
    assert again.json["code"] == "already_voted"

    results = server.request("GET", f"/api/v1/polls/{poll['id']}/results/")
    assert results.status == 200
    assert results.json == {
        "poll": poll["id"],
        "method": "single",
        "is_active": True,
        "total_votes": 2,
        "total_voters": 2,
        "options": [
            {"id": pizza, "text": "Pizza", "votes": 1, "percentage": 50.0},
            {"id": soup, "text": "Soup", "votes": 1, "percentage": 50.0},
        ],
    }

    mine = server.request("GET", f"/api/v1/polls/{poll['id']}/vote/", token=token)
    assert mine.json == {"voted": True, "options": [pizza]}

    schema = server.request("GET", "/api/swagger.json")
    assert schema.status == 200
    assert schema.headers["Content-Type"].startswith("application/json")
    assert schema.json["swagger"] == "2.0"
    assert "/v1/polls/{id}/vote/" in {
        path.removeprefix("/api") for path in _full_paths(schema.json)
    }


def _full_paths(document: dict[str, object]) -> set[str]:
    base = str(document.get("basePath", "")).rstrip("/")
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {base + path for path in paths}


def test_register_refuses_a_taken_username_and_a_weak_password(server: Server) -> None:
    username = f"bob-{secrets.token_hex(4)}"
    assert register(server, username).status == 201

    taken = register(server, username)
    assert taken.status == 400
    assert taken.json == {"username": ["A user with that username already exists."]}

    weak = server.request(
        "POST", "/api/v1/auth/register/", {"username": f"{username}-2", "password": "12345678"}
    )
    assert weak.status == 400
    assert "password" in weak.json
    assert any("common" in message for message in weak.json["password"])
    # Nothing was created: the username is still free.
    assert register(server, f"{username}-2").status == 201

    missing = server.request("POST", "/api/v1/auth/register/", {})
    assert missing.status == 400
    assert set(missing.json) == {"username", "password"}


def test_token_refuses_bad_credentials(server: Server) -> None:
    username = f"carol-{secrets.token_hex(4)}"
    register(server, username)
    for credentials in (
        {"username": username, "password": "wrong-password"},
        {"username": f"nobody-{secrets.token_hex(4)}", "password": PASSWORD},
        {"username": username},
    ):
        answer = server.request("POST", "/api/v1/auth/token/", credentials)
        assert answer.status == 400, credentials
        assert answer.headers["Content-Type"] == "application/json"
        assert "token" not in answer.json


def test_a_request_without_valid_credentials_gets_401_with_www_authenticate(
    server: Server,
) -> None:
    body = {"title": "Lunch?", "options": [{"text": "Pizza"}, {"text": "Soup"}]}
    for token, code in ((None, "not_authenticated"), ("not-a-real-token", "authentication_failed")):
        answer = server.request("POST", "/api/v1/polls/", body, token=token)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == "Token"
        assert answer.json["code"] == code, token


def test_every_error_under_api_is_json(server: Server) -> None:
    for method, path in [
        ("GET", "/api/"),
        ("GET", "/api/v2/polls/"),
        ("POST", "/api/v1/auth/register"),  # no trailing slash
        ("DELETE", "/api/nothing/here/"),
        ("GET", "/api/v1/polls/99999999/"),
        ("GET", "/api/v1/polls/abc/results/"),
    ]:
        answer = server.request(method, path)
        assert answer.status == 404, (method, path)
        assert answer.headers["Content-Type"] == "application/json", (method, path)
        assert answer.json["code"] == "not_found"

    # The documentation pages render HTML, but their errors are JSON too.
    for method, path, status in [
        ("POST", "/api/docs/", 405),
        ("DELETE", "/api/redoc/", 405),
        ("GET", "/api/docs/?format=bogus", 404),
    ]:
        answer = server.request(method, path)
        assert answer.status == status, (method, path)
        assert answer.headers["Content-Type"] == "application/json", (method, path)
        assert answer.json["code"], (method, path)

    token = new_token(server)
    plain_text = server.request(
        "POST",
        "/api/v1/polls/",
        raw=b"title=Lunch",
        token=token,
        headers={"Content-Type": "text/plain"},
    )
    assert plain_text.status == 415
    assert plain_text.json["code"] == "unsupported_media_type"

    broken = server.request(
        "POST",
        "/api/v1/auth/register/",
        raw=b'{"username": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status == 400
    assert broken.json["code"] == "parse_error"


def test_sign_in_and_the_docs_ignore_credentials_the_client_already_sends(
    server: Server,
) -> None:
    username = f"dave-{secrets.token_hex(4)}"
    token = register(server, username).json["token"]
    credentials = {"username": username, "password": PASSWORD}
    stale = {"Authorization": "Token 0000000000000000000000000000000000000000"}
    admin_session = {"Cookie": "sessionid=whatever; csrftoken=whatever"}
    for headers in (stale, admin_session):
        signed_in = server.request("POST", "/api/v1/auth/token/", credentials, headers=headers)
        assert signed_in.status == 200, (headers, signed_in.text)
        assert signed_in.json == {"token": token}
        for page in ("/api/docs/", "/api/swagger.json"):
            assert server.request("GET", page, headers=headers).status == 200, (headers, page)


def test_sign_in_takes_the_username_as_registration_stored_it(server: Server) -> None:
    # Full-width letters are stored as plain ones (Unicode NFKC); signing in the same way works.
    suffix = secrets.token_hex(3)
    typed = "\uff45\uff56\uff45" + suffix  # "eve" in full-width letters
    registered = register(server, typed)
    assert registered.json["username"] == "eve" + suffix
    for username in (typed, "eve" + suffix):
        answer = server.request(
            "POST", "/api/v1/auth/token/", {"username": username, "password": PASSWORD}
        )
        assert answer.status == 200, (username, answer.text)


def test_health_reports_the_database(server: Server) -> None:
    answer = server.request("GET", "/api/health/")
    assert answer.status == 200
    assert answer.json == {"status": "ok", "database": "ok"}


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value and tag in {"script", "link"}:
                self.urls.append(value)


def test_swagger_ui_redoc_and_admin_are_served_with_their_assets(server: Server) -> None:
    for page in ("/api/docs/", "/api/redoc/", "/admin/login/"):
        answer = server.request("GET", page)
        assert answer.status == 200, page
        assert answer.headers["Content-Type"].startswith("text/html")
        assets = _Assets()
        assets.feed(answer.text)
        assert assets.urls, page
        for url in assets.urls:
            # Served by the project itself: the docs work without the internet.
            assert url.startswith("/static/"), (page, url)
            fetched = server.request("GET", url)
            assert fetched.status == 200, (page, url)
            assert len(fetched.body) > 0


def test_cors_lets_the_configured_origin_call_the_api(server: Server) -> None:
    allowed = "http://frontend.localhost:5173"
    preflight = server.request(
        "OPTIONS",
        "/api/v1/polls/",
        headers={
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == allowed
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()

    read = server.request("GET", "/api/v1/polls/", headers={"Origin": allowed})
    assert read.headers["Access-Control-Allow-Origin"] == allowed

    stranger = server.request(
        "GET", "/api/v1/polls/", headers={"Origin": "http://elsewhere.localhost"}
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_voters_at_once_on_four_workers_are_all_counted(server: Server) -> None:
    owner = new_token(server)
    poll = create_poll(server, owner)
    options = [option["id"] for option in poll["options"]]
    voters = 24

    def sign_up_and_vote(number: int) -> int:
        token = new_token(server)
        ballot = {"options": [options[number % 2]]}
        return server.request(
            "POST", f"/api/v1/polls/{poll['id']}/vote/", ballot, token=token
        ).status

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(sign_up_and_vote, range(voters)))

    assert statuses == [201] * voters, f"{DATABASE}: {statuses}"
    results = server.request("GET", f"/api/v1/polls/{poll['id']}/results/").json
    assert results["total_votes"] == voters
    assert [option["votes"] for option in results["options"]] == [voters // 2, voters // 2]


def test_one_voter_sending_the_same_ballot_at_once_is_counted_once(server: Server) -> None:
    owner = new_token(server)
    poll = create_poll(server, owner)
    ballot = {"options": [poll["options"][0]["id"]]}
    voter = new_token(server)

    def vote(_: int) -> Answer:
        return server.request("POST", f"/api/v1/polls/{poll['id']}/vote/", ballot, token=voter)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(vote, range(10)))

    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [409] * 9, statuses
    assert all(a.json["code"] == "already_voted" for a in answers if a.status == 409)
    results = server.request("GET", f"/api/v1/polls/{poll['id']}/results/").json
    assert results["total_votes"] == 1


def test_a_browser_gets_json_not_the_browsable_api(server: Server) -> None:
    # DEBUG is off, so there is no HTML renderer to choose even when a browser prefers HTML.
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    answer = server.request("GET", "/api/v1/polls/", headers={"Accept": accept})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert not re.search(r"<html", answer.text, re.IGNORECASE)


def test_health_answers_503_soon_when_the_database_hangs(deployment: Deployment) -> None:
    # A PostgreSQL address that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        hung = f"postgres://polls@127.0.0.1:{port}/polls"
        with deployment.serve(
            workers=1, healthy=False, DATABASE_URL=hung, DATABASE_CONNECT_TIMEOUT="2"
        ) as server:
            started = time.monotonic()
            answer = server.request("GET", "/api/health/")
            waited = time.monotonic() - started
            polls = server.request("GET", "/api/v1/polls/")
    assert answer.status == 503
    assert answer.json == {"status": "unavailable", "database": "unavailable"}
    assert answer.headers["Retry-After"] == "1"
    assert waited < 10, waited  # not Gunicorn's 30 s worker timeout
    assert polls.status == 503
    assert polls.json["code"] == "service_unavailable"
    assert polls.headers["Retry-After"] == "1"


ALREADY_VOTED = {
    "es": "Ya ha votado en esta encuesta tanto como lo permite.",
    "fr": "Vous avez déjà voté dans ce sondage autant qu\u2019il le permet.",
    "de": "Sie haben in dieser Umfrage bereits so oft abgestimmt, wie sie es erlaubt.",
    "pt-br": "Você já votou nesta enquete tanto quanto ela permite.",
}


def test_messages_come_in_the_language_of_accept_language(server: Server) -> None:
    """Over HTTP, through the example's LocaleMiddleware (on PostgreSQL the ballot is answered on
    the event loop by the app's ASGI handler): the same status and code in every language, the
    message translated, the poll as its author wrote it."""
    token = new_token(server)
    poll = create_poll(server, token, title="Almuerzo?")
    path = f"/api/v1/polls/{poll['id']}/vote/"
    ballot = {"options": [poll["options"][0]["id"]]}
    assert server.request("POST", path, ballot, token=token).status == 201

    for language, detail in ALREADY_VOTED.items():
        answer = server.request(
            "POST", path, ballot, token=token, headers={"Accept-Language": f"{language},en;q=0.5"}
        )
        assert answer.status == 409, answer.text
        assert answer.json == {"detail": detail, "code": "already_voted"}
        assert answer.headers["Content-Language"] == language
    english = server.request("POST", path, ballot, token=token)
    assert english.json["detail"] == "You have already voted on this poll as far as it allows."

    german = server.request(
        "POST",
        "/api/v1/polls/",
        {"title": "", "options": [{"text": "Pizza"}, {"text": "Soup"}]},
        token=token,
        headers={"Accept-Language": "de"},
    )
    assert german.status == 400
    assert german.json == {"title": ["Dieses Feld darf nicht leer sein."]}
    shown = server.request(
        "GET", f"/api/v1/polls/{poll['id']}/", headers={"Accept-Language": "fr"}
    ).json
    assert shown["title"] == "Almuerzo?"
    assert [option["text"] for option in shown["options"]] == ["Pizza", "Soup"]
