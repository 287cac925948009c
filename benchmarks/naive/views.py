"""Tutorial-style views: the same URLs, bodies and status codes as django_polls, written the way
the DRF tutorial teaches (a ModelViewSet, serializers in and out, ``get_object()``)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.authentication import TokenAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from benchmarks.naive.models import Option, Poll, Vote


class OptionSerializer(serializers.ModelSerializer[Option]):
    class Meta:
        model = Option
        fields = ["id", "text"]


class PollSerializer(serializers.ModelSerializer[Poll]):
    options = OptionSerializer(many=True, read_only=True)

    class Meta:
        model = Poll
        fields = ["id", "title", "description", "created_at", "expires_at", "options"]


class BallotSerializer(serializers.Serializer[Any]):
    options = serializers.PrimaryKeyRelatedField(queryset=Option.objects.all(), many=True)

    def validate_options(self, options: list[Option]) -> list[Option]:
        poll = self.context["poll"]
        if any(option.poll_id != poll.pk for option in options):
            raise serializers.ValidationError("Not an option of this poll.")
        if len(options) > 1 and not poll.allow_multiple_votes:
            raise serializers.ValidationError("This poll takes exactly one option per voter.")
        return options


class ReceiptSerializer(serializers.Serializer[Any]):
    poll = serializers.IntegerField()
    options = serializers.ListField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()


class OptionResultSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    text = serializers.CharField()
    votes = serializers.IntegerField()
    percentage = serializers.FloatField()


class ResultsSerializer(serializers.Serializer[Any]):
    poll = serializers.IntegerField()
    is_active = serializers.BooleanField()
    total_votes = serializers.IntegerField()
    options = OptionResultSerializer(many=True)


class PollViewSet(viewsets.ModelViewSet[Poll]):
    queryset = Poll.objects.all()
    serializer_class = PollSerializer
    permission_classes = [permissions.IsAuthenticatedOrReadOnly]
    # DRF's own token authentication, as the tutorial has it, whatever the site's default.
    authentication_classes = [TokenAuthentication]

    @action(detail=True, methods=["post"], permission_classes=[permissions.IsAuthenticated])
    def vote(self, request: Request, pk: str | None = None) -> Response:
        poll = self.get_object()
        if not poll.accepts_votes():
            return Response({"detail": "This poll is closed."}, status=status.HTTP_409_CONFLICT)
        ballot = BallotSerializer(data=request.data, context={"poll": poll})
        ballot.is_valid(raise_exception=True)
        # Check, then insert.
        if Vote.objects.filter(poll=poll, user=request.user).exists():
            return Response({"detail": "Already voted."}, status=status.HTTP_409_CONFLICT)
        options = ballot.validated_data["options"]
        votes = [
            Vote.objects.create(poll=poll, option=option, user=request.user) for option in options
        ]
        receipt = {
            "poll": poll.pk,
            "options": [option.pk for option in options],
            "created_at": votes[0].created_at,
        }
        return Response(ReceiptSerializer(receipt).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"], permission_classes=[permissions.AllowAny])
    def results(self, request: Request, pk: str | None = None) -> Response:
        poll = self.get_object()
        options = list(poll.options.annotate(count=Count("votes")).order_by("id"))
        total = sum(option.count for option in options)
        results = {
            "poll": poll.pk,
            "is_active": poll.accepts_votes(),
            "total_votes": total,
            "options": [
                {
                    "id": option.pk,
                    "text": option.text,
                    "votes": option.count,
                    "percentage": round(100 * option.count / total, 2) if total else 0.0,
                }
                for option in options
            ],
        }
        return Response(ResultsSerializer(results).data)
