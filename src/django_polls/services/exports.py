"""Exports of a poll for its owner and staff (``GET polls/{id}/export/``): its results for every
method and, on a public poll, one row per ballot, as CSV or as one JSON document.

An export is written chunk by chunk as it is sent: the ballots are read :data:`CHUNK_SIZE`
voters at a time by keyset pagination (``voter > last ORDER BY voter LIMIT n``, through the
unique (poll, voter) index), each chunk a few queries of its own. Memory stays constant whatever
the number of ballots, on every database, without a server-side cursor (which PgBouncer's
transaction mode would break). The price: a long export is not one snapshot; a ballot cast,
changed or withdrawn while it runs may show or not.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) get a leading apostrophe, as OWASP advises against CSV injection. The
JSON document carries the texts as they are: it is data for programs, not for spreadsheets.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext
from rest_framework import ISO_8601
from rest_framework.fields import DateTimeField
from rest_framework.settings import api_settings

from django_polls import conf
from django_polls.conf import polls_settings
from django_polls.models import Anonymity, Option, Participation, Poll
from django_polls.services.errors import ExportRefused, InvalidInput
from django_polls.services.results import results_for
from django_polls.services.visibility import (
    ballot_field_of,
    ballots_by_voter,
    check_ballots_visible,
    sees_everything,
)

#: The formats an export comes in, and the tables of a CSV export.
EXPORT_FORMATS = ("csv", "json")
EXPORT_TABLES = ("results", "ballots")
#: Voters read per query; each chunk of the export holds their ballots.
CHUNK_SIZE = 2000
#: How a cell that a spreadsheet would run as a formula starts (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Timestamps as the API writes them (DATETIME_FORMAT, the current time zone).
TIMESTAMP = DateTimeField()


@dataclasses.dataclass(frozen=True)
class Export:
    """What an export request asks for: a format, a table (CSV), and how the answer is named."""

    poll: Poll
    options: list[Option]
    format: str
    table: str

    @property
    def content_type(self) -> str:
        if self.format == "csv":
            return "text/csv; charset=utf-8"
        return "application/json"

    @property
    def filename(self) -> str:
        """``poll-7-lunch-results.csv``: the poll's id, its title as ASCII (Loomio's way, so a
        folder of exports reads), the table and the format."""
        slug = slugify(ascii_of(self.poll.title))[:50].strip("-")
        name = f"poll-{self.poll.pk}-{slug}" if slug else f"poll-{self.poll.pk}"
        if self.format == "json":
            return f"{name}.json"
        return f"{name}-{self.table}.csv"


def ascii_of(text: str) -> str:
    """``text`` without its accents (``Crème`` → ``Creme``); other letters are dropped by
    :func:`~django.utils.text.slugify`."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def check_may_export(*, poll: Poll, user: Any) -> None:
    """Only the poll's owner and staff users may export it, whatever its results_visibility
    (:class:`ExportRefused` for anybody else)."""
    if not sees_everything(poll=poll, user=user):
        raise ExportRefused()


def plan_export(*, poll: Poll, user: Any, format: str | None, table: str | None = None) -> Export:
    """The export of ``poll`` that ``user`` asks for, checked: who may (:class:`ExportRefused`),
    a known format and table (:class:`InvalidInput`), and that a ballot table is asked of a
    public poll only (:class:`BallotsHidden`). ``table`` (``results`` by default) chooses the
    table of a CSV export; the JSON document holds every table the poll has, whatever it says."""
    check_may_export(poll=poll, user=user)
    if format not in EXPORT_FORMATS:
        raise InvalidInput({"format": [gettext("Must be csv or json.")]})
    if table is None:
        table = "results"
    if table not in EXPORT_TABLES:
        raise InvalidInput({"table": [gettext("Must be results or ballots.")]})
    if format == "csv" and table == "ballots":
        check_ballots_visible(poll=poll, user=user)
    return Export(poll=poll, options=list(poll.options.counted()), format=format, table=table)


def export_chunks(export: Export, *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The export's body, UTF-8, chunk by chunk; the ballots are read as the chunks are."""
    if export.format == "json":
        return _json_chunks(export, chunk_size)
    if export.table == "ballots":
        return _csv_chunks(ballot_table(export, chunk_size))
    header, rows = results_table(results_for(poll=export.poll, options=export.options))
    return _csv_chunks(iter([[header, *rows]]))


# -- CSV ----------------------------------------------------------------------------------------


class _Line:
    """A file for :func:`csv.writer` that hands back what it is given."""

    def write(self, text: str) -> str:
        return text


def neutralised(value: Any) -> str:
    """A CSV cell: text a spreadsheet would run as a formula gets a leading apostrophe; numbers
    as Python writes them, booleans as ``true``/``false``, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _csv_chunks(tables: Iterator[list[list[Any]]]) -> Iterator[bytes]:
    writer = csv.writer(_Line())
    for rows in tables:
        yield "".join(
            # Whole numbers as they are: most cells of a ballot table, never a formula.
            writer.writerow([cell if type(cell) is int else neutralised(cell) for cell in row])
            for row in rows
        ).encode()


def results_table(results: Any) -> tuple[list[str], list[list[Any]]]:
    """The results as one row per option, in the poll's order: ``option_id``, ``option`` and
    the option's fields of the method's results (``votes``, ``percentage``, ...), a list field
    (score's ``distribution``) as one column per item (``distribution_0``, ...); for a ranked
    poll also each round's votes (``round_1``, ...: empty once the option is out), the round
    that eliminated it and whether it won."""
    options: list[Any] = list(results.options)
    fields = [field.name for field in dataclasses.fields(options[0] if options else results)]
    if not options:
        fields = ["id", "text", "votes", "percentage"]
    names = [name for name in fields if name not in ("id", "text")]
    widths = {
        name: len(getattr(options[0], name))
        for name in names
        if options and isinstance(getattr(options[0], name), list)
    }
    header = ["option_id", "option"]
    for name in names:
        header += [f"{name}_{index}" for index in range(widths[name])] if name in widths else [name]
    rounds: list[Any] = list(getattr(results, "rounds", None) or [])
    ranked = hasattr(results, "rounds")
    if ranked:
        header += [f"round_{number}" for number in range(1, len(rounds) + 1)]
        header += ["eliminated_in_round", "winner"]
    rows = []
    for option in options:
        row: list[Any] = [option.id, option.text]
        for name in names:
            value = getattr(option, name)
            row += list(value) if name in widths else [value]
        if ranked:
            out = None
            for number, counted in enumerate(rounds, start=1):
                votes = {tally.id: tally.votes for tally in counted.tallies}
                row.append(votes.get(option.id))
                if option.id in counted.eliminated:
                    out = number
            row += [out, results.winner == option.id]
        rows.append(row)
    return header, rows


def ballot_table(export: Export, chunk_size: int = CHUNK_SIZE) -> Iterator[list[list[Any]]]:
    """The ballots of a public poll, one row per voter, in the order of :func:`ballot_pages`:
    ``voter``, ``voted_at`` (when the current ballot was stored), then one column per option in
    the poll's order, headed by its text: ``1`` where a single or multiple choice ballot chose
    it, the rank on a ranked ballot (1: most preferred), the score on a score ballot, empty
    where the ballot leaves it out. A method of the site's own whose ballot field is none of
    these gets one ``ballot`` column, the ballot as JSON. The header row first, then a list of
    rows per chunk of voters."""
    field, _ = ballot_field_of(export.poll)
    option_ids = [option.pk for option in export.options]
    cells_of = BALLOT_CELLS.get(field)
    texts = [option.text for option in export.options]
    yield [["voter", "voted_at", *(texts if cells_of else ["ballot"])]]
    timestamp = timestamps()
    for page in ballot_pages(export.poll, export.options, chunk_size):
        rows = []
        for voter, ballot, created_at in page:
            if cells_of is None:
                chosen = [json.dumps(ballot, ensure_ascii=False)]
            else:
                cells = cells_of(ballot or [])
                chosen = [cells.get(option_id) for option_id in option_ids]
            rows.append([voter, timestamp(created_at), *chosen])
        yield rows


def _chosen(ballot: Sequence[int]) -> dict[int, Any]:
    return dict.fromkeys(ballot, 1)


def _ranks(ballot: Sequence[int]) -> dict[int, Any]:
    return {option_id: rank for rank, option_id in enumerate(ballot, start=1)}


def _scores(ballot: Sequence[dict[str, int]]) -> dict[int, Any]:
    return {entry["option"]: entry["score"] for entry in ballot}


#: How a ballot field's value becomes a cell per option, by ballot field.
BALLOT_CELLS: dict[str, Any] = {"options": _chosen, "ranking": _ranks, "scores": _scores}


def ballot_pages(
    poll: Poll, options: Sequence[Option], chunk_size: int = CHUNK_SIZE
) -> Iterator[list[tuple[str, Any, Any]]]:
    """The public poll's ballots as ``(voter, ballot, stored at)``, the voter named as
    ``DJANGO_POLLS["USER_DISPLAY"]`` names them and the ballot as ``ballots/`` shows it,
    ``chunk_size`` voters at a time in the order of their accounts (their ids).

    Keyset pagination over the unique (poll, voter) index of participations: each page is one
    range scan of that index for the voters after the last one read, one lookup of their users
    by primary key (only their usernames, where the site names users by them) and one of their
    ballots through the (poll, voter) index of votes or ballots. Each query reads a chunk's
    index entries on every database, whatever the number of ballots and without statistics to
    plan by; nothing is held between pages (nor a cursor, nor a transaction). Deleted accounts'
    ballots are nobody's: they are counted in the results and not listed, as in ``ballots/``."""
    _, empty = ballot_field_of(poll)
    users = get_user_model()._default_manager
    by_username = conf.get("USER_DISPLAY") == conf.DEFAULTS["USER_DISPLAY"]
    display = polls_settings.USER_DISPLAY
    order = [option.pk for option in options]
    last = None
    while True:
        voters = Participation.objects.filter(poll=poll, voter__isnull=False)
        if last is not None:
            voters = voters.filter(voter_id__gt=last)
        voter_ids = list(
            voters.order_by("voter_id").values_list("voter_id", flat=True)[:chunk_size]
        )
        if not voter_ids:
            return
        if by_username:
            # The default USER_DISPLAY, read as a column: no user is built.
            names = {
                pk: str(name)
                for pk, name in users.filter(pk__in=voter_ids).values_list(
                    "pk", users.model.USERNAME_FIELD
                )
            }
        else:
            names = {user.pk: str(display(user)) for user in users.filter(pk__in=voter_ids)}
        # The page is every voter of the poll from its first to its last: a range of the
        # (poll, voter) index of votes or ballots.
        found = ballots_by_voter(
            poll=poll, voter_ids=voter_ids, option_order=order, contiguous=True
        )
        yield [
            (names[voter_id], *found.get(voter_id, (empty, None)))
            for voter_id in voter_ids
            if voter_id in names  # an account deleted since the page was read
        ]
        if len(voter_ids) < chunk_size:
            return
        last = voter_ids[-1]


def timestamps() -> Callable[[Any], Any]:
    """How an export writes a timestamp: as the API does (DRF's DATETIME_FORMAT, in the current
    time zone); ISO 8601, the default, written directly (DRF's field takes ten times as long,
    which a million ballots feel)."""
    if api_settings.DATETIME_FORMAT != ISO_8601:
        return _timestamp
    zone = timezone.get_current_timezone()

    def iso(value: Any) -> Any:
        if value is None:
            return None
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso


def _timestamp(value: Any) -> Any:
    return None if value is None else TIMESTAMP.to_representation(value)


# -- JSON ---------------------------------------------------------------------------------------


def poll_document(poll: Poll, options: Iterable[Option]) -> dict[str, Any]:
    """The poll as a JSON export describes it: its settings, its owner and its options."""
    return {
        "id": poll.pk,
        "title": poll.title,
        "description": poll.description,
        "method": poll.method,
        "anonymity": poll.anonymity,
        "results_visibility": poll.results_visibility,
        "status": str(poll.status),
        "min_choices": poll.min_choices,
        "max_choices": poll.max_choices,
        "max_score": poll.max_score,
        "created_by": None
        if poll.created_by is None
        else str(polls_settings.USER_DISPLAY(poll.created_by)),
        "created_at": _timestamp(poll.created_at),
        "opens_at": _timestamp(poll.opens_at),
        "expires_at": _timestamp(poll.expires_at),
        "closed_at": _timestamp(poll.closed_at),
        "options": [{"id": option.pk, "text": option.text} for option in options],
    }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_chunks(export: Export, chunk_size: int) -> Iterator[bytes]:
    """``{"poll": ..., "results": ..., "ballots": [...]}``; ``ballots`` is null on a poll that
    is not public. Each ballot is ``ballots/``' entry: ``voter``, the ballot in its method's
    field, ``created_at``."""
    poll = export.poll
    results = dataclasses.asdict(results_for(poll=poll, options=export.options))
    head = f'{{"poll":{_json(poll_document(poll, export.options))},"results":{_json(results)}'
    if poll.anonymity != Anonymity.PUBLIC:
        yield (head + ',"ballots":null}').encode()
        return
    yield (head + ',"ballots":[').encode()
    field, _ = ballot_field_of(poll)
    timestamp = timestamps()
    first = True
    for page in ballot_pages(poll, export.options, chunk_size):
        body = ",".join(
            _json({"voter": voter, field: ballot, "created_at": timestamp(created_at)})
            for voter, ballot, created_at in page
        )
        yield ((body if first else "," + body) if body else "").encode()
        first = first and not body
    yield b"]}"
