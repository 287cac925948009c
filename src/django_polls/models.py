"""Polls, their options and the votes cast on them.

The voting rules are held by the database as well as by :mod:`django_polls.services`:

* ``Vote`` rows are unique per (poll, voter, option), so nobody votes twice for one option;
* on a single-vote poll a partial unique index allows one row per (poll, voter). Each vote copies
  the poll's ``allow_multiple_votes`` and a composite foreign key (added in migration 0002) ties
  the copy to the poll, so the flag on a vote can never disagree with its poll;
* a second composite foreign key ties a vote's option to the vote's poll;
* ``Option.votes`` is a counter in a positive integer column (never negative), kept equal to the
  option's vote rows by the services in the same transaction as each vote and retraction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
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


class PollQuerySet(models.QuerySet["Poll"]):
    def open(self, *, at: Any = None) -> PollQuerySet:
        """Polls that take votes: not closed and not expired (by default, by :func:`poll_clock`)."""
        now = poll_clock() if at is None else at
        return self.filter(closed_at__isnull=True).filter(
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
            .select_related("created_by")
            .prefetch_related(
                models.Prefetch("options", queryset=Option.objects.order_by("order", "id"))
            )
        )


class Poll(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True, editable=False)
    allow_multiple_votes = models.BooleanField(_("allow multiple votes"), default=False)
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
        """Does the poll take votes at ``moment``: not closed and not expired."""
        return self.closed_at is None and (self.expires_at is None or self.expires_at > moment)

    @property
    def total_votes(self) -> int:
        """Votes (selections) on the poll: the sum of the option counters, O(options)."""
        return sum(option.votes for option in self.options.all())


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
    # Kept equal to the option's Vote rows by django_polls.services; verified by polls_recount.
    # A positive integer column, so the database refuses a negative count.
    votes = models.PositiveIntegerField(_("votes"), default=0, editable=False)

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
