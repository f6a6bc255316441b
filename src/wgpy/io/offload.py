"""TUN offload: coalescing received TCP segments into one GSO write (virtio_net_hdr).

With IFF_VNET_HDR every TUN read and write carries a 10-byte virtio_net_hdr. We never enable
offloads towards us (no TUNSETOFFLOAD), so reads always come with an all-zero header and fully
checksummed packets. On the write side we use the header to hand the kernel many in-order TCP
segments of one flow as a single packet marked GSO + NEEDS_CSUM — what GRO would have built.
One write and one trip through the kernel's stack then carry up to 64 KiB, instead of one
write per 1420-byte packet.

Only plain segments are merged (IPv4 without options or fragments, IPv6 without extension
headers; TCP with just ACK and, on the last segment, PSH), and only when every header field the
kernel's GRO insists on matches (tcp_gro_receive, inet_gro_receive, ipv6_gro_receive): TCP
header length, reserved bits, window, ack and every option byte; IPv4 TOS, TTL, DF and an IP ID
that increments per segment (or, with DF, stays fixed); IPv6 traffic class, flow label and hop
limit. Everything else is written as it came, in order per flow.

NEEDS_CSUM tells the kernel the merged payload is already verified: it only fills in the new
checksum. So, as the kernel's GRO does before merging and as wireguard-go does, each segment's
own TCP checksum (and IPv4 header checksum) is verified before it joins a merge. A segment that
fails is not merged: it is written as it came, without NEEDS_CSUM, so the kernel checks it,
drops it and counts it (TcpInCsumErrors) exactly as if it had arrived on any other interface;
it also ends its flow's run, so nothing after it overtakes it. WireGuard's authentication does
not make this redundant: a segment corrupted before encryption (on the LAN behind a site
gateway, say) arrives authenticated but broken.
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
_IP_DF = 0x40  # in the IPv4 flags byte (offset 6)
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class _Segments:
    """An open run of mergeable segments of one TCP flow."""

    __slots__ = ("first", "first_id", "fixed_id", "header_length", "ip_header_length",
                 "next_seq", "payloads", "segment_size", "total", "verified", "version")

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
        # IPv4 ID: increments per segment, or (DF set) may stay fixed, decided by the second
        self.first_id = _U16.unpack_from(packet, 4)[0] if version == 4 else 0
        self.fixed_id = False
        # the first segment's checksums are verified once something is to be merged with it
        self.verified = False

    def accepts(self, packet: bytes, header_length: int, seq: int, payload_length: int) -> bool:
        """Whether `packet` may be appended, header-wise (checksums are checked apart)."""
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
        """The GRO flush rules: every field that the merged packet carries only once."""
        first, tcp = self.first, self.ip_header_length
        if self.version == 4:
            # TOS, flags byte (DF; MF and offset are zero in candidates), TTL
            if first[1] != packet[1] or first[6] != packet[6] or first[8] != packet[8]:
                return False
            if not self._ip_id_follows(_U16.unpack_from(packet, 4)[0], packet[6] & _IP_DF):
                return False
        elif first[0:4] != packet[0:4] or first[7] != packet[7]:
            return False  # traffic class, flow label, hop limit
        # data offset and reserved bits, window (flags are ACK or ACK|PSH in every candidate),
        # ack number, and every option byte
        return (
            first[tcp + 12] == packet[tcp + 12]
            and first[tcp + 14 : tcp + 16] == packet[tcp + 14 : tcp + 16]
            and first[tcp + 8 : tcp + 12] == packet[tcp + 8 : tcp + 12]
            and first[tcp + 20 : self.header_length] == packet[tcp + 20 : self.header_length]
        )

    def _ip_id_follows(self, ident: int, df: int) -> bool:
        """inet_gro_receive's IP ID rule: the ID increments by one per segment; with DF set
        a flow whose second segment repeats the first ID may keep it fixed (RFC 6864)."""
        count = len(self.payloads)
        if self.fixed_id:
            return ident == self.first_id
        if ident == (self.first_id + count) & 0xFFFF:
            return True
        return bool(df) and count == 1 and ident == self.first_id

    def add(self, packet: bytes, payload_length: int, psh: bool) -> None:
        if self.version == 4 and len(self.payloads) == 1:
            self.fixed_id = _U16.unpack_from(packet, 4)[0] == self.first_id
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
        if (packet[6] & ~_IP_DF) or packet[7] or _U16.unpack_from(packet, 2)[0] != size:
            return None  # fragment, reserved flag, or trailing bytes
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
            if not run.verified:
                run.verified = checksums_valid(run.first, version)
            if run.verified:
                if checksums_valid(packet, version):
                    run.add(packet, payload_length, psh)
                else:
                    # corrupt: the kernel checks it (no NEEDS_CSUM) and drops it; the run
                    # ends here so that nothing after it is written before it
                    del open_runs[key]
                    slots.append(NO_OFFLOAD + packet)
                continue
            # a corrupt first segment stays alone as written; this one starts a new run
        run = _Segments(packet, version, ip_length, header_length, seq)
        open_runs[key] = run
        slots.append(run)
    return [slot if isinstance(slot, bytes) else slot.build() for slot in slots]


def checksums_valid(packet: bytes, version: int) -> bool:
    """Whether a TCP segment's checksum (pseudo-header included) and, for IPv4, its header
    checksum verify.

    A valid one's complement sum is 0xFFFF, which is 0 modulo 0xFFFF (2**16 = 1 mod 0xFFFF),
    and the sum is byte-order independent (RFC 1071): so the segment is read as little-endian
    integers and reduced modulo 0xFFFF. The modulo's cost grows with the integer's size, so
    the segment is read as four quarters (cut at even offsets) added first: 2.5 µs for a
    1,408-byte segment against 3.1 µs as one integer, 17 µs summing struct-unpacked words and
    40 µs with array (CPython 3.11, bench lock held). The pseudo-header's addresses sit right
    before the TCP header (IPv4 bytes 12-20, IPv6 8-40), so the slices take them too; its
    protocol and length words are added byte-swapped.
    """
    if version == 4:
        if int.from_bytes(packet[:20], "little") % 0xFFFF:
            return False
        start, tcp_length = 12, len(packet) - 20
    else:
        start, tcp_length = 8, len(packet) - 40
    swapped_words = (IPPROTO_TCP << 8) + ((tcp_length & 0xFF) << 8) + (tcp_length >> 8)
    quarter = ((len(packet) - start) >> 3) << 1
    cut1, cut2, cut3 = start + quarter, start + 2 * quarter, start + 3 * quarter
    total = (
        int.from_bytes(packet[start:cut1], "little") + int.from_bytes(packet[cut1:cut2], "little")
        + int.from_bytes(packet[cut2:cut3], "little") + int.from_bytes(packet[cut3:], "little")
    )
    return (total + swapped_words) % 0xFFFF == 0


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
