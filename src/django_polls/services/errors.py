"""What the services raise when a request breaks a rule: each with a stable ``code``, part of the
API (the views turn them into 400, 403, 404 and 409 answers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class PollRuleError(Exception):
    """A request that breaks a voting rule. ``code`` is stable and part of the API."""

    code = "invalid"
    default_message: StrOrPromise = gettext_lazy("The request breaks a poll rule.")

    def __init__(self, message: StrOrPromise | None = None) -> None:
        # Lazy until read: the message is in the language active when the API answers.
        self.message: StrOrPromise = message or self.default_message
        super().__init__(self.message)


class InvalidInput(PollRuleError):
    """Input that can never succeed; ``errors`` maps field names to messages (HTTP 400)."""

    def __init__(self, errors: Mapping[str, Sequence[StrOrPromise]]) -> None:
        # Lazy messages are read now, in the language of the request being answered.
        self.errors = {field: [str(message) for message in v] for field, v in errors.items()}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))


class Hidden(PollRuleError):
    """What the caller may not see on this poll (HTTP 403)."""

    code = "hidden"


class ResultsHidden(Hidden):
    code = "results_hidden"
    default_message = gettext_lazy(
        "This poll's results are not shown to you (see its results_visibility)."
    )


class BallotsHidden(Hidden):
    code = "ballots_hidden"
    default_message = gettext_lazy("This poll does not list who chose what: only public polls do.")


class Conflict(PollRuleError):
    """Input that is fine but clashes with the poll's state or the caller's votes (HTTP 409)."""

    code = "conflict"


class PollClosed(Conflict):
    code = "poll_closed"
    default_message = gettext_lazy("This poll is closed or expired and no longer takes votes.")


class AlreadyVoted(Conflict):
    code = "already_voted"
    default_message = gettext_lazy("You have already voted on this poll as far as it allows.")


class PollHasVotes(Conflict):
    code = "poll_has_votes"
    default_message = gettext_lazy(
        "This poll has votes: its options, method (allow_multiple_votes), min_choices, "
        "max_choices, anonymity, allow_vote_change and opens_at can no longer change, and "
        "results_visibility can only become stricter."
    )


class PollChanged(Conflict):
    code = "poll_changed"
    default_message = gettext_lazy(
        "The poll changed while the vote was being stored; fetch it and retry."
    )


class NotVoted(PollRuleError):
    code = "not_voted"
    default_message = gettext_lazy("You have not voted on this poll.")


class PollNotOpen(Conflict):
    code = "poll_not_open"
    default_message = gettext_lazy(
        "This poll is scheduled: it takes votes from its opening time on."
    )


class VoteFinal(Conflict):
    code = "vote_final"
    default_message = gettext_lazy(
        "Ballots on this poll are final: they cannot be changed or withdrawn."
    )


class NotEligible(PollRuleError):
    code = "not_eligible"
    default_message = gettext_lazy("You may not vote on this poll.")


class IdempotencyKeyInvalid(PollRuleError):
    """An ``Idempotency-Key`` header the API does not take (HTTP 400)."""

    code = "invalid_idempotency_key"
    default_message = gettext_lazy(
        "The Idempotency-Key header must be 1 to 255 printable ASCII characters without spaces."
    )


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"
    default_message = gettext_lazy(
        "A request with this Idempotency-Key is still being processed; retry once it is done."
    )


class IdempotencyKeyReused(PollRuleError):
    """The key of an answer kept for another request (HTTP 422)."""

    code = "idempotency_key_reused"
    default_message = gettext_lazy(
        "This Idempotency-Key was used with another request (method, path or body); use a new "
        "key for a new request."
    )


class ExportRefused(Hidden):
    """An export asked for by somebody other than the poll's owner or staff (HTTP 403)."""

    code = "permission_denied"
    default_message = gettext_lazy("Only the poll's creator or a staff user may export it.")
