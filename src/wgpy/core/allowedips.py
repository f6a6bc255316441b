"""Cryptokey routing: AllowedIPs as a longest-prefix-match table (whitepaper section 2).

Outbound, the destination address picks the peer; inbound, the source address must map back
to the peer the packet authenticated as. Each prefix has exactly one owner: inserting a prefix
another peer holds moves it (what seed 004 trips over: two peers with 0.0.0.0/0 leave the
first with none).

Representation: per address family, one dict per prefix length mapping the masked network
(as an int) to its peer, plus the lengths in use, longest first. Inserting or removing one
prefix touches one dict, so `wg set` on one peer never rebuilds the table for all. A lookup
probes at most one dict per length in use — fine for a few lengths, slow for a million random
prefixes of every length. So each family also keeps a flattened index: the address space cut
into disjoint ranges, each with the owner of its longest covering prefix, searched with
bisect in C. A change marks the index stale (lookups fall back to probing) and it is rebuilt
only after as many lookups as there are prefixes, which keeps the rebuild's O(n) cost
amortized to O(1) per lookup however often the table changes. In front of both sits a small
cache of recent answers by address (traffic goes to few destinations at a time), emptied by
any change to the table and when it fills.

Order of `entries_for_peer`, as the references keep it (wireguard-go's per-peer list, the
kernel's list_move_tail): a prefix goes to the end of its owner's list whenever it is
inserted, including a re-insert of a prefix the peer already had. Host bits are masked on
insert (10.1.2.3/8 is 10.0.0.0/8).
"""

import bisect
import ipaddress
from typing import Generic, TypeVar

P = TypeVar("P")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_BITS = {4: 32, 6: 128}


def _masks(bits: int) -> list[int]:
    full = (1 << bits) - 1
    return [full ^ ((1 << (bits - length)) - 1) for length in range(bits + 1)]


_MASKS = {4: _masks(32), 6: _masks(128)}
_bisect_right = bisect.bisect_right
CACHE_SIZE = 4096
_NOT_CACHED = object()


class _Family(Generic[P]):
    """The prefixes of one address family."""

    __slots__ = ("bits", "by_length", "count", "index_owners", "index_starts", "lengths",
                 "lookups_since_change", "masks")

    def __init__(self, version: int) -> None:
        self.by_length: dict[int, dict[int, P]] = {}
        self.lengths: list[tuple[int, dict[int, P], int]] = []  # (length, table, mask)
        self.masks = _MASKS[version]
        self.bits = _BITS[version]
        self.count = 0
        self.index_starts: list[int] | None = None  # None: stale
        self.index_owners: list[P | None] = []
        self.lookups_since_change = 0

    def _reindex(self) -> None:
        self.lengths = [
            (length, self.by_length[length], self.masks[length])
            for length in sorted(self.by_length, reverse=True)
        ]

    def get(self, network: int, length: int) -> P | None:
        table = self.by_length.get(length)
        return None if table is None else table.get(network)

    def set(self, network: int, length: int, peer: P) -> None:
        self.index_starts = None
        self.lookups_since_change = 0
        table = self.by_length.get(length)
        if table is None:
            table = self.by_length[length] = {}
            self._reindex()
        if network not in table:
            self.count += 1
        table[network] = peer

    def delete(self, network: int, length: int) -> None:
        self.index_starts = None
        self.lookups_since_change = 0
        table = self.by_length[length]
        del table[network]
        self.count -= 1
        if not table:
            del self.by_length[length]
            self._reindex()

    def lookup(self, address: int) -> P | None:
        starts = self.index_starts
        if starts is not None:
            return self.index_owners[bisect.bisect_right(starts, address) - 1]
        self.lookups_since_change += 1
        if self.lookups_since_change > self.count:
            self.build_index()
        for _, table, mask in self.lengths:
            peer = table.get(address & mask)
            if peer is not None:
                return peer
        return None

    def build_index(self) -> None:
        """Flatten the prefixes into sorted disjoint ranges, each with its longest match."""
        prefixes = sorted(
            (network, length, peer)
            for length, table in self.by_length.items()
            for network, peer in table.items()
        )
        starts: list[int] = [0]
        owners: list[P | None] = [None]

        def mark(point: int, owner: P | None) -> None:
            if starts[-1] == point:
                owners[-1] = owner
            elif owners[-1] is not owner:
                starts.append(point)
                owners.append(owner)

        stack: list[tuple[int, P]] = []  # (last address, peer) of the enclosing prefixes
        for network, length, peer in prefixes:
            while stack and stack[-1][0] < network:
                end, _ = stack.pop()
                mark(end + 1, stack[-1][1] if stack else None)
            mark(network, peer)
            stack.append((network + (1 << (self.bits - length)) - 1, peer))
        while stack:
            end, _ = stack.pop()
            if end + 1 < 1 << self.bits:
                mark(end + 1, stack[-1][1] if stack else None)
        self.index_starts, self.index_owners = starts, owners


class AllowedIPs(Generic[P]):
    """Longest-prefix match from IP address to peer, one owner per prefix."""

    def __init__(self) -> None:
        self._v4: _Family[P] = _Family(4)
        self._v6: _Family[P] = _Family(6)
        # peer -> its prefixes as (version, network int, length), in the reference's order
        self._by_peer: dict[P, dict[tuple[int, int, int], None]] = {}
        self._cache: dict[bytes, P | None] = {}
        # Changes with every change to the table: whoever keeps text made from a peer's
        # prefixes (the UAPI's `get`) checks them again only after it moved.
        self.generation = 0

    def _family(self, version: int) -> _Family[P]:
        return self._v4 if version == 4 else self._v6

    @staticmethod
    def _key(network: Network | str | tuple[int, int, int]) -> tuple[int, int, int]:
        """(IP version, network int, length); a tuple is taken as already that key."""
        if isinstance(network, tuple):
            return network
        if isinstance(network, str):
            network = ipaddress.ip_network(network, strict=False)
        version = network.version
        length = network.prefixlen
        return version, int(network.network_address) & _MASKS[version][length], length

    def insert(self, network: Network | str | tuple[int, int, int], peer: P) -> None:
        """Give `network` to `peer`, taking it from any other owner."""
        key = self._key(network)
        version, value, length = key
        family = self._family(version)
        self._cache.clear()
        self.generation += 1
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
        self._cache.clear()
        self.generation += 1
        family.delete(value, length)
        del self._by_peer[peer][key]
        return True

    def remove_by_peer(self, peer: P) -> None:
        self._cache.clear()
        self.generation += 1
        for version, value, length in self._by_peer.pop(peer, {}):
            self._family(version).delete(value, length)

    def lookup(self, address: bytes) -> P | None:
        """The peer for a packed IPv4 (4 bytes) or IPv6 (16 bytes) address. Hot path: the
        cache, then the common case (a fresh index) inlined here."""
        cache = self._cache
        peer = cache.get(address, _NOT_CACHED)
        if peer is not _NOT_CACHED:
            return peer  # type: ignore[return-value]
        family = self._v4 if len(address) == 4 else self._v6
        value = int.from_bytes(address, "big")
        starts = family.index_starts
        if starts is not None:
            peer = family.index_owners[_bisect_right(starts, value) - 1]
        else:
            peer = family.lookup(value)
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[address] = peer
        return peer

    def entries_for_peer(self, peer: P) -> list[Network]:
        result: list[Network] = []
        for version, value, length in self._by_peer.get(peer, ()):
            if version == 4:
                result.append(ipaddress.IPv4Network((value, length)))
            else:
                result.append(ipaddress.IPv6Network((value, length)))
        return result

    def keys_for_peer(self, peer: P) -> tuple[tuple[int, int, int], ...]:
        """entries_for_peer as (IP version, network as an int, prefix length), without
        building a network object each (what a `get` of many peers needs to print them)."""
        return tuple(self._by_peer.get(peer, ()))

    def compact(self) -> None:
        """Build the lookup index now (e.g. after loading a large configuration)."""
        self._v4.build_index()
        self._v6.build_index()

    def clear(self) -> None:
        self._v4 = _Family(4)
        self._v6 = _Family(6)
        self._by_peer.clear()
        self._cache.clear()
        self.generation += 1

    def __len__(self) -> int:
        return sum(len(prefixes) for prefixes in self._by_peer.values())
