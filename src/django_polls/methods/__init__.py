"""Voting methods: the contract (:class:`~django_polls.methods.base.VotingMethod`) and the
registry of the site's methods, ``DJANGO_POLLS["METHODS"]`` (dotted paths), resolved when asked
for so that ``override_settings`` just works.

One module per method: :mod:`~django_polls.methods.choice` (single and multiple),
:mod:`~django_polls.methods.ranked`, :mod:`~django_polls.methods.score`. A site adds its own by
listing its class's dotted path in the setting beside the built-in ones.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django_polls import conf
from django_polls.methods.base import (
    Counts,
    InvalidBallot,
    OptionResult,
    Results,
    VotingMethod,
)

__all__ = [
    "Counts",
    "InvalidBallot",
    "OptionResult",
    "Results",
    "UnknownMethod",
    "VotingMethod",
    "ballot_fields",
    "get_method",
    "registered",
]


class UnknownMethod(LookupError):
    """A poll names a method that the site's ``DJANGO_POLLS["METHODS"]`` does not list."""


def registered() -> Mapping[str, VotingMethod]:
    """The site's methods by name, in the order of the setting."""
    return _load(tuple(conf.get("METHODS")))


def get_method(name: str) -> VotingMethod:
    """The method called ``name``; :class:`UnknownMethod` when the site lists none."""
    try:
        return registered()[name]
    except KeyError:
        raise UnknownMethod(name) from None


def ballot_fields() -> frozenset[str]:
    """The ballot fields of all the site's methods (``options``, ``ranking``, ``scores``, ...)."""
    return _fields(tuple(conf.get("METHODS")))


@functools.cache
def _load(paths: tuple[str, ...]) -> Mapping[str, VotingMethod]:
    methods: dict[str, VotingMethod] = {}
    for path in paths:
        found: Any = conf.import_setting("METHODS", path)
        method = found()
        methods[method.name] = method
    return methods


@functools.cache
def _fields(paths: tuple[str, ...]) -> frozenset[str]:
    return frozenset(method.ballot_field for method in _load(paths).values())
