"""The health endpoint that load balancers and `make demo` probe."""

from __future__ import annotations

from django.db import DatabaseError, connection
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_polls import schema
from django_polls.exceptions import check_connection_pools

_body = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "database": {"type": "string", "enum": ["ok", "unavailable"]},
    },
}


class HealthView(APIView):
    """Answers 200 when the database answers a query, else 503."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []

    @schema.operation(
        "health",
        description="The service and its database answer. No authentication.",
        responses={
            200: schema.Response("Healthy.", _body),
            503: schema.Response("The database does not answer; see Retry-After.", _body),
        },
        public=True,
        tags=("health",),
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError:
            # Broken pooled connections (after a database restart) are replaced at once, not
            # one failed check at a time, each of which counts towards the balancer's "down".
            check_connection_pools()
            return Response(
                {"status": "unavailable", "database": "unavailable"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "1"},
            )
        return Response({"status": "ok", "database": "ok"})
