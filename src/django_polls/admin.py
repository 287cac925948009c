"""The admin. Every write goes through :mod:`django_polls.services`, like the API's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_polls import methods, services
from django_polls.models import (
    CLOCK_ATTRIBUTE,
    STRICTNESS,
    WEBHOOK_URL_LENGTH,
    AuditRecord,
    Ballot,
    BallotChange,
    ClockTimestamp,
    Option,
    Participation,
    Poll,
    ResultsVisibility,
    Tally,
    Vote,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

# Django's admin classes are generic only to type checkers.
if TYPE_CHECKING:
    OptionInlineBase = admin.TabularInline[Option, Poll]
    PollAdminBase = admin.ModelAdmin[Poll]
    RecordAdminBase = admin.ModelAdmin[Any]
    PollFormBase = forms.ModelForm[Poll]
    WebhookFormBase = forms.ModelForm[WebhookSubscription]
    WebhookAdminBase = admin.ModelAdmin[WebhookSubscription]
else:
    OptionInlineBase = admin.TabularInline
    PollAdminBase = RecordAdminBase = WebhookAdminBase = admin.ModelAdmin
    PollFormBase = WebhookFormBase = forms.ModelForm

FAILED = "_django_polls_admin_failed"

#: The policy fields of the form, as the services take them.
POLICY_FIELDS = (
    "method",
    "min_choices",
    "max_choices",
    "opens_at",
    "results_visibility",
    "anonymity",
    "allow_vote_change",
    "voter_group",
    "max_score",
)
#: Fields a poll with votes keeps as they are (see services.update_poll).
FROZEN_ONCE_VOTED = ("option_texts", "min_choices", "max_choices", *services.FROZEN_ONCE_VOTED)


class PollAdminForm(PollFormBase):
    """The poll with its options as one text, one option per line, checked by the services."""

    option_texts = forms.CharField(
        label=_("options"),
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("One option per line, in order. Frozen once the poll has votes."),
    )

    class Meta:
        model = Poll
        fields = ("title", "description", "expires_at", *POLICY_FIELDS, "created_by")
        help_texts = {
            "max_choices": _("Empty: every option. Ignored by single-choice polls."),
            "opens_at": _("Empty: open at once. Votes are taken from then on."),
            "allow_vote_change": _(
                "Voters may replace or retract a ballot (never on secret polls)."
            ),
            "voter_group": _("Only its members may vote. Empty: any signed-in user."),
            "max_score": _("Score polls: the top score, 1 to 10. Empty: 5 (score), none (others)."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "method" in self.fields:
            # The site's methods (DJANGO_POLLS["METHODS"]), read now: the column lists none.
            self.fields["method"] = forms.ChoiceField(
                label=_("method"),
                choices=[
                    (name, method.label or name) for name, method in methods.registered().items()
                ],
                initial=self.fields["method"].initial,
            )
        poll = self.instance
        if poll.pk is None:
            return
        texts = poll.options.order_by("order", "id").values_list("text", flat=True)
        self.fields["option_texts"].initial = "\n".join(texts)
        if services.has_votes(poll):
            for name in FROZEN_ONCE_VOTED:
                if name in self.fields:
                    self.fields[name].disabled = True
            # Results may be hidden further, never revealed earlier than voters were told.
            visibility = self.fields.get("results_visibility")
            if isinstance(visibility, forms.ChoiceField):
                allowed = STRICTNESS[STRICTNESS.index(poll.results_visibility) :]
                visibility.choices = [
                    (value, label) for value, label in ResultsVisibility.choices if value in allowed
                ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for field in ("title", "description", "option_texts", "expires_at"):
            if field not in data or field in self.errors:
                continue
            try:
                self.check_rule(field, data[field])
            except services.InvalidInput as exc:
                for message in exc.errors.values():
                    self.add_error(field, message)
        if not self.errors:
            self.check_policies(data)
        return data

    def check_policies(self, data: dict[str, Any]) -> None:
        """The policies as a whole (the services' rules), each error on its field."""
        current = {field: getattr(self.instance, field) for field in services.POLICY_DEFAULTS}
        sent = {field: data[field] for field in POLICY_FIELDS if field in data}
        if "voter_group" in sent:
            group = sent.pop("voter_group")
            sent["voter_group_id"] = None if group is None else group.pk
        try:
            policies = services.clean_policies(
                current,
                sent,
                option_count=len(self.option_list()),
                options_sent=True,
                expires_at=data.get("expires_at"),
                expires_sent=True,
            )
        except services.InvalidInput as exc:
            for field, messages_ in exc.errors.items():
                name = "option_texts" if field == "options" else field
                self.add_error(name if name in self.fields else None, messages_)
            return
        # As they will be stored (single: 1 and every option; secret: final), so the model's
        # constraints, which the form validates too, see the poll the services will write.
        for field in ("method", "min_choices", "max_choices", "allow_vote_change", "max_score"):
            if field in data:
                data[field] = policies[field]

    def check_rule(self, field: str, value: Any) -> None:
        if field == "title":
            services.clean_title(value)
        elif field == "description":
            services.clean_description(value)
        elif field == "option_texts":
            services.clean_option_texts(self.lines(value))
        else:
            services.clean_expiry(value, current=self.initial.get("expires_at"))

    @staticmethod
    def lines(value: str) -> list[str]:
        return [line for line in value.splitlines() if line.strip()]

    def option_list(self) -> list[str]:
        return self.lines(self.cleaned_data["option_texts"])


class OptionInline(OptionInlineBase):
    """The options with their counts, read-only: options are edited as text in the poll form."""

    model = Option
    extra = 0
    fields = ("text", "votes")
    readonly_fields = ("text", "votes")
    ordering = ("order", "id")
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Option]:
        # The options' whole counts (counter and slots), as results show them.
        return super().get_queryset(request).counted()  # type: ignore[attr-defined,no-any-return]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Poll)
class PollAdmin(PollAdminBase):
    form = PollAdminForm
    list_display = ("title", "created_by", "created_at", "expires_at", "closed_at", "is_active")
    list_filter = ("method", "anonymity", "results_visibility", "created_at")
    list_select_related = ("created_by",)
    search_fields = ("title", "description")
    readonly_fields = ("created_at", "closed_at")
    raw_id_fields = ("created_by",)
    inlines = (OptionInline,)
    actions = ("close_polls",)

    def get_fields(self, request: HttpRequest, obj: Poll | None = None) -> Any:
        fields = ["title", "description", "option_texts", *POLICY_FIELDS, "expires_at"]
        if not services.voter_groups_supported():
            fields.remove("voter_group")
        if obj is None:
            return [*fields, "created_by"]
        return [*fields, "created_by", "created_at", "closed_at", "results"]

    def get_readonly_fields(self, request: HttpRequest, obj: Poll | None = None) -> Any:
        if obj is None:
            return ()
        return ("created_by", "created_at", "closed_at", "results")

    @admin.display(description=_("results"))
    def results(self, poll: Poll) -> str:
        """The poll's results as its method reads them (what results/ answers), read-only."""
        found = services.results_for(poll=Poll.objects.for_listing().get(pk=poll.pk))
        return format_html(
            "<pre>{}</pre>", "\n".join(results_lines(found, poll.options.order_by("order")))
        )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"created_by": request.user.pk, **super().get_changeform_initial_data(request)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Poll]:
        # "active" by the clock of ballots, read by the list's own query (models.poll_clock).
        polls = super().get_queryset(request)
        if connection.vendor == "postgresql":
            polls = polls.annotate(**{CLOCK_ATTRIBUTE: ClockTimestamp()})
        return polls

    @admin.display(boolean=True, description=_("active"))
    def is_active(self, poll: Poll) -> bool:
        return poll.is_active

    def save_model(self, request: HttpRequest, obj: Poll, form: Any, change: bool) -> None:
        data = form.cleaned_data
        policies = {field: data[field] for field in POLICY_FIELDS if field in data}
        try:
            if change:
                services.update_poll(
                    poll=obj,
                    title=data["title"],
                    description=data["description"],
                    expires_at=data["expires_at"],
                    options=form.option_list()
                    if "option_texts" in form.changed_data
                    else services.UNCHANGED,
                    actor=request.user,
                    **policies,
                )
            else:
                poll = services.create_poll(
                    created_by=data["created_by"],
                    title=data["title"],
                    description=data["description"],
                    expires_at=data["expires_at"],
                    options=form.option_list(),
                    **policies,
                )
                obj.pk = poll.pk
                obj._state.adding = False
        except services.PollRuleError as exc:
            # The form checked everything; this is a vote that landed in between.
            setattr(request, FAILED, True)
            self.message_user(request, exc.message, messages.ERROR)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Options are written by the services in save_model; the inline only displays them."""
        for formset in formsets:
            formset.save(commit=False)  # read-only: records that nothing changed, for the log

    def response_add(self, request: HttpRequest, obj: Poll, *args: Any) -> HttpResponse:
        if getattr(request, FAILED, False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, *args)

    def response_change(self, request: HttpRequest, obj: Poll) -> HttpResponse:
        if getattr(request, FAILED, False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    # A refused write changed nothing, so it leaves no entry in the history: the admin would
    # otherwise log "Added"/"Changed" after save_model returned, whatever it did.
    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, FAILED, False):
            return None
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, FAILED, False):
            return None
        return super().log_change(request, obj, message)

    def delete_model(self, request: HttpRequest, obj: Poll) -> None:
        services.delete_poll(poll=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Poll]) -> None:
        for poll in queryset:
            services.delete_poll(poll=poll, actor=request.user)

    @admin.action(description=_("Close the selected polls"))
    def close_polls(self, request: HttpRequest, queryset: QuerySet[Poll]) -> None:
        for poll in queryset:
            services.close_poll(poll=poll, actor=request.user)
        self.message_user(request, _("Closed the selected polls."), messages.SUCCESS)


def results_lines(found: Any, options: Any) -> list[str]:
    """A results body (any method's) as lines of text: each option with its figures, then the
    rounds and the winner of a ranked poll."""
    text = {option.pk: option.text for option in options}
    lines = [
        ngettext("%(count)d voter", "%(count)d voters", found.total_voters)
        % {"count": found.total_voters}
        + ", "
        + ngettext("%(count)d vote", "%(count)d votes", found.total_votes)
        % {"count": found.total_votes}
    ]
    for option in found.options:
        figures = [
            ngettext("%(count)d vote", "%(count)d votes", option.votes) % {"count": option.votes},
            f"{option.percentage}%",
        ]
        if hasattr(option, "first_choices"):
            figures.append(
                ngettext("%(count)d first choice", "%(count)d first choices", option.first_choices)
                % {"count": option.first_choices}
            )
        if hasattr(option, "average"):
            figures.append(
                gettext("average %(average)s, scores %(scores)s")
                % {"average": option.average, "scores": option.distribution}
            )
        if hasattr(option, "points"):
            figures.append(
                ngettext("%(count)d point", "%(count)d points", option.points)
                % {"count": option.points}
            )
        lines.append(f"{option.text}: {', '.join(figures)}")
    for number, round_ in enumerate(getattr(found, "rounds", []), start=1):
        tallies = ", ".join(f"{text.get(t.id, t.id)} {t.votes}" for t in round_.tallies)
        out = ", ".join(str(text.get(option_id, option_id)) for option_id in round_.eliminated)
        line = gettext("Round %(number)d: %(tallies)s; exhausted %(exhausted)d") % {
            "number": number,
            "tallies": tallies,
            "exhausted": round_.exhausted,
        }
        if out:
            line += "; " + gettext("eliminated %(options)s") % {"options": out}
        lines.append(line)
    if hasattr(found, "winner"):
        winner = found.winner
        tied = ", ".join(str(text.get(option_id)) for option_id in getattr(found, "tied", []))
        if winner:
            lines.append(gettext("Winner: %(option)s") % {"option": text.get(winner, winner)})
        elif tied:
            lines.append(gettext("No winner: tied %(options)s") % {"options": tied})
        else:
            lines.append(gettext("No winner"))
    return lines


class RecordAdmin(RecordAdminBase):
    """Records that the services write (votes, participations, ballot changes): read-only here.

    Deleting a poll (or a user) still deletes its records with it, so the delete permission
    stays; only deleting records on their own is refused.
    """

    actions: Sequence[str] | None = None  # no "delete selected"

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["poll__title", f"voter__{get_user_model().USERNAME_FIELD}"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        raise PermissionDenied


@admin.register(Vote)
class VoteAdmin(RecordAdmin):
    """Votes, cast and withdrawn only through the services."""

    list_display = ("poll", "option", "voter", "created_at")
    list_select_related = ("poll", "option", "voter")
    raw_id_fields = ("poll", "option", "voter")


@admin.register(Participation)
class ParticipationAdmin(RecordAdmin):
    """Who took part in which poll: on a secret poll, all that is kept of a voter."""

    list_display = ("poll", "voter", "choices")
    list_select_related = ("poll", "voter")
    raw_id_fields = ("poll", "voter")


@admin.register(BallotChange)
class BallotChangeAdmin(RecordAdmin):
    """The history of replaced and withdrawn ballots (public and anonymous polls)."""

    list_display = ("poll", "voter", "action", "previous", "current", "created_at")
    list_filter = ("action",)
    list_select_related = ("poll", "voter")
    raw_id_fields = ("poll", "voter")


@admin.register(AuditRecord)
class AuditRecordAdmin(RecordAdmin):
    """Every poll's audit trail (DJANGO_POLLS["AUDIT_TRAIL"]), deleted polls' included:
    append-only, so nobody deletes an entry here, not even with its poll."""

    list_display = ("poll_id", "seq", "action", "actor", "at", "hash")
    list_filter = ("action",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["=poll_id", "=actor"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Ballot)
class BallotAdmin(RecordAdmin):
    """Whole ballots (ranked, score, a site's methods), cast and withdrawn only through the
    services; secret polls keep none."""

    list_display = ("poll", "voter", "choice", "created_at")
    list_select_related = ("poll", "voter")
    raw_id_fields = ("poll", "voter")


@admin.register(Tally)
class TallyAdmin(RecordAdmin):
    """The counts that results of ranked, score and a site's methods are read from."""

    list_display = ("poll", "key", "ballots")
    list_select_related = ("poll",)
    raw_id_fields = ("poll",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["poll__title", "key"]


class WebhookSubscriptionForm(WebhookFormBase):
    """A subscription's fields, each checked as the API checks it; the secret is written, never
    shown (left empty on a change, it stays)."""

    # Checked by the rules (http or https, a public address), as the API checks it.
    url = forms.CharField(label=_("URL"), max_length=WEBHOOK_URL_LENGTH)
    secret = forms.CharField(
        label=_("secret"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("At least 16 characters. Left empty on a change, the secret stays."),
    )
    events = forms.MultipleChoiceField(
        label=_("events"), choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ("created_by", "url", "secret", "events", "site_wide", "is_active", "description")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        secret = data.get("secret") or None
        if secret is None and self.instance.pk is None:
            self.add_error("secret", gettext("Give a secret."))
        try:
            fields = services.clean_subscription(
                url=data.get("url"), secret=secret, events=data.get("events")
            )
        except services.InvalidInput as exc:
            for field, field_errors in exc.errors.items():
                for error in field_errors:
                    self.add_error(field if field in self.fields else None, error)
            return data
        data.update(fields)
        if secret is None:
            data["secret"] = self.instance.secret
        return data


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(WebhookAdminBase):
    """Webhook subscriptions: the owner's events or, ``site_wide``, every poll's."""

    form = WebhookSubscriptionForm
    list_display = ("url", "created_by", "site_wide", "is_active", "created_at")
    list_filter = ("is_active", "site_wide")
    raw_id_fields = ("created_by",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["url", "description", f"created_by__{get_user_model().USERNAME_FIELD}"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RecordAdmin):
    """The outbox: every event for every subscription, and how its attempts went. Failed ones
    (their attempts ran out) are sent again with the action "Send again"."""

    actions = ("send_again",)
    list_display = (
        "event",
        "poll_id",
        "subscription",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "created_at",
        "next_attempt_at",
    )
    list_filter = ("status", "event")
    list_select_related = ("subscription",)
    readonly_fields = ("data",)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["=event_id", "=poll_id", "subscription__url"]

    @admin.action(description=_("Send again"), permissions=["view"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = services.redeliver(queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d delivery will be sent again.",
                "%(count)d deliveries will be sent again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
