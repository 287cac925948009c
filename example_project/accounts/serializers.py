from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer

User = get_user_model()

if TYPE_CHECKING:
    UserSerializerBase = serializers.ModelSerializer[Any]
else:
    UserSerializerBase = serializers.ModelSerializer


class AccountSerializer(UserSerializerBase):
    """An account as registration answers it: id, username and API token."""

    token = serializers.CharField(
        source="auth_token.key", read_only=True, help_text="Send as `Authorization: Token <key>`."
    )

    class Meta:
        model = User
        fields = ["id", "username", "token"]
        read_only_fields = fields


class RegisterSerializer(AccountSerializer):
    """A new account: the username rules and uniqueness come from the user model, the password
    rules from AUTH_PASSWORD_VALIDATORS."""

    password = serializers.CharField(
        write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )

    class Meta(AccountSerializer.Meta):
        fields = ["id", "username", "password", "token"]
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = User(username=attrs["username"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password": list(error.messages)}) from error
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Any:
        with transaction.atomic():
            user = User.objects.create_user(
                username=validated_data["username"], password=validated_data["password"]
            )
            Token.objects.create(user=user)
        return user


class SignInSerializer(AuthTokenSerializer):
    """DRF's sign-in, with the username normalised as at registration (Unicode NFKC), the way
    Django's own login form does."""

    def validate_username(self, value: str) -> str:
        return str(User.normalize_username(value))
