"""The keep-warm throwaway tunnel: every touch really carries a ping through the core, and
running it for long leaves no trace (no drops, no growing timer heaps or outboxes)."""

from wgpy.io.warm import Warmer, keep_warm_enabled


def test_each_touch_carries_a_ping_and_leaves_nothing_behind():
    warmer = Warmer()
    a, b = warmer._a, warmer._b
    assert a.public_key is not None
    received = b.peers[a.public_key].rx_bytes
    for _ in range(5000):
        warmer.touch()
    assert b.peers[a.public_key].rx_bytes == received + 5000 * 128  # 96-byte ping sealed
    for device in (a, b):
        assert not any(device.drops.values())
        assert not device.outbox
        assert len(device.timers._heap) <= 5


def test_keep_warm_is_on_unless_turned_off(monkeypatch):
    monkeypatch.delenv("WGPY_KEEP_WARM", raising=False)
    assert keep_warm_enabled()
    monkeypatch.setenv("WGPY_KEEP_WARM", "0")
    assert not keep_warm_enabled()

