"""`manage.py seed_polls`: the demo data `make demo` loads, safe to load again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.example.conftest import Deployment

SUMMARY = """
import json, django
django.setup()
from django.contrib.auth import authenticate
from django.db.models import Prefetch
from django_polls.models import Option, Poll, Vote, counted_votes
print(json.dumps({
    "polls": sorted(
        [p.title, p.is_active, p.allow_multiple_votes, p.total_votes]
        for p in Poll.objects.prefetch_related(Prefetch("options", Option.objects.counted()))
    ),
    "votes": Vote.objects.count(),
    "counted": sum(
        Option.objects.annotate(counted=counted_votes()).values_list("counted", flat=True)
    ),
    "demo_signs_in": authenticate(username="demo", password=%r) is not None,
}))
"""


@pytest.fixture
def fresh(database_url_factory: Any, tmp_path: Path) -> Deployment:
    deployment = Deployment(database_url=database_url_factory(), static_root=tmp_path)
    deployment.manage("migrate", "--noinput")
    return deployment


def summary(deployment: Deployment, password: str) -> dict[str, Any]:
    shown = deployment.manage("shell", "--no-imports", "-c", SUMMARY % password)
    return dict(json.loads(shown.stdout))


def test_seed_polls_loads_demo_data_once_and_prints_working_credentials(
    fresh: Deployment,
) -> None:
    first = fresh.manage("seed_polls").stdout
    assert "username: demo" in first
    assert "password: demo" in first
    token = re.search(r"token:\s+([0-9a-f]{40})", first)
    assert token, first
    loaded = summary(fresh, "demo")
    assert loaded["demo_signs_in"] is True
    # A mix a frontend needs to see: open and closed, single and multiple choice, ranked and
    # score (whose selections count in total_votes, not as vote rows), no votes yet.
    assert loaded["polls"] == [
        # title, is_active, allow_multiple_votes, total_votes
        ["Best pizza topping?", False, False, 6],
        ["How were the talks?", True, False, 12],
        ["Where should next year's conference be?", True, False, 19],
        ["Where should the launch party be?", True, False, 0],
        ["Which days suit you for the team offsite?", True, True, 15],
        ["Which language should the next workshop cover?", True, False, 12],
    ]
    assert loaded["votes"] == 6 + 15 + 12
    assert loaded["counted"] == loaded["votes"] + 12 + 19

    again = fresh.manage("seed_polls").stdout
    assert "(0 added now)" in again
    assert token.group(1) in again  # the same token
    assert summary(fresh, "demo") == loaded

    # The counters agree with the vote rows.
    assert fresh.manage("polls_recount").returncode == 0


def test_seed_polls_sets_the_password_it_prints(fresh: Deployment) -> None:
    fresh.manage("seed_polls")
    output = fresh.manage("seed_polls", "--password", "another-demo-password").stdout
    assert "password: another-demo-password" in output
    assert summary(fresh, "another-demo-password")["demo_signs_in"] is True
    assert summary(fresh, "demo")["demo_signs_in"] is False


def test_seed_polls_never_takes_over_someone_elses_account(fresh: Deployment) -> None:
    fresh.manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('demo', password='their-own-password-9')",
    )
    refused = fresh.manage("seed_polls", check=False)
    assert refused.returncode != 0
    assert "exists and is not the demo administrator" in refused.stderr
    assert summary(fresh, "their-own-password-9")["demo_signs_in"] is True
    assert summary(fresh, "their-own-password-9")["polls"] == []
