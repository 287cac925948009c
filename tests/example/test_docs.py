"""docs/operating.md says what the example project does: its table of worker class, pool size and
CONN_MAX_AGE per kind of worker matches gunicorn.conf.py and the settings. Every variable the
example reads is documented, in .env.example and on the configuration page."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest

from tests.example.conftest import EXAMPLE_DIR, EXAMPLE_VARIABLES, example_env, run_example

OPERATING = EXAMPLE_DIR.parent / "docs" / "operating.md"
HEADER = "| `ASGI` | worker class |"

SHOW = """
import json, runpy, django
conf = runpy.run_path("gunicorn.conf.py")
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
pool = db.get("OPTIONS", {}).get("pool", {})
print(json.dumps({"worker_class": conf["worker_class"], "min_size": pool.get("min_size"),
    "max_size": pool.get("max_size"), "CONN_MAX_AGE": db["CONN_MAX_AGE"]}))
"""


def worker_table() -> dict[str, dict[str, str]]:
    """The table's rows by the value of ASGI, each cell by its column's heading."""
    lines = OPERATING.read_text(encoding="utf-8").splitlines()
    start = lines.index(next(line for line in lines if line.startswith(HEADER)))
    headings = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(headings, cells, strict=True))
    return rows


def example(**values: str) -> dict[str, Any]:
    env = example_env(DJANGO_SETTINGS_MODULE="config.settings", SECRET_KEY="k" * 60, **values)
    return dict(json.loads(run_example("-c", SHOW, env=env).stdout))


POSTGRES = "postgres://polls@db.internal:5432/polls"


@pytest.mark.parametrize("asgi", ["true", "false"])
def test_the_worker_table_of_operating_md_is_the_example_s_defaults(asgi: str) -> None:
    row = worker_table()[asgi]
    pooled = example(ASGI=asgi, DATABASE_URL=POSTGRES)
    unpooled = example(ASGI=asgi, DATABASE_URL=POSTGRES, DATABASE_POOL="false")
    sqlite = example(ASGI=asgi)

    assert row["worker class"] == pooled["worker_class"]
    assert int(row["pool per worker: kept open"]) == pooled["min_size"]
    assert int(row["pool per worker: at most"]) == pooled["max_size"]
    assert int(row["`CONN_MAX_AGE` with the pool"]) == pooled["CONN_MAX_AGE"]
    assert int(row["`CONN_MAX_AGE` without the pool"]) == unpooled["CONN_MAX_AGE"]
    assert int(row["`CONN_MAX_AGE` without the pool"]) == sqlite["CONN_MAX_AGE"]


def test_the_table_covers_both_kinds_of_worker() -> None:
    assert set(worker_table()) == {"true", "false"}
    # The Gunicorn settings above it name the same default worker class as the table.
    text = OPERATING.read_text(encoding="utf-8")
    assert re.search(r"`ASGI=true` \(the default\): `config\.workers\.Worker`", text)


def read_variables() -> set[str]:
    """The variables the example's settings and gunicorn.conf.py read: the first argument of
    each ``config(...)`` call (``env(...)`` in gunicorn.conf.py, where ``config`` names a Gunicorn
    setting)."""
    found = set()
    for path in [*EXAMPLE_DIR.glob("config/*.py"), EXAMPLE_DIR / "gunicorn.conf.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"config", "env"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


def test_every_variable_the_example_reads_is_documented() -> None:
    variables = read_variables()
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "WEB_CONCURRENCY"} <= variables
    example = (EXAMPLE_DIR / ".env.example").read_text(encoding="utf-8")
    configuration = (EXAMPLE_DIR.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in sorted(variables):
        assert re.search(rf"^(# )?{name}=", example, re.MULTILINE), f"{name}: not in .env.example"
        assert f"| `{name}` |" in configuration, f"{name}: not in docs/configuration.md"
        # The example's tests set every variable themselves: none leaks in from outside.
        assert name in EXAMPLE_VARIABLES, f"{name}: not in tests/example/conftest.py"


def test_production_needs_the_same_variables_everywhere() -> None:
    """README, .env.example and docs/operating.md name what production needs alike."""
    needed = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL")
    texts = {
        "README.md": EXAMPLE_DIR.parent / "README.md",
        ".env.example": EXAMPLE_DIR / ".env.example",
        "docs/operating.md": OPERATING,
    }
    for name, path in texts.items():
        text = " ".join(path.read_text(encoding="utf-8").split())
        sentence = re.search(r"(Production needs|at least)[^.]*\.", text)
        assert sentence, name
        for variable in needed:
            assert variable in sentence.group(0), f"{name}: no {variable} in {sentence.group(0)}"
