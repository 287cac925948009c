"""The schema hints in OpenAPI 3.1 (drf-spectacular): every body, error and status of the
Swagger 2.0 document (test_schema.py), in OpenAPI 3's terms."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_polls import schema
from tests.test_schema import OPERATION_IDS

HAS_SPECTACULAR = importlib.util.find_spec("drf_spectacular") is not None
PREFIX = "/api/v1"
PUBLIC = {
    ("/polls/", "get"),
    ("/polls/{id}/", "get"),
    ("/polls/{id}/results/", "get"),
    ("/polls/{id}/results/stream/", "get"),
    ("/polls/{id}/ballots/", "get"),
}


def generate() -> dict[str, Any]:
    """The OpenAPI 3.1 document drf-spectacular generates for the test URLs, as JSON (the test
    settings ask for 3.1)."""
    if not HAS_SPECTACULAR:
        pytest.skip("drf-spectacular is not installed in this environment (-nospectacular)")
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator(title="Polls", version="v1").get_schema(public=True)
    return dict(json.loads(json.dumps(document, default=str)))


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return generate()


def operations(document: dict[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield (path.removeprefix(PREFIX), method), operation


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return dict(document["paths"][PREFIX + path][method])


def resolve(document: dict[str, Any], schema_: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema_:
        return dict(document["components"]["schemas"][schema_["$ref"].rsplit("/", 1)[-1]])
    return schema_


def body(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = operation(document, path, method)["responses"][status]["content"]
    return resolve(document, content["application/json"]["schema"])


def request_body(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    content = operation(document, path, method)["requestBody"]["content"]
    return resolve(document, content["application/json"]["schema"])


def test_the_document_is_valid_openapi_3_1(openapi: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    assert openapi["openapi"] == "3.1.0"
    validate(openapi)


def test_operation_ids_are_those_of_the_swagger_document(openapi: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, operation in operations(openapi)]
    assert sorted(ids) == sorted(OPERATION_IDS)
    assert {operation["tags"][0] for _, operation in operations(openapi)} == {"polls", "webhooks"}


def test_every_operation_lists_its_statuses(openapi: dict[str, Any]) -> None:
    expected = {
        ("/polls/", "get"): {"200", "400", "401", "404", "503"},
        ("/polls/", "post"): {"201", "400", "401", "409", "413", "415", "422", "429", "503"},
        ("/polls/{id}/", "get"): {"200", "401", "404", "503"},
        ("/polls/{id}/", "put"): {"200", "400", "401", "403", "404", "409", "413", "415", "503"},
        ("/polls/{id}/", "patch"): {"200", "400", "401", "403", "404", "409", "413", "415", "503"},
        ("/polls/{id}/", "delete"): {"204", "401", "403", "404", "503"},
        ("/polls/{id}/close/", "post"): {"200", "401", "403", "404", "503"},
        ("/polls/{id}/vote/", "get"): {"200", "401", "404", "503"},
        ("/polls/{id}/vote/", "post"): {
            *("201", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503")
        },
        ("/polls/{id}/vote/", "put"): {
            *("200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503")
        },
        ("/polls/{id}/vote/", "delete"): {"204", "401", "404", "409", "503"},
        ("/polls/{id}/results/", "get"): {"200", "304", "401", "403", "404", "429", "503"},
        ("/polls/{id}/results/stream/", "get"): {"200", "401", "403", "404", "429", "503"},
        ("/polls/{id}/ballots/", "get"): {"200", "401", "403", "404", "429", "503"},
        ("/polls/{id}/audit/", "get"): {"200", "401", "403", "404", "503"},
        ("/polls/{id}/export/", "get"): {"200", "400", "401", "403", "404", "429", "503"},
        ("/webhooks/", "get"): {"200", "401", "404", "503"},
        ("/webhooks/", "post"): {"201", "400", "401", "403", "413", "415", "503"},
        ("/webhooks/{id}/", "get"): {"200", "401", "404", "503"},
        ("/webhooks/{id}/", "put"): {"200", "400", "401", "403", "404", "413", "415", "503"},
        ("/webhooks/{id}/", "patch"): {"200", "400", "401", "403", "404", "413", "415", "503"},
        ("/webhooks/{id}/", "delete"): {"204", "401", "404", "503"},
        ("/webhooks/{id}/deliveries/", "get"): {"200", "401", "404", "503"},
        ("/webhooks/{id}/deliveries/{delivery_id}/redeliver/", "post"): {
            *("202", "401", "404", "503")
        },
    }
    found = {key: set(op["responses"]) for key, op in operations(openapi)}
    assert found == expected
    for key, op in operations(openapi):
        for status, response in op["responses"].items():
            assert response["description"], (key, status)
            if status not in {"204", "304"}:
                assert response["content"], (key, status)
    hidden = operation(openapi, "/polls/{id}/ballots/", "get")["responses"]["403"]
    assert "`ballots_hidden`" in hidden["description"]
    assert "`results_hidden`" in hidden["description"]


def test_error_bodies_are_the_contracts_shapes(openapi: dict[str, Any]) -> None:
    conflict = body(openapi, "/polls/{id}/vote/", "post", "409")
    assert set(conflict["properties"]) == {"detail", "code"}
    assert set(conflict["required"]) == {"detail", "code"}
    invalid = body(openapi, "/polls/", "post", "400")
    assert invalid["type"] == "object"
    assert invalid["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    assert invalid["properties"] == {"detail": {"type": "string"}, "code": {"type": "string"}}


def test_the_ballot_of_each_method_receipt_and_my_vote(openapi: dict[str, Any]) -> None:
    ballot = request_body(openapi, "/polls/{id}/vote/", "post")
    assert ballot == request_body(openapi, "/polls/{id}/vote/", "put")
    assert set(ballot["properties"]) == {"options", "ranking", "scores"}
    assert "required" not in ballot  # one field, the poll's method's
    assert operation(openapi, "/polls/{id}/vote/", "post")["requestBody"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/Ballot"}
    entry = resolve(openapi, ballot["properties"]["scores"]["items"])
    assert entry["properties"]["score"]["maximum"] == 10
    receipt = body(openapi, "/polls/{id}/vote/", "post", "201")
    assert set(receipt["properties"]) == {"poll", "options", "ranking", "scores", "created_at"}
    mine = body(openapi, "/polls/{id}/vote/", "get", "200")
    assert set(mine["properties"]) == {"voted", "options", "ranking", "scores"}
    assert "null" in mine["properties"]["options"]["type"]  # a secret poll's


def test_results_of_every_method(openapi: dict[str, Any]) -> None:
    results = body(openapi, "/polls/{id}/results/", "get", "200")
    assert set(results["properties"]) == {
        *("poll", "method", "is_active", "total_votes", "total_voters", "options"),
        *("max_score", "ballots", "rounds", "winner", "tied"),
    }
    assert set(results["required"]) == {
        *("poll", "method", "is_active", "total_votes", "total_voters", "options"),
    }
    option = resolve(openapi, results["properties"]["options"]["items"])
    assert option["properties"]["percentage"]["type"] == "number"
    assert {"first_choices", "count", "sum", "average", "distribution"} <= set(option["properties"])
    assert option["properties"]["average"]["type"] == ["number", "null"]
    assert results["properties"]["winner"]["type"] == ["integer", "null"]
    rounds = resolve(openapi, results["properties"]["rounds"]["items"])
    assert set(rounds["properties"]) == {"tallies", "exhausted", "eliminated"}


def test_the_results_stream_is_described_as_server_sent_events(openapi: dict[str, Any]) -> None:
    stream = operation(openapi, "/polls/{id}/results/stream/", "get")
    events = stream["responses"]["200"]["content"]
    assert set(events) == {"text/event-stream"}
    event = events["text/event-stream"]["schema"]  # each event, as OpenAPI 3.2's itemSchema
    assert event["properties"]["event"]["enum"] == ["results", "deleted", "hidden"]
    assert set(stream["responses"]["403"]["content"]) == {"application/json"}


def test_public_reads_need_no_credentials_and_the_rest_the_token(openapi: dict[str, Any]) -> None:
    assert "security" not in openapi  # each operation says what it needs
    schemes = openapi["components"]["securitySchemes"]
    for key, operation in operations(openapi):
        if key in PUBLIC:
            assert "security" not in operation, key
        else:
            assert {"tokenAuth": []} in operation["security"], key
            assert {} not in operation["security"], key
    assert schemes["tokenAuth"] == {**schemes["tokenAuth"], "type": "apiKey", "in": "header"}


def test_poll_bodies(openapi: dict[str, Any]) -> None:
    create = request_body(openapi, "/polls/", "post")
    assert {"title", "options"} <= set(create["required"])
    for field in ("id", "created_at", "created_by", "is_active", "total_votes", "status"):
        assert create["properties"][field]["readOnly"] is True, field
    method = resolve(openapi, create["properties"]["method"]["allOf"][0])
    assert method["enum"] == ["single", "multiple", "ranked", "score"]
    patch = operation(openapi, "/polls/{id}/", "patch")
    assert not patch["requestBody"].get("required")  # no body changes nothing
    assert "required" not in request_body(openapi, "/polls/{id}/", "patch")
    close = operation(openapi, "/polls/{id}/close/", "post")
    assert "requestBody" not in close
    (poll_id,) = close["parameters"]
    assert (poll_id["in"], poll_id["schema"]) == ("path", {"type": "integer"})


def test_the_list_is_paged_and_documents_its_query_parameters(openapi: dict[str, Any]) -> None:
    listing = operation(openapi, "/polls/", "get")
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert set(parameters) == {"is_active", "status", "search", "ordering", "page", "page_size"}
    assert parameters["status"]["schema"]["enum"] == ["scheduled", "open", "closed"]
    assert parameters["search"]["schema"]["maxLength"] == 200
    page = body(openapi, "/polls/", "get", "200")
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    ballots = operation(openapi, "/polls/{id}/ballots/", "get")
    assert {p["name"] for p in ballots["parameters"]} == {"id", "page", "page_size"}


def test_the_operations_that_create_take_an_idempotency_key(openapi: dict[str, Any]) -> None:
    for path, method in [("/polls/", "post"), ("/polls/{id}/vote/", "post")]:
        created = operation(openapi, path, method)
        (header,) = [p for p in created["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header"
        assert not header.get("required")
        assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)
        responses = created["responses"]
        assert "`idempotency_key_in_progress`" in responses["409"]["description"]
        assert "`invalid_idempotency_key`" in responses["400"]["description"]
        assert "`idempotency_key_reused`" in responses["422"]["description"]


def test_the_limits_of_the_settings_are_in_the_schema(settings: Any) -> None:
    settings.DJANGO_POLLS = {"MIN_OPTIONS": 3, "MAX_OPTIONS": 5, "MAX_TITLE_LENGTH": 120}
    components = generate()["components"]["schemas"]
    poll = components["Poll"]["properties"]
    assert (poll["title"]["minLength"], poll["title"]["maxLength"]) == (1, 120)
    assert (poll["options"]["minItems"], poll["options"]["maxItems"]) == (3, 5)
    assert components["Option"]["properties"]["text"]["pattern"] == schema.hints.NOT_BLANK
    assert components["Ballot"]["properties"]["ranking"]["maxItems"] == 5


def test_hints_stay_off_where_drf_spectacular_does_not_describe_the_views() -> None:
    """A site with drf-spectacular installed but DRF's own schema class keeps it."""
    if schema.spectacular is None:
        pytest.skip("drf-spectacular is not installed in this environment (-nospectacular)")
    hint = schema.Operation(id="polls_view", responses={200: schema.Response("ok")})
    rest_framework = {"DEFAULT_SCHEMA_CLASS": "rest_framework.schemas.openapi.AutoSchema"}
    with override_settings(REST_FRAMEWORK=rest_framework):

        def view() -> None: ...

        assert schema.spectacular.document(hint)(view) is view
        assert not hasattr(view, "kwargs")
