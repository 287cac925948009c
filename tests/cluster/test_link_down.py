"""An app host cut off from the network (the bridge's side of its link taken down, as a switch
port or a cable failing) while ballots arrive through the balancer, then restored: the balancer
routes around it within its health checks, no acknowledged ballot is lost, and the host serves
again once its link is back.

The clients give a request 5 s, as an impatient client would, then send the ballot again: a
request that was on its way to the host when it was cut gets no answer (HAProxy would answer 504
only after `timeout server`, 20 s). New requests that the balancer still sends to the host meet a
connection that is never made and go to another host (`option redispatch 1`), a second or two
late; once two health checks have failed (a second apart) the host gets no more."""

from __future__ import annotations

import subprocess
import time

from tests.cluster.conftest import Cluster, Voting, ballots_for, in_rotation, new_poll

VOTERS = 2000
#: How long the host stays cut off.
CUT_FOR = 6.0
#: From this long after the cut every request is answered at once (201): the balancer has
#: taken the host out (two failed checks a second apart, each given a second).
ROUTED_AROUND = 4.0
#: What "at once" means here: a ballot normally takes a few milliseconds.
PROMPT = 1.0


def link(cluster: Cluster, number: int, state: str) -> None:
    subprocess.run(["ip", "link", "set", cluster.layout.veth(number), state], check=True)


def test_a_host_cut_off_is_routed_around_and_loses_no_ballot(cluster: Cluster) -> None:
    poll, options = new_poll(cluster, "Cut off?")
    ballots = ballots_for(cluster, options, VOTERS)
    in_rotation(cluster, "app2")
    try:
        with Voting(cluster, poll, ballots, timeout=5) as voting:
            voting.wait_for(100)
            cut = time.monotonic()
            link(cluster, 2, "down")
            time.sleep(CUT_FOR)
            link(cluster, 2, "up")
            restored = time.monotonic()
            back = in_rotation(cluster, "app2")
            voting.wait_for(100, since=time.monotonic())
    finally:
        link(cluster, 2, "up")

    # Every request in the air while the host was cut off, those on their way at the cut too.
    during = [o for o in voting.attempts if o.received >= cut and o.sent < restored]
    in_flight = [o for o in during if o.sent < cut and o.status not in (201, 409)]
    failed = [o for o in during if o.status not in (201, 409)]
    slow = [o for o in during if o.received - o.sent > PROMPT]
    last_failed = max((o.sent - cut for o in failed), default=0.0)
    last_slow = max((o.sent - cut for o in slow), default=0.0)
    acknowledged, conflicts = voting.check()
    print(
        f"\nlink down: host 2 cut off for {CUT_FOR:.0f} s under {len(voting.sent)} ballots "
        f"({len(during)} requests while cut): {len(failed)} unanswered or failed "
        f"({len(in_flight)} of them on their way at the cut), the last sent {last_failed:.2f} s "
        f"after the cut; {len(slow)} slower than {PROMPT:.0f} s, the last sent {last_slow:.2f} s "
        f"after it; every request from {max(last_failed, last_slow, 0):.2f} s on answered at "
        f"once; back in rotation {back:.1f} s after the link; {len(acknowledged | conflicts)} "
        f"stored, {len(conflicts)} of them before their answer was lost"
    )
    assert max(last_failed, last_slow) < ROUTED_AROUND, (
        f"requests still failed or lagged {max(last_failed, last_slow):.2f} s after the cut"
    )
