"""The served Swagger document describes the whole HTTP contract: every path, method and status
code it lists, the token scheme, and which reads are public."""

from __future__ import annotations

from typing import Any

import pytest

from tests.example.conftest import Server

# The contract's endpoint table (paths under /api/v1/) with the example project's auth endpoints.
# Its live results stream (`polls/{id}/results/stream/`) is not served by this version.
CONTRACT = {
    ("polls/", "get"): {200, 400, 404},
    ("polls/", "post"): {201, 400, 401},
    ("polls/{id}/", "get"): {200, 404},
    ("polls/{id}/", "patch"): {200, 400, 401, 403, 404, 409},
    ("polls/{id}/", "put"): {200, 400, 401, 403, 404, 409},
    ("polls/{id}/", "delete"): {204, 401, 403, 404},
    ("polls/{id}/close/", "post"): {200, 401, 403, 404},
    ("polls/{id}/vote/", "post"): {201, 400, 401, 404, 409},
    ("polls/{id}/vote/", "get"): {200, 401, 404},
    ("polls/{id}/vote/", "delete"): {204, 401, 404, 409},
    ("polls/{id}/results/", "get"): {200, 404},
    ("auth/register/", "post"): {201, 400},
    ("auth/token/", "post"): {200, 400},
}
PUBLIC = {
    ("polls/", "get"),
    ("polls/{id}/", "get"),
    ("polls/{id}/results/", "get"),
    ("auth/register/", "post"),
    ("auth/token/", "post"),
}
METHODS = {"get", "put", "patch", "post", "delete", "head", "options"}


@pytest.fixture(scope="module")
def document(server: Server) -> dict[str, Any]:
    answer = server.request("GET", "/api/swagger.json")
    assert answer.status == 200
    return dict(answer.json)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation by (path under /api/v1/, method)."""
    base = document["basePath"].rstrip("/")
    found = {}
    for path, item in document["paths"].items():
        full = base + path
        for method, operation in item.items():
            if method in METHODS:
                found[(full.removeprefix("/api/v1/"), method)] = operation
    return found


def test_every_contract_operation_documents_every_contract_status(
    document: dict[str, Any],
) -> None:
    documented = operations(document)
    missing = []
    for (path, method), statuses in CONTRACT.items():
        operation = documented.get((path, method))
        if operation is None:
            missing.append(f"{method.upper()} {path}: not documented")
            continue
        codes = {int(code) for code in operation["responses"]}
        if not statuses <= codes:
            missing.append(f"{method.upper()} {path}: no {sorted(statuses - codes)}")
    assert not missing, "\n".join(missing)


def test_the_errors_any_request_may_meet_are_documented(document: dict[str, Any]) -> None:
    for (path, method), operation in operations(document).items():
        codes = set(operation["responses"])
        assert "503" in codes, (path, method)  # the database busy or down
        if any(parameter["in"] == "body" for parameter in operation.get("parameters", [])):
            assert {"413", "415"} <= codes, (path, method)


def test_every_response_has_a_description_and_a_body_schema(document: dict[str, Any]) -> None:
    for (path, method), operation in operations(document).items():
        for code, response in operation["responses"].items():
            assert response.get("description"), (path, method, code)
            if code not in {"204", "304"}:  # no body
                assert "schema" in response, (path, method, code)


def test_error_bodies_are_the_contracts_shapes(document: dict[str, Any]) -> None:
    definitions = document["definitions"]
    vote = operations(document)[("polls/{id}/vote/", "post")]["responses"]
    conflict = vote["409"]["schema"]
    conflict = definitions[conflict["$ref"].rsplit("/", 1)[-1]] if "$ref" in conflict else conflict
    assert {"detail", "code"} <= set(conflict["properties"])
    invalid = vote["400"]["schema"]
    assert invalid["type"] == "object"
    assert invalid["additionalProperties"]["type"] == "array"


def test_the_token_scheme_is_an_api_key_in_the_authorization_header(
    document: dict[str, Any],
) -> None:
    scheme = document["securityDefinitions"]["Token"]
    assert scheme["type"] == "apiKey"
    assert scheme["in"] == "header"
    assert scheme["name"] == "Authorization"
    # Writes need it (the document's default); public reads say they need nothing.
    assert document["security"] == [{"Token": []}]


def test_public_reads_need_no_auth_and_writes_need_the_token(document: dict[str, Any]) -> None:
    for key, operation in operations(document).items():
        if key not in CONTRACT:
            continue
        if key in PUBLIC:
            assert operation.get("security") == [], key
        else:
            assert operation.get("security", document["security"]) == [{"Token": []}], key


def test_request_and_response_bodies_are_described(document: dict[str, Any]) -> None:
    documented = operations(document)
    definitions = document["definitions"]

    def body_schema(path: str, method: str) -> dict[str, Any]:
        (body,) = [p for p in documented[(path, method)]["parameters"] if p["in"] == "body"]
        schema = body["schema"]
        return dict(definitions[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema)

    def response_schema(path: str, method: str, code: str) -> dict[str, Any]:
        schema = documented[(path, method)]["responses"][code]["schema"]
        return dict(definitions[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema)

    assert {"title", "options"} <= set(body_schema("polls/", "post")["required"])
    assert {"title", "options"} <= set(body_schema("polls/{id}/", "put")["required"])
    patch = body_schema("polls/{id}/", "patch")
    assert "required" not in patch  # PATCH changes the fields it sends
    assert {"title", "options", "expires_at"} <= set(patch["properties"])
    # One ballot field per method (options, ranking, scores): the poll's method requires one.
    ballot = body_schema("polls/{id}/vote/", "post")
    assert {"options", "ranking", "scores"} <= set(ballot["properties"])
    assert "required" not in ballot
    assert set(body_schema("auth/register/", "post")["required"]) == {"username", "password"}
    assert {"poll", "options", "created_at"} <= set(
        response_schema("polls/{id}/vote/", "post", "201")["properties"]
    )
    assert {"poll", "is_active", "total_votes", "options"} <= set(
        response_schema("polls/{id}/results/", "get", "200")["properties"]
    )
    assert set(response_schema("auth/register/", "post", "201")["properties"]) == {
        "id",
        "username",
        "token",
    }
    assert "token" in response_schema("auth/token/", "post", "200")["properties"]
