"""Concurrent writers on an SQLite file database wait their turn: never "database is locked".

The suite's own SQLite database lives in memory, in one connection, so it cannot show this. The
test runs a real scenario in a child Python process against a database file: many threads, each
with its own connection, cast and withdraw votes at the same moment through the services.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import django_polls

REPO_ROOT = Path(__file__).resolve().parent.parent
VOTERS = 20
# Every fourth voter withdraws their vote straight after casting it.
RETRACTING = [n for n in range(VOTERS) if n % 4 == 0]

SCENARIO = """
import json
import sys
import threading

import django

django.setup()

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection

import django_polls
from django_polls import services
from django_polls.models import Option, Vote

VOTERS = int(sys.argv[1])
RETRACTING = set(json.loads(sys.argv[2]))

call_command("migrate", verbosity=0)
users = [get_user_model().objects.create_user(username=f"voter{n}") for n in range(VOTERS)]
poll = services.create_poll(
    created_by=users[0], title="Lunch?", options=["Pizza", "Soup", "Salad"]
)
option_ids = list(poll.options.order_by("order").values_list("pk", flat=True))
connection.close()

barrier = threading.Barrier(VOTERS, timeout=30)
outcomes = {}


def vote(n):
    user = users[n]
    done = []
    try:
        barrier.wait()
        services.cast_vote(
            poll_id=poll.pk, voter=user, option_ids=[option_ids[n % len(option_ids)]]
        )
        done.append("voted")
        if n in RETRACTING:
            services.retract_votes(poll_id=poll.pk, voter=user)
            done.append("retracted")
    except Exception as exc:
        done.append(f"error: {type(exc).__name__}: {exc}")
    finally:
        connection.close()
    outcomes[n] = done


threads = [threading.Thread(target=vote, args=(n,)) for n in range(VOTERS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()

summary = {
    "package": django_polls.__file__,
    "outcomes": {str(n): outcomes.get(n, ["no outcome"]) for n in range(VOTERS)},
    "voters_with_votes": sorted(
        int(name.removeprefix("voter"))
        for name in Vote.objects.filter(poll=poll).values_list("voter__username", flat=True)
    ),
    "rows": {
        str(option_id): Vote.objects.filter(option_id=option_id).count()
        for option_id in option_ids
    },
    "counters": {
        str(option_id): votes
        for option_id, votes in Option.objects.filter(poll=poll).values_list("pk", "votes")
    },
}
connection.close()
print(json.dumps(summary))
"""


def child_pythonpath() -> str:
    """The parent's import path, so the child imports this very django_polls (installed in the
    tox environment or from ``src/``) and ``tests.settings`` from the repository."""
    package_home = Path(django_polls.__file__).resolve().parent.parent
    entries = [str(package_home), str(REPO_ROOT), *(os.path.abspath(p) for p in sys.path if p)]
    return os.pathsep.join(dict.fromkeys(entries))


def test_concurrent_ballots_on_an_sqlite_file_never_fail_with_database_is_locked(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'polls.sqlite3'}",
        "PYTHONPATH": child_pythonpath(),
    }

    finished = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(VOTERS), json.dumps(RETRACTING)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert Path(summary["package"]).resolve() == Path(django_polls.__file__).resolve()
    errors = {n: done for n, done in summary["outcomes"].items() if done[-1].startswith("error")}
    assert errors == {}, f"{len(errors)} of {VOTERS} voters failed: {errors}"
    assert summary["outcomes"] == {
        str(n): ["voted", "retracted"] if n in RETRACTING else ["voted"] for n in range(VOTERS)
    }
    assert summary["voters_with_votes"] == [n for n in range(VOTERS) if n not in RETRACTING]
    assert sum(summary["rows"].values()) == VOTERS - len(RETRACTING)
    assert summary["counters"] == summary["rows"]
