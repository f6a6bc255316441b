"""The timer table itself: every timer has an expiry rule, and the lazy heap wakes the core
only when a deadline is due (the protocol scenarios are in test_device.py)."""

from wgpy.core.constants import KEEPALIVE_TIMEOUT
from wgpy.core.timers import EXPIRY, Timer, TimerQueue, data_received
from wgpy.inmemory import Pair


def test_every_timer_has_an_expiry_rule():
    assert set(EXPIRY) == set(Timer)


def test_arming_later_moves_the_deadline_without_growing_the_heap():
    pair = Pair()
    queue, timers = TimerQueue(jitter_seed=1), pair.a.peer.timers
    queue.arm(timers, Timer.SEND_KEEPALIVE, 10.0)
    queue.arm(timers, Timer.SEND_KEEPALIVE, 20.0)
    assert len(queue._heap) == 1
    assert list(queue.expired(15.0)) == []  # the early entry is re-queued for 20
    assert queue.next_deadline() == 20.0
    assert list(queue.expired(20.0)) == [(timers, Timer.SEND_KEEPALIVE)]
    assert queue.next_deadline() is None


def test_data_received_twice_owes_a_second_keepalive():
    pair = Pair()
    queue, peer = TimerQueue(jitter_seed=1), pair.a.peer
    data_received(queue, peer, 100.0)
    assert peer.timers.deadlines[Timer.SEND_KEEPALIVE] == 100.0 + KEEPALIVE_TIMEOUT
    assert not peer.need_another_keepalive
    data_received(queue, peer, 101.0)
    assert peer.timers.deadlines[Timer.SEND_KEEPALIVE] == 100.0 + KEEPALIVE_TIMEOUT
    assert peer.need_another_keepalive

