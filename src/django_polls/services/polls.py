"""A poll's lifecycle: create, update, close and delete, each in a transaction under the poll's
exclusive lock (see :mod:`django_polls.services.locks`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import FieldDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import ManyToManyField
from django.utils.translation import gettext, gettext_lazy, ngettext

import django_polls.services.webhooks as webhooks
from django_polls import methods, signals
from django_polls.changes import announce_change
from django_polls.conf import polls_settings
from django_polls.methods.score import DEFAULT_MAX_SCORE
from django_polls.models import (
    MAX_SCORE_LIMIT,
    STRICTNESS,
    Anonymity,
    Method,
    Option,
    Participation,
    Poll,
    ResultsVisibility,
    Tally,
    choice_limits,
    poll_clock,
    read_poll_clock,
)
from django_polls.services.audit import Action, edited, poll_closed, poll_created, record
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
        raise InvalidInput({"title": [gettext("This field may not be blank.")]})
    if len(title) > limit:
        raise InvalidInput({"title": [too_long(limit)]})
    return title


def clean_description(description: str) -> str:
    limit = polls_settings.MAX_DESCRIPTION_LENGTH
    if len(description) > limit:
        raise InvalidInput({"description": [too_long(limit)]})
    return description


def too_long(limit: int) -> str:
    """DRF's own message (and so its translations) for a text over ``limit`` characters."""
    return gettext("Ensure this field has no more than {max_length} characters.").format(
        max_length=limit
    )


DUPLICATE_OPTIONS = gettext_lazy("Option texts must be unique within a poll.")


def check_option_count(count: int) -> None:
    low, high = polls_settings.MIN_OPTIONS, polls_settings.MAX_OPTIONS
    if not low <= count <= high:
        raise InvalidInput(
            {
                "options": [
                    gettext("A poll needs between %(low)d and %(high)d options.")
                    % {"low": low, "high": high}
                ]
            }
        )


def clean_option_texts(texts: Sequence[str]) -> list[str]:
    """Trimmed texts, MIN_OPTIONS to MAX_OPTIONS of them, non-blank, unique ignoring case."""
    check_option_count(len(texts))
    limit = polls_settings.MAX_OPTION_LENGTH
    cleaned = [text.strip() for text in texts]
    if any(not text for text in cleaned):
        raise InvalidInput({"options": [gettext("Option texts may not be blank.")]})
    if any(len(text) > limit for text in cleaned):
        raise InvalidInput(
            {
                "options": [
                    ngettext(
                        "Ensure each option text has no more than %(limit)d character.",
                        "Ensure each option text has no more than %(limit)d characters.",
                        limit,
                    )
                    % {"limit": limit}
                ]
            }
        )
    folded = [text.casefold() for text in cleaned]
    if len(set(folded)) != len(folded):
        raise InvalidInput({"options": [DUPLICATE_OPTIONS]})
    return cleaned


def clean_expiry(expires_at: datetime | None, *, current: datetime | None = None) -> None:
    """A new expiry must lie in the future; an unchanged one is accepted as it is."""
    if expires_at is None or expires_at == current:
        return
    if expires_at <= read_poll_clock():
        raise InvalidInput({"expires_at": [gettext("The expiry must be in the future.")]})


# -- ballot policies ------------------------------------------------------------------------------

#: A poll's policy fields, and their values on a poll that sets none (v1's behaviour).
POLICY_DEFAULTS: dict[str, Any] = {
    "method": Method.SINGLE,
    "min_choices": 1,
    "max_choices": None,
    "opens_at": None,
    "results_visibility": ResultsVisibility.ALWAYS,
    "anonymity": Anonymity.ANONYMOUS,
    "allow_vote_change": True,
    "voter_group_id": None,
    "max_score": None,
}
#: What voters were told when they voted: fixed once the poll has votes, like its options.
FROZEN_ONCE_VOTED = ("method", "anonymity", "allow_vote_change", "opens_at", "max_score")


def user_groups_field() -> ManyToManyField[Any, Any] | None:
    """The site's user model's ``groups`` (Django's PermissionsMixin), or None without them."""
    try:
        field = get_user_model()._meta.get_field("groups")
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, ManyToManyField) and field.related_model is Group else None


def voter_groups_supported() -> bool:
    """Whether the site's user model has Django's ``groups``: without them a poll's voter group
    could never be checked."""
    return user_groups_field() is not None


def not_a_choice(value: Any) -> str:
    """DRF's own message (and so its translations) for a value that is not one of the choices."""
    return gettext('"{input}" is not a valid choice.').format(input=value)


def _choice(field: str, value: Any, choices: type[Any]) -> Any:
    if value not in choices.values:
        raise InvalidInput({field: [not_a_choice(value)]})
    return value


def clean_policies(
    current: dict[str, Any],
    sent: dict[str, Any],
    *,
    option_count: int,
    options_sent: bool = False,
    expires_at: datetime | None = None,
    expires_sent: bool = False,
) -> dict[str, Any]:
    """The poll's policy fields once ``sent`` (only the fields given, plus
    ``allow_multiple_votes``) is applied to ``current``, checked as a whole.

    ``max_choices`` is kept as given (None: every option). Choosing ``single`` sets the limits
    to 1; ``secret`` makes ballots final. Raises :class:`InvalidInput`, keyed by the field that
    was sent (``options`` or ``expires_at`` when those move a limit they no longer fit).
    """
    sent = dict(sent)
    policies = {**current, **sent}
    for field, choices in (
        ("results_visibility", ResultsVisibility),
        ("anonymity", Anonymity),
    ):
        if field in sent:
            _choice(field, sent[field], choices)
    if "method" in sent and sent["method"] not in methods.registered():
        raise InvalidInput({"method": [not_a_choice(sent["method"])]})
    multiple = sent.pop("allow_multiple_votes", None)
    policies.pop("allow_multiple_votes", None)
    if multiple is not None:
        if "method" in sent:
            if multiple != (sent["method"] == Method.MULTIPLE):
                raise InvalidInput(
                    {
                        "allow_multiple_votes": [
                            gettext('Contradicts method "%(method)s".') % {"method": sent["method"]}
                        ]
                    }
                )
        else:
            policies["method"] = Method.MULTIPLE if multiple else Method.SINGLE
    _clean_choice_limits(policies, sent, option_count=option_count, options_sent=options_sent)
    _clean_max_score(policies, sent)
    if policies["anonymity"] == Anonymity.SECRET:
        if sent.get("allow_vote_change") is True:
            raise InvalidInput(
                {
                    "allow_vote_change": [
                        gettext("A secret ballot cannot be changed: it must be false.")
                    ]
                }
            )
        policies["allow_vote_change"] = False
    opens_at = policies["opens_at"]
    if opens_at is not None and expires_at is not None and opens_at >= expires_at:
        field = "expires_at" if expires_sent and "opens_at" not in sent else "opens_at"
        raise InvalidInput({field: [gettext("The poll must open before it expires.")]})
    if sent.get("voter_group_id") is not None and not voter_groups_supported():
        raise InvalidInput(
            {
                "voter_group": [
                    gettext("This site's user model has no groups: voter groups cannot work.")
                ]
            }
        )
    return policies


def _clean_max_score(policies: dict[str, Any], sent: dict[str, Any]) -> None:
    """``max_score`` belongs to the methods that take one (score: 1 to 10, 5 by default) and is
    null on every other poll."""
    takes = methods.get_method(policies["method"]).takes_max_score
    value = sent.get("max_score")
    if not takes:
        if value is not None:
            raise InvalidInput(
                {
                    "max_score": [
                        gettext("A %(method)s poll takes no max_score.")
                        % {"method": policies["method"]}
                    ]
                }
            )
        policies["max_score"] = None
        return
    if value is None:
        policies["max_score"] = policies.get("max_score") or DEFAULT_MAX_SCORE
        return
    if type(value) is not int or not 1 <= value <= MAX_SCORE_LIMIT:
        raise InvalidInput(
            {
                "max_score": [
                    gettext("Ensure this value is from 1 to %(high)d.") % {"high": MAX_SCORE_LIMIT}
                ]
            }
        )


def _clean_choice_limits(
    policies: dict[str, Any], sent: dict[str, Any], *, option_count: int, options_sent: bool
) -> None:
    low, high = sent.get("min_choices"), sent.get("max_choices")
    if policies["method"] == Method.SINGLE:
        # One option per ballot, by definition: 1 and 1 (stored as 1 and None).
        if "min_choices" in sent and low != 1:
            raise InvalidInput({"min_choices": [gettext("A single-choice poll takes exactly 1.")]})
        if "max_choices" in sent and high not in (None, 1):
            raise InvalidInput({"max_choices": [gettext("A single-choice poll takes exactly 1.")]})
        policies["min_choices"], policies["max_choices"] = 1, None
        return
    low, high = policies["min_choices"], policies["max_choices"]
    if not isinstance(low, int) or low < 1:
        raise InvalidInput({"min_choices": [at_least_one()]})
    if high is not None and (not isinstance(high, int) or high < 1):
        raise InvalidInput({"max_choices": [at_least_one()]})
    effective = option_count if high is None else high
    if effective > option_count:
        field = "options" if options_sent and "max_choices" not in sent else "max_choices"
        raise InvalidInput(
            {
                field: [
                    gettext("max_choices (%(high)d) exceeds the number of options (%(count)d).")
                    % {"high": high, "count": option_count}
                ]
            }
        )
    if low > effective:
        field = "min_choices"
        if "min_choices" not in sent:
            field = "max_choices" if "max_choices" in sent else "options"
        raise InvalidInput(
            {
                field: [
                    gettext("min_choices (%(low)d) exceeds max_choices (%(high)d).")
                    % {"low": low, "high": effective}
                ]
            }
        )


def at_least_one() -> str:
    return gettext("Ensure this value is at least 1.")


def _limits(policies: dict[str, Any], option_count: int) -> tuple[int, int]:
    """The effective (min, max) choices of these policies."""
    return choice_limits(
        policies["method"],
        policies["min_choices"],
        policies["max_choices"],
        lambda: option_count,
    )


def _check_frozen(
    locked: Poll, old: dict[str, Any], new: dict[str, Any], *, option_count: int
) -> None:
    """Refuse what would change the terms voters voted under (the caller knows it has votes)."""
    if any(old[field] != new[field] for field in FROZEN_ONCE_VOTED) or _limits(
        old, option_count
    ) != _limits(new, option_count):
        raise PollHasVotes()
    if STRICTNESS.index(new["results_visibility"]) < STRICTNESS.index(old["results_visibility"]):
        raise PollHasVotes()


def _policies_given(absent: Any, *, voter_group: Any, **fields: Any) -> dict[str, Any]:
    """The policy arguments of :func:`create_poll` or :func:`update_poll` that were given (not
    ``absent``), as :func:`clean_policies` takes them: the voter group by its id."""
    if voter_group is not absent:
        fields["voter_group_id"] = None if voter_group is None else voter_group.pk
    return {field: value for field, value in fields.items() if value is not absent}


def has_votes(poll: Poll) -> bool:
    """Whether anyone voted on the poll: a participation, which every ballot writes (a secret
    poll has no vote rows)."""
    return Participation.objects.filter(poll=poll).exists()


def create_poll(
    *,
    created_by: User,
    title: str,
    options: Sequence[str],
    description: str = "",
    expires_at: datetime | None = None,
    allow_multiple_votes: bool | None = None,
    method: str | None = None,
    min_choices: int | None = None,
    max_choices: int | None = None,
    opens_at: datetime | None = None,
    results_visibility: str = ResultsVisibility.ALWAYS,
    anonymity: str = Anonymity.ANONYMOUS,
    allow_vote_change: bool | None = None,
    voter_group: Group | None = None,
    max_score: int | None = None,
) -> Poll:
    """Create a poll with its options. Policies left out (None) take v1's behaviour: the method
    from ``allow_multiple_votes`` (single by default), 1 to every option, open at once, results
    always visible, anonymous, ballots that can change, any signed-in voter.

    ``opens_at`` may lie in the past: the poll is then open at once.
    """
    title = clean_title(title)
    description = clean_description(description)
    texts = clean_option_texts(options)
    clean_expiry(expires_at)
    given = _policies_given(
        None,
        method=method,
        min_choices=min_choices,
        max_choices=max_choices,
        opens_at=opens_at,
        results_visibility=results_visibility,
        anonymity=anonymity,
        allow_vote_change=allow_vote_change,
        voter_group=voter_group,
        allow_multiple_votes=allow_multiple_votes,
        max_score=max_score,
    )
    policies = clean_policies(
        POLICY_DEFAULTS,
        given,
        option_count=len(texts),
        expires_at=expires_at,
    )
    with transaction.atomic():
        poll = Poll.objects.create(
            title=title,
            description=description,
            expires_at=expires_at,
            allow_multiple_votes=policies["method"] == Method.MULTIPLE,
            created_by=created_by,
            **policies,
        )
        _add_options(poll, texts)
        _prepare_tallies(poll)
        poll_created(poll, actor=created_by)
        webhooks.poll_created(poll)
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
    method: Any = UNCHANGED,
    min_choices: Any = UNCHANGED,
    max_choices: Any = UNCHANGED,
    opens_at: Any = UNCHANGED,
    results_visibility: Any = UNCHANGED,
    anonymity: Any = UNCHANGED,
    allow_vote_change: Any = UNCHANGED,
    voter_group: Any = UNCHANGED,
    max_score: Any = UNCHANGED,
    actor: Any = None,
) -> Poll:
    """Change the given fields, under the poll's exclusive lock; ``actor`` is who did it (for
    the audit trail).

    ``options`` replaces the list (new ids) on a poll without votes. Once the poll has votes its
    options, method, choice limits, anonymity, vote changes and opening time are frozen (the same
    values are accepted as unchanged; the limits compare as their effective numbers) and its
    results visibility may only become stricter; the title, description, expiry and voter group
    stay editable.
    """
    changes: dict[str, Any] = {}
    if title is not UNCHANGED:
        changes["title"] = clean_title(title)
    if description is not UNCHANGED:
        changes["description"] = clean_description(description)
    texts = clean_option_texts(options) if options is not UNCHANGED else None
    sent = _policies_given(
        UNCHANGED,
        method=method,
        min_choices=min_choices,
        max_choices=max_choices,
        opens_at=opens_at,
        results_visibility=results_visibility,
        anonymity=anonymity,
        allow_vote_change=allow_vote_change,
        voter_group=voter_group,
        allow_multiple_votes=allow_multiple_votes,
        max_score=max_score,
    )
    with transaction.atomic():
        locked = lock_poll(poll.pk, exclusive=True)
        if expires_at is not UNCHANGED:
            clean_expiry(expires_at, current=locked.expires_at)
            changes["expires_at"] = expires_at
        # The options matter to the limits of every method but single, and to a poll with votes.
        counted = (
            locked.method != Method.SINGLE
            or sent.get("method", Method.SINGLE) != Method.SINGLE
            or sent.get("allow_multiple_votes")
        )
        current_texts = (
            list(locked.options.values_list("text", flat=True))
            if counted or texts is not None
            else []
        )
        old = {field: getattr(locked, field) for field in POLICY_DEFAULTS}
        new = clean_policies(
            old,
            sent,
            option_count=len(texts if texts is not None else current_texts),
            options_sent=texts is not None,
            expires_at=changes.get("expires_at", locked.expires_at),
            expires_sent="expires_at" in changes,
        )
        voted = _touches_the_terms(old, new, texts) and has_votes(locked)
        if voted:
            if texts is not None and texts != current_texts:
                raise PollHasVotes()
            _check_frozen(locked, old, new, option_count=len(current_texts))
            # Equal limits may be spelled differently (None or the number of options).
            new["min_choices"], new["max_choices"] = old["min_choices"], old["max_choices"]
        changes.update(new)
        changes["allow_multiple_votes"] = new["method"] == Method.MULTIPLE
        changed = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        replace_options = texts is not None and not voted
        if changed:
            Poll.objects.filter(pk=locked.pk).update(**changed)
        if texts is not None and replace_options:
            locked.options.all().delete()
            _add_options(locked, texts)
        if replace_options or {"method", "max_score"} & set(changed):
            locked.refresh_from_db(fields=["method", "max_score"])
            _prepare_tallies(locked)  # the poll has no votes: its counts start again
        if changed or replace_options:
            edits = {field: (getattr(locked, field), value) for field, value in changed.items()}
            if replace_options and texts != current_texts:
                edits["options"] = (current_texts, texts)
            edited(locked.pk, edits, actor=actor)
            announce_change(poll_id=locked.pk)
    locked.refresh_from_db()
    return locked


def _touches_the_terms(old: dict[str, Any], new: dict[str, Any], texts: list[str] | None) -> bool:
    """Whether the update would change what a poll with votes keeps (so whether to ask)."""
    return (
        texts is not None
        or any(old[field] != new[field] for field in FROZEN_ONCE_VOTED)
        or (old["min_choices"], old["max_choices"]) != (new["min_choices"], new["max_choices"])
        or old["results_visibility"] != new["results_visibility"]
    )


def close_poll(*, poll: Poll, actor: Any = None) -> Poll:
    """Close the poll for good. Closing a closed poll changes nothing."""
    with transaction.atomic():
        locked = lock_poll(poll.pk, exclusive=True)
        if locked.closed_at is None:
            # Stamped once the ballots in flight have committed, so none is dated after it, by
            # the clock that stamps them.
            Poll.objects.filter(pk=poll.pk).update(closed_at=_now_by_ballot_clock())
            poll_closed(poll.pk, actor=actor)
            locked.refresh_from_db()
            webhooks.poll_closed(locked)
            announce_change(poll_id=poll.pk)
            transaction.on_commit(
                lambda: signals.poll_closed.send(sender=Poll, poll=poll), robust=True
            )
    poll.refresh_from_db(fields=["closed_at"])
    return poll


#: The clock that stamps ballots and closings and judges "open": see :func:`models.poll_clock`.
_now_by_ballot_clock = poll_clock


def delete_poll(*, poll: Poll, actor: Any = None) -> None:
    with transaction.atomic():
        # Lock first so no ballot is in flight while the rows go.
        locked = lock_poll(poll.pk, exclusive=True)
        record(poll.pk, Action.DELETED, actor=actor, data={"title": locked.title})
        webhooks.poll_deleted(locked)
        Poll.objects.filter(pk=poll.pk).delete()
        announce_change(poll_id=poll.pk)


def _prepare_tallies(poll: Poll) -> None:
    """The poll's counts at 0 under its method's initial keys (score: each option and score),
    those of an earlier method or set of options gone; the count of changes (keys ``#...``)
    stays. Called on a poll without votes, whose counts are all 0."""
    try:
        method = methods.get_method(poll.method)
    except methods.UnknownMethod:
        return
    Tally.objects.filter(poll_id=poll.pk, ballots=0).exclude(key__startswith="#").delete()
    option_ids = list(
        Option.objects.filter(poll_id=poll.pk).order_by("pk").values_list("pk", flat=True)
    )
    keys = method.initial_tally_keys(poll=poll, option_ids=option_ids)
    Tally.objects.bulk_create(
        (Tally(poll_id=poll.pk, key=key, ballots=0) for key in keys), ignore_conflicts=True
    )


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
