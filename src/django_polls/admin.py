from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_polls import services
from django_polls.models import Option, Poll, Vote

# Django's admin classes are generic only to type checkers.
if TYPE_CHECKING:
    OptionInlineBase = admin.TabularInline[Option, Poll]
    PollAdminBase = admin.ModelAdmin[Poll]
    VoteAdminBase = admin.ModelAdmin[Vote]
else:
    OptionInlineBase = admin.TabularInline
    PollAdminBase = VoteAdminBase = admin.ModelAdmin


class OptionInline(OptionInlineBase):
    model = Option
    extra = 0
    fields = ("order", "text", "votes")
    readonly_fields = ("votes",)
    ordering = ("order", "id")

    def _has_votes(self, obj: Poll | None) -> bool:
        return obj is not None and Vote.objects.filter(poll=obj).exists()

    # Once a poll has votes its options are frozen, as in the API.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._has_votes(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._has_votes(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._has_votes(obj) and super().has_delete_permission(request, obj)


@admin.register(Poll)
class PollAdmin(PollAdminBase):
    list_display = ("title", "created_by", "created_at", "expires_at", "closed_at", "is_active")
    list_filter = ("allow_multiple_votes", "created_at")
    search_fields = ("title", "description")
    readonly_fields = ("created_at", "closed_at")
    raw_id_fields = ("created_by",)
    inlines = (OptionInline,)
    actions = ("close_polls",)

    def get_readonly_fields(self, request: HttpRequest, obj: Poll | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and Vote.objects.filter(poll=obj).exists():
            fields += ("allow_multiple_votes",)
        return fields

    @admin.display(boolean=True, description=_("active"))
    def is_active(self, poll: Poll) -> bool:
        return poll.is_active

    @admin.action(description=_("Close the selected polls"))
    def close_polls(self, request: HttpRequest, queryset: QuerySet[Poll]) -> None:
        for poll in queryset:
            services.close_poll(poll=poll)
        self.message_user(request, _("Closed the selected polls."), messages.SUCCESS)


@admin.register(Vote)
class VoteAdmin(VoteAdminBase):
    """Votes are read-only here: they are written and withdrawn only through the API's rules."""

    list_display = ("poll", "option", "voter", "created_at")
    list_select_related = ("poll", "option", "voter")
    raw_id_fields = ("poll", "option", "voter")
    search_fields = ("poll__title", "voter__username")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Vote | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Vote | None = None) -> bool:
        return False
