"""docs/operating.md says what the example project does: its table of worker class, pool size and
CONN_MAX_AGE per kind of worker matches gunicorn.conf.py and the settings."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.example.conftest import EXAMPLE_DIR, example_env, run_example

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
