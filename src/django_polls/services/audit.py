"""The audit trail: each poll's creation, edits, opening, closing and deletion, and every ballot
changed or withdrawn, as entries that each hold the hash of the entry before.

An entry is written in the transaction of the change it records (so nothing is recorded that did
not happen, and nothing that happened goes unrecorded), under the lock of its poll's
:class:`~django_polls.models.AuditHead`, which holds the number and hash of the poll's last entry.
The hash covers the entry's poll, number, action, actor, time and data and the hash before it:
:func:`verify` finds an entry edited afterwards (its hash no longer matches), removed (a number
missing, or the next entry's previous hash not matching) or cut from the end (the head ahead of
the last entry). Whoever can write every table can still rewrite a trail whole, from the entry
changed to its head: keep a copy of the heads elsewhere (the ``hash`` of each poll's last entry)
to tell that too.

Ballots cast are not recorded (they are the counts and, on public polls, the ballots); a changed
or withdrawn ballot is, naming its voter and, on public polls only, the choices. Opening and
expiring at their time are recorded by :func:`record_transitions` (``polls_record_transitions``,
run every minute), dated at the poll's opening or expiry time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Model, OuterRef, QuerySet
from django.utils import timezone

from django_polls.conf import polls_settings
from django_polls.models import (
    Anonymity,
    AuditHead,
    AuditRecord,
    BallotChange,
    Poll,
    Status,
    poll_clock,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Action = AuditRecord.Action

#: The audit action of each kind of ballot change.
BALLOT_ACTIONS = {
    BallotChange.Action.REPLACED: Action.BALLOT_CHANGED,
    BallotChange.Action.RETRACTED: Action.BALLOT_RETRACTED,
}


def record(
    poll_id: int,
    action: str,
    *,
    actor: Any = None,
    at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditRecord | None:
    """Append an entry to the poll's trail, in the caller's transaction; None where the site
    keeps no trail (``DJANGO_POLLS["AUDIT_TRAIL"]``). ``actor`` is the user who did it (None,
    or an anonymous user: the app itself)."""
    if not polls_settings.AUDIT_TRAIL:
        return None
    with transaction.atomic():
        head = _locked_head(poll_id)
        entry = AuditRecord(
            poll_id=poll_id,
            seq=head.seq + 1,
            action=action,
            actor=str(actor.pk) if getattr(actor, "is_authenticated", False) else "",
            at=at or timezone.now(),
            data=dict(data or {}),
            prev_hash=head.hash,
        )
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
        flags = {"opened": True} if action == Action.OPENED else {}
        if action == Action.CLOSED:
            flags = {"closed": True}
        AuditHead.objects.filter(pk=poll_id).update(seq=entry.seq, hash=entry.hash, **flags)
    return entry


def poll_created(poll: Poll, *, actor: Any) -> None:
    """The poll's first entries: created (its title, options and policies), and opened when it
    is open at once."""
    if not polls_settings.AUDIT_TRAIL:
        return
    options = list(poll.options.order_by("order", "id").values_list("text", flat=True))
    record(poll.pk, Action.CREATED, actor=actor, at=poll.created_at, data=snapshot(poll, options))
    if poll.opens_at is None or poll.opens_at <= poll.created_at:
        record(poll.pk, Action.OPENED, actor=actor, at=poll.created_at)


def snapshot(poll: Poll, options: list[str]) -> dict[str, Any]:
    """A poll's audited fields and its options' texts, as its creation records them."""
    fields = {field: _plain(getattr(poll, field)) for field in AUDITED_FIELDS}
    return {**fields, "options": options}


def poll_closed(poll_id: int, *, actor: Any) -> None:
    """The poll closed (by its owner or staff), dated as its ``closed_at``."""
    if not polls_settings.AUDIT_TRAIL:
        return
    at = Poll.objects.filter(pk=poll_id).values_list("closed_at", flat=True).get()
    record(poll_id, Action.CLOSED, actor=actor, at=at)


def edited(poll_id: int, changes: Mapping[str, tuple[Any, Any]], *, actor: Any) -> None:
    """An edit: each field changed, as ``[old, new]``."""
    data = {field: [_plain(old), _plain(new)] for field, (old, new) in changes.items()}
    record(poll_id, Action.EDITED, actor=actor, data=data)


def ballot_changed(
    *,
    poll: Poll,
    voter: User,
    action: BallotChange.Action,
    previous: Any,
    current: Any,
    created_at: datetime,
) -> None:
    """A replaced or withdrawn ballot: kept in the poll's history of ballots
    (:class:`~django_polls.models.BallotChange`) and in its trail, where the choices appear on
    public polls only."""
    BallotChange.objects.create(
        poll_id=poll.pk,
        voter=voter,
        action=action,
        previous=previous,
        current=current,
        created_at=created_at,
    )
    public = poll.anonymity == Anonymity.PUBLIC
    data = {"previous": previous, "current": current} if public else {}
    record(poll.pk, BALLOT_ACTIONS[action], actor=voter, at=created_at, data=data)


def record_transitions(*, now: datetime | None = None) -> int:
    """Record the polls that opened or expired by the clock since: ``opened`` at their opening
    time, ``closed`` (``{"expired": true}``) at their expiry; returns how many entries. Polls
    without a trail yet (made before it was kept) are left alone."""
    if not polls_settings.AUDIT_TRAIL:
        return 0
    now = now or poll_clock()
    heads = AuditHead.objects.filter(poll_id=OuterRef("pk"))
    opening = Poll.objects.filter(
        Exists(heads.filter(opened=False)), opens_at__lte=now, closed_at__isnull=True
    )
    expiring = Poll.objects.filter(Exists(heads.filter(closed=False)), expires_at__lte=now)
    written = 0
    for poll_id, opens_at in opening.order_by("opens_at").values_list("pk", "opens_at"):
        assert opens_at is not None  # filtered on
        written += _transition(poll_id, Action.OPENED, opens_at, "opened", {})
    for poll_id, expires_at in expiring.order_by("expires_at").values_list("pk", "expires_at"):
        assert expires_at is not None
        written += _transition(poll_id, Action.CLOSED, expires_at, "closed", {"expired": True})
    return written


def _transition(poll_id: int, action: str, at: datetime, flag: str, data: dict[str, Any]) -> int:
    with transaction.atomic():
        head = _locked_head(poll_id)
        if getattr(head, flag):  # recorded meanwhile
            return 0
        record(poll_id, action, at=at, data=data)
    return 1


def trail(poll_id: int) -> QuerySet[AuditRecord]:
    """The poll's entries, first to last."""
    return AuditRecord.objects.filter(poll_id=poll_id).order_by("seq")


def actor_names(actors: Iterable[str]) -> dict[str, str]:
    """Each actor's name as ``DJANGO_POLLS["USER_DISPLAY"]`` gives it, by the key entries keep;
    users since deleted (and the app itself, ``""``) are left out. One query."""
    keys = {actor for actor in actors if actor}
    if not keys:
        return {}
    display = polls_settings.USER_DISPLAY
    users = get_user_model().objects.filter(pk__in=keys)
    return {str(user.pk): str(display(user)) for user in users}


@dataclasses.dataclass(frozen=True)
class Tampering:
    """Something :func:`verify` found: the poll, the entry number (None for the trail as a
    whole) and what is wrong."""

    poll_id: int
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"poll {self.poll_id}" + ("" if self.seq is None else f" entry {self.seq}")
        return f"{where}: {self.problem}"


def verify(*, poll_ids: list[int] | None = None) -> Iterator[Tampering]:
    """Check every trail (or those of ``poll_ids``) entry by entry, in constant memory."""
    heads = AuditHead.objects.order_by("poll_id")
    if poll_ids is not None:
        heads = heads.filter(poll_id__in=poll_ids)
    for head in heads.iterator(chunk_size=500):
        yield from _verify_trail(head)
    orphans = AuditRecord.objects.exclude(
        Exists(AuditHead.objects.filter(poll_id=OuterRef("poll_id")))
    )
    if poll_ids is not None:
        orphans = orphans.filter(poll_id__in=poll_ids)
    for poll_id in orphans.values_list("poll_id", flat=True).distinct():
        yield Tampering(poll_id, None, "entries without the head of their trail (head removed)")


def _verify_trail(head: AuditHead) -> Iterator[Tampering]:
    expected_seq, previous = 1, ""
    for entry in trail(head.poll_id).iterator(chunk_size=1000):
        if entry.seq != expected_seq:
            yield Tampering(head.poll_id, expected_seq, f"missing (the next entry is {entry.seq})")
        elif entry.prev_hash != previous:
            yield Tampering(head.poll_id, entry.seq, "does not follow the entry before it")
        if entry.hash != entry_hash(entry):
            yield Tampering(head.poll_id, entry.seq, "edited: its hash does not match it")
        expected_seq, previous = entry.seq + 1, entry.hash
    if (expected_seq - 1, previous) != (head.seq, head.hash):
        yield Tampering(
            head.poll_id,
            None,
            f"ends at entry {expected_seq - 1}, but its head says {head.seq}: entries removed "
            "from its end, or the head edited",
        )


def entry_hash(entry: AuditRecord) -> str:
    """SHA-256 over the entry's content and the hash before it, as canonical JSON."""
    at = entry.at.astimezone(dt_timezone.utc).isoformat(timespec="microseconds")
    content = [
        entry.prev_hash,
        entry.poll_id,
        entry.seq,
        str(entry.action),
        entry.actor,
        at,
        entry.data,
    ]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


#: The poll's fields that its creation records and its edits compare.
AUDITED_FIELDS = (
    "title",
    "description",
    "expires_at",
    "method",
    "min_choices",
    "max_choices",
    "max_score",
    "opens_at",
    "results_visibility",
    "anonymity",
    "allow_vote_change",
    "voter_group",
)


def _locked_head(poll_id: int) -> AuditHead:
    """The poll's head, locked for the rest of the transaction (made at its first entry)."""
    updated = AuditHead.objects.filter(pk=poll_id).update(seq=F("seq"))
    if not updated:
        try:
            with transaction.atomic():
                poll = Poll.objects.filter(pk=poll_id).first()
                status = None if poll is None else poll.status
                # A trail begun on a poll already open (or closed) does not record that later.
                AuditHead.objects.create(
                    poll_id=poll_id,
                    opened=status in (Status.OPEN, Status.CLOSED),
                    closed=status == Status.CLOSED,
                )
        except IntegrityError:  # begun by another transaction meanwhile
            pass
        AuditHead.objects.filter(pk=poll_id).update(seq=F("seq"))
    return AuditHead.objects.get(pk=poll_id)


def _plain(value: Any) -> Any:
    """A field's value as JSON keeps it (a related object as its key)."""
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, Model):
        return value.pk
    return value
