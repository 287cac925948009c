"""The benchmark's ``manage.py polls_load_votes``: synthetic voters and votes, in bulk, with
consistent counts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django
import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models
from django.db.models import Sum
from django.test import Client
from django.test.utils import isolate_apps
from django.utils import timezone

import django_polls
from benchmarks.management.commands import polls_load_votes
from django_polls import services
from django_polls.models import Option, Participation, Poll, Vote, VoterCount, counted_votes
from django_polls.services import locks
from tests.conftest import db_state, expire, option_ids

pytestmark = pytest.mark.django_db

# The command writes in bulk SQL for PostgreSQL and SQLite only; on MySQL it refuses (tested below).
loads_here = pytest.mark.skipif(
    connection.vendor == "mysql", reason="polls_load_votes supports PostgreSQL and SQLite"
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def load(*args: Any) -> list[str]:
    """Run the command; returns its output lines."""
    out = io.StringIO()
    # The benchmark's command: not an installed app of the package's test settings.
    call_command(polls_load_votes.Command(), *[str(arg) for arg in args], stdout=out)
    return out.getvalue().splitlines()


def prefix(poll: Poll) -> str:
    return f"polls-load-{poll.pk}-"


def loaded_voters(poll: Poll) -> Any:
    return get_user_model().objects.filter(username__startswith=prefix(poll))


def numbers(poll: Poll) -> list[int]:
    """The numbers of the poll's synthetic voters, ascending."""
    names = loaded_voters(poll).values_list("username", flat=True)
    return sorted(int(name.removeprefix(prefix(poll))) for name in names)


def counters(poll: Poll) -> list[int]:
    return list(
        poll.options.order_by("order", "pk")
        .annotate(counted=counted_votes())
        .values_list("counted", flat=True)
    )


def rows(poll: Poll) -> list[int]:
    """Vote rows per option, in option order."""
    per_option = Counter(Vote.objects.filter(poll=poll).values_list("option_id", flat=True))
    return [per_option[pk] for pk in option_ids(poll)]


def assert_consistent(poll: Poll) -> None:
    assert services.find_drift(poll_ids=[poll.pk]) == []
    assert counters(poll) == rows(poll)


@pytest.fixture
def poll(make_poll: Callable[..., Poll]) -> Poll:
    return make_poll(title="Lunch?", options=("Pizza", "Soup", "Salad"))


@loads_here
def test_loads_one_vote_per_new_voter_spread_evenly_in_batches(poll: Poll) -> None:
    users_before = get_user_model().objects.count()

    output = load(poll.pk, 300, "--batch-size", 70)

    assert Vote.objects.filter(poll=poll).count() == 300
    assert get_user_model().objects.count() == users_before + 300
    assert numbers(poll) == list(range(300))
    voters = Vote.objects.filter(poll=poll).values_list("voter_id", flat=True)
    assert sorted(voters) == sorted(loaded_voters(poll).values_list("pk", flat=True))
    assert counters(poll) == [100, 100, 100]
    assert_consistent(poll)
    progress = [line.split(" votes (")[0] for line in output[:-1]]
    assert progress == [f"loaded {n} / 300" for n in (70, 140, 210, 280, 300)]
    assert all(line.endswith(" votes/s)") for line in output[:-1])
    assert output[-1].startswith(f"Loaded 300 votes into poll {poll.pk} in ")
    assert output[-1].endswith(" votes/s).")


@loads_here
def test_voter_n_votes_for_option_n_modulo_the_number_of_options(poll: Poll) -> None:
    load(poll.pk, 8, "--batch-size", 3)

    options = option_ids(poll)
    chosen = {
        int(name.removeprefix(prefix(poll))): option
        for name, option in Vote.objects.filter(poll=poll).values_list(
            "voter__username", "option_id"
        )
    }
    assert chosen == {n: options[n % 3] for n in range(8)}
    assert counters(poll) == [3, 3, 2]
    assert_consistent(poll)


@loads_here
def test_votes_are_stamped_now_and_copy_the_poll_mode(make_poll: Callable[..., Poll]) -> None:
    multiple = make_poll(title="Colours", options=("Red", "Green"), allow_multiple_votes=True)

    started = timezone.now()

    load(multiple.pk, 5)

    votes = Vote.objects.filter(poll=multiple)
    assert {vote.poll_allows_multiple for vote in votes} == {True}
    assert all(started <= vote.created_at <= timezone.now() for vote in votes)
    assert counters(multiple) == [3, 2]
    assert_consistent(multiple)


@loads_here
def test_a_second_load_numbers_on_from_the_total_and_the_counts_add_up(
    poll: Poll, make_user: Callable[..., Any]
) -> None:
    load(poll.pk, 100, "--batch-size", 40)
    services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=[option_ids(poll)[2]])

    load(poll.pk, 50, "--batch-size", 40)

    assert numbers(poll) == [*range(100), *range(101, 151)]
    assert Vote.objects.filter(poll=poll).count() == 151
    assert sum(counters(poll)) == 151
    assert_consistent(poll)
    # Every loaded voter took part once and is counted among the poll's voters.
    assert Participation.objects.filter(poll=poll, choices=1).count() == 151
    assert VoterCount.objects.filter(poll=poll).aggregate(n=Sum("voters"))["n"] == 151


@loads_here
def test_a_secret_poll_is_refused(poll: Poll) -> None:
    Poll.objects.filter(pk=poll.pk).update(anonymity="secret", allow_vote_change=False)

    with pytest.raises(CommandError) as excinfo:
        load(poll.pk, 10)

    assert str(excinfo.value) == (
        f"Poll {poll.pk} is secret: the loader writes votes with their voters. Nothing loaded."
    )
    assert not Participation.objects.filter(poll=poll).exists()


@loads_here
def test_a_load_after_retracted_real_votes_numbers_past_the_earlier_voters(
    poll: Poll, make_user: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The total then falls below the numbers in use; the load finds the highest once and goes
    on from there, batch after batch."""
    real = make_user()
    services.cast_vote(poll_id=poll.pk, voter=real, option_ids=[option_ids(poll)[0]])
    load(poll.pk, 10)
    services.retract_votes(poll_id=poll.pk, voter=real)
    make_user(f"{prefix(poll)}admin")  # a look-alike name, not a number
    scans = []
    template = polls_load_votes.VoterTemplate
    highest = template.highest_number
    monkeypatch.setattr(
        template,
        "highest_number",
        lambda self, *args: scans.append(args) or highest(self, *args),
    )

    load(poll.pk, 5, "--batch-size", 2)

    assert len(scans) == 1  # one collision, then numbered on: no rescan per batch

    assert sorted(loaded_voters(poll).values_list("username", flat=True)) == sorted(
        [f"{prefix(poll)}admin", *(f"{prefix(poll)}{n}" for n in range(1, 16))]
    )
    assert sum(counters(poll)) == 15
    assert_consistent(poll)


@loads_here
def test_loads_into_separate_polls_do_not_collide(
    poll: Poll, make_poll: Callable[..., Poll]
) -> None:
    other = make_poll(title="Dinner?")

    load(poll.pk, 20)
    load(other.pk, 20)

    assert numbers(poll) == numbers(other) == list(range(20))
    assert counters(other) == [10, 10]
    assert_consistent(poll)
    assert_consistent(other)


@loads_here
def test_loaded_voters_cannot_sign_in(poll: Poll) -> None:
    load(poll.pk, 3)

    for voter in loaded_voters(poll):
        assert not voter.has_usable_password()
        assert voter.password.startswith("!")
        for password in ("", voter.password, "password"):
            assert authenticate(username=voter.username, password=password) is None
            assert not Client().login(username=voter.username, password=password)


@loads_here
def test_a_real_ballot_after_loading_still_counts(
    poll: Poll, make_user: Callable[..., Any]
) -> None:
    load(poll.pk, 30, "--batch-size", 7)
    soup = option_ids(poll)[1]

    services.cast_vote(poll_id=poll.pk, voter=make_user(), option_ids=[soup])

    assert counters(poll) == [10, 11, 10]
    assert_consistent(poll)
    # The loaded votes are real votes: a loaded voter cannot vote again on this single-vote poll.
    with pytest.raises(services.AlreadyVoted):
        services.cast_vote(poll_id=poll.pk, voter=loaded_voters(poll).first(), option_ids=[soup])


def missing(poll: Poll) -> tuple[int, str]:
    return poll.pk + 1000, "does not exist"


def closed(poll: Poll) -> tuple[int, str]:
    services.close_poll(poll=poll)
    return poll.pk, "closed or expired"


def expired(poll: Poll) -> tuple[int, str]:
    expire(poll)
    return poll.pk, "closed or expired"


def without_options(poll: Poll) -> tuple[int, str]:
    Vote.objects.filter(poll=poll).delete()
    Option.objects.filter(poll=poll).delete()
    return poll.pk, "has no options"


@loads_here
@pytest.mark.parametrize(
    "state",
    [missing, closed, expired, without_options],
    ids=["missing", "closed", "expired", "without_options"],
)
def test_refuses_a_poll_that_takes_no_votes_and_writes_nothing(
    poll: Poll, state: Callable[[Poll], tuple[int, str]]
) -> None:
    load(poll.pk, 4)
    poll_id, message = state(poll)
    before = db_state()
    users = list(get_user_model().objects.order_by("pk").values())

    with pytest.raises(CommandError, match=message) as excinfo:
        load(poll_id, 10, "--batch-size", 3)

    assert str(excinfo.value).endswith("Nothing loaded.")
    assert db_state() == before
    assert list(get_user_model().objects.order_by("pk").values()) == users


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "VOTES must be at least 1, not 0."),
        ((-5,), "VOTES must be at least 1, not -5."),
        ((10, "--batch-size", 0), "--batch-size must be at least 1, not 0."),
    ],
)
def test_refuses_a_count_below_one_and_writes_nothing(
    poll: Poll, args: tuple[Any, ...], message: str
) -> None:
    before = db_state()
    users = get_user_model().objects.count()

    with pytest.raises(CommandError) as excinfo:
        load(poll.pk, *args)

    assert str(excinfo.value) == message
    assert db_state() == before
    assert get_user_model().objects.count() == users


@loads_here
def test_a_poll_closed_during_the_load_stops_it_with_what_was_loaded_kept(
    poll: Poll, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch commits on its own; the poll closes after the second one."""
    real_lock = locks.lock_poll
    calls = []

    def lock_then_close(poll_id: int, *, exclusive: bool) -> Poll:
        calls.append(poll_id)
        if len(calls) == 3:
            Poll.objects.filter(pk=poll_id).update(closed_at=timezone.now())
        return real_lock(poll_id, exclusive=exclusive)

    monkeypatch.setattr(locks, "lock_poll", lock_then_close)

    with pytest.raises(CommandError) as excinfo:
        load(poll.pk, 10, "--batch-size", 4)

    assert str(excinfo.value) == (
        f"Poll {poll.pk} is closed or expired: it no longer takes votes. "
        "Stopped after 8 of 10 votes."
    )
    assert numbers(poll) == list(range(8))
    assert_consistent(poll)


@loads_here
def test_a_username_collision_that_numbering_cannot_avoid_is_refused(
    poll: Poll, make_user: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    load(poll.pk, 4)
    make_user(f"{prefix(poll)}5")  # not one of the poll's votes, so the total stays 4
    monkeypatch.setattr(polls_load_votes.VoterTemplate, "highest_number", lambda self, p: 3)
    users = get_user_model().objects.count()

    with pytest.raises(CommandError, match="Could not insert the synthetic voters") as excinfo:
        load(poll.pk, 2, "--batch-size", 1)

    assert "Stopped after 1 of 2 votes. The database said: " in str(excinfo.value)
    # The first batch (voter 4) committed; the second wrote nothing.
    assert numbers(poll) == [0, 1, 2, 3, 4, 5]
    assert Vote.objects.filter(poll=poll).count() == 5
    assert get_user_model().objects.count() == users + 1
    assert sum(counters(poll)) == 5
    assert_consistent(poll)


@loads_here
def test_a_batch_that_inserts_too_few_votes_is_rolled_back(
    poll: Poll, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A safety net: the counters only ever grow by the votes really inserted."""
    insert = polls_load_votes.Command._insert
    monkeypatch.setattr(polls_load_votes.Command, "_insert", lambda *args: insert(*args) - 1)
    before = db_state()
    users = get_user_model().objects.count()

    with pytest.raises(CommandError, match=r"Inserted 2 votes instead of 3\. Nothing loaded\."):
        load(poll.pk, 3)

    assert db_state() == before
    assert get_user_model().objects.count() == users


def test_refuses_another_database(poll: Poll, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "vendor", "oracle")

    with pytest.raises(CommandError, match="supports PostgreSQL and SQLite, not oracle"):
        load(poll.pk, 3)


@loads_here
def test_refuses_user_models_whose_accounts_it_cannot_make_in_sql(
    poll: Poll, monkeypatch: pytest.MonkeyPatch
) -> None:
    with isolate_apps("django_polls"):

        class Account(models.Model):
            name = models.CharField(max_length=50, unique=True)
            USERNAME_FIELD = "name"

            class Meta:
                app_label = "django_polls"

            def __str__(self) -> str:
                return self.name

        class StaffAccount(Account):
            """Multi-table inheritance: two tables per account."""

            class Meta:
                app_label = "django_polls"

            def __str__(self) -> str:
                return self.name

        class KeyedAccount(models.Model):
            """The primary key is no number series."""

            id = models.UUIDField(primary_key=True)
            name = models.CharField(max_length=50, unique=True)
            USERNAME_FIELD = "name"

            class Meta:
                app_label = "django_polls"

            def __str__(self) -> str:
                return self.name

    before = db_state()
    for model, message in [
        (StaffAccount, "inherits from another concrete model"),
        (KeyedAccount, "needs an auto-increment primary key"),
    ]:
        monkeypatch.setattr(polls_load_votes, "get_user_model", lambda model=model: model)
        with pytest.raises(CommandError, match=message):
            load(poll.pk, 3)
    assert db_state() == before


# ---------------------------------------------------------------------------------------------
# A custom user model, in a child process (the suite's own user model cannot be swapped)

CUSTOM_USERS_MODELS = """
import django
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class Member(AbstractBaseUser):
    email = models.EmailField(unique=True, db_column="mail_address")
    nickname = models.CharField(max_length=30, default="anonymous")
    karma = models.IntegerField(default=7)
    joined = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=True)
    if django.VERSION >= (5, 0):
        # Filled in by the database: left out of the insert.
        level = models.IntegerField(db_default=3)
        double_karma = models.GeneratedField(
            expression=models.F("karma") * 2, output_field=models.IntegerField(), db_persist=True
        )

    USERNAME_FIELD = "email"
    objects = BaseUserManager()

    class Meta:
        db_table = "custom_people"
"""

CUSTOM_USERS_SCENARIO = """
import json
import os
import sys

import dj_database_url
from django.conf import settings

url = os.environ.get("DATABASE_URL")
database = (
    {**dj_database_url.parse(url), "TEST": {"NAME": sys.argv[1]}}
    if url
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
)
settings.configure(
    DATABASES={"default": database},
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "rest_framework",
        "django_polls",
        "benchmarks",
        "custom_users",
    ],
    AUTH_USER_MODEL="custom_users.Member",
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
)

import django

django.setup()

from django.core.management import call_command
from django.db import connection, models

from custom_users.models import Member
from django_polls import services
from django_polls.models import Option

call_command("makemigrations", "custom_users", verbosity=0)
name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
try:
    owner = Member.objects.create(email="owner@example.com")
    poll = services.create_poll(created_by=owner, title="Lunch?", options=["Pizza", "Soup"])
    call_command("polls_load_votes", poll.pk, 9, batch_size=4, stdout=open(os.devnull, "w"))
    call_command("polls_load_votes", poll.pk, 3, stdout=open(os.devnull, "w"))
    loaded = Member.objects.filter(email__startswith=f"polls-load-{poll.pk}-").order_by("pk")
    print(json.dumps({
        "vendor": connection.vendor,
        "emails": [member.email for member in loaded],
        "fields": sorted({
            (m.nickname, m.karma, m.is_active, m.joined is not None, m.has_usable_password())
            for m in loaded
        }),
        "database_filled": sorted({
            (m.level, m.double_karma) for m in loaded if hasattr(m, "double_karma")
        }),
        "counters": list(Option.objects.order_by("order").values_list("votes", flat=True)),
        "drift": len(services.find_drift()),
        "prefix": f"polls-load-{poll.pk}-",
    }))
finally:
    connection.creation.destroy_test_db(name, verbosity=0)
"""


@loads_here
def test_a_custom_user_model_gets_its_defaults_and_its_own_username_column(
    tmp_path: Path,
) -> None:
    app = tmp_path / "custom_users"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(CUSTOM_USERS_MODELS)
    package_home = Path(django_polls.__file__).resolve().parent.parent
    path = [str(tmp_path), str(package_home), str(REPO_ROOT), *sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    suffix = os.environ.get("TOX_ENV_NAME", "local").replace("-", "_")

    finished = subprocess.run(
        [sys.executable, "-c", CUSTOM_USERS_SCENARIO, f"test_django_polls_{suffix}_custom_users"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["vendor"] == connection.vendor
    assert summary["emails"] == [f"{summary['prefix']}{n}" for n in range(12)]
    assert summary["fields"] == [["anonymous", 7, True, True, False]]
    if django.VERSION >= (5, 0):
        assert summary["database_filled"] == [[3, 14]]
    assert summary["counters"] == [6, 6]
    assert summary["drift"] == 0


# ---------------------------------------------------------------------------------------------
# Ranked and score polls


@loads_here
@pytest.mark.parametrize("method", ["ranked", "score"])
def test_ranked_and_score_ballots_load_with_exact_counts(
    make_poll: Callable[..., Poll], method: str
) -> None:
    poll = make_poll(method=method, options=("A", "B", "C", "D", "E"), min_choices=2)

    load(poll.pk, 120, "--batch-size", 50)
    load(poll.pk, 30)

    assert Participation.objects.filter(poll=poll).count() == 150
    assert services.find_ballot_drift(poll_ids=[poll.pk]) == []
    results = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    assert results.total_voters == 150
    if method == "ranked":
        assert results.ballots == 150
        assert sum(option.first_choices for option in results.options) == 150
    else:
        assert sum(option.count for option in results.options) == results.total_votes
    held = Participation.objects.filter(poll=poll).values_list("choices", flat=True)
    assert min(held) >= 2


@loads_here
def test_full_rankings_of_many_options_are_nearly_all_distinct(
    make_poll: Callable[..., Poll],
) -> None:
    texts = [f"Option {n}" for n in range(12)]
    poll = make_poll(method="ranked", options=texts, min_choices=12)

    load(poll.pk, 200)

    results = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
    assert results.ballots == 200
    assert services.tallies_of(poll_id=poll.pk).keys().__len__() > 190
    assert results.winner is not None or results.tied
