"""Throttling when the cache that counts requests (Redis) cannot be reached.

Registering and signing in (scope ``auth``) fail closed: 503 ``service_unavailable``, because a
limit that is off there lets anyone make accounts in bulk or guess passwords at full speed. The
other scopes fail open: an outage of a cache that only counts requests must not stop voting;
the rules of a ballot hold without it. Either way each refusal or pass is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rest_framework import exceptions, status, throttling
from rest_framework.request import Request

logger = logging.getLogger(__name__)

#: Scopes refused while their counts cannot be kept.
FAIL_CLOSED_SCOPES = frozenset({"auth"})


class ThrottleUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Requests of this kind cannot be counted right now; retry shortly."
    default_code = "service_unavailable"
    wait = 5  # DRF's exception handler sends it as Retry-After


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """DRF's ScopedRateThrottle, failing closed for :data:`FAIL_CLOSED_SCOPES` and open for the
    rest when the cache does not answer, instead of a 500."""

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return bool(super().allow_request(request, view))
        except (RedisError, OSError) as error:
            if self.scope in FAIL_CLOSED_SCOPES:
                logger.error(
                    "Throttle cache unavailable, %r request refused (503): %s", self.scope, error
                )
                raise ThrottleUnavailable() from error
            logger.warning(
                "Throttle cache unavailable, %r request let through: %s", self.scope, error
            )
            return True
