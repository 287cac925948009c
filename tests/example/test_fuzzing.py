"""Schemathesis against the example project's Swagger 2.0 and OpenAPI 3.1 schemas, over HTTP, as
two users (the OpenAPI 3.1 run with fewer examples per operation: the API is the same, the run
checks what the document says of it).

Bounded and reproducible: a fixed seed, a fixed number of examples per operation, one worker,
every phase (examples, coverage, fuzzing, and stateful over Swagger 2.0) and every check. The
server must answer no request with a 5xx (counted from Gunicorn's access log, so requests that
Schemathesis's checks replay count too), and Schemathesis may find nothing beyond the committed
baseline of each document (`schemathesis-baseline.json`, `schemathesis-baseline-openapi3.json`):
the places where the schema cannot say what the API accepts, each with its reason. Fixing one
means deleting its entry; the baseline only shrinks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.example.conftest import Deployment, Server, create_poll, register

BASELINE = Path(__file__).with_name("schemathesis-baseline.json")
BASELINE_OPENAPI3 = Path(__file__).with_name("schemathesis-baseline-openapi3.json")
#: `127.0.0.1:40000 - "GET /api/v1/polls/?page=2 HTTP/1.1" 200`
ACCESS_LINE = re.compile(r'"(?P<method>\S+) (?P<path>.*) HTTP/[0-9.]+" (?P<status>[0-9]{3})$')
SEED = 20261126
POLL_OPERATIONS = {
    "GET /api/v1/polls/",
    "POST /api/v1/polls/",
    "GET /api/v1/polls/{id}/",
    "PUT /api/v1/polls/{id}/",
    "PATCH /api/v1/polls/{id}/",
    "DELETE /api/v1/polls/{id}/",
    "POST /api/v1/polls/{id}/close/",
    "GET /api/v1/polls/{id}/results/",
    "GET /api/v1/polls/{id}/results/stream/",
    "GET /api/v1/polls/{id}/export/",
    "GET /api/v1/polls/{id}/vote/",
    "DELETE /api/v1/polls/{id}/vote/",
}
EXAMPLES_PER_OPERATION = 40
#: The stateful phase links a poll it created to DELETE vote/ of that poll, and takes the
#: contract's 404 `not_voted` for a created resource gone missing: the caller's vote is not the
#: poll. Whether a run walks that link varies (with the operations there are), so the check
#: (ST302, ensure_resource_availability) is left out: tests/example/test_end_to_end.py reads every
#: poll it creates.


@dataclass(frozen=True)
class Document:
    url: str
    #: The path prefix of an operation's name in this document (Swagger's basePath is /api).
    prefix: str
    examples: int
    baseline: Path
    phases: str = "examples,coverage,fuzzing,stateful"


DOCUMENTS = {
    "swagger-2.0": Document("/api/swagger.json", "/v1", EXAMPLES_PER_OPERATION, BASELINE),
    # The stateful phase runs over the Swagger document: over OpenAPI 3.1 its inferred links
    # (a poll's id into its vote/ and ballots/) vary from run to run, and so would its findings.
    "openapi-3.1": Document(
        "/api/openapi.json", "/api/v1", 8, BASELINE_OPENAPI3, "examples,coverage,fuzzing"
    ),
}


@pytest.fixture
def fuzzed(database_url_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """A deployment of its own for each run: a run leaves thousands of polls behind."""
    deployment = Deployment(
        database_url=database_url_factory(), static_root=tmp_path_factory.mktemp("static")
    )
    deployment.prepare()
    return deployment


def account(server: Server, username: str) -> str:
    answer = register(server, username)
    assert answer.status == 201, answer.text
    return str(answer.json["token"])


def configuration(
    directory: Path, tokens: dict[str, str], polls: dict[str, int], document: Document
) -> Path:
    """Schemathesis's configuration: the users as Web Fuzzing Commons fixed headers, both
    `peers` (so the object-level authorization check runs), and the operations on one poll
    pointed at real polls (random ids would almost never hit one)."""
    users = [
        {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Token {token}"}]}
        for name, token in tokens.items()
    ]
    (directory / "users.json").write_text(json.dumps({"auth": users}))
    pinned = "".join(
        f"""
[[operations]]
include-name = "{operation}"
parameters = {{ "path.id" = {polls[operation]} }}
"""
        for operation in polls
    )
    config = directory / "schemathesis.toml"
    config.write_text(
        f"""
seed = {SEED}
workers = 1
baseline = {json.dumps(str(document.baseline))}
request-timeout = 30
# A live results stream never ends by itself: its first event is the answer checked.
max-stream-events = 1

[generation]
max-examples = {document.examples}
# Nothing carried over from an earlier run: each run starts from the seed alone.
database = "none"

[cache]
enabled = false

[auth.wfc]
path = {json.dumps(str(directory / "users.json"))}
peers = {json.dumps(list(tokens))}
{pinned}"""
    )
    return config


@pytest.mark.parametrize("name", DOCUMENTS)
def test_fuzzing_finds_no_server_error_and_nothing_beyond_the_baseline(
    fuzzed: Deployment, tmp_path: Path, name: str
) -> None:
    document = DOCUMENTS[name]
    access_log = tmp_path / "access.log"
    # Every request the server answered, in uvicorn's format (which sync workers follow too).
    logging = f"""--access-logfile {access_log} --access-logformat '%(h)s - "%(r)s" %(s)s'"""
    with fuzzed.serve(workers=2, GUNICORN_CMD_ARGS=logging) as server:
        tokens = {name: account(server, name) for name in ("alice", "bob")}
        edited, closed, deleted = (create_poll(server, tokens["alice"])["id"] for _ in range(3))
        # The ballots' poll belongs to a third user, so the fuzzed users cannot delete it.
        ballots = create_poll(server, account(server, "carol"), allow_multiple_votes=True)
        # A vote of alice's to retract.
        vote = {"options": [ballots["options"][0]["id"]]}
        ballot_path = f"/api/v1/polls/{ballots['id']}/vote/"
        assert server.request("POST", ballot_path, vote, token=tokens["alice"]).status == 201
        prefix = document.prefix
        polls = {
            f"PUT {prefix}/polls/{{id}}/": edited,
            f"PATCH {prefix}/polls/{{id}}/": edited,
            f"POST {prefix}/polls/{{id}}/close/": closed,
            f"DELETE {prefix}/polls/{{id}}/": deleted,
            # alice's, so that her exports answer 200 with a file.
            f"GET {prefix}/polls/{{id}}/export/": edited,
            **{
                f"{method} {prefix}/polls/{{id}}/vote/": ballots["id"]
                for method in ("GET", "POST", "PUT", "DELETE")
            },
        }
        config = configuration(tmp_path, tokens, polls, document)
        report = tmp_path / "report.json"
        setup = access_log.read_bytes().count(b"\n")
        run = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
                f"http://127.0.0.1:{server.port}{document.url}",
                *("--phases", document.phases, "--checks", "all"),
                *("--exclude-checks", "ensure_resource_availability"),
                *("--report", "json", "--report-json-path", str(report)),
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert report.exists(), run.stdout[-20000:] + run.stderr[-5000:]
    # Split on newlines only: fuzzed paths hold other line breaks (U+2028, NEL).
    lines = access_log.read_bytes().decode(errors="replace").split("\n")[setup:-1]
    parsed = [ACCESS_LINE.search(line) for line in lines]
    # A line this cannot read could hide a 5xx.
    assert all(parsed), [line for line in lines if not ACCESS_LINE.search(line)][:5]
    answers = [match.group("status", "method", "path") for match in parsed if match]
    statuses = Counter(status[0] + "xx" for status, _, _ in answers)
    server_errors = [answer for answer in answers if answer[0].startswith("5")]
    summary = json.loads(report.read_text())
    print(
        f"\nfuzzing: {summary['test_cases']['generated']} test cases, {len(answers)} requests "
        f"answered ({dict(sorted(statuses.items()))}), {len(server_errors)} server errors; "
        f"baseline: {summary['baseline']}"
    )
    assert not server_errors, server_errors[:20]
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    # A finding that no longer shows was fixed: its entry goes, so the baseline only shrinks.
    assert summary["baseline"]["unobserved_ids"] == [], "delete these baseline entries"
    # Every operation on polls was reached, and not only with requests the API refused.
    succeeded = {
        f"{method} {re.sub(r'/[0-9]+/', '/{id}/', path.partition('?')[0])}"
        for status, method, path in answers
        if status.startswith("2")
    }
    assert succeeded >= POLL_OPERATIONS, POLL_OPERATIONS - succeeded


@pytest.mark.parametrize("baseline", [BASELINE, BASELINE_OPENAPI3])
def test_the_baseline_holds_no_server_error_and_gives_each_finding_a_reason(
    baseline: Path,
) -> None:
    entries = json.loads(baseline.read_text())["entries"]
    for entry in entries:
        assert entry["check"] != "not_a_server_error", entry
        assert entry.get("reason"), entry
