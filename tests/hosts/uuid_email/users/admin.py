from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin

from tests.hosts.uuid_email.users.models import User

if TYPE_CHECKING:
    UserAdminBase = admin.ModelAdmin[User]
else:
    UserAdminBase = admin.ModelAdmin


@admin.register(User)
class UserAdmin(UserAdminBase):
    list_display = ("email", "is_staff", "is_active", "date_joined")
    search_fields = ("email",)
    ordering = ("email",)
