"""Signals for host sites. Each is sent once the transaction that made the change has committed.

The app's own logic never runs through these; they exist so a host site can react (notify,
audit, invalidate its own caches) without patching the app.
"""

from __future__ import annotations

from django.dispatch import Signal

# A poll was created. sender=Poll; kwargs: poll (the Poll), created_by (the user).
poll_created = Signal()

# A ballot was accepted. sender=Poll; kwargs: poll (the Poll), voter (the user),
# option_ids (list[int], the options the ballot added; None on a secret poll, where nothing links
# a voter to a choice).
vote_cast = Signal()

# A voter replaced their ballot (PUT vote/). sender=Poll; kwargs: poll (the Poll), voter (the
# user), previous_option_ids (list[int]), option_ids (list[int], the new ballot).
vote_changed = Signal()

# A voter withdrew every vote of theirs on a poll. sender=Poll; kwargs: poll (the Poll),
# voter (the user), option_ids (list[int], the options that lost a vote).
vote_retracted = Signal()

# A poll was closed early (sent only by the request that closed it, not by repeats).
# sender=Poll; kwargs: poll (the Poll).
poll_closed = Signal()
