"""A poll's lifecycle: create, update, close and delete, each in a transaction under the poll's
exclusive lock (see :mod:`django_polls.services.locks`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction

from django_polls import signals
from django_polls.changes import announce_change
from django_polls.conf import polls_settings
from django_polls.models import ClockTimestamp, Method, Option, Poll, Vote, poll_clock
from django_polls.services.errors import InvalidInput, PollHasVotes
from django_polls.services.locks import is_unique_violation, lock_poll

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: Marks an argument of :func:`update_poll` that should stay as it is.
UNCHANGED: Any = _Unchanged()


def clean_title(title: str) -> str:
    title = title.strip()
    limit = polls_settings.MAX_TITLE_LENGTH
    if not title:
        raise InvalidInput({"title": ["This field may not be blank."]})
    if len(title) > limit:
        raise InvalidInput({"title": [f"Ensure this field has no more than {limit} characters."]})
    return title


def clean_description(description: str) -> str:
    limit = polls_settings.MAX_DESCRIPTION_LENGTH
    if len(description) > limit:
        raise InvalidInput(
            {"description": [f"Ensure this field has no more than {limit} characters."]}
        )
    return description


DUPLICATE_OPTIONS = "Option texts must be unique within a poll."


def check_option_count(count: int) -> None:
    low, high = polls_settings.MIN_OPTIONS, polls_settings.MAX_OPTIONS
    if not low <= count <= high:
        raise InvalidInput({"options": [f"A poll needs between {low} and {high} options."]})


def clean_option_texts(texts: Sequence[str]) -> list[str]:
    """Trimmed texts, MIN_OPTIONS to MAX_OPTIONS of them, non-blank, unique ignoring case."""
    check_option_count(len(texts))
    limit = polls_settings.MAX_OPTION_LENGTH
    cleaned = [text.strip() for text in texts]
    if any(not text for text in cleaned):
        raise InvalidInput({"options": ["Option texts may not be blank."]})
    if any(len(text) > limit for text in cleaned):
        raise InvalidInput(
            {"options": [f"Ensure each option text has no more than {limit} characters."]}
        )
    folded = [text.casefold() for text in cleaned]
    if len(set(folded)) != len(folded):
        raise InvalidInput({"options": [DUPLICATE_OPTIONS]})
    return cleaned


def clean_expiry(expires_at: datetime | None, *, current: datetime | None = None) -> None:
    """A new expiry must lie in the future; an unchanged one is accepted as it is."""
    if expires_at is None or expires_at == current:
        return
    if expires_at <= _read_poll_clock():
        raise InvalidInput({"expires_at": ["The expiry must be in the future."]})


def _read_poll_clock() -> datetime:
    """The time by :func:`poll_clock`, the clock that will judge the expiry: on PostgreSQL a
    query (only when an expiry is set or moved), elsewhere this process's clock."""
    clock = poll_clock()
    if isinstance(clock, datetime):
        return clock
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now: datetime = cursor.fetchone()[0]
    return now


def create_poll(
    *,
    created_by: User,
    title: str,
    options: Sequence[str],
    description: str = "",
    expires_at: datetime | None = None,
    allow_multiple_votes: bool = False,
) -> Poll:
    title = clean_title(title)
    description = clean_description(description)
    texts = clean_option_texts(options)
    clean_expiry(expires_at)
    with transaction.atomic():
        poll = Poll.objects.create(
            title=title,
            description=description,
            expires_at=expires_at,
            allow_multiple_votes=allow_multiple_votes,
            method=Method.MULTIPLE if allow_multiple_votes else Method.SINGLE,
            created_by=created_by,
        )
        _add_options(poll, texts)
        transaction.on_commit(
            lambda: signals.poll_created.send(sender=Poll, poll=poll, created_by=created_by),
            robust=True,
        )
    return poll


def update_poll(
    *,
    poll: Poll,
    title: Any = UNCHANGED,
    description: Any = UNCHANGED,
    expires_at: Any = UNCHANGED,
    allow_multiple_votes: Any = UNCHANGED,
    options: Any = UNCHANGED,
) -> Poll:
    """Change the given fields. Options and the vote mode are frozen once the poll has votes.

    ``options`` replaces the list (new ids) on a poll without votes; on a poll with votes the
    same texts in the same order are accepted as unchanged and anything else is refused.
    """
    changes: dict[str, Any] = {}
    if title is not UNCHANGED:
        changes["title"] = clean_title(title)
    if description is not UNCHANGED:
        changes["description"] = clean_description(description)
    texts = clean_option_texts(options) if options is not UNCHANGED else None
    with transaction.atomic():
        locked = lock_poll(poll.pk, exclusive=True)
        if expires_at is not UNCHANGED:
            clean_expiry(expires_at, current=locked.expires_at)
            changes["expires_at"] = expires_at
        if allow_multiple_votes is not UNCHANGED:
            changes["allow_multiple_votes"] = allow_multiple_votes
            changes["method"] = Method.MULTIPLE if allow_multiple_votes else Method.SINGLE
        mode = changes.get("allow_multiple_votes", locked.allow_multiple_votes)
        mode_changes = mode != locked.allow_multiple_votes
        has_votes = (texts is not None or mode_changes) and Vote.objects.filter(
            poll=locked
        ).exists()
        if has_votes and (
            mode_changes or texts != list(locked.options.values_list("text", flat=True))
        ):
            raise PollHasVotes()
        changed = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if changed:
            Poll.objects.filter(pk=locked.pk).update(**changed)
        if texts is not None and not has_votes:
            locked.options.all().delete()
            _add_options(locked, texts)
        if changed or (texts is not None and not has_votes):
            announce_change(poll_id=locked.pk)
    locked.refresh_from_db()
    return locked


def close_poll(*, poll: Poll) -> Poll:
    """Close the poll for good. Closing a closed poll changes nothing."""
    with transaction.atomic():
        locked = lock_poll(poll.pk, exclusive=True)
        if locked.closed_at is None:
            # Stamped once the ballots in flight have committed, so none is dated after it, by
            # the clock that stamps them.
            Poll.objects.filter(pk=poll.pk).update(closed_at=_now_by_ballot_clock())
            announce_change(poll_id=poll.pk)
            transaction.on_commit(
                lambda: signals.poll_closed.send(sender=Poll, poll=poll), robust=True
            )
    poll.refresh_from_db(fields=["closed_at"])
    return poll


#: The clock that stamps ballots and closings and judges "open": see :func:`models.poll_clock`.
_ClockTimestamp = ClockTimestamp
_now_by_ballot_clock = poll_clock


def delete_poll(*, poll: Poll) -> None:
    with transaction.atomic():
        # Lock first so no ballot is in flight while the rows go.
        lock_poll(poll.pk, exclusive=True)
        Poll.objects.filter(pk=poll.pk).delete()
        announce_change(poll_id=poll.pk)


def _add_options(poll: Poll, texts: Iterable[str]) -> None:
    """Create the options (inside the caller's transaction, which an error rolls back whole).

    The database compares texts with its own ``lower()``, which folds some letters unlike
    Python (``"İ"`` and ``"i"``): its verdict is reported like ours.
    """
    try:
        Option.objects.bulk_create(
            Option(poll=poll, text=text, order=index) for index, text in enumerate(texts)
        )
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise InvalidInput({"options": [DUPLICATE_OPTIONS]}) from exc
        raise
