"""Cryptokey routing: AllowedIPs as a longest-prefix-match table (whitepaper section 2).

Outbound, the destination address picks the peer; inbound, the source address must map back
to the peer the packet authenticated as. Each prefix has exactly one owner: inserting a prefix
another peer holds moves it (what seed 004 trips over: two peers with 0.0.0.0/0 leave the
first with none).

Representation: per address family, one dict per prefix length mapping the masked network
(as an int) to its peer, plus the lengths in use, longest first. A lookup converts the
address once and probes at most one dict per length in use; inserting or removing one prefix
touches one dict, so `wg set` on one peer never rebuilds the table for all.

Order of `entries_for_peer`, as the references keep it (wireguard-go's per-peer list, the
kernel's list_move_tail): a prefix goes to the end of its owner's list whenever it is
inserted, including a re-insert of a prefix the peer already had. Host bits are masked on
insert (10.1.2.3/8 is 10.0.0.0/8).
"""

import ipaddress
from typing import Generic, TypeVar

P = TypeVar("P")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_BITS = {4: 32, 6: 128}


def _masks(bits: int) -> list[int]:
    full = (1 << bits) - 1
    return [full ^ ((1 << (bits - length)) - 1) for length in range(bits + 1)]


_MASKS = {4: _masks(32), 6: _masks(128)}


class _Family(Generic[P]):
    """The prefixes of one address family."""

    __slots__ = ("by_length", "lengths", "masks")

    def __init__(self, version: int) -> None:
        self.by_length: dict[int, dict[int, P]] = {}
        self.lengths: list[tuple[int, dict[int, P], int]] = []  # (length, table, mask)
        self.masks = _MASKS[version]

    def _reindex(self) -> None:
        self.lengths = [
            (length, self.by_length[length], self.masks[length])
            for length in sorted(self.by_length, reverse=True)
        ]

    def get(self, network: int, length: int) -> P | None:
        table = self.by_length.get(length)
        return None if table is None else table.get(network)

    def set(self, network: int, length: int, peer: P) -> None:
        table = self.by_length.get(length)
        if table is None:
            table = self.by_length[length] = {}
            table[network] = peer
            self._reindex()
        else:
            table[network] = peer

    def delete(self, network: int, length: int) -> None:
        table = self.by_length[length]
        del table[network]
        if not table:
            del self.by_length[length]
            self._reindex()

    def lookup(self, address: int) -> P | None:
        for _, table, mask in self.lengths:
            peer = table.get(address & mask)
            if peer is not None:
                return peer
        return None


class AllowedIPs(Generic[P]):
    """Longest-prefix match from IP address to peer, one owner per prefix."""

    def __init__(self) -> None:
        self._v4: _Family[P] = _Family(4)
        self._v6: _Family[P] = _Family(6)
        # peer -> its prefixes as (version, network int, length), in the reference's order
        self._by_peer: dict[P, dict[tuple[int, int, int], None]] = {}

    def _family(self, version: int) -> _Family[P]:
        return self._v4 if version == 4 else self._v6

    @staticmethod
    def _key(network: Network | str) -> tuple[int, int, int]:
        if isinstance(network, str):
            network = ipaddress.ip_network(network, strict=False)
        version = network.version
        length = network.prefixlen
        return version, int(network.network_address) & _MASKS[version][length], length

    def insert(self, network: Network | str, peer: P) -> None:
        """Give `network` to `peer`, taking it from any other owner."""
        key = self._key(network)
        version, value, length = key
        family = self._family(version)
        previous = family.get(value, length)
        if previous is not None:
            self._by_peer[previous].pop(key, None)
        family.set(value, length, peer)
        self._by_peer.setdefault(peer, {})[key] = None

    def remove(self, network: Network | str, peer: P) -> bool:
        """Remove `network` if `peer` owns it (a peer cannot remove another's prefix)."""
        key = self._key(network)
        version, value, length = key
        family = self._family(version)
        if family.get(value, length) is not peer:
            return False
        family.delete(value, length)
        del self._by_peer[peer][key]
        return True

    def remove_by_peer(self, peer: P) -> None:
        for version, value, length in self._by_peer.pop(peer, {}):
            self._family(version).delete(value, length)

    def lookup(self, address: bytes) -> P | None:
        """The peer for a packed IPv4 (4 bytes) or IPv6 (16 bytes) address."""
        if len(address) == 4:
            return self._v4.lookup(int.from_bytes(address, "big"))
        return self._v6.lookup(int.from_bytes(address, "big"))

    def entries_for_peer(self, peer: P) -> list[Network]:
        result: list[Network] = []
        for version, value, length in self._by_peer.get(peer, ()):
            if version == 4:
                result.append(ipaddress.IPv4Network((value, length)))
            else:
                result.append(ipaddress.IPv6Network((value, length)))
        return result

    def clear(self) -> None:
        self._v4 = _Family(4)
        self._v6 = _Family(6)
        self._by_peer.clear()

    def __len__(self) -> int:
        return sum(len(prefixes) for prefixes in self._by_peer.values())
