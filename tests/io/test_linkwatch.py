"""Link events: which netlink messages concern our interface, malformed ones included (no
root needed: the messages are built here), and a real change arriving (root)."""

import struct
import subprocess

import pytest

from wgpy.io.linkwatch import RTM_DELLINK, RTM_NEWLINK, LinkEvents
from wgpy.io.tun import Tun

from netlab import unique_name

RTM_NEWADDR = 20


def message(kind: int, index: int, extra: bytes = b"") -> bytes:
    body = struct.pack("=BxHiII", 0, 0, index, 0, 0) + extra
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


@pytest.fixture
def events():
    watch = LinkEvents(ifindex=7)
    yield watch
    watch.close()


def test_only_link_messages_for_our_index_count(events):
    assert events._mentions_ours(message(RTM_NEWLINK, 7))
    assert events._mentions_ours(message(RTM_DELLINK, 7))
    assert not events._mentions_ours(message(RTM_NEWLINK, 8))
    assert not events._mentions_ours(message(RTM_NEWADDR, 7))
    # several messages in one datagram, ours last, the first with padding to 4 bytes
    assert events._mentions_ours(message(RTM_NEWLINK, 8, b"\x01") + b"\0\0\0"
                                 + message(RTM_NEWLINK, 7))


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 15, struct.pack("=IHHII", 0, RTM_NEWLINK, 0, 0, 0) + b"\x07" * 16,
    struct.pack("=IHHII", 10**6, RTM_NEWLINK, 0, 0, 0), message(RTM_NEWLINK, 7)[:20],
])
def test_malformed_messages_end_the_read_without_error(events, data):
    assert events._mentions_ours(data) is False


def test_a_real_link_change_is_announced(root_netns):
    tun = Tun(unique_name("wgl", max_len=15))
    try:
        watch = LinkEvents(tun.index())
        try:
            assert watch.drain() is False  # nothing yet
            subprocess.run(["ip", "link", "set", tun.name, "mtu", "1300"], check=True)
            assert watch.drain() is True
        finally:
            watch.close()
    finally:
        tun.close()
