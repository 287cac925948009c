"""Webhooks from the example project under Gunicorn: a thousand ballots over HTTP, each announced
to a local receiver exactly as often as it needs, while the sender (manage.py polls_deliver) is
killed with SIGKILL in the middle of a batch and another takes over.

The receiver deduplicates on the event id, as docs/webhooks.md asks receivers to: it must end
with one event per ballot, every signature valid, and the outbox with every delivery delivered.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from django_polls.webhooks import verify_signature
from tests.example.conftest import EXAMPLE_DIR, Deployment, Server, create_poll, new_token

BALLOTS = 1000
SECRET = "the-receivers-own-secret"
#: The sender's settings here: small batches and a short timeout, so that a killed sender's lease
#: (its batch's attempts one after another per thread, plus a margin) runs out within seconds.
SENDER = {
    "WEBHOOK_TIMEOUT": "3",
    "WEBHOOK_RETRY_DELAY": "1",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
}
#: Seconds to wait for every event (never a bound on speed).
PATIENCE = 180


class Receiver:
    """Keeps each event once (by its id) and counts repeats; every signature is checked."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.seen: Counter[str] = Counter()
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(0.01)  # a receiver that takes its time: batches stay in flight
                event_id = self.headers["X-Polls-Event-Id"]
                with receiver.lock:
                    receiver.seen[event_id] += 1
                    if not verify_signature(body, self.headers["X-Polls-Signature"], SECRET):
                        receiver.bad_signatures += 1
                    receiver.events.setdefault(event_id, json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/polls"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def received(self) -> int:
        return sum(self.seen.values())


@pytest.fixture(scope="module")
def hooked(deployment: Deployment) -> Iterator[Server]:
    """Gunicorn without a sender of its own: the test runs its senders."""
    with deployment.serve(workers=2, WEBHOOK_WORKER="false", **SENDER) as running:
        yield running


def test_the_example_sends_webhooks_out_of_the_box(deployment: Deployment) -> None:
    """Gunicorn runs the sender beside itself (WEBHOOK_WORKER, on by default): a ballot's event
    reaches the receiver with nothing else started."""
    receiver = Receiver()
    with deployment.serve(workers=1, WEBHOOK_WORKER="true", **SENDER) as server:
        owner = new_token(server)
        poll = create_poll(server, owner, title="Out of the box")
        body = {"url": receiver.url, "events": ["vote.cast"], "secret": SECRET}
        assert server.request("POST", "/api/v1/webhooks/", body, token=owner).status == 201
        ballot = {"options": [poll["options"][1]["id"]]}
        path = f"/api/v1/polls/{poll['id']}/vote/"
        assert server.request("POST", path, ballot, token=new_token(server)).status == 201
        deadline = time.monotonic() + PATIENCE
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.1)
    receiver.close()
    (event,) = receiver.events.values()
    assert event["type"] == "vote.cast" and event["data"]["ballot"] == ballot
    assert receiver.bad_signatures == 0


def sender(deployment: Deployment) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "manage.py", "polls_deliver"),
            *("--batch", "20", "--concurrency", "4", "--interval", "0.2"),
        ],
        cwd=EXAMPLE_DIR,
        env=deployment.env(**SENDER),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def voters(deployment: Deployment, count: int) -> list[str]:
    """Tokens of ``count`` new users, made in one go (registering each would hash a password)."""
    code = (
        "import json, secrets\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "User = get_user_model()\n"
        "tag = secrets.token_hex(4)\n"
        f"names = [f'voter-{{tag}}-{{i}}' for i in range({count})]\n"
        "users = User.objects.bulk_create(User(username=name) for name in names)\n"
        "keys = (Token(user=user, key=Token.generate_key()) for user in users)\n"
        "tokens = Token.objects.bulk_create(keys)\n"
        "print(json.dumps([t.key for t in tokens]))\n"
    )
    return list(json.loads(deployment.manage("shell", "-c", code).stdout.strip().splitlines()[-1]))


def outbox(deployment: Deployment, poll: int) -> dict[str, int]:
    """How many of the poll's deliveries are in each state."""
    code = (
        "import json\n"
        "from django.db.models import Count\n"
        "from django_polls.models import WebhookDelivery\n"
        f"rows = WebhookDelivery.objects.filter(poll_id={poll})"
        ".values('status').annotate(n=Count('id'))\n"
        "print(json.dumps({row['status']: row['n'] for row in rows}))\n"
    )
    return dict(json.loads(deployment.manage("shell", "-c", code).stdout.strip().splitlines()[-1]))


def test_a_thousand_ballots_are_each_delivered_through_a_sender_killed_mid_batch(
    deployment: Deployment, hooked: Server
) -> None:
    receiver = Receiver()
    owner = new_token(hooked)
    poll = create_poll(hooked, owner, title="Hooked", anonymity="public")
    subscribed = hooked.request(
        "POST",
        "/api/v1/webhooks/",
        {"url": receiver.url, "events": ["vote.cast"], "secret": SECRET},
        token=owner,
    )
    assert subscribed.status == 201, subscribed.text
    tokens = voters(deployment, BALLOTS)
    option = poll["options"][0]["id"]
    first = sender(deployment)

    def vote(token: str) -> int:
        path = f"/api/v1/polls/{poll['id']}/vote/"
        return hooked.request("POST", path, {"options": [option]}, token=token).status

    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(vote, tokens)
        # Killed once it is well into its work, with a batch in flight.
        deadline = time.monotonic() + PATIENCE
        while receiver.received < BALLOTS // 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
        statuses = Counter(answers)
    assert statuses == {201: BALLOTS}
    second = sender(deployment)
    try:
        deadline = time.monotonic() + PATIENCE
        while len(receiver.events) < BALLOTS and time.monotonic() < deadline:
            time.sleep(0.2)
        while (
            outbox(deployment, poll["id"]) != {"delivered": BALLOTS} and time.monotonic() < deadline
        ):
            time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert len(receiver.events) == BALLOTS, outbox(deployment, poll["id"])
    assert receiver.bad_signatures == 0
    assert outbox(deployment, poll["id"]) == {"delivered": BALLOTS}
    cast = list(receiver.events.values())
    assert {event["type"] for event in cast} == {"vote.cast"}
    assert len({event["data"]["voter"] for event in cast}) == BALLOTS
    assert {json.dumps(event["data"]["ballot"]) for event in cast} == {
        json.dumps({"options": [option]})
    }
    # At least once: repeats only of what the killed sender had in flight.
    repeated = sum(count - 1 for count in receiver.seen.values())
    assert repeated <= 20
    results = hooked.request("GET", f"/api/v1/polls/{poll['id']}/results/").json
    assert results["total_votes"] == BALLOTS
    receiver.close()
