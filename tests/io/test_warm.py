"""The keep-warm throwaway tunnel: every touch really carries a ping through the core, and
running it for long leaves no trace (no drops, no growing timer heaps or outboxes)."""

import pytest

from wgpy.io.warm import DEFAULT_WARM_WINDOW, MAX_WARM_WINDOW, Warmer, keep_warm_window


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


def test_keep_warm_window_defaults_and_is_set_by_the_environment(monkeypatch):
    monkeypatch.delenv("WGPY_KEEP_WARM", raising=False)
    assert keep_warm_window() == DEFAULT_WARM_WINDOW == 3.0


@pytest.mark.parametrize(("text", "window"), [
    ("0", 0.0), ("1.5", 1.5), ("-2", 0.0), ("1e9", MAX_WARM_WINDOW), ("nan", 3.0),
    ("soon", 3.0), ("", 3.0),
])
def test_keep_warm_window_values(monkeypatch, text, window):
    monkeypatch.setenv("WGPY_KEEP_WARM", text)
    assert keep_warm_window() == window
