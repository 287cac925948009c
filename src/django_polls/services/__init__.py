"""The voting rules, in one place.

Every write that matters (create, update, close and delete a poll; cast and retract a vote; repair
counters) is a function here, run in a transaction. Views, serializers, the admin and management
commands call these functions and never write votes or counters themselves. One module per idea:
:mod:`~django_polls.services.polls` (a poll's lifecycle), :mod:`~django_polls.services.ballots`
(cast, retract, read one's own), :mod:`~django_polls.services.results` (results and counters),
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
from django_polls.services.ballots import (
    BALLOT_SQL,
    MyBallot,
    Receipt,
    Verdict,
    ballot_history,
    ballot_of,
    cast_vote,
    change_vote,
    judge_ballot,
    retract_votes,
    votes_of,
)
from django_polls.services.errors import (
    AlreadyVoted,
    Conflict,
    InvalidInput,
    NotEligible,
    NotVoted,
    PollChanged,
    PollClosed,
    PollHasVotes,
    PollNotOpen,
    PollRuleError,
    VoteFinal,
)
from django_polls.services.locks import ADVISORY_LOCK_NAMESPACE
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
    Drift,
    OptionResult,
    Results,
    find_drift,
    percentage,
    poll_with_options,
    repair_counts,
    results_for,
)

__all__ = [
    "ADVISORY_LOCK_NAMESPACE",
    "BALLOT_SQL",
    "DUPLICATE_OPTIONS",
    "FROZEN_ONCE_VOTED",
    "POLICY_DEFAULTS",
    "UNCHANGED",
    "AlreadyVoted",
    "Conflict",
    "Drift",
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
    "Verdict",
    "VoteFinal",
    "announce_change",
    "ballot_history",
    "ballot_of",
    "cast_vote",
    "change_vote",
    "check_option_count",
    "clean_description",
    "clean_expiry",
    "clean_option_texts",
    "clean_policies",
    "clean_title",
    "close_poll",
    "create_poll",
    "delete_poll",
    "find_drift",
    "has_votes",
    "judge_ballot",
    "percentage",
    "poll_with_options",
    "repair_counts",
    "results_for",
    "retract_votes",
    "update_poll",
    "voter_groups_supported",
    "votes_of",
]
