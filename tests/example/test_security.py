"""The OWASP API Security Top 10 (2023) against the example project under Gunicorn, over real
HTTP: what only a real server, its settings and its other endpoints can show.

The in-process side, and the list of tests elsewhere that cover each item: tests/test_security.py.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any, cast
from urllib.parse import urlencode

import pytest

from tests.example.conftest import (
    PASSWORD,
    Answer,
    Deployment,
    Server,
    create_poll,
    example_env,
    register,
    run_example,
)
from tests.example.test_settings import PRODUCTION

# Django's default DATA_UPLOAD_MAX_MEMORY_SIZE, which the example project keeps: 2.5 MiB.
BODY_LIMIT = 2_621_440
#: How long the server waits for more of a body (example_project/config/asgi.py's BODY_TIMEOUT).
BODY_TIMEOUT = 10.0


def in_django(deployment: Deployment, script: str, *args: str) -> Any:
    """Run ``script`` with the deployment's settings and return what it prints, as JSON."""
    prelude = "import django, json, sys\ndjango.setup()\n"
    result = run_example(
        "-c",
        prelude + script,
        *args,
        env=deployment.env(DJANGO_SETTINGS_MODULE="config.settings"),
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def send_raw(server: Server, data: bytes, timeout: float = 30) -> bytes:
    """Send bytes as they are (a lying Content-Length, a chunked body) and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as connection:
        connection.sendall(data)
        received = []
        while chunk := connection.recv(65536):
            received.append(chunk)
    return b"".join(received)


def status_and_body(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def authorization(value: bytes | None) -> dict[str, str]:
    """An Authorization header byte for byte (http.client sends bytes values as they are)."""
    return {} if value is None else cast("dict[str, str]", {"Authorization": value})


def assert_json_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer.body[:300]
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json["code"] == code


def public_state(server: Server, poll_id: int) -> tuple[Any, Any, Any]:
    """What anyone can see of a poll (and the first page of polls): a write would show here."""
    return (
        server.request("GET", f"/api/v1/polls/{poll_id}/").json,
        server.request("GET", f"/api/v1/polls/{poll_id}/results/").json,
        server.request("GET", "/api/v1/polls/?page_size=100").json,
    )


# =============================================================================================
# API2:2023 Broken authentication

REVOKE = """
from rest_framework.authtoken.models import Token
print(json.dumps(Token.objects.filter(key=sys.argv[1]).delete()[0]))
"""


def test_bad_credentials_over_http_get_a_json_401_on_every_signed_in_endpoint(
    server: Server, deployment: Deployment
) -> None:
    # The victim's poll with their vote; their own key under another scheme (Bearer) must fail.
    victim = register(server).json
    poll = create_poll(server, victim["token"])
    first, second = (option["id"] for option in poll["options"])
    ballot = {"options": [first]}
    voted = server.request(
        "POST", f"/api/v1/polls/{poll['id']}/vote/", ballot, token=victim["token"]
    )
    assert voted.status == 201
    revoked = register(server).json["token"]
    assert in_django(deployment, REVOKE, revoked) == 1
    endpoints = [
        ("POST", "/api/v1/polls/"),
        ("PATCH", f"/api/v1/polls/{poll['id']}/"),
        ("PUT", f"/api/v1/polls/{poll['id']}/"),
        ("DELETE", f"/api/v1/polls/{poll['id']}/"),
        ("POST", f"/api/v1/polls/{poll['id']}/close/"),
        ("POST", f"/api/v1/polls/{poll['id']}/vote/"),
        ("GET", f"/api/v1/polls/{poll['id']}/vote/"),
        ("DELETE", f"/api/v1/polls/{poll['id']}/vote/"),
    ]
    # Authorization headers byte for byte, as a client may send them.
    credentials: dict[bytes | None, str] = {
        None: "not_authenticated",
        b"Token": "authentication_failed",
        b"Token a b": "authentication_failed",
        b"Bearer " + victim["token"].encode(): "not_authenticated",
        "Token ключ".encode(): "authentication_failed",
        b"Token " + b"a" * 4000: "authentication_failed",
        b"Token " + b"0" * 40: "authentication_failed",
        b"Token " + revoked.encode(): "authentication_failed",
    }
    body = {"title": "Dinner?", "options": [{"text": "Curry"}, {"text": "Pasta"}]}
    before = public_state(server, poll["id"])

    for value, code in credentials.items():
        for method, path in endpoints:
            sent = body if "/vote/" not in path else {"options": [second]}
            answer = server.request(method, path, sent, headers=authorization(value))
            assert answer.status == 401, (value, method, path, answer.body[:200])
            assert answer.headers["WWW-Authenticate"] == "Token"
            assert answer.headers["Content-Type"] == "application/json"
            assert answer.json["code"] == code, (value, method, path)

    # A NUL is no part of any HTTP header: uvicorn (the example's default worker) refuses the
    # request itself, before the app sees it.
    refused = server.request(
        "POST", "/api/v1/polls/", body, headers=authorization(b"Token \xff\x00x")
    )
    assert refused.status == 400, refused.body[:200]
    assert refused.body == b"Invalid HTTP request received."
    # A 9000-byte header is within uvicorn's limit (sync workers would answer 431): the app
    # reads the token and fails it.
    long_token = server.request(
        "POST", "/api/v1/polls/", body, headers=authorization(b"Token " + b"a" * 9000)
    )
    assert_json_error(long_token, 401, "authentication_failed")
    assert public_state(server, poll["id"]) == before


# =============================================================================================
# API3:2023 Broken object property level authorization

ACCOUNT = """
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username=sys.argv[1])
print(json.dumps({
    "id": user.pk, "is_staff": user.is_staff, "is_superuser": user.is_superuser,
    "email": user.email, "groups": user.groups.count(),
    "permissions": user.user_permissions.count(), "token": user.auth_token.key,
}))
"""


def test_registration_cannot_make_an_administrator_or_choose_a_token(
    server: Server, deployment: Deployment
) -> None:
    username = f"mallory-{time.monotonic_ns()}"
    chosen_token = "f" * 40
    answer = server.request(
        "POST",
        "/api/v1/auth/register/",
        {
            "username": username,
            "password": PASSWORD,
            "id": 999_999,
            "is_staff": True,
            "is_superuser": True,
            "is_active": True,
            "email": "mallory@attacker.example",
            "groups": [1],
            "user_permissions": [1, 2, 3],
            "token": chosen_token,
            "auth_token": chosen_token,
        },
    )

    assert answer.status == 201, answer.text
    assert set(answer.json) == {"id", "username", "token"}
    stored = in_django(deployment, ACCOUNT, username)
    assert stored == {
        "id": answer.json["id"],
        "is_staff": False,
        "is_superuser": False,
        "email": "",
        "groups": 0,
        "permissions": 0,
        "token": answer.json["token"],
    }
    assert stored["id"] != 999_999
    assert stored["token"] != chosen_token
    signed_in = server.request(
        "POST", "/api/v1/auth/token/", {"username": username, "password": PASSWORD}
    )
    assert signed_in.json == {"token": stored["token"]}


# =============================================================================================
# API4:2023 Unrestricted resource consumption (throttling: test_throttling.py)


def body_of_size(size: int) -> bytes:
    """A well-formed poll of exactly ``size`` bytes, padded in its description."""
    empty = {"title": "Lunch?", "description": "", "options": [{"text": "A"}, {"text": "B"}]}
    padding = size - len(json.dumps(empty).encode())
    return json.dumps({**empty, "description": "d" * padding}).encode()


def test_a_body_over_the_limit_is_a_json_413_from_every_endpoint_that_takes_one(
    server: Server,
) -> None:
    owner = register(server).json["token"]
    poll = create_poll(server, owner)
    writes = [
        ("POST", "/api/v1/polls/", owner),
        ("PATCH", f"/api/v1/polls/{poll['id']}/", owner),
        ("PUT", f"/api/v1/polls/{poll['id']}/", owner),
        ("POST", f"/api/v1/polls/{poll['id']}/vote/", owner),
        ("POST", "/api/v1/auth/register/", None),
        ("POST", "/api/v1/auth/token/", None),
    ]
    json_type = {"Content-Type": "application/json"}
    before = public_state(server, poll["id"])

    for method, path, token in writes:
        started = time.monotonic()
        too_big = server.request(
            method, path, raw=body_of_size(BODY_LIMIT + 1), token=token, headers=json_type
        )
        # Answered once the body is in, not after the server's wait for more of it.
        assert time.monotonic() - started < BODY_TIMEOUT / 2, (method, path)
        at_limit = server.request(
            method, path, raw=body_of_size(BODY_LIMIT), token=token, headers=json_type
        )
        assert_json_error(too_big, 413, "request_too_large")
        # At the limit the body is read, and refused by the rules (description, ballot shape).
        assert at_limit.status == 400, (method, path, at_limit.body[:200])
    assert public_state(server, poll["id"]) == before


def new_poll_head(server: Server, framing: str) -> bytes:
    """The head of a signed-in `POST polls/` whose body is framed by the `framing` header."""
    token = register(server).json["token"]
    return (
        "POST /api/v1/polls/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Token {token}\r\n{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_a_body_announced_as_huge_is_refused_before_it_is_sent(server: Server) -> None:
    head = new_poll_head(server, "Content-Length: 1000000000")

    # Only the headers and two bytes: a server waiting for the gigabyte would never answer
    # (send_raw gives up after its timeout).
    status, headers, body = status_and_body(send_raw(server, head + b"{}"))

    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "request_too_large"


def test_a_chunked_body_that_never_ends_is_not_waited_for(server: Server) -> None:
    head = new_poll_head(server, "Transfer-Encoding: chunked")
    first_chunk = b'{"title": "Lunch?", "description": "' + b"d" * 60_000
    count = server.request("GET", "/api/v1/polls/").json["count"]

    # A stream with no length that stops: the server gives up on it (config.asgi.BODY_TIMEOUT)
    # well before the client would (send_raw's timeout).
    status, headers, answer = status_and_body(
        send_raw(server, head + b"%x\r\n" % len(first_chunk) + first_chunk + b"\r\n")
    )

    assert status == 408, answer[:300]
    assert headers["content-type"] == "application/json"
    assert json.loads(answer)["code"] == "request_timeout"
    assert server.request("GET", "/api/v1/polls/").json["count"] == count


def test_a_chunked_body_over_the_limit_is_refused_as_it_comes(server: Server) -> None:
    # No length announced: the server counts what arrives and stops at the limit.
    head = new_poll_head(server, "Transfer-Encoding: chunked")
    chunk = b"x" * 65_536
    chunks = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(48))

    status, headers, answer = status_and_body(send_raw(server, head + chunks + b"0\r\n\r\n"))

    assert status == 413, answer[:300]
    assert headers["content-type"] == "application/json"
    assert json.loads(answer)["code"] == "request_too_large"


# =============================================================================================
# API5:2023 Broken function level authorization


def test_an_api_account_cannot_enter_the_admin(server: Server) -> None:
    account = register(server).json

    login_page = server.request("GET", "/admin/login/")
    cookie = re.search(r"csrftoken=([^;]+)", login_page.headers["Set-Cookie"])
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
    assert cookie and form_token
    signed_in = server.request(
        "POST",
        "/admin/login/?next=/admin/",
        raw=urlencode(
            {
                "username": account["username"],
                "password": PASSWORD,
                "csrfmiddlewaretoken": form_token.group(1),
                "next": "/admin/",
            }
        ).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie.group(1)}",
        },
    )
    with_token = server.request("GET", "/admin/", token=account["token"])

    # The form comes back with its error, and no session is handed out.
    assert signed_in.status == 200
    assert "staff account" in signed_in.text
    assert "sessionid" not in (signed_in.headers.get("Set-Cookie") or "")
    assert with_token.status == 302
    assert with_token.headers["Location"].startswith("/admin/login/")


# =============================================================================================
# API8:2023 Security misconfiguration
#
# Covered elsewhere: test_settings.py::test_check_deploy_is_clean_with_production_values,
# ::test_production_refuses_to_start_without_a_secret_key, ::test_production_values_are_read_
# from_the_environment; test_end_to_end.py::test_every_error_under_api_is_json, ::test_cors_lets_
# the_configured_origin_call_the_api, ::test_a_browser_gets_json_not_the_browsable_api; the
# repository scan for secrets: tests/test_security.py::test_no_secret_is_tracked_by_git.

SECURITY_HEADERS = {
    # For this host only: includeSubDomains and preload are opt-in.
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def test_behind_a_tls_proxy_every_api_answer_carries_the_security_headers(
    deployment: Deployment,
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    with deployment.serve(workers=1, HTTPS="true", TRUST_X_FORWARDED_PROTO="true") as server:
        answers = {
            "list": server.request("GET", "/api/v1/polls/", headers=https),
            "401": server.request("POST", "/api/v1/polls/", {}, headers=https),
            "404": server.request("GET", "/api/v1/polls/999999999/", headers=https),
            "unknown path": server.request("GET", "/api/nothing/", headers=https),
            "schema": server.request("GET", "/api/swagger.json", headers=https),
            "health": server.request("GET", "/api/health/", headers=https),
        }
        login_page = server.request("GET", "/admin/login/", headers=https)
        plain = server.request("GET", "/api/v1/polls/?page=2")
        plain_health = server.request("GET", "/api/health/")

    statuses = {name: answer.status for name, answer in answers.items()}
    assert statuses == {
        "list": 200,
        "401": 401,
        "404": 404,
        "unknown path": 404,
        "schema": 200,
        "health": 200,
    }
    for name, answer in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers[header] == value, (name, header)
    # Cookies only over HTTPS; plain HTTP is sent to HTTPS, but for the load balancer's probe.
    assert "Secure" in login_page.headers["Set-Cookie"]
    assert plain.status == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{server.port}/api/v1/polls/?page=2"
    assert plain_health.status == 200


def test_debug_is_off_no_internals_show_and_unknown_hosts_are_refused(server: Server) -> None:
    outside = server.request("GET", "/no/such/page/")
    host = server.request("GET", "/api/v1/polls/", headers={"Host": "attacker.example"})

    assert outside.status == 404
    for tell_tale in ("DEBUG = True", "Traceback", "URLconf", "urlpatterns", "config.urls"):
        assert tell_tale not in outside.text
    assert_json_error(host, 400, "bad_request")
    assert "attacker.example" not in host.text
    # Gunicorn says who it is, but not which version.
    assert not re.search(r"\d", server.request("GET", "/api/health/").headers["Server"])


def test_cors_is_for_the_configured_origins_under_api_only_and_without_credentials(
    server: Server,
) -> None:
    allowed = "http://frontend.localhost:5173"  # the deployment's CORS_ALLOWED_ORIGINS
    api = server.request("GET", "/api/v1/polls/", headers={"Origin": allowed})
    admin = server.request("GET", "/admin/login/", headers={"Origin": allowed})
    stranger = server.request(
        "OPTIONS",
        "/api/v1/polls/",
        headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"},
    )
    null_origin = server.request("GET", "/api/v1/polls/", headers={"Origin": "null"})

    assert api.headers["Access-Control-Allow-Origin"] == allowed
    # Tokens travel in a header: no cookies are shared with other origins.
    assert "Access-Control-Allow-Credentials" not in api.headers
    for answer in (admin, stranger, null_origin):
        assert "Access-Control-Allow-Origin" not in answer.headers
        assert "Access-Control-Allow-Credentials" not in answer.headers


def test_check_deploy_reports_debug_and_a_weak_secret_key() -> None:
    for values, warning in (
        ({"DEBUG": "true"}, "security.W018"),
        ({"SECRET_KEY": "short-and-simple"}, "security.W009"),
    ):
        result = run_example(
            *("manage.py", "check", "--deploy", "--fail-level", "WARNING"),
            env=example_env(**{**PRODUCTION, **values}),
            check=False,
        )
        assert result.returncode != 0, values
        assert warning in result.stderr, (values, result.stderr[-500:])


# =============================================================================================
# API9:2023 Improper inventory management

ROUTES = r"""
import re
from django.urls import URLResolver, get_resolver
from rest_framework.views import APIView

def walk(patterns, prefix):
    for pattern in patterns:
        regex = prefix + pattern.pattern.regex.pattern.lstrip("^").removesuffix("\\Z").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, regex)
        else:
            yield regex, pattern.callback

routes = {}
for regex, callback in walk(get_resolver().url_patterns, "/"):
    cls = getattr(callback, "cls", None)
    # API operations only: the documentation pages and the JSON 404s are not endpoints.
    if not regex.startswith("/api/") or cls is None or not issubclass(cls, APIView):
        continue
    # The documents themselves (drf-yasg's, and the OpenAPI 3.1 ones it is told to leave out).
    if cls.__module__.startswith("drf_yasg") or getattr(cls, "swagger_schema", True) is None:
        continue
    sample = re.sub(r"\(\?P<\w+>[^)]*\)", "1", regex)
    assert re.fullmatch(r"[\w/-]+", sample), regex
    actions = getattr(callback, "actions", None)
    methods = (
        set(actions)
        if actions
        else {name for name in cls.http_method_names if hasattr(cls, name)}
    )
    routes.setdefault(sample, set()).update(methods - {"head", "options"})
print(json.dumps({path: sorted(methods) for path, methods in routes.items()}))
"""
METHODS = {"get", "put", "patch", "post", "delete"}


@pytest.mark.parametrize("url", ["/api/swagger.json", "/api/openapi.json"])
def test_the_schema_lists_exactly_the_api_routes_that_exist(
    server: Server, deployment: Deployment, url: str
) -> None:
    document = server.request("GET", url).json
    base = document.get("basePath", "").rstrip("/")
    documented = {
        re.sub(r"\{\w+\}", "1", base + path): sorted(set(item) & METHODS)
        for path, item in document["paths"].items()
    }

    routes = in_django(deployment, ROUTES)

    assert documented == routes
    assert "/api/v1/polls/1/vote/" in routes  # the walk did find the app's routes
