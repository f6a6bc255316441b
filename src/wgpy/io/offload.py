"""TUN offload: coalescing received TCP segments into one GSO write (virtio_net_hdr).

With IFF_VNET_HDR every TUN read and write carries a 10-byte virtio_net_hdr. We never enable
offloads towards us (no TUNSETOFFLOAD), so reads always come with an all-zero header and fully
checksummed packets. On the write side we use the header to hand the kernel many in-order TCP
segments of one flow as a single packet marked GSO + NEEDS_CSUM — what GRO would have built.
One write and one trip through the kernel's stack then carry up to 64 KiB, instead of one
write per 1420-byte packet.

Only plain segments are merged (IPv4 without options or fragments, IPv6 without extension
headers; TCP with just ACK and, on the last segment, PSH; equal ack and options), following the
kernel's tcp_gro_receive rules. Everything else is written as it came, in order per flow.
Every merged segment was authenticated by WireGuard first; merging never crosses peers'
packets into one flow unless they share the flow's addresses and ports, which AllowedIPs
already vouched for.
"""

import os
import struct
from collections.abc import Iterable

from wgpy.core.inet import ipv4_header_checksum, ones_complement_sum


def offloads_enabled() -> bool:
    """`WGPY_OFFLOAD=0` runs without any offload: plain TUN reads and writes (no vnet header),
    one sendmsg and one recvmsg per datagram (no UDP GSO/GRO). For ruling offloads out when
    something misbehaves, and for measuring what they are worth; each also falls back by
    itself when the kernel lacks it."""
    return os.environ.get("WGPY_OFFLOAD", "1") != "0"


VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_off
VNET_HDR_LEN = VNET_HDR.size
NO_OFFLOAD = bytes(VNET_HDR_LEN)
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_TCPV6 = 4
TCP_CHECKSUM_OFFSET = 16
IPPROTO_TCP = 6
TCP_ACK = 0x10
TCP_PSH = 0x08
MAX_COALESCED_LENGTH = 65535
MAX_COALESCED_SEGMENTS = 64
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class _Segments:
    """An open run of mergeable segments of one TCP flow."""

    __slots__ = ("first", "header_length", "ip_header_length", "next_seq", "payloads",
                 "segment_size", "total", "version")

    def __init__(self, packet: bytes, version: int, ip_header_length: int,
                 header_length: int, seq: int) -> None:
        self.first = packet
        self.version = version
        self.ip_header_length = ip_header_length
        self.header_length = header_length
        payload = packet[header_length:]
        self.payloads = [payload]
        self.segment_size = len(payload)
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF
        self.total = len(packet)

    def accepts(self, packet: bytes, header_length: int, seq: int, payload_length: int) -> bool:
        last_full = len(self.payloads[-1]) == self.segment_size
        return (
            last_full
            and seq == self.next_seq
            and header_length == self.header_length
            and payload_length <= self.segment_size
            and self.total + payload_length <= MAX_COALESCED_LENGTH
            and len(self.payloads) < MAX_COALESCED_SEGMENTS
            and not self.first[self.ip_header_length + 13] & TCP_PSH
            and self._same_headers(packet)
        )

    def _same_headers(self, packet: bytes) -> bool:
        first, ip_length = self.first, self.ip_header_length
        tcp = ip_length
        if self.version == 4:
            same_ip = first[1] == packet[1] and first[8] == packet[8] and first[6] == packet[6]
        else:
            same_ip = first[0:4] == packet[0:4] and first[7] == packet[7]
        # ack number, and every option byte, must match (tcp_gro_receive's flush rules)
        return (
            same_ip
            and first[tcp + 8 : tcp + 12] == packet[tcp + 8 : tcp + 12]
            and first[tcp + 20 : self.header_length] == packet[tcp + 20 : self.header_length]
        )

    def add(self, packet: bytes, payload_length: int, psh: bool) -> None:
        self.payloads.append(packet[self.header_length :])
        self.next_seq = (self.next_seq + payload_length) & 0xFFFFFFFF
        self.total += payload_length
        if psh:
            self._set_psh()

    def _set_psh(self) -> None:
        flags_at = self.ip_header_length + 13
        first = bytearray(self.first)
        first[flags_at] |= TCP_PSH
        self.first = bytes(first)

    def build(self) -> bytes:
        """The TUN write: virtio header plus one packet carrying every payload."""
        if len(self.payloads) == 1:
            return NO_OFFLOAD + self.first
        ip_length, header_length = self.ip_header_length, self.header_length
        header = bytearray(self.first[:header_length])
        payload = b"".join(self.payloads)
        tcp_length = header_length - ip_length + len(payload)
        if self.version == 4:
            header[2:4] = _U16.pack(header_length + len(payload))
            ipv4_header_checksum(header)
            pseudo = bytes(header[12:20]) + b"\0\x06" + _U16.pack(tcp_length)
            gso_type = VIRTIO_NET_HDR_GSO_TCPV4
        else:
            header[4:6] = _U16.pack(tcp_length)
            pseudo = bytes(header[8:40]) + _U32.pack(tcp_length) + b"\0\0\0\x06"
            gso_type = VIRTIO_NET_HDR_GSO_TCPV6
        # NEEDS_CSUM: the checksum field holds the pseudo-header sum, the kernel finishes it.
        checksum_at = ip_length + TCP_CHECKSUM_OFFSET
        header[checksum_at : checksum_at + 2] = _U16.pack(ones_complement_sum(pseudo))
        vnet = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type, header_length,
                             self.segment_size, ip_length, TCP_CHECKSUM_OFFSET)
        return vnet + bytes(header) + payload


def _tcp_segment_info(packet: bytes) -> tuple[bytes, int, int, int, int, int, bool] | None:
    """(flow key, version, ip header length, headers length, seq, payload length, psh) of a
    mergeable TCP segment, or None for anything that must be written as it is."""
    size = len(packet)
    version = packet[0] >> 4
    if version == 4:
        if size < 40 or packet[0] != 0x45 or packet[9] != IPPROTO_TCP:
            return None
        if (packet[6] & 0x3F) or packet[7] or _U16.unpack_from(packet, 2)[0] != size:
            return None  # fragment, or trailing bytes
        ip_length = 20
        key = packet[12:20]
    elif version == 6:
        if size < 60 or packet[6] != IPPROTO_TCP or _U16.unpack_from(packet, 4)[0] + 40 != size:
            return None
        ip_length = 40
        key = packet[8:40]
    else:
        return None
    flags = packet[ip_length + 13]
    if flags & ~(TCP_ACK | TCP_PSH) or not flags & TCP_ACK:
        return None
    header_length = ip_length + ((packet[ip_length + 12] >> 4) << 2)
    payload_length = size - header_length
    if header_length < ip_length + 20 or payload_length <= 0:
        return None
    seq = _U32.unpack_from(packet, ip_length + 4)[0]
    key += packet[ip_length : ip_length + 4]
    return key, version, ip_length, header_length, seq, payload_length, bool(flags & TCP_PSH)


def coalesce(packets: Iterable[bytes]) -> list[bytes]:
    """TUN writes (each with its virtio_net_hdr) for a batch of decrypted packets."""
    slots: list[bytes | _Segments] = []
    open_runs: dict[bytes, _Segments] = {}
    for packet in packets:
        info = _tcp_segment_info(packet)
        if info is None:
            # a non-mergeable packet of an open flow closes that flow's run first
            if len(packet) >= 40 and open_runs:
                for key in [k for k, run in open_runs.items() if _belongs(packet, run, k)]:
                    del open_runs[key]
            slots.append(NO_OFFLOAD + packet)
            continue
        key, version, ip_length, header_length, seq, payload_length, psh = info
        run = open_runs.get(key)
        if run is not None and run.accepts(packet, header_length, seq, payload_length):
            run.add(packet, payload_length, psh)
            continue
        run = _Segments(packet, version, ip_length, header_length, seq)
        open_runs[key] = run
        slots.append(run)
    return [slot if isinstance(slot, bytes) else slot.build() for slot in slots]


def _belongs(packet: bytes, run: _Segments, key: bytes) -> bool:
    """Whether a non-mergeable packet (a FIN, say) is of the run's flow."""
    if packet[0] >> 4 != run.version:
        return False
    if run.version == 4:
        header_length = (packet[0] & 0x0F) * 4
        return packet[12:20] + packet[header_length : header_length + 4] == key
    return packet[8:40] + packet[40:44] == key


def strip_read(data: bytes) -> bytes | None:
    """The packet from a TUN read with a virtio_net_hdr, or None if the header asks for an
    offload we never enabled (malformed: dropped and counted by the caller)."""
    if len(data) <= VNET_HDR_LEN:
        return None
    flags, gso_type = data[0], data[1]
    if gso_type != VIRTIO_NET_HDR_GSO_NONE or flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        return None
    return data[VNET_HDR_LEN:]
