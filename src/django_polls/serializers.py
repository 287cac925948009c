"""Request and response shapes of the API. Serializers check shape; services enforce the rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.utils.translation import gettext, gettext_lazy
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.fields import SkipField, get_attribute
from rest_framework.settings import api_settings

from django_polls import methods, services
from django_polls.conf import polls_settings
from django_polls.methods.base import VotingMethod
from django_polls.models import (
    MAX_SCORE_LIMIT,
    WEBHOOK_URL_LENGTH,
    Anonymity,
    AuditRecord,
    Option,
    Poll,
    ResultsVisibility,
    Status,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

# The largest id a BIGINT primary key can hold; anything larger is simply not an option.
MAX_ID = 2**63 - 1


def flat_messages(detail: Any, prefix: str = "") -> list[Any]:
    """DRF's nested list errors (``{"0": {"text": [...]}}``) as one flat list of messages."""
    if isinstance(detail, dict):
        messages: list[Any] = []
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                label = prefix
            elif str(key).isdigit():
                label = f"{prefix}Item {int(key) + 1}: "
            else:
                label = f"{prefix}{key}: "
            messages.extend(flat_messages(value, label))
        return messages
    if isinstance(detail, list):
        if any(isinstance(item, (dict, list)) for item in detail):
            # One entry per item (older DRF), ``{}`` for the items without errors.
            return [
                message
                for index, item in enumerate(detail)
                for message in flat_messages(item, f"{prefix}Item {index + 1}: ")
            ]
        return [message for item in detail for message in flat_messages(item, prefix)]
    return [ErrorDetail(f"{prefix}{detail}", code=getattr(detail, "code", None))]


def username(user: Any) -> str:
    """How a poll body names a user by default (``DJANGO_POLLS["USER_DISPLAY"]``): the value of
    the user model's USERNAME_FIELD."""
    return str(user.get_username())


class FlatOptionErrorsMixin:
    """Report errors of the ``options`` list as ``{"options": ["message", ...]}``."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict) and "options" in exc.detail:
                exc.detail["options"] = flat_messages(exc.detail["options"])
            raise


class OptionListSerializer(serializers.ListSerializer[Option]):
    """Refuses an over-long list before looking at its items (and answering an error per item)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, list):
            try:
                services.check_option_count(len(data))
            except services.InvalidInput as exc:
                raise serializers.ValidationError(exc.errors["options"]) from exc
        return super().to_internal_value(data)


class OptionSerializer(serializers.ModelSerializer[Option]):
    text = serializers.CharField(allow_blank=True, trim_whitespace=True)

    class Meta:
        model = Option
        fields = ("id", "text")
        read_only_fields = ("id",)
        list_serializer_class = OptionListSerializer
        validators: list[Any] = []  # the services check the options as a whole

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A PATCH makes nested fields optional too; an option without its text means nothing.
        if "text" not in attrs:
            raise serializers.ValidationError({"text": [gettext("This field is required.")]})
        return attrs


#: The largest number a choice limit column holds (a small integer).
MAX_CHOICES_VALUE = 32767


# DRF's related fields are generic only to type checkers before DRF 3.15.
if TYPE_CHECKING:
    GroupNameFieldBase = serializers.SlugRelatedField[Group]
else:
    GroupNameFieldBase = serializers.SlugRelatedField


class GroupNameField(GroupNameFieldBase):
    """A Django auth group by its name; null for none. Only text is looked up."""

    default_error_messages = {
        "does_not_exist": gettext_lazy('There is no group named "{value}".'),
        "invalid": gettext_lazy("A group name (a string) or null is required."),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="name", queryset=Group.objects.all(), **kwargs)

    def to_internal_value(self, data: Any) -> Group:
        name_length = Group._meta.get_field("name").max_length or 0
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data or len(data) > name_length:
            self.fail("does_not_exist", slug_name="name", value=data)
        return super().to_internal_value(data)


class MethodField(serializers.ChoiceField):
    """A poll's method: a name of ``DJANGO_POLLS["METHODS"]``, read when a value is checked (the
    site's setting decides which exist)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[], **kwargs)

    @property
    def choices(self) -> dict[Any, Any]:
        return {name: method.label or name for name, method in methods.registered().items()}

    @choices.setter
    def choices(self, value: Any) -> None:
        pass  # always the site's methods

    @property
    def choice_strings_to_values(self) -> dict[str, Any]:
        return {name: name for name in methods.registered()}

    @choice_strings_to_values.setter
    def choice_strings_to_values(self, value: Any) -> None:
        pass

    @property
    def grouped_choices(self) -> dict[Any, Any]:
        return self.choices

    @grouped_choices.setter
    def grouped_choices(self, value: Any) -> None:
        pass


class PollSerializer(FlatOptionErrorsMixin, serializers.ModelSerializer[Poll]):
    # No numbers in help texts: the limits are the site's settings (MAX_TITLE_LENGTH,
    # MIN_OPTIONS, MAX_OPTIONS), which the schema carries as maxLength, minItems and maxItems.
    title = serializers.CharField(
        allow_blank=True, help_text="Not blank; at most maxLength characters."
    )
    description = serializers.CharField(allow_blank=True, required=False, trim_whitespace=False)
    allow_multiple_votes = serializers.BooleanField(
        required=False,
        help_text="True exactly when method is multiple. Sent alone it sets method (false: "
        "single, true: multiple); sent with a method it contradicts, 400. Frozen once the poll "
        "has votes.",
    )
    method = MethodField(
        required=False,
        help_text="How a ballot chooses: one option (single), several (multiple), a ranking "
        "(ranked, counted by instant runoff), a score per option (score), or a method of the "
        "site's own. Default from allow_multiple_votes, else single. Frozen once the poll has "
        "votes.",
    )
    max_score = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_SCORE_LIMIT,
        help_text="The highest score of a score ballot (a score is a whole number from 0 to "
        "it); score polls only, default 5; null on other polls. Frozen once the poll has votes.",
    )
    min_choices = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_CHOICES_VALUE,
        help_text="How many options a voter's first ballot must choose at least. Default 1; "
        "a single poll takes exactly 1. Frozen once the poll has votes.",
    )
    max_choices = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_CHOICES_VALUE,
        help_text="How many options a voter may choose in all, from min_choices up to the "
        "number of options; null (the default) means every option, and a body shows the "
        "number that applies. A single poll takes exactly 1. Frozen once the poll has votes.",
    )
    opens_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When votes are taken from; before it the poll is scheduled. Null (the "
        "default) or a time already past: open at once. Must be before expires_at. Frozen once "
        "the poll has votes.",
    )
    results_visibility = serializers.ChoiceField(
        choices=ResultsVisibility.choices,
        required=False,
        help_text="Who may read the results and total_votes besides the owner and staff: "
        "always (anyone, the default), after_vote (those who voted), after_close (anyone once "
        "the poll is closed), owner (nobody else). Once the poll has votes it may only become "
        "stricter, in that order.",
    )
    anonymity = serializers.ChoiceField(
        choices=Anonymity.choices,
        required=False,
        help_text="anonymous (the default): nobody is shown who chose what; public: who chose "
        "what is listed at ballots/; secret: only that one voted is kept, and the counts, and "
        "ballots are final. Frozen once the poll has votes.",
    )
    allow_vote_change = serializers.BooleanField(
        required=False,
        help_text="May a voter replace (PUT vote/) or retract (DELETE vote/) their ballot? "
        "Default true; false on a secret poll, where true is 400. Frozen once the poll has votes.",
    )
    voter_group = GroupNameField(
        required=False,
        allow_null=True,
        help_text="Name of the auth group whose members alone may vote; null (the default): "
        "any signed-in user. Editable at any time.",
    )
    status = serializers.ChoiceField(
        choices=Status.choices,
        read_only=True,
        help_text="scheduled (before opens_at), open or closed (closed or expired); is_active "
        "is status == open.",
    )
    options = OptionSerializer(
        many=True,
        help_text="minItems to maxItems options; texts trimmed, non-blank, unique ignoring case. "
        "Sending options in an update replaces the list; frozen once the poll has votes.",
    )
    is_active = serializers.BooleanField(
        read_only=True,
        help_text="True while the poll takes votes: opened, not expired and not closed.",
    )
    created_by = serializers.SerializerMethodField(
        help_text="The creator's username (or the name DJANGO_POLLS['USER_DISPLAY'] gives)."
    )
    total_votes = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Votes (selections) on the poll, summed over its options; null when the "
        "caller may not see its results (results_visibility).",
    )

    class Meta:
        model = Poll
        fields = (
            "id",
            "title",
            "description",
            "created_at",
            "expires_at",
            "allow_multiple_votes",
            "is_active",
            "created_by",
            "options",
            "total_votes",
            "method",
            "min_choices",
            "max_choices",
            "opens_at",
            "status",
            "results_visibility",
            "anonymity",
            "allow_vote_change",
            "voter_group",
            "max_score",
        )
        read_only_fields = ("id", "created_at")
        extra_kwargs = {
            "expires_at": {"help_text": "Optional; must be in the future when set or moved."},
        }
        # The model's unique (id, allow_multiple_votes) exists for a foreign key; it is no rule
        # about input, so DRF must not turn it into a validator (or a default).
        validators: list[Any] = []

    def get_created_by(self, poll: Poll) -> str:
        return str(polls_settings.USER_DISPLAY(poll.created_by))

    def to_representation(self, instance: Poll) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        # The limits that apply, never null (the options are prefetched by for_listing).
        data["min_choices"], data["max_choices"] = instance.choice_limits
        # Whether the caller voted was read with the poll (services.with_caller_voted).
        request = self.context.get("request")
        if not services.may_see_results(poll=instance, user=getattr(request, "user", None)):
            data["total_votes"] = None
        return data

    def create(self, validated_data: dict[str, Any]) -> Poll:
        texts = [option["text"] for option in validated_data.pop("options")]
        try:
            poll = services.create_poll(
                created_by=self.context["request"].user, options=texts, **validated_data
            )
        except services.InvalidInput as exc:
            raise serializers.ValidationError(exc.errors) from exc
        return Poll.objects.for_listing().get(pk=poll.pk)

    def update(self, instance: Poll, validated_data: dict[str, Any]) -> Poll:
        if "options" in validated_data:
            validated_data["options"] = [option["text"] for option in validated_data["options"]]
        try:
            services.update_poll(
                poll=instance, actor=self.context["request"].user, **validated_data
            )
        except services.InvalidInput as exc:
            raise serializers.ValidationError(exc.errors) from exc
        return Poll.objects.for_listing().get(pk=instance.pk)


class StrictIntegerField(serializers.IntegerField):
    """An integer that arrived as a JSON integer: no strings, floats or booleans."""

    default_error_messages = {"invalid": gettext_lazy("A valid integer is required.")}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class BallotListField(serializers.ListField):
    """Refuses an over-long ballot before looking at its items."""

    def to_internal_value(self, data: Any) -> list[Any]:
        limit = polls_settings.MAX_OPTIONS
        if isinstance(data, list) and len(data) > limit:
            raise serializers.ValidationError(VotingMethod.too_long(limit))
        return super().to_internal_value(data)


class BallotSerializer(FlatOptionErrorsMixin, serializers.Serializer[dict[str, Any]]):
    options = BallotListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        help_text="Ids of options of this poll: exactly one on a single-vote poll, "
        "one or more distinct ids on a multiple-vote poll.",
    )

    def validate_options(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError(gettext("Option ids must not repeat."))
        return value


class OfMethodMixin:
    """A field of one method's bodies: nullable where that method says null, and left out of
    the bodies of other methods (whose objects have no such attribute), not null there."""

    source_attrs: list[str]

    def get_attribute(self, instance: Any) -> Any:
        try:
            return get_attribute(instance, self.source_attrs)
        except (KeyError, AttributeError):
            raise SkipField() from None


class MethodFloatField(OfMethodMixin, serializers.FloatField):
    pass


class MethodIntegerField(OfMethodMixin, serializers.IntegerField):
    pass


class MethodListField(OfMethodMixin, serializers.ListField):
    pass


RANKING_HELP = (
    "ranked polls: distinct ids of options of the poll, most preferred first, min_choices to "
    "max_choices of them."
)
SCORES_HELP = (
    "score polls: distinct options of the poll, each with a whole score from 0 to the poll's "
    "max_score; min_choices to max_choices entries."
)


class ScoreEntrySerializer(serializers.Serializer[dict[str, Any]]):
    option = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    score = serializers.IntegerField(min_value=0, max_value=MAX_SCORE_LIMIT)


class MethodBallotSerializer(serializers.Serializer[dict[str, Any]]):
    """The body of ``POST``/``PUT vote/`` as the schema shows it: exactly one field, the one of
    the poll's method (another one, or none, is 400). A site's own method may take another."""

    options = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        help_text="single and multiple polls: ids of options of this poll, exactly one on a "
        "single-vote poll, one or more distinct ids on a multiple-vote poll.",
    )
    ranking = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        help_text=RANKING_HELP,
    )
    scores = ScoreEntrySerializer(many=True, required=False, help_text=SCORES_HELP)

    class Meta:
        ref_name = "Ballot"  # the schema's name of the vote body since v1


class VoteReceiptSerializer(serializers.Serializer[services.Receipt]):
    poll = serializers.IntegerField()
    options = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="single and multiple polls: the options of this ballot.",
    )
    ranking = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="ranked polls: the ranking."
    )
    scores = ScoreEntrySerializer(many=True, required=False, help_text="score polls: the scores.")
    created_at = serializers.DateTimeField()


class MyVoteSerializer(serializers.Serializer[services.MyBallot]):
    voted = serializers.BooleanField(help_text="Whether the caller voted on the poll.")
    options = serializers.ListField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="single and multiple polls: the option ids the caller voted for; empty when "
        "they have not voted; null on a secret poll, where nothing links a voter to a choice.",
    )
    ranking = MethodListField(
        child=serializers.IntegerField(),
        required=False,
        allow_null=True,
        help_text="ranked polls, in place of options: the caller's ranking (empty, null on a "
        "secret poll, as options).",
    )
    scores = MethodListField(
        child=ScoreEntrySerializer(),
        required=False,
        allow_null=True,
        help_text="score polls, in place of options: the caller's scores (empty, null on a "
        "secret poll, as options).",
    )


class OptionResultSerializer(serializers.Serializer[services.OptionResult]):
    id = serializers.IntegerField()
    text = serializers.CharField()
    votes = serializers.IntegerField(
        help_text="Ballots that chose the option (ranked: ranked it; score: scored it)."
    )
    percentage = serializers.FloatField(
        help_text="100 * votes / total_votes, rounded half-up to 2 decimals; 0.0 with no votes."
    )
    first_choices = serializers.IntegerField(
        required=False, help_text="ranked polls: ballots that rank the option first."
    )
    count = serializers.IntegerField(
        required=False, help_text="score polls: ballots that scored the option."
    )
    sum = serializers.IntegerField(required=False, help_text="score polls: the sum of its scores.")
    average = MethodFloatField(
        required=False,
        allow_null=True,
        help_text="score polls: sum / count, rounded half-up to 2 decimals; null when count is 0.",
    )
    distribution = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="score polls: how many ballots gave each score, from 0 to max_score.",
    )


class RoundTallySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    votes = serializers.IntegerField()


class RoundSerializer(serializers.Serializer[Any]):
    tallies = RoundTallySerializer(
        many=True, help_text="Each option still in the race, in the poll's order, and its votes."
    )
    exhausted = serializers.IntegerField(help_text="Ballots with no option left in the race.")
    eliminated = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Options eliminated at the end of the round (empty in the last round).",
    )


class ResultsSerializer(serializers.Serializer[services.Results]):
    poll = serializers.IntegerField()
    method = serializers.CharField(help_text="The poll's method: how a ballot chooses.")
    is_active = serializers.BooleanField()
    total_votes = serializers.IntegerField(help_text="Votes (selections), summed over the options.")
    total_voters = serializers.IntegerField(help_text="Distinct voters.")
    max_score = serializers.IntegerField(required=False, help_text="score polls: the top score.")
    options = OptionResultSerializer(many=True, help_text="In the options' creation order.")
    ballots = serializers.IntegerField(required=False, help_text="ranked polls: ballots counted.")
    rounds = RoundSerializer(
        many=True,
        required=False,
        help_text="ranked polls: the rounds of instant runoff (none without ballots). Each "
        "counts every ballot for its most preferred option still in the race; an option with "
        "more than half of the round's non-exhausted ballots wins; else options without votes "
        "are eliminated together, or the one with the fewest (ties: fewer in the round before, "
        "back to the first; then the last listed).",
    )
    winner = MethodIntegerField(
        required=False,
        allow_null=True,
        help_text="ranked polls: the winning option, or null (no ballots, or a tie).",
    )
    tied = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="ranked polls: the options still tied when the rounds ended without a "
        "winner (every option in the race with as many votes); else empty.",
    )


class PublicBallotSerializer(serializers.Serializer[dict[str, Any]]):
    """One voter's current ballot on a public poll (``ballots/``)."""

    voter = serializers.CharField(
        help_text="The voter's username (or the name DJANGO_POLLS['USER_DISPLAY'] gives)."
    )
    options = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="single and multiple polls: the option ids chosen, in the poll's order.",
    )
    ranking = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="ranked polls: the ranking."
    )
    scores = ScoreEntrySerializer(many=True, required=False, help_text="score polls: the scores.")
    created_at = serializers.DateTimeField(
        allow_null=True, help_text="When the voter's current ballot was stored."
    )


class BallotPageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of ``ballots/``, as the poll list pages its polls."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PublicBallotSerializer(many=True)


class AuditRecordSerializer(serializers.Serializer[dict[str, Any]]):
    """One entry of a poll's audit trail (``audit/``)."""

    seq = serializers.IntegerField(help_text="The entry's number in the poll's trail: 1, 2, ...")
    action = serializers.ChoiceField(choices=AuditRecord.Action.choices)
    at = serializers.DateTimeField()
    actor = serializers.CharField(
        allow_null=True,
        help_text="Who did it, named as DJANGO_POLLS['USER_DISPLAY'] names users; null for the "
        "app itself (a poll that opened or expired at its time) or a user since deleted.",
    )
    # The metaclass takes declared fields out of the class: Serializer.data stays a property.
    # An object whose values are any JSON (numbers, lists, objects), not strings alone.
    data = serializers.JSONField(  # type: ignore[assignment]
        help_text="created: the poll's fields and options; edited: each field changed, as "
        "[old, new]; closed: {expired: true} when by its expiry; deleted: its title; "
        "ballot_changed and ballot_retracted: on public polls only, the previous and current "
        "ballot."
    )
    prev_hash = serializers.CharField(
        allow_blank=True, help_text="The hash of the entry before (empty for the first)."
    )
    hash = serializers.CharField(
        help_text="SHA-256 of the entry's content and prev_hash: polls_verify_audit checks it."
    )


class AuditPageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of ``audit/``."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AuditRecordSerializer(many=True)


class ErrorSerializer(serializers.Serializer[dict[str, Any]]):
    """The body of every non-field error."""

    detail = serializers.CharField()
    code = serializers.CharField(
        help_text="Stable: not_authenticated, authentication_failed, permission_denied, "
        "not_found, already_voted, poll_closed, poll_not_open, poll_has_votes, poll_changed, "
        "not_voted, vote_final, not_eligible, results_hidden, ballots_hidden, parse_error, "
        "throttled, ..."
    )


class StrictCharField(serializers.CharField):
    """Text, and only text: a number or a boolean is not taken for its digits."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, and nothing DRF would read as one ("yes", 1, "on")."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class FlatListField(serializers.ListField):
    """A list whose items' errors are one list of messages, each naming its item, as every
    field error of the API is (DRF keys them by index)."""

    def run_child_validation(self, data: list[Any]) -> list[Any]:
        try:
            return super().run_child_validation(data)  # type: ignore[no-any-return]
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(flat_messages(exc.detail)) from None


class WebhookSubscriptionSerializer(serializers.ModelSerializer[WebhookSubscription]):
    """A webhook subscription (``webhooks/``) as the API shows it: where to send which events.
    Its secret is written (:class:`WebhookSubscriptionWriteSerializer`), never read back."""

    url = serializers.URLField(
        max_length=WEBHOOK_URL_LENGTH,
        help_text="Where events are POSTed: http or https, to a public address (loopback, "
        "private, link-local and metadata addresses are refused unless the site allows them in "
        "DJANGO_POLLS['WEBHOOK_ALLOWED_NETWORKS']). Redirects are not followed.",
    )
    events = FlatListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        allow_empty=False,
        min_length=1,
        max_length=len(WebhookEvent.values),
        help_text="The events sent: poll.created, poll.opened, poll.closed, poll.deleted, "
        "vote.cast, vote.changed, vote.retracted.",
    )
    site_wide = StrictBooleanField(
        required=False,
        help_text="Every poll's events (staff only; 403 otherwise), not only those of the polls "
        "the subscription's creator owns.",
    )
    is_active = StrictBooleanField(
        required=False, help_text="An inactive subscription gets nothing (default true)."
    )
    description = StrictCharField(max_length=200, allow_blank=True, required=False)
    created_by = serializers.SerializerMethodField(
        help_text="Who made it, named as DJANGO_POLLS['USER_DISPLAY'] names users."
    )

    class Meta:
        model = WebhookSubscription
        fields: tuple[str, ...] = (
            "id",
            "url",
            "events",
            "site_wide",
            "is_active",
            "description",
            "created_at",
            "created_by",
        )
        read_only_fields = ("id", "created_at")

    def get_created_by(self, subscription: WebhookSubscription) -> str:
        return str(polls_settings.USER_DISPLAY(subscription.created_by))


class WebhookSubscriptionWriteSerializer(WebhookSubscriptionSerializer):
    """A webhook subscription as it is sent: with its secret."""

    secret = serializers.CharField(
        write_only=True,
        min_length=services.MIN_SECRET_LENGTH,
        max_length=255,
        trim_whitespace=False,
        help_text="The key of each delivery's signature (X-Polls-Signature: HMAC-SHA256). "
        "Required to create and in a PUT; a PATCH without it keeps it. Never shown again.",
    )

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields: tuple[str, ...] = (*WebhookSubscriptionSerializer.Meta.fields, "secret")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.partial:  # a PATCH keeps the secret unless it sends one
            self.fields["secret"].required = False

    def create(self, validated_data: dict[str, Any]) -> WebhookSubscription:
        return services.create_subscription(
            created_by=self.context["request"].user, **validated_data
        )

    def update(
        self, instance: WebhookSubscription, validated_data: dict[str, Any]
    ) -> WebhookSubscription:
        return services.update_subscription(instance, **validated_data)


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    """One event sent (or to send) to a subscription, and how its attempts went."""

    # Text, not a second enum of the events beside the subscription's (one enum per choice set
    # in the OpenAPI document).
    event = serializers.CharField(help_text="The event's type: one of a subscription's events.")

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "event_id",
            "event",
            "poll_id",
            "created_at",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "response_status",
            "last_error",
            "delivered_at",
        )
        read_only_fields = fields


class WebhookDeliveryPageSerializer(serializers.Serializer[dict[str, Any]]):
    """A page of ``webhooks/{id}/deliveries/``."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = WebhookDeliverySerializer(many=True)
