"""The public repository's CI (.github/workflows/tests.yml) runs what the README calls the
project's tests: `make test`, on every Python version the package supports, with PostgreSQL,
MariaDB and Redis as services, and the whole matrix of each version. actionlint checks the file
itself (tox -e lint-actionlint); this keeps it in step with the package."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML, which drf-yasg brings

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "tests.yml"


def supported_pythons() -> list[str]:
    """The versions of pyproject.toml's classifiers (read as text: tomllib is Python 3.11+)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    return re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject)


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text())["jobs"])


def test_make_test_runs_on_every_supported_python_with_the_services(jobs: dict[str, Any]) -> None:
    job = jobs["make-test"]
    setup = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup"))
    assert (
        setup["with"]["python-version"].split()
        == supported_pythons()
        == [
            "3.10",
            "3.11",
            "3.12",
            "3.13",
        ]
    )
    assert {"postgres", "mariadb", "redis"} <= set(job["services"])
    assert any(step.get("run") == "make test" for step in job["steps"])


def test_the_whole_matrix_runs_once_per_supported_python(jobs: dict[str, Any]) -> None:
    job = jobs["matrix"]
    versions = [entry["python"] for entry in job["strategy"]["matrix"]["include"]]
    assert versions == supported_pythons()
    for entry in job["strategy"]["matrix"]["include"]:
        assert entry["factor"] == "py" + entry["python"].replace(".", "")
    assert {"postgres", "mariadb"} <= set(job["services"])


def test_nothing_that_the_run_needs_is_skipped_quietly() -> None:
    env = yaml.safe_load(WORKFLOW.read_text())["env"]
    for name in ("POSTGRES", "MYSQL", "REDIS", "PGBOUNCER", "ACTIONLINT"):
        assert env[f"REQUIRE_{name}"] == "1"
