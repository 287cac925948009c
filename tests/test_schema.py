"""The schema hints: drf-yasg renders every body and error in Swagger 2.0; without drf-yasg
(or drf-spectacular) their hints vanish. The OpenAPI 3 document: test_schema_openapi3.py."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from typing import Any

import pytest

from django_polls import schema
from django_polls.conf import DEFAULTS

HAS_YASG = importlib.util.find_spec("drf_yasg") is not None
HAS_SPECTACULAR = importlib.util.find_spec("drf_spectacular") is not None
#: Every operation of the app, by its operationId in both documents: readable, and the same
#: wherever the site mounts the app.
OPERATION_IDS = {
    ("/polls/", "get"): "polls_list",
    ("/polls/", "post"): "polls_create",
    ("/polls/{id}/", "get"): "polls_read",
    ("/polls/{id}/", "put"): "polls_update",
    ("/polls/{id}/", "patch"): "polls_partial_update",
    ("/polls/{id}/", "delete"): "polls_delete",
    ("/polls/{id}/close/", "post"): "polls_close",
    ("/polls/{id}/vote/", "get"): "polls_vote_read",
    ("/polls/{id}/vote/", "post"): "polls_vote_create",
    ("/polls/{id}/vote/", "put"): "polls_vote_update",
    ("/polls/{id}/vote/", "delete"): "polls_vote_delete",
    ("/polls/{id}/results/", "get"): "polls_results",
    ("/polls/{id}/results/stream/", "get"): "polls_results_stream",
    ("/polls/{id}/ballots/", "get"): "polls_ballots",
    ("/polls/{id}/audit/", "get"): "polls_audit",
    ("/polls/{id}/export/", "get"): "polls_export",
    ("/webhooks/", "get"): "webhooks_list",
    ("/webhooks/", "post"): "webhooks_create",
    ("/webhooks/{id}/", "get"): "webhooks_read",
    ("/webhooks/{id}/", "put"): "webhooks_update",
    ("/webhooks/{id}/", "patch"): "webhooks_partial_update",
    ("/webhooks/{id}/", "delete"): "webhooks_delete",
    ("/webhooks/{id}/deliveries/", "get"): "webhooks_deliveries",
    ("/webhooks/{id}/deliveries/{delivery_id}/redeliver/", "post"): "webhooks_redeliver",
}.values()


def generate() -> dict[str, Any]:
    """The Swagger 2.0 document drf-yasg generates for the test URLs, as JSON."""
    if not HAS_YASG:
        pytest.skip("drf-yasg is not installed in this environment (the -noyasg tox env)")
    from drf_yasg import openapi
    from drf_yasg.codecs import OpenAPICodecJson
    from drf_yasg.generators import OpenAPISchemaGenerator

    generator = OpenAPISchemaGenerator(openapi.Info(title="Polls", default_version="v1"))
    document = generator.get_schema(request=None, public=True)
    return dict(json.loads(OpenAPICodecJson(validators=[]).encode(document)))


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    return generate()


def statuses(operation: dict[str, Any]) -> set[str]:
    return set(operation["responses"])


def body_schema(swagger: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    (body,) = [p for p in operation["parameters"] if p["in"] == "body"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    return dict(swagger["definitions"][ref])


def test_every_endpoint_of_the_contract_is_described(swagger: dict[str, Any]) -> None:
    paths = swagger["paths"]
    assert set(paths["/polls/"]) >= {"get", "post"}
    assert set(paths["/polls/{id}/"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/polls/{id}/close/"]) >= {"post"}
    assert set(paths["/polls/{id}/vote/"]) >= {"get", "post", "delete"}
    assert set(paths["/polls/{id}/results/"]) >= {"get"}
    assert set(paths["/polls/{id}/export/"]) >= {"get"}
    assert set(paths["/polls/{id}/results/stream/"]) == {"get", "parameters"}


def test_the_export_is_described_with_its_formats_parameters_and_errors(
    swagger: dict[str, Any],
) -> None:
    export = swagger["paths"]["/polls/{id}/export/"]["get"]
    assert export["operationId"] == "polls_export"
    assert export["produces"] == ["text/csv", "application/json"]
    parameters = {p["name"]: p for p in export["parameters"]}
    assert parameters["format"]["in"] == "query"
    assert parameters["format"]["required"] is True
    assert parameters["format"]["enum"] == ["csv", "json"]
    assert parameters["table"]["enum"] == ["results", "ballots"]
    assert not parameters["table"].get("required", False)
    assert statuses(export) == {"200", "400", "401", "403", "404", "429", "503"}
    assert "`ballots_hidden`" in export["responses"]["403"]["description"]
    assert "Content-Disposition" in export["responses"]["200"]["description"]
    document = export["responses"]["200"]["schema"]
    assert set(document["required"]) == {"poll", "results", "ballots"}
    assert document["properties"]["ballots"]["x-nullable"] is True


def test_the_results_stream_is_described_as_server_sent_events(swagger: dict[str, Any]) -> None:
    stream = swagger["paths"]["/polls/{id}/results/stream/"]["get"]
    assert stream["operationId"] == "polls_results_stream"
    # The events, or a JSON error body.
    assert stream["produces"] == ["text/event-stream", "application/json"]
    assert stream["security"] == []
    assert "`results`" in stream["description"]
    events = stream["responses"]["200"]["schema"]
    assert events["type"] == "array"
    assert set(events["items"]["properties"]) == {"event", "id", "data", "retry"}
    assert events["items"]["properties"]["event"]["enum"] == ["results", "deleted", "hidden"]


def test_the_vote_body_receipt_and_errors(swagger: dict[str, Any]) -> None:
    cast = swagger["paths"]["/polls/{id}/vote/"]["post"]
    assert body_schema(swagger, cast)["properties"]["options"]["type"] == "array"
    assert statuses(cast) == {
        *("201", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503")
    }
    receipt = cast["responses"]["201"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(swagger["definitions"][receipt]["properties"]) == {
        "poll",
        "options",
        "ranking",
        "scores",
        "created_at",
    }
    # One ballot field per method: none is required by the schema, the poll's method is.
    ballot = body_schema(swagger, cast)
    assert set(ballot["properties"]) == {"options", "ranking", "scores"}
    assert "required" not in ballot
    entry = ballot["properties"]["scores"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert swagger["definitions"][entry]["properties"]["score"]["maximum"] == 10
    conflict = cast["responses"]["409"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(swagger["definitions"][conflict]["properties"]) == {"detail", "code"}


def test_every_operation_lists_its_error_statuses(swagger: dict[str, Any]) -> None:
    paths = swagger["paths"]
    assert statuses(paths["/polls/"]["get"]) == {"200", "400", "401", "404", "503"}
    create = paths["/polls/"]["post"]
    assert statuses(create) == {"201", "400", "401", "409", "413", "415", "422", "429", "503"}
    assert statuses(paths["/polls/{id}/"]["get"]) == {"200", "401", "404", "503"}
    for method in ("put", "patch"):
        expected = {"200", "400", "401", "403", "404", "409", "413", "415", "503"}
        assert statuses(paths["/polls/{id}/"][method]) == expected
    assert statuses(paths["/polls/{id}/"]["delete"]) == {"204", "401", "403", "404", "503"}
    assert statuses(paths["/polls/{id}/close/"]["post"]) == {"200", "401", "403", "404", "503"}
    assert statuses(paths["/polls/{id}/vote/"]["get"]) == {"200", "401", "404", "503"}
    assert statuses(paths["/polls/{id}/vote/"]["delete"]) == {"204", "401", "404", "409", "503"}
    expected = {"200", "304", "401", "403", "404", "429", "503"}
    assert statuses(paths["/polls/{id}/results/"]["get"]) == expected
    stream = paths["/polls/{id}/results/stream/"]["get"]
    assert statuses(stream) == {"200", "401", "403", "404", "429", "503"}
    ballots = paths["/polls/{id}/ballots/"]["get"]
    assert statuses(ballots) == {"200", "401", "403", "404", "429", "503"}
    # The codes of hidden results and ballots are named where they can be answered.
    for operation in (paths["/polls/{id}/results/"]["get"], stream, ballots):
        assert "`results_hidden`" in operation["responses"]["403"]["description"]
    assert "`ballots_hidden`" in ballots["responses"]["403"]["description"]
    # The operations that take an Idempotency-Key say so, with the codes it brings.
    for operation in (
        create,
        paths["/polls/{id}/vote/"]["post"],
        paths["/polls/{id}/vote/"]["put"],
    ):
        header = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert header and header[0]["in"] == "header" and not header[0]["required"]
        assert "`idempotency_key_in_progress`" in operation["responses"]["409"]["description"]
        assert "`invalid_idempotency_key`" in operation["responses"]["400"]["description"]
        assert "`idempotency_key_reused`" in operation["responses"]["422"]["description"]


def test_results_schema(swagger: dict[str, Any]) -> None:
    read = swagger["paths"]["/polls/{id}/results/"]["get"]
    name = read["responses"]["200"]["schema"]["$ref"].rsplit("/", 1)[-1]
    results = swagger["definitions"][name]
    assert set(results["properties"]) == {
        "poll",
        "method",
        "is_active",
        "total_votes",
        "total_voters",
        "options",
        # Each method's own (contract v1.1, "Results by method"), absent from other methods'.
        "max_score",
        "ballots",
        "rounds",
        "winner",
        "tied",
    }
    assert set(results["required"]) == {
        "poll",
        "method",
        "is_active",
        "total_votes",
        "total_voters",
        "options",
    }
    option = results["properties"]["options"]["items"]
    option_schema = swagger["definitions"][option["$ref"].rsplit("/", 1)[-1]]
    assert option_schema["properties"]["percentage"]["type"] == "number"
    assert {"first_choices", "count", "sum", "average", "distribution"} <= set(
        option_schema["properties"]
    )
    # Null where the method says so (no scores yet; no winner), absent from other methods.
    assert option_schema["properties"]["average"]["x-nullable"] is True
    assert results["properties"]["winner"]["x-nullable"] is True
    rounds = results["properties"]["rounds"]["items"]
    round_schema = swagger["definitions"][rounds["$ref"].rsplit("/", 1)[-1]]
    assert set(round_schema["properties"]) == {"tallies", "exhausted", "eliminated"}


def test_public_reads_need_no_authentication(swagger: dict[str, Any]) -> None:
    paths = swagger["paths"]
    assert paths["/polls/"]["get"]["security"] == []
    assert paths["/polls/{id}/"]["get"]["security"] == []
    assert paths["/polls/{id}/results/"]["get"]["security"] == []
    assert "security" not in paths["/polls/{id}/vote/"]["post"]


def test_the_poll_schema_marks_server_fields_read_only(swagger: dict[str, Any]) -> None:
    create = swagger["paths"]["/polls/"]["post"]
    poll = body_schema(swagger, create)["properties"]
    for field in ("id", "created_at", "created_by", "is_active", "total_votes"):
        assert poll[field]["readOnly"] is True, field


#: The app's module of each generator, by the library it needs.
GENERATOR_MODULES = {"drf_yasg": "yasg", "drf_spectacular": "spectacular"}


@pytest.mark.parametrize("library", sorted(GENERATOR_MODULES))
def test_hints_vanish_without_their_generator(
    monkeypatch: pytest.MonkeyPatch, library: str
) -> None:
    for name in [name for name in sys.modules if name.startswith(library)]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, library, None)
    module = GENERATOR_MODULES[library]
    monkeypatch.delitem(sys.modules, f"django_polls.schema.{module}", raising=False)
    try:
        bare = importlib.reload(schema)
        assert getattr(bare, module) is None
        assert all(generator.__name__ != module for generator in bare.generators())

        def view() -> str:
            return "unchanged"

        hinted = bare.operation("polls_view", responses={200: bare.Response("ok")})(view)
        assert hinted is view
        if library == "drf_yasg":
            assert not hasattr(view, "_swagger_auto_schema")
            assert bare.AUTO_SCHEMA is None
        else:
            assert not hasattr(view, "kwargs")
    finally:
        monkeypatch.undo()
        importlib.reload(schema)


def test_hints_follow_what_is_installed() -> None:
    """In the -noyasg and -nospectacular environments this runs with the library really absent;
    the API tests there prove the views work without it."""
    assert (schema.yasg is not None) == HAS_YASG
    assert (schema.spectacular is not None) == HAS_SPECTACULAR
    installed = {generator.__name__.rsplit(".", 1)[-1] for generator in schema.generators()}
    assert installed == {
        name for name, found in [("yasg", HAS_YASG), ("spectacular", HAS_SPECTACULAR)] if found
    }

    def view() -> None: ...

    hinted = schema.operation("polls_view", responses={200: schema.Response("ok")})(view)
    assert hinted is view  # each generator notes its hints on the view itself
    assert hasattr(view, "_swagger_auto_schema") == HAS_YASG
    assert hasattr(view, "kwargs") == HAS_SPECTACULAR


def test_errors_name_the_codes_of_each_status() -> None:
    answers = schema.errors(400, 403, 409, codes={403: ["results_hidden"]})
    assert set(answers) == {400, 403, 409}
    assert answers[400].body["additionalProperties"]["type"] == "array"
    assert "`results_hidden`" in answers[403].description
    assert "`poll_closed`" in answers[409].description


def test_operation_ids_are_the_apps_own(swagger: dict[str, Any]) -> None:
    ids = [
        operation["operationId"]
        for item in swagger["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert sorted(ids) == sorted(OPERATION_IDS)


def test_field_errors_are_described_as_lists_of_messages(swagger: dict[str, Any]) -> None:
    bad = swagger["paths"]["/polls/"]["post"]["responses"]["400"]["schema"]
    assert bad["type"] == "object"
    assert bad["additionalProperties"] == {"type": "array", "items": {"type": "string"}}
    # A body that is not JSON at all gets {detail, code} instead.
    assert bad["properties"] == {"detail": {"type": "string"}, "code": {"type": "string"}}


def test_the_limits_of_the_settings_are_in_the_schema(settings: Any) -> None:
    settings.DJANGO_POLLS = {
        "MIN_OPTIONS": 3,
        "MAX_OPTIONS": 5,
        "MAX_TITLE_LENGTH": 120,
        "MAX_OPTION_LENGTH": 50,
        "MAX_DESCRIPTION_LENGTH": 1000,
    }
    swagger = generate()
    poll = swagger["definitions"]["Poll"]["properties"]
    assert (poll["title"]["minLength"], poll["title"]["maxLength"]) == (1, 120)
    assert poll["description"]["maxLength"] == 1000
    assert (poll["options"]["minItems"], poll["options"]["maxItems"]) == (3, 5)
    assert poll["options"]["uniqueItems"] is True
    text = swagger["definitions"]["Option"]["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 50)
    ballot = swagger["definitions"]["Ballot"]["properties"]["options"]
    assert (ballot["minItems"], ballot["maxItems"], ballot["uniqueItems"]) == (1, 5, True)
    (search,) = [
        p for p in swagger["paths"]["/polls/"]["get"]["parameters"] if p["name"] == "search"
    ]
    assert search["maxLength"] == 200


@pytest.mark.parametrize(
    ("text", "accepted"),
    [("Lunch?", True), (" a ", True), ("", False), (" \t\n", False), ("a\x00", False)],
)
def test_the_text_patterns_match_what_the_app_accepts(
    swagger: dict[str, Any], text: str, accepted: bool
) -> None:
    # Blank once trimmed, or holding a NUL character: the app answers 400.
    title = swagger["definitions"]["Poll"]["properties"]["title"]["pattern"]
    option = swagger["definitions"]["Option"]["properties"]["text"]["pattern"]
    assert bool(re.search(title, text)) is accepted
    assert bool(re.search(option, text)) is accepted


def test_a_patch_needs_no_body(swagger: dict[str, Any]) -> None:
    patch = swagger["paths"]["/polls/{id}/"]["patch"]
    (body,) = [p for p in patch["parameters"] if p["in"] == "body"]
    assert body["required"] is False


def test_close_takes_no_body_and_ids_are_integers(swagger: dict[str, Any]) -> None:
    close = swagger["paths"]["/polls/{id}/close/"]
    assert not [p for p in close["post"].get("parameters", []) if p["in"] == "body"]
    (poll_id,) = [p for p in close["parameters"] if p["name"] == "id"]
    assert poll_id["type"] == "integer"


def test_the_list_documents_its_query_parameters(swagger: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in swagger["paths"]["/polls/"]["get"]["parameters"]}
    assert set(parameters) >= {"is_active", "search", "ordering", "page", "page_size"}
    assert parameters["is_active"]["enum"] == ["true", "false"]
    assert set(parameters["ordering"]["enum"]) == {
        "created_at",
        "-created_at",
        "expires_at",
        "-expires_at",
    }


def test_the_poll_policies_are_described_with_their_values(swagger: dict[str, Any]) -> None:
    poll = swagger["definitions"]["Poll"]["properties"]
    assert poll["method"]["enum"] == ["single", "multiple", "ranked", "score"]
    assert poll["max_score"]["maximum"] == 10
    assert poll["results_visibility"]["enum"] == ["always", "after_vote", "after_close", "owner"]
    assert poll["anonymity"]["enum"] == ["anonymous", "public", "secret"]
    assert poll["status"]["enum"] == ["scheduled", "open", "closed"]
    assert poll["status"]["readOnly"] is True
    assert poll["min_choices"]["minimum"] == 1
    # At most the number of options, so at most the site's MAX_OPTIONS.
    assert (
        poll["min_choices"]["maximum"] == poll["max_choices"]["maximum"] == DEFAULTS["MAX_OPTIONS"]
    )
    assert poll["max_choices"]["x-nullable"] is True
    assert poll["opens_at"]["format"] == "date-time"
    assert poll["voter_group"]["type"] == "string"
    assert poll["voter_group"]["x-nullable"] is True
    fields = ["method", "min_choices", "max_choices", "opens_at", "status"]
    fields += ["results_visibility", "anonymity", "allow_vote_change", "voter_group"]
    settings = {str(value) for value in DEFAULTS.values() if isinstance(value, int)}
    for field in fields:
        # Described, without numbers that are the site's settings.
        assert poll[field]["description"], field
        assert not set(re.findall(r"\d+", poll[field]["description"])) & settings, field


def test_the_list_takes_a_status_filter(swagger: dict[str, Any]) -> None:
    (status,) = [
        p for p in swagger["paths"]["/polls/"]["get"]["parameters"] if p["name"] == "status"
    ]
    assert status["in"] == "query"
    assert status["enum"] == ["scheduled", "open", "closed"]


def test_an_import_error_of_the_apps_own_hints_is_not_taken_for_a_missing_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "django_polls.schema.yasg", None)
    with pytest.raises(ImportError):
        schema._generator("yasg", "drf_yasg")
