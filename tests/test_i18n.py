"""The API answers in the caller's language (``Accept-Language``, through Django's
``LocaleMiddleware``), as Django and DRF do: the same status and ``code``, the message translated;
the polls themselves stay as they were written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import translation
from rest_framework.authtoken.models import Token

from django_polls.models import Poll
from tests.conftest import assert_error, option_ids
from tests.test_async_views import ON_LOOP, Site

#: The test site's middleware with Django's LocaleMiddleware where Django's docs place it: after
#: the session, before CommonMiddleware.
WITH_LOCALE = [
    *settings.MIDDLEWARE[:1],
    "django.middleware.locale.LocaleMiddleware",
    *settings.MIDDLEWARE[1:],
]

ALREADY_VOTED = {
    "es": "Ya ha votado en esta encuesta tanto como lo permite.",
    "fr": "Vous avez déjà voté dans ce sondage autant qu’il le permet.",  # noqa: RUF001 (French apostrophe)
    "de": "Sie haben in dieser Umfrage bereits so oft abgestimmt, wie sie es erlaubt.",
    "pt-br": "Você já votou nesta enquete tanto quanto ela permite.",
}
TOO_FEW_OPTIONS = {
    "es": "Una encuesta necesita entre 2 y 20 opciones.",
    "fr": "Un sondage doit avoir entre 2 et 20 options.",
    "de": "Eine Umfrage braucht zwischen 2 und 20 Optionen.",
    "pt-br": "Uma enquete precisa ter entre 2 e 20 opções.",
}
ENGLISH = "You have already voted on this poll as far as it allows."


@pytest.fixture(autouse=True)
def locale_middleware() -> Iterator[None]:
    with override_settings(MIDDLEWARE=WITH_LOCALE):
        yield
    translation.deactivate()


@pytest.mark.django_db
@pytest.mark.parametrize("language", sorted(ALREADY_VOTED))
def test_errors_answer_in_the_callers_language_with_the_same_code(
    language: str,
    make_poll: Callable[..., Poll],
    make_user: Callable[..., Any],
    client_for: Callable[[Any], Any],
) -> None:
    poll = make_poll(title="Lunch?", options=("Pizza", "Soup"))
    client = client_for(make_user())
    ballot = {"options": option_ids(poll)[:1]}
    assert client.post(f"/api/v1/polls/{poll.pk}/vote/", ballot, format="json").status_code == 201

    again = client.post(
        f"/api/v1/polls/{poll.pk}/vote/", ballot, format="json", HTTP_ACCEPT_LANGUAGE=language
    )
    created = client.post(
        "/api/v1/polls/",
        {"title": "Dinner?", "options": [{"text": "Curry"}]},
        format="json",
        HTTP_ACCEPT_LANGUAGE=language,
    )
    results = client.get(f"/api/v1/polls/{poll.pk}/results/", HTTP_ACCEPT_LANGUAGE=language)

    assert assert_error(again, 409, "already_voted")["detail"] == ALREADY_VOTED[language]
    assert again["Content-Language"] == language
    assert created.status_code == 400
    assert created.json() == {"options": [TOO_FEW_OPTIONS[language]]}
    # Poll content stays as written.
    assert [option["text"] for option in results.json()["options"]] == ["Pizza", "Soup"]


@pytest.mark.django_db
def test_without_accept_language_the_api_answers_in_english(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any], client_for: Any
) -> None:
    poll = make_poll()
    client = client_for(make_user())
    ballot = {"options": option_ids(poll)[:1]}
    client.post(f"/api/v1/polls/{poll.pk}/vote/", ballot, format="json")
    french = client.post(
        f"/api/v1/polls/{poll.pk}/vote/", ballot, format="json", HTTP_ACCEPT_LANGUAGE="fr"
    )

    again = client.post(f"/api/v1/polls/{poll.pk}/vote/", ballot, format="json")

    assert french.json()["detail"] == ALREADY_VOTED["fr"]
    assert assert_error(again, 409, "already_voted")["detail"] == ENGLISH


@pytest.mark.django_db(transaction=True)
def test_a_ballot_answered_by_the_asgi_handler_is_translated(
    make_poll: Callable[..., Poll], make_user: Callable[..., Any]
) -> None:
    """On PostgreSQL the ballot is answered on the event loop, where LocaleMiddleware runs inline
    (django_polls.asgi.INLINE): the language is the request's own, and does not carry over to
    the next request on the same loop."""
    poll = make_poll()
    token = str(Token.objects.create(user=make_user()).key)
    path = f"/api/v1/polls/{poll.pk}/vote/"
    ballot = {"options": option_ids(poll)[:1]}
    site = Site()
    try:
        assert site.handler.inline is not None  # LocaleMiddleware is known to be safe there
        before = site.connections_taken()
        assert site.request("POST", path, body=ballot, token=token).status == 201

        answers = {
            language: site.request("POST", path, body=ballot, token=token, accept_language=language)
            for language in sorted(ALREADY_VOTED)
        }
        english = site.request("POST", path, body=ballot, token=token)

        if ON_LOOP:
            assert site.connections_taken() > before  # answered on the loop's own pool
        for language, answer in answers.items():
            assert answer.status == 409
            assert answer.json() == {"detail": ALREADY_VOTED[language], "code": "already_voted"}
            assert answer.headers["content-language"] == language
        assert english.json() == {"detail": ENGLISH, "code": "already_voted"}
    finally:
        site.close()
