"""Throttling that survives its cache: while Redis cannot be reached, requests go through
unthrottled (and a warning is logged) instead of failing with 500."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.request import Request

logger = logging.getLogger(__name__)


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """DRF's ScopedRateThrottle, failing open when the cache does not answer: an outage of the
    cache that only counts requests must not stop voting."""

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return bool(super().allow_request(request, view))
        except (RedisError, OSError) as error:
            logger.warning("Throttle cache unavailable, request let through: %s", error)
            return True
