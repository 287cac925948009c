"""The served OpenAPI 3.1 document (`/api/openapi.json`, `/api/openapi.yaml`) is valid, and says
what the Swagger 2.0 document says: every operation with the same id and statuses, the same
token scheme, the same public reads."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest

from tests.example.conftest import Server
from tests.example.test_swagger import CONTRACT, METHODS, PUBLIC
from tests.example.test_swagger import operations as swagger_operations


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    answer = server.request("GET", "/api/openapi.json")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return dict(answer.json)


@pytest.fixture(scope="module")
def swagger(server: Server) -> dict[str, Any]:
    answer = server.request("GET", "/api/swagger.json")
    assert answer.status == 200
    return dict(answer.json)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation by (path under /api/v1/, method)."""
    return {
        (path.removeprefix("/api/v1/"), method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1(openapi: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    assert openapi["openapi"].startswith("3.1.")
    validate(openapi)


def test_the_yaml_document_is_the_same(server: Server, openapi: dict[str, Any]) -> None:
    import yaml

    answer = server.request("GET", "/api/openapi.yaml")
    assert answer.status == 200
    assert yaml.safe_load(answer.text) == openapi


def test_every_operation_as_in_the_swagger_document(
    openapi: dict[str, Any], swagger: dict[str, Any]
) -> None:
    three, two = operations(openapi), swagger_operations(swagger)
    assert set(three) == set(two)
    for key, operation in three.items():
        other = two[key]
        assert operation["operationId"] == other["operationId"], key
        assert set(operation["responses"]) == set(other["responses"]), key
        for status, response in operation["responses"].items():
            described = other["responses"][status]["description"]
            if described != HTTPStatus(int(status)).phrase:  # drf-yasg's own page of polls
                assert response["description"] == described, (key, status)
    ids = [operation["operationId"] for operation in three.values()]
    assert len(set(ids)) == len(ids)
    # Readable and the same wherever the app is mounted: no version prefix.
    assert three[("polls/{id}/vote/", "post")]["operationId"] == "polls_vote_create"
    assert not [name for name in ids if name.startswith("v1_")]


def test_every_contract_operation_documents_every_contract_status(
    openapi: dict[str, Any],
) -> None:
    documented = operations(openapi)
    for (path, method), statuses in CONTRACT.items():
        codes = {int(code) for code in documented[(path, method)]["responses"]}
        assert statuses <= codes, (path, method)


def test_the_token_scheme_is_the_swagger_documents(
    openapi: dict[str, Any], swagger: dict[str, Any]
) -> None:
    assert openapi["components"]["securitySchemes"] == swagger["securityDefinitions"]
    for key, operation in operations(openapi).items():
        if key in PUBLIC or key[0] == "/api/health/":
            # No requirement (OpenAPI 3 documents have none for the whole API here).
            assert "security" not in operation, key
        elif key in CONTRACT:
            assert operation["security"] == [{"Token": []}], key


def test_error_bodies_are_the_contracts_shapes(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    vote = operations(openapi)[("polls/{id}/vote/", "post")]["responses"]
    conflict = vote["409"]["content"]["application/json"]["schema"]
    assert set(schemas[conflict["$ref"].rsplit("/", 1)[-1]]["properties"]) == {"detail", "code"}
    invalid = vote["400"]["content"]["application/json"]["schema"]
    assert invalid["additionalProperties"]["type"] == "array"


def shape(document: dict[str, Any], schema: dict[str, Any], writing: bool = False) -> Any:
    """What a body holds, in either document: the names of an object's properties (those a
    client sends, when ``writing``), an array of shapes, or a plain type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        found = document.get("definitions", {}).get(name)
        if found is None:
            found = document["components"]["schemas"][name]
        return shape(document, found, writing)
    if len(schema.get("allOf", [])) == 1:
        return shape(document, schema["allOf"][0], writing)
    if schema.get("type") == "array":
        return ("array", shape(document, schema["items"], writing))
    if "properties" in schema:
        return frozenset(
            name
            for name, part in schema["properties"].items()
            if not (writing and part.get("readOnly"))
        )
    return schema.get("type")


def test_every_body_has_the_shape_it_has_in_the_swagger_document(
    openapi: dict[str, Any], swagger: dict[str, Any]
) -> None:
    three, two = operations(openapi), swagger_operations(swagger)
    compared = 0
    for key, operation in three.items():
        other = two[key]
        for status, response in operation["responses"].items():
            if "schema" not in other["responses"][status]:
                assert "content" not in response, (key, status)
                continue
            expected = shape(swagger, other["responses"][status]["schema"])
            contents = response["content"]
            if key == ("polls/{id}/export/", "get") and status == "200":
                # A CSV file or a JSON document: Swagger 2.0 has one schema, the JSON one's.
                assert set(contents) == {"text/csv", "application/json"}, contents
                contents = {"application/json": contents["application/json"]}
            (media_type, content), *more = contents.items()
            assert not more, (key, status)
            if media_type == "text/event-stream":  # Swagger 2.0: the array of its events
                expected = expected[1]
            assert shape(openapi, content["schema"]) == expected, (key, status)
            compared += 1
        (body, *_) = [p for p in other.get("parameters", []) if p["in"] == "body"] or [None]
        if body is not None:
            sent = operation["requestBody"]["content"]["application/json"]["schema"]
            assert shape(openapi, sent) == shape(swagger, body["schema"], writing=True), key
            compared += 1
    assert compared > 100
