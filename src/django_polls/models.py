"""Polls, their options, the votes cast on them and who took part.

The voting rules are held by the database as well as by :mod:`django_polls.services`:

* ``Vote`` rows are unique per (poll, voter, option), so nobody votes twice for one option;
* on a single-vote poll a partial unique index allows one row per (poll, voter). Each vote copies
  the poll's ``allow_multiple_votes`` and a composite foreign key (added in migration 0002) ties
  the copy to the poll, so the flag on a vote can never disagree with its poll;
* a second composite foreign key ties a vote's option to the vote's poll;
* an option's count is its ``Option.votes`` plus its ``OptionCount`` slots (on PostgreSQL a
  ballot adds to one of a few slot rows, so that ballots on one option do not queue for one
  row), all positive integer columns (never negative), kept equal to the option's vote rows (on
  a secret poll, to the ballots that chose it) by the services in the same transaction as each
  vote and retraction; :meth:`OptionQuerySet.counted` reads it whole;
* a ``Participation`` row per voter and poll (unique) says that they voted and how many options
  their ballot holds, within the limits it copies from the poll (a check constraint); on a secret
  poll it is all that is kept of a voter, with no ``Vote`` rows;
* ``VoterCount`` rows count the participations of a poll, striped over a few rows so that
  ballots on one poll do not queue for one counter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, models
from django.db.models import F
from django.db.models.functions import Coalesce, Lower
from django.db.models.query import ModelIterable
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_polls.compat import check_constraint

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime


class ClockTimestamp(models.Func):
    """PostgreSQL's clock_timestamp(): the time now, not at the start of the transaction."""

    template = "clock_timestamp()"
    output_field = models.DateTimeField()


#: The attribute (an annotation, or a column of a raw query) that carries the time by
#: :func:`poll_clock`, read by the query that read the poll.
CLOCK_ATTRIBUTE = "clock_now"


def poll_clock() -> Any:
    """The one clock that judges whether a poll is open, and stamps ballots and closings: the
    database's on PostgreSQL (shared by every app server, and read by the very statement that
    needs it: an expression), else this process's (a datetime)."""
    return ClockTimestamp() if connection.vendor == "postgresql" else timezone.now()


def read_poll_clock() -> datetime:
    """The time by :func:`poll_clock` as a value: on PostgreSQL one query, elsewhere this
    process's clock."""
    clock = poll_clock()
    if not isinstance(clock, models.Func):
        return clock  # type: ignore[no-any-return]
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now: datetime = cursor.fetchone()[0]
    return now


def choice_limits(
    method: str, min_choices: int, max_choices: int | None, option_count: Callable[[], int]
) -> tuple[int, int]:
    """How many options one voter's ballot holds, at least and at most: 1 and 1 on a
    single-choice poll, else the poll's limits, with every option (``option_count()``, called
    only then) where it sets no maximum."""
    if method == Method.SINGLE:
        return 1, 1
    return min_choices, max_choices or option_count()


class Method(models.TextChoices):
    """The built-in voting methods (:mod:`django_polls.methods`); a site may add its own through
    ``DJANGO_POLLS["METHODS"]``, so ``Poll.method`` holds any registered name."""

    SINGLE = "single", _("single choice")
    MULTIPLE = "multiple", _("multiple choice")
    RANKED = "ranked", _("ranked choice (instant runoff)")
    SCORE = "score", _("score voting")


#: The methods whose ballots are vote rows (one per option chosen, :class:`Vote`), stored by the
#: one-statement ballot on PostgreSQL; every other method stores a voter's ballot whole
#: (:class:`Ballot`) and keeps its counts in :class:`Tally` rows.
VOTE_ROW_METHODS = frozenset({Method.SINGLE.value, Method.MULTIPLE.value})

#: The largest ``max_score`` a poll may set.
MAX_SCORE_LIMIT = 10


class ResultsVisibility(models.TextChoices):
    """Who may read a poll's results, from the most open to the strictest (:data:`STRICTNESS`)."""

    ALWAYS = "always", _("anyone, always")
    AFTER_VOTE = "after_vote", _("those who voted")
    AFTER_CLOSE = "after_close", _("anyone, once the poll is closed")
    OWNER = "owner", _("the owner only")


#: The order of :class:`ResultsVisibility`, most open first: a poll with votes only moves right.
STRICTNESS = [choice.value for choice in ResultsVisibility]


class Anonymity(models.TextChoices):
    """What is kept of who chose what."""

    ANONYMOUS = "anonymous", _("anonymous: kept, shown to nobody")
    PUBLIC = "public", _("public: who chose what is listed")
    SECRET = "secret", _("secret: only that one voted, and the counts")


class Status(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    OPEN = "open", _("open")
    CLOSED = "closed", _("closed")


class PollQuerySet(models.QuerySet["Poll"]):
    def open(self, *, at: Any = None) -> PollQuerySet:
        """Polls that take votes: opened, not closed and not expired (by default, by
        :func:`poll_clock`)."""
        now = poll_clock() if at is None else at
        return (
            self.filter(closed_at__isnull=True)
            .filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
            .filter(models.Q(opens_at__isnull=True) | models.Q(opens_at__lte=now))
        )

    def scheduled(self, *, at: Any = None) -> PollQuerySet:
        """Polls that will take votes: not open yet, and not closed or expired."""
        now = poll_clock() if at is None else at
        return self.filter(closed_at__isnull=True, opens_at__gt=now).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )

    def finished(self, *, at: Any = None) -> PollQuerySet:
        """Polls that no longer take votes: closed or expired (by default by :func:`poll_clock`)."""
        now = poll_clock() if at is None else at
        return self.filter(models.Q(closed_at__isnull=False) | models.Q(expires_at__lte=now))

    def with_clock(self) -> PollQuerySet:
        """Polls that carry the time by :func:`poll_clock` as read by their own query, which
        :attr:`Poll.is_active` then judges by; nothing is read where it is this process's."""
        if connection.vendor != "postgresql":
            return self
        return self.annotate(**{CLOCK_ATTRIBUTE: ClockTimestamp()})

    def search(self, text: str) -> PollQuerySet:
        return self.filter(models.Q(title__icontains=text) | models.Q(description__icontains=text))

    def for_listing(self) -> PollQuerySet:
        """Everything a poll body needs, in a constant number of queries."""
        return (
            self.with_clock()
            .select_related("created_by", "voter_group")
            .prefetch_related(
                models.Prefetch(
                    "options", queryset=Option.objects.counted().order_by("order", "id")
                )
            )
        )


class Poll(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True, editable=False)
    # A name of DJANGO_POLLS["METHODS"] (built-in or the site's own): no choices here, since the
    # site decides which exist; the services and system check django_polls.E013 hold the list.
    method = models.CharField(_("method"), max_length=16, default=Method.SINGLE)
    # Kept equal to ``method == "multiple"`` (a check constraint): the single-vote rule of Vote
    # is a partial unique index on its copy of this flag.
    allow_multiple_votes = models.BooleanField(_("allow multiple votes"), default=False)
    # How many options one voter's ballot holds, at least and at most (None: every option).
    min_choices = models.PositiveSmallIntegerField(_("min choices"), default=1)
    max_choices = models.PositiveSmallIntegerField(_("max choices"), null=True, blank=True)
    # The highest score of a score ballot (null on polls whose method takes none).
    max_score = models.PositiveSmallIntegerField(_("max score"), null=True, blank=True)
    opens_at = models.DateTimeField(_("opens at"), null=True, blank=True)
    results_visibility = models.CharField(
        _("results visibility"),
        max_length=16,
        choices=ResultsVisibility.choices,
        default=ResultsVisibility.ALWAYS,
    )
    anonymity = models.CharField(
        _("anonymity"), max_length=16, choices=Anonymity.choices, default=Anonymity.ANONYMOUS
    )
    allow_vote_change = models.BooleanField(_("allow vote change"), default=True)
    # Only members may vote. A group that polls name cannot be deleted (the poll would open to
    # everyone).
    voter_group = models.ForeignKey(
        "auth.Group",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("voter group"),
    )
    # Deleting a user deletes their polls, with the votes on them.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="polls",
        verbose_name=_("created by"),
    )

    objects = PollQuerySet.as_manager()

    class Meta:
        verbose_name = _("poll")
        verbose_name_plural = _("polls")
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("-created_at", "-id"), name="django_polls_poll_newest"),)
        constraints = (
            # Target of the composite foreign key from Vote (poll_id, poll_allows_multiple).
            models.UniqueConstraint(
                fields=("id", "allow_multiple_votes"), name="django_polls_poll_id_mode"
            ),
            check_constraint(
                condition=models.Q(max_score__isnull=True)
                | models.Q(max_score__gte=1, max_score__lte=MAX_SCORE_LIMIT),
                name="django_polls_poll_max_score_in_range",
            ),
            check_constraint(
                condition=~models.Q(method=Method.SCORE) | models.Q(max_score__isnull=False),
                name="django_polls_poll_score_has_max",
            ),
            check_constraint(
                condition=models.Q(method=Method.MULTIPLE, allow_multiple_votes=True)
                | (~models.Q(method=Method.MULTIPLE) & models.Q(allow_multiple_votes=False)),
                name="django_polls_poll_mode_of_method",
            ),
            check_constraint(
                condition=models.Q(min_choices__gte=1)
                & (models.Q(max_choices__isnull=True) | models.Q(max_choices__gte=F("min_choices")))
                & (
                    ~models.Q(method=Method.SINGLE)
                    | (models.Q(min_choices=1) & models.Q(max_choices__isnull=True))
                ),
                name="django_polls_poll_choices_in_range",
            ),
            check_constraint(
                condition=models.Q(results_visibility__in=ResultsVisibility.values),
                name="django_polls_poll_visibility_known",
            ),
            check_constraint(
                condition=models.Q(anonymity__in=Anonymity.values),
                name="django_polls_poll_anonymity_known",
            ),
            # A secret ballot cannot be changed: nothing says what it chose.
            check_constraint(
                condition=~models.Q(anonymity=Anonymity.SECRET) | models.Q(allow_vote_change=False),
                name="django_polls_poll_secret_is_final",
            ),
            check_constraint(
                condition=models.Q(opens_at__isnull=True)
                | models.Q(expires_at__isnull=True)
                | models.Q(opens_at__lt=F("expires_at")),
                name="django_polls_poll_opens_before_expiry",
            ),
        )

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        """Does the poll take votes now, by :func:`poll_clock`: as read with the poll where its
        query read it (:meth:`PollQuerySet.with_clock`), else by this process's clock."""
        now = getattr(self, CLOCK_ATTRIBUTE, None)
        return self.is_open_at(now if now is not None else timezone.now())

    def is_open_at(self, moment: datetime) -> bool:
        """Does the poll take votes at ``moment``: opened, not closed and not expired."""
        return self.status_at(moment) == Status.OPEN

    def status_at(self, moment: datetime) -> Status:
        if self.closed_at is not None or (
            self.expires_at is not None and self.expires_at <= moment
        ):
            return Status.CLOSED
        if self.opens_at is not None and self.opens_at > moment:
            return Status.SCHEDULED
        return Status.OPEN

    @property
    def status(self) -> Status:
        """scheduled, open or closed now, by :func:`poll_clock` (as :attr:`is_active`)."""
        now = getattr(self, CLOCK_ATTRIBUTE, None)
        return self.status_at(now if now is not None else timezone.now())

    @property
    def choice_limits(self) -> tuple[int, int]:
        """How many options one voter's ballot holds, at least and at most; the options must
        be loaded (prefetched) when ``max_choices`` is None."""
        return choice_limits(
            self.method, self.min_choices, self.max_choices, lambda: len(self.options.all())
        )

    @property
    def total_votes(self) -> int:
        """Votes (selections) on the poll: the sum of the option counts, O(options)."""
        return sum(option.votes for option in self.counted_options())

    def counted_options(self) -> list[Option]:
        """The poll's options in their order, each with its whole count: as prefetched (by
        ``for_listing``, which reads them so), else read here (one query)."""
        if "options" in getattr(self, "_prefetched_objects_cache", {}):
            return list(self.options.all())
        return list(self.options.counted())


#: How many slot rows (:class:`OptionCount`) an option's count may spread over; a ballot adds
#: to the slot of its participation's id modulo this number.
OPTION_COUNT_SLOTS = 32

#: The annotation that carries an option's slots' sum (:meth:`OptionQuerySet.counted`).
SLOT_VOTES_ATTRIBUTE = "slot_votes_read"


def slot_votes() -> Coalesce:
    """The sum of the slots (:class:`OptionCount`) of the option of a query of options, 0
    without any: a subquery through the unique (option, slot) index, a few rows."""
    found = (
        OptionCount.objects.filter(option_id=models.OuterRef("pk"))
        .order_by()
        .values("option")
        .annotate(n=models.Sum("votes"))
        .values("n")
    )
    return Coalesce(models.Subquery(found), models.Value(0))


def counted_votes() -> models.Expression:
    """An option's whole count in a query of options: its counter plus its slots."""
    return models.ExpressionWrapper(
        F("votes") + slot_votes(), output_field=models.PositiveIntegerField()
    )


class CountedOptions(ModelIterable):  # type: ignore[type-arg]
    """Options whose ``votes`` holds their whole count: the counter plus the slots' sum that
    their query read (:meth:`OptionQuerySet.counted`)."""

    def __iter__(self) -> Iterator[Option]:
        for option in super().__iter__():
            option.votes += option.__dict__.pop(SLOT_VOTES_ATTRIBUTE, 0)
            yield option


class OptionQuerySet(models.QuerySet["Option"]):
    def counted(self) -> OptionQuerySet:
        """Options whose ``votes`` is their whole count, read by the same query: what results
        show. Not for options to save (nothing saves options: the services write counts)."""
        found = self.annotate(**{SLOT_VOTES_ATTRIBUTE: slot_votes()})
        found._iterable_class = CountedOptions
        return found


class Option(models.Model):
    # No index of its own: the unique (poll, order) index serves lookups by poll.
    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="options",
        db_index=False,
        verbose_name=_("poll"),
    )
    text = models.CharField(_("text"), max_length=200)
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    # With the option's slots (OptionCount), kept equal to the option's Vote rows by
    # django_polls.services; verified by polls_recount. A positive integer column, so the
    # database refuses a negative count. Read the whole count through Option.objects.counted().
    votes = models.PositiveIntegerField(_("votes"), default=0, editable=False)

    objects = OptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("option")
        verbose_name_plural = _("options")
        ordering = ("order", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("poll", "order"), name="django_polls_option_unique_order"
            ),
            models.UniqueConstraint(Lower("text"), "poll", name="django_polls_option_unique_text"),
            # Target of the composite foreign key from Vote (option_id, poll_id).
            models.UniqueConstraint(fields=("id", "poll"), name="django_polls_option_id_poll"),
        )

    def __str__(self) -> str:
        return self.text


class Vote(models.Model):
    # No index of its own: the unique (poll, voter, option) index serves lookups by poll.
    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="votes",
        db_index=False,
        verbose_name=_("poll"),
    )
    option = models.ForeignKey(Option, on_delete=models.CASCADE, verbose_name=_("option"))
    # A deleted account's votes stay counted, anonymously, so results never change behind
    # anyone's back.
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="poll_votes",
        verbose_name=_("voter"),
    )
    # A copy of Poll.allow_multiple_votes, bound to the poll by a composite foreign key, so the
    # single-vote rule can be a partial unique index.
    poll_allows_multiple = models.BooleanField(editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("vote")
        verbose_name_plural = _("votes")
        ordering = ("created_at", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("poll", "voter", "option"), name="django_polls_vote_once_per_option"
            ),
            models.UniqueConstraint(
                fields=("poll", "voter"),
                condition=models.Q(poll_allows_multiple=False),
                name="django_polls_vote_once_per_poll",
            ),
        )

    def __str__(self) -> str:
        return f"{self.voter_id} → {self.option_id}"


class Participation(models.Model):
    """That a voter took part in a poll, and how many options their ballot holds now.

    One per voter and poll (unique). ``min_choices`` and ``max_choices`` are the limits the ballot
    must keep, copied from the poll when the voter first votes (the poll's are frozen once it has
    votes). On a secret poll, where a voter casts one ballot and never adds to it, all three are
    1: one ballot, whose size is not recorded. Nothing here says which options were chosen, nor
    when.
    """

    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="participations",
        db_index=False,
        verbose_name=_("poll"),
    )
    # A deleted account's participation stays counted, as its votes do.
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="poll_participations",
        verbose_name=_("voter"),
    )
    choices = models.PositiveSmallIntegerField(_("choices"), editable=False)
    min_choices = models.PositiveSmallIntegerField(_("min choices"), editable=False)
    max_choices = models.PositiveSmallIntegerField(_("max choices"), editable=False)

    class Meta:
        verbose_name = _("participation")
        verbose_name_plural = _("participations")
        ordering = ("id",)
        constraints = (
            models.UniqueConstraint(
                fields=("poll", "voter"), name="django_polls_participation_once"
            ),
            check_constraint(
                condition=models.Q(choices__gte=F("min_choices"))
                & models.Q(choices__lte=F("max_choices")),
                name="django_polls_participation_within_limits",
            ),
        )

    def __str__(self) -> str:
        return f"{self.voter_id} in {self.poll_id}"


class OptionCount(models.Model):
    """Part of an option's count: the ballots that a slot of it took (on PostgreSQL, a ballot
    adds to the slot of its participation's id modulo :data:`OPTION_COUNT_SLOTS`, so that ballots
    on one option take turns on a few rows, not one). The option's count is its ``votes`` plus
    its slots; a change or retraction that takes a vote away folds the slots into ``votes``
    (deletes them), so that no row ever goes below 0."""

    option = models.ForeignKey(
        Option,
        on_delete=models.CASCADE,
        related_name="counts",
        db_index=False,  # the unique (option, slot) index serves lookups by option
        verbose_name=_("option"),
    )
    slot = models.PositiveSmallIntegerField(_("slot"))
    votes = models.PositiveIntegerField(_("votes"), default=0)

    class Meta:
        verbose_name = _("option count")
        verbose_name_plural = _("option counts")
        constraints = (
            models.UniqueConstraint(
                fields=("option", "slot"), name="django_polls_option_count_once"
            ),
        )

    def __str__(self) -> str:
        return f"{self.option_id}/{self.slot}: {self.votes}"


#: How many rows count a poll's voters; a participation is counted by the row of ``id % STRIPES``.
VOTER_COUNT_STRIPES = 8


class VoterCount(models.Model):
    """Part of a poll's count of voters: the participations whose id modulo
    :data:`VOTER_COUNT_STRIPES` is ``stripe``. Kept by the services in the transaction of each
    first ballot and retraction; the poll's voters are the sum of its rows."""

    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="voter_counts",
        db_index=False,
        verbose_name=_("poll"),
    )
    stripe = models.PositiveSmallIntegerField(_("stripe"))
    voters = models.PositiveIntegerField(_("voters"), default=0)

    class Meta:
        verbose_name = _("voter count")
        verbose_name_plural = _("voter counts")
        constraints = (
            models.UniqueConstraint(
                fields=("poll", "stripe"), name="django_polls_voter_count_once"
            ),
        )

    def __str__(self) -> str:
        return f"{self.poll_id}/{self.stripe}: {self.voters}"


class BallotChange(models.Model):
    """A replaced or retracted ballot on a public or anonymous poll (never on a secret one):
    who, what they had chosen, what they chose instead (nothing for a retraction), and when."""

    class Action(models.TextChoices):
        REPLACED = "replaced", _("replaced")
        RETRACTED = "retracted", _("retracted")

    poll = models.ForeignKey(
        Poll, on_delete=models.CASCADE, related_name="ballot_changes", verbose_name=_("poll")
    )
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("voter"),
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    previous = models.JSONField(_("previous options"))
    current = models.JSONField(_("new options"), default=list)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ballot change")
        verbose_name_plural = _("ballot changes")
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.voter_id} {self.action} on {self.poll_id}"


class Ballot(models.Model):
    """A voter's whole ballot on a poll whose method is not single or multiple (ranked, score, a
    site's own): ``choice`` as the method stores it (a ranking, a list of scores, ...). One per
    voter and poll (unique); a secret poll keeps none, only the participation and the counts."""

    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="ballots",
        db_index=False,
        verbose_name=_("poll"),
    )
    # A deleted account's ballot stays counted, as its votes do.
    voter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="poll_ballots",
        verbose_name=_("voter"),
    )
    choice = models.JSONField(_("choice"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("ballot")
        verbose_name_plural = _("ballots")
        ordering = ("created_at", "id")
        constraints = (
            models.UniqueConstraint(fields=("poll", "voter"), name="django_polls_ballot_once"),
        )

    def __str__(self) -> str:
        return f"{self.voter_id} on {self.poll_id}"


#: The longest key of a :class:`Tally` (a ranking of MAX_OPTIONS ids fits: 20 ids of up to 19
#: digits and their commas take 399 characters).
TALLY_KEY_LENGTH = 512


#: How many tallies of each poll count its changes (ballots cast, changed, withdrawn, counts
#: repaired), a change adding one to the tally of its participation's id modulo this number.
CHANGE_STRIPES = 8
#: The keys of those tallies. Keys of the app start with "#": no method's keys may.
CHANGE_KEYS = tuple(f"#changes/{stripe}" for stripe in range(CHANGE_STRIPES))


def change_key(stripe_of: int) -> str:
    """The key of the tally that counts a change by the participation (or stripe) ``stripe_of``."""
    return CHANGE_KEYS[stripe_of % CHANGE_STRIPES]


class Tally(models.Model):
    """A count kept for a poll as ballots are stored, under a key its method chooses: per
    distinct ranking (ranked: ``"22,21,23"``), per option and score (score: ``"21:4"``). Kept by
    the services in the transaction of each ballot, change and retraction, so results read
    counts, never ballot rows; checked and repaired by ``polls_recount``.

    The app's own keys start with ``#``: :data:`CHANGE_KEYS` count the poll's changes, so their
    sum names one state of the poll's counts (results computed for it stay true until it
    moves)."""

    poll = models.ForeignKey(
        Poll,
        on_delete=models.CASCADE,
        related_name="tallies",
        db_index=False,
        verbose_name=_("poll"),
    )
    key = models.CharField(_("key"), max_length=TALLY_KEY_LENGTH)
    # A positive integer column: the database refuses a negative count.
    ballots = models.PositiveIntegerField(_("ballots"), default=0)

    class Meta:
        verbose_name = _("tally")
        verbose_name_plural = _("tallies")
        constraints = (
            models.UniqueConstraint(fields=("poll", "key"), name="django_polls_tally_once"),
        )

    def __str__(self) -> str:
        return f"{self.poll_id}/{self.key}: {self.ballots}"


#: The longest ``Idempotency-Key`` header the API takes (as Stripe's).
IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyKey(models.Model):
    """A request a user sent with an ``Idempotency-Key`` header, and the answer kept for it: a
    repeat of the request with the key gets that answer again instead of acting twice. Written
    by :mod:`django_polls.services.idempotency`, in the transaction of the request's own
    changes, so an answer is kept exactly when what it reports was stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        db_index=False,  # the unique (user, key) index serves lookups by user
        verbose_name=_("user"),
    )
    key = models.CharField(_("key"), max_length=IDEMPOTENCY_KEY_LENGTH)
    #: SHA-256 of the request (method, path and body), to tell a repeat from another request.
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    #: When the key may be used again for another request (``IDEMPOTENCY_KEY_TTL`` after it was
    #: first sent).
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    #: The answer kept: its status (None until one is kept), body and headers. The body is the
    #: JSON text as it was rendered (a JSON column would reorder its keys), empty for none.
    status = models.PositiveSmallIntegerField(_("status"), null=True, blank=True)
    body = models.TextField(_("body"), blank=True, default="")
    headers = models.JSONField(_("headers"), default=dict, blank=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = (
            models.UniqueConstraint(fields=("user", "key"), name="django_polls_idempotency_key"),
        )

    def __str__(self) -> str:
        return f"{self.user_id}/{self.key}"


class AuditRecord(models.Model):
    """One entry of a poll's audit trail: what happened to the poll or a ballot, who did it and
    when, and the hash that chains it to the entry before, so that an entry edited or removed
    afterwards shows (``polls_verify_audit``). Written by :mod:`django_polls.services.audit` in
    the transaction of the change it records; never updated or deleted by the app.

    The poll is an id, not a foreign key: a deleted poll's trail stays, its deletion included."""

    class Action(models.TextChoices):
        CREATED = "created", _("created")
        EDITED = "edited", _("edited")
        OPENED = "opened", _("opened")
        CLOSED = "closed", _("closed")
        DELETED = "deleted", _("deleted")
        BALLOT_CHANGED = "ballot_changed", _("ballot changed")
        BALLOT_RETRACTED = "ballot_retracted", _("ballot retracted")

    poll_id = models.BigIntegerField(_("poll"))
    #: The entry's place in its poll's trail: 1, 2, 3, ...
    seq = models.PositiveIntegerField(_("number"))
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    #: Who did it: the key of the user (as text), empty for the app itself (a poll that opened
    #: or expired at its time). Not a foreign key: deleting the user changes no entry.
    actor = models.CharField(_("actor"), max_length=64, blank=True, default="")
    at = models.DateTimeField(_("at"))
    #: What changed: the fields of an edit (old and new), a public poll's ballot (previous and
    #: current); never a choice on an anonymous or secret poll.
    data = models.JSONField(_("data"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True, default="")
    hash = models.CharField(_("hash"), max_length=64)

    class Meta:
        verbose_name = _("audit record")
        verbose_name_plural = _("audit records")
        ordering = ("poll_id", "seq")
        constraints = (
            models.UniqueConstraint(fields=("poll_id", "seq"), name="django_polls_audit_seq"),
        )

    def __str__(self) -> str:
        return f"{self.poll_id}#{self.seq} {self.action}"


class AuditHead(models.Model):
    """Where a poll's audit trail ends: its last entry's number and hash (a trail cut short at
    its end shows against it), and whether its opening and closing by the clock were recorded.
    Its lock serialises the entries of one poll."""

    poll_id = models.BigIntegerField(_("poll"), primary_key=True)
    seq = models.PositiveIntegerField(_("last number"), default=0)
    hash = models.CharField(_("last hash"), max_length=64, blank=True, default="")
    opened = models.BooleanField(_("opening recorded"), default=False)
    closed = models.BooleanField(_("closing recorded"), default=False)

    class Meta:
        verbose_name = _("audit trail head")
        verbose_name_plural = _("audit trail heads")

    def __str__(self) -> str:
        return f"{self.poll_id}: {self.seq}"


class WebhookEvent(models.TextChoices):
    """What a webhook subscription may hear of."""

    POLL_CREATED = "poll.created", _("a poll was created")
    POLL_OPENED = "poll.opened", _("a scheduled poll opened")
    POLL_CLOSED = "poll.closed", _("a poll closed, or expired")
    POLL_DELETED = "poll.deleted", _("a poll was deleted")
    VOTE_CAST = "vote.cast", _("a ballot was cast")
    VOTE_CHANGED = "vote.changed", _("a ballot was changed")
    VOTE_RETRACTED = "vote.retracted", _("a ballot was withdrawn")


#: The longest URL a webhook subscription takes.
WEBHOOK_URL_LENGTH = 2000


class WebhookSubscription(models.Model):
    """Where to send which events: the events of the polls its creator owns or, for a
    subscription of a staff user's made ``site_wide``, of every poll. Each event is signed with
    ``secret`` (HMAC-SHA256), which is never shown again once given."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("created by"),
    )
    url = models.URLField(_("URL"), max_length=WEBHOOK_URL_LENGTH)
    secret = models.CharField(_("secret"), max_length=255)
    #: The events sent: a list of :class:`WebhookEvent` values.
    events = models.JSONField(_("events"), default=list)
    site_wide = models.BooleanField(
        _("site-wide"), default=False, help_text=_("Every poll's events, not only the creator's.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")
        ordering = ("id",)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one subscription: the outbox. Written in the transaction of the change it
    tells of, so nothing is announced that did not commit and nothing committed goes untold;
    sent by ``polls_deliver`` (or a site's task runner), retried with backoff until it is
    delivered or, after ``WEBHOOK_MAX_ATTEMPTS``, parked as failed."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    subscription = models.ForeignKey(
        WebhookSubscription,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("subscription"),
    )
    #: The event's id, the same in every subscription's delivery of it: receivers deduplicate
    #: on it.
    event_id = models.UUIDField(_("event id"), db_index=True)
    event = models.CharField(_("event"), max_length=32, choices=WebhookEvent.choices)
    #: The poll the event is about (an id: a deleted poll's events are still sent).
    poll_id = models.BigIntegerField(_("poll"))
    data = models.JSONField(_("data"), default=dict)
    created_at = models.DateTimeField(_("created at"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    #: When the next attempt is due; while an attempt runs, when its lease runs out.
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    #: Which sender holds the delivery (a random token per claim); empty when none does.
    claimed_by = models.CharField(_("claimed by"), max_length=32, blank=True, default="")
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ("id",)
        indexes = (
            models.Index(fields=("status", "next_attempt_at"), name="django_polls_delivery_due"),
        )

    def __str__(self) -> str:
        return f"{self.event} {self.event_id} → {self.subscription_id}"


class WebhookClock(models.Model):
    """Until when the polls that opened or expired by the clock have been announced to webhooks
    (one row): each round of the sender announces those of the time since, once."""

    swept_at = models.DateTimeField(_("announced until"))

    class Meta:
        verbose_name = _("webhook clock")
        verbose_name_plural = _("webhook clock")

    def __str__(self) -> str:
        return str(self.swept_at)
