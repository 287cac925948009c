"""The voting rules, in one place.

Every write that matters (create, update, close and delete a poll; cast and retract a vote; repair
counters) is a function here, run in a transaction. Views, serializers, the admin and management
commands call these functions and never write votes or counters themselves. One module per idea:
:mod:`~django_polls.services.polls` (a poll's lifecycle), :mod:`~django_polls.services.ballots`
(cast, retract, read one's own; the one-statement ``options`` ballot),
:mod:`~django_polls.services.method_ballots` (ballots of every method, the whole-ballot ones),
:mod:`~django_polls.services.results` (results and counters),
:mod:`~django_polls.services.visibility` (who sees results and ballots),
:mod:`~django_polls.services.exports` (a poll's results and ballots as CSV or JSON, streamed),
:mod:`~django_polls.services.webhooks` (subscriptions and the outbox of events),
:mod:`~django_polls.services.locks` (the lock order) and :mod:`~django_polls.services.errors`;
this package exports their public names.

Concurrency, in short (docs/architecture.md has the whole story):

* Every transaction locks in one order: the poll, then option rows by ascending id, then vote
  rows. One order means no deadlocks.
* On PostgreSQL a ballot or retraction holds a *shared* lock on its poll (a transaction-scoped
  advisory lock plus ``FOR SHARE`` on the row), so ballots on one poll run side by side. Closing,
  editing, deleting and repairing a poll take the *exclusive* locks: they wait for the ballots in
  flight, and ballots that arrive later queue behind them (advisory locks are granted in order,
  so a busy poll can still be closed at once). Timestamps are taken after the locks.
* On MySQL/MariaDB the same order with row locks alone: the poll ``LOCK IN SHARE MODE`` for
  ballots and retractions, ``FOR UPDATE`` for poll changes, options ``FOR UPDATE`` through their
  primary key. InnoDB can still pick a ballot as a deadlock's victim when two wait on one
  duplicate vote row; such a ballot runs again
  (see :func:`~django_polls.services.locks.retrying_deadlocks`).
* SQLite serialises writers on the whole database; a transaction's first statement is a write.
* Duplicate ballots are refused by the unique indexes on ``Vote``; the loser's transaction rolls
  back whole.
"""

from __future__ import annotations

from django_polls.changes import announce_change
from django_polls.services.audit import Tampering, actor_names, record_transitions
from django_polls.services.audit import trail as audit_trail
from django_polls.services.audit import verify as verify_audit
from django_polls.services.ballots import (
    BALLOT_SQL,
    MyBallot,
    Receipt,
    Verdict,
    acast_vote,
    ballot_history,
    cast_vote,
    change_vote,
    judge_ballot,
    runs_alone,
    votes_of,
)
from django_polls.services.errors import (
    AlreadyVoted,
    BallotsHidden,
    Conflict,
    ExportRefused,
    Hidden,
    IdempotencyKeyInProgress,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    InvalidInput,
    NotEligible,
    NotVoted,
    PollChanged,
    PollClosed,
    PollHasVotes,
    PollNotOpen,
    PollRuleError,
    ResultsHidden,
    VoteFinal,
)
from django_polls.services.exports import (
    EXPORT_FORMATS,
    EXPORT_TABLES,
    Export,
    check_may_export,
    export_chunks,
    plan_export,
)
from django_polls.services.idempotency import (
    IdempotentAnswer,
    fingerprint,
    purge_expired_keys,
    run_once,
)
from django_polls.services.locks import ADVISORY_LOCK_NAMESPACE
from django_polls.services.method_ballots import (
    BallotDrift,
    acast_ballot,
    ballot_of,
    cast_ballot,
    change_ballot,
    find_ballot_drift,
    move_tallies,
    repair_ballot_counts,
    retract_votes,
    unchecked_polls,
)
from django_polls.services.polls import (
    DUPLICATE_OPTIONS,
    FROZEN_ONCE_VOTED,
    POLICY_DEFAULTS,
    UNCHANGED,
    check_option_count,
    clean_description,
    clean_expiry,
    clean_option_texts,
    clean_policies,
    clean_title,
    close_poll,
    create_poll,
    delete_poll,
    has_votes,
    update_poll,
    voter_groups_supported,
)
from django_polls.services.results import (
    VOTERS_ATTRIBUTE,
    Drift,
    OptionResult,
    Results,
    apoll_exists,
    apoll_with_options,
    find_drift,
    percentage,
    poll_with_options,
    repair_counts,
    results_for,
    tallies_of,
    total_voters,
    voters_subquery,
)
from django_polls.services.visibility import (
    VOTED_ATTRIBUTE,
    ballot_voters,
    check_ballots_visible,
    check_results_visible,
    has_voted,
    may_see_results,
    public_ballots,
    results_visible_to_each,
    sees_everything,
    took_part,
    with_caller_voted,
)
from django_polls.services.webhooks import (
    MIN_SECRET_LENGTH,
    clean_subscription,
    create_subscription,
    redeliver,
    update_subscription,
)

__all__ = [
    "ADVISORY_LOCK_NAMESPACE",
    "BALLOT_SQL",
    "DUPLICATE_OPTIONS",
    "EXPORT_FORMATS",
    "EXPORT_TABLES",
    "FROZEN_ONCE_VOTED",
    "MIN_SECRET_LENGTH",
    "POLICY_DEFAULTS",
    "UNCHANGED",
    "VOTED_ATTRIBUTE",
    "VOTERS_ATTRIBUTE",
    "AlreadyVoted",
    "BallotDrift",
    "BallotsHidden",
    "Conflict",
    "Drift",
    "Export",
    "ExportRefused",
    "Hidden",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "IdempotentAnswer",
    "InvalidInput",
    "MyBallot",
    "NotEligible",
    "NotVoted",
    "OptionResult",
    "PollChanged",
    "PollClosed",
    "PollHasVotes",
    "PollNotOpen",
    "PollRuleError",
    "Receipt",
    "Results",
    "ResultsHidden",
    "Tampering",
    "Verdict",
    "VoteFinal",
    "acast_ballot",
    "acast_vote",
    "actor_names",
    "announce_change",
    "apoll_exists",
    "apoll_with_options",
    "audit_trail",
    "ballot_history",
    "ballot_of",
    "ballot_voters",
    "cast_ballot",
    "cast_vote",
    "change_ballot",
    "change_vote",
    "check_ballots_visible",
    "check_may_export",
    "check_option_count",
    "check_results_visible",
    "clean_description",
    "clean_expiry",
    "clean_option_texts",
    "clean_policies",
    "clean_subscription",
    "clean_title",
    "close_poll",
    "create_poll",
    "create_subscription",
    "delete_poll",
    "export_chunks",
    "find_ballot_drift",
    "find_drift",
    "fingerprint",
    "has_voted",
    "has_votes",
    "judge_ballot",
    "may_see_results",
    "move_tallies",
    "percentage",
    "plan_export",
    "poll_with_options",
    "public_ballots",
    "purge_expired_keys",
    "record_transitions",
    "redeliver",
    "repair_ballot_counts",
    "repair_counts",
    "results_for",
    "results_visible_to_each",
    "retract_votes",
    "run_once",
    "runs_alone",
    "sees_everything",
    "tallies_of",
    "took_part",
    "total_voters",
    "unchecked_polls",
    "update_poll",
    "update_subscription",
    "verify_audit",
    "voter_groups_supported",
    "voters_subquery",
    "votes_of",
    "with_caller_voted",
]
