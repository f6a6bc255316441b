"""Coalesced TUN writes against the real kernel: a TCP segment corrupted before WireGuard
encrypted it (on the LAN behind a site gateway, say) must reach no socket.

The test plays the remote TCP end by hand through a TUN inside its own namespace: a SYN in,
the kernel's SYN-ACK read back, the ACK in, then one batch of data segments with one of them
corrupted goes through `Tun.write_batch` (the coalescing path the daemon uses). The socket
must see the good bytes only, the kernel must count the bad one as a checksum error, and a
clean retransmission of it must fill the hole.
"""

import select
import socket
import struct

import pytest

from tcpsegment import corrupt, tcp_segment
from wgpy.io.tun import Tun

from netlab import Namespace, in_namespace, socket_in_namespace, unique_name

pytestmark = pytest.mark.root

FAMILIES = {
    "ipv4": (socket.AF_INET, "10.77.0.1", "10.77.0.2", "24"),
    "ipv6": (socket.AF_INET6, "fd77::1", "fd77::2", "64"),
}
SYN, ACK = 0x02, 0x10


def csum_errors(ns: Namespace) -> int:
    """The namespace's TCP InCsumErrors counter (/proc/net/snmp)."""
    lines = [line.split() for line in ns.run("cat", "/proc/net/snmp").stdout.splitlines()
             if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("InCsumErrors")])


def read_syn_ack(tun: Tun, local: str, port: int) -> tuple[int, int]:
    """(seq, ack) of the kernel's SYN-ACK to our SYN, skipping whatever else it sends."""
    ip_length = 20 if "." in local else 40
    for _ in range(50):
        select.select([tun.fd], [], [], 0.2)
        for packet in tun.read_batch(16):
            if len(packet) < ip_length + 20:
                continue
            tcp = packet[ip_length:]
            sport, _, seq, ack, _, flags = struct.unpack_from("!HHIIBB", tcp)
            if sport == port and flags & (SYN | ACK) == SYN | ACK:
                return seq, ack
    raise AssertionError("no SYN-ACK from the kernel")


def receive_until_quiet(conn: socket.socket, quiet: float = 0.5) -> bytes:
    data = b""
    while select.select([conn], [], [], quiet)[0]:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_corrupted_segment_in_a_batch_reaches_no_socket(root_netns, family):
    af, local, remote, prefix = FAMILIES[family]
    name = unique_name("wgck", max_len=15)
    with Namespace(prefix="wgpy-csum-") as ns:
        tun = in_namespace(ns, lambda: Tun(name, mtu=1500))
        try:
            assert tun.vnet_hdr
            ns.run("ip", "addr", "add", f"{local}/{prefix}", "dev", name, "nodad")
            ns.run("ip", "link", "set", name, "up")
            listener = socket_in_namespace(ns, af, socket.SOCK_STREAM)
            listener.bind((local, 0))
            listener.listen(1)
            port = listener.getsockname()[1]

            def segment(seq: int, ack: int, payload: bytes = b"", flags: int = ACK,
                        ident: int = 1) -> bytes:
                return tcp_segment(remote, local, 40000, port, seq, payload, ack=ack,
                                   flags=flags, window=65535, ident=ident)

            isn = 1_000_000
            assert tun.write_batch([segment(isn, 0, flags=SYN)]) == 0
            their_seq, _ = read_syn_ack(tun, local, port)
            ack = their_seq + 1
            assert tun.write_batch([segment(isn + 1, ack, ident=2)]) == 0
            listener.settimeout(5)
            conn, _ = listener.accept()

            payloads = [bytes([65 + i]) * 1000 for i in range(5)]
            batch = [segment(isn + 1 + 1000 * i, ack, p, ident=3 + i)
                     for i, p in enumerate(payloads)]
            bad = corrupt(batch[2], -1)
            errors_before = csum_errors(ns)
            assert tun.write_batch([*batch[:2], bad, *batch[3:]]) == 0
            received = receive_until_quiet(conn)
            assert received == payloads[0] + payloads[1]  # the hole holds the rest back
            assert csum_errors(ns) == errors_before + 1
            # the clean retransmission fills the hole; the damaged bytes were never delivered
            assert tun.write_batch([batch[2]]) == 0
            received += receive_until_quiet(conn)
            assert received == b"".join(payloads)
            conn.close()
            listener.close()
        finally:
            tun.close()
