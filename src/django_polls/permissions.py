from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView


class IsOwnerOrStaffOrReadOnly(BasePermission):
    """Anyone may read a poll; only its creator or a staff user may change, close or delete it."""

    message = gettext_lazy("Only the poll's creator or a staff user may change it.")

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        user = request.user
        return bool(user and (user.is_staff or obj.created_by_id == user.pk))
