"""`POST /api/v1/auth/register/` and `POST /api/v1/auth/token/`: neither signs the caller in
with a session; both hand out the token that API calls send as `Authorization: Token <key>`.

Neither looks at credentials the request already carries, so a stale token or an admin session
cookie cannot turn a sign-in into a 401 or a CSRF failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError
from rest_framework import generics, serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from accounts.serializers import AccountSerializer, RegisterSerializer, SignInSerializer
from django_polls import schema

if TYPE_CHECKING:
    RegisterViewBase = generics.CreateAPIView[Any]
else:
    RegisterViewBase = generics.CreateAPIView

_token_body = {
    "type": "object",
    "properties": {"token": {"type": "string"}},
    "required": ["token"],
}


class RegisterView(RegisterViewBase):
    serializer_class = RegisterSerializer
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_scope = "auth"

    @schema.operation(
        "auth_register",
        description="Create an account and its API token. Does not start a session.",
        responses={
            201: schema.Response("The new account and its API token.", AccountSerializer),
            **schema.errors(400, 429),
        },
        public=True,
        tags=("auth",),
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        try:
            serializer.save()
        except IntegrityError as error:
            # Two sign-ups for one username at once: the second loses at the unique index.
            raise serializers.ValidationError(
                {"username": ["A user with that username already exists."]}
            ) from error


class TokenView(ObtainAuthToken):
    serializer_class = SignInSerializer
    authentication_classes: list[type] = []
    throttle_scope = "auth"

    def get_throttles(self) -> list[BaseThrottle]:
        # ObtainAuthToken turns throttling off; sign-in attempts count against the "auth" rate.
        classes = cast("list[type[BaseThrottle]]", api_settings.DEFAULT_THROTTLE_CLASSES)
        return [throttle() for throttle in classes]

    @schema.operation(
        "auth_token",
        description="The API token of an existing account (created on first use).",
        request=SignInSerializer,
        responses={200: schema.Response("The token.", _token_body), **schema.errors(400, 429)},
        public=True,
        tags=("auth",),
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)
