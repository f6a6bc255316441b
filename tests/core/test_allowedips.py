"""AllowedIPs: hand cases from the seeds and the references, and a brute-force oracle."""

import ipaddress
import random

from wgpy.core.allowedips import AllowedIPs


class Peer:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_longest_prefix_wins_in_both_families():
    a, b, c, d = (Peer(n) for n in "abcd")
    table: AllowedIPs[Peer] = AllowedIPs()
    table.insert("10.0.0.0/8", a)
    table.insert("10.1.0.0/16", b)
    table.insert("10.1.1.0/24", c)
    table.insert("10.1.1.1/32", d)
    assert table.lookup(ip("10.2.3.4")) is a
    assert table.lookup(ip("10.1.2.3")) is b
    assert table.lookup(ip("10.1.1.2")) is c
    assert table.lookup(ip("10.1.1.1")) is d
    assert table.lookup(ip("11.0.0.1")) is None
    table.insert("fd00::/8", a)
    table.insert("fd00:1::/32", b)
    table.insert("fd00:1::1/128", c)
    assert table.lookup(ip("fd00:1::1")) is c
    assert table.lookup(ip("fd00:1::2")) is b
    assert table.lookup(ip("fd99::1")) is a
    assert table.lookup(ip("fe80::1")) is None
    assert table.lookup(ip("10.1.1.1")) is d  # families do not mix


def test_default_routes_and_host_bits_masked():
    a, b = Peer("a"), Peer("b")
    table: AllowedIPs[Peer] = AllowedIPs()
    table.insert("0.0.0.0/0", a)
    table.insert("::/0", b)
    assert table.lookup(ip("203.0.113.9")) is a
    assert table.lookup(ip("2001:db8::9")) is b
    table.insert("192.168.7.99/24", b)
    assert [str(n) for n in table.entries_for_peer(b)] == ["::/0", "192.168.7.0/24"]


def test_seed_004_two_peers_with_the_same_prefix_moves_it():
    first, second = Peer("first"), Peer("second")
    table: AllowedIPs[Peer] = AllowedIPs()
    table.insert("0.0.0.0/0", first)
    table.insert("0.0.0.0/0", second)
    assert table.entries_for_peer(first) == []
    assert [str(n) for n in table.entries_for_peer(second)] == ["0.0.0.0/0"]
    assert table.lookup(ip("8.8.8.8")) is second


def test_order_is_insertion_order_and_reinsert_moves_to_the_end():
    a = Peer("a")
    table: AllowedIPs[Peer] = AllowedIPs()
    for prefix in ("10.0.0.1/32", "fd00::/64", "10.0.0.2/32"):
        table.insert(prefix, a)
    table.insert("10.0.0.1/32", a)
    assert [str(n) for n in table.entries_for_peer(a)] == [
        "fd00::/64", "10.0.0.2/32", "10.0.0.1/32"]


def test_index_goes_stale_on_change_and_rebuilds_after_enough_lookups():
    a, b = Peer("a"), Peer("b")
    table: AllowedIPs[Peer] = AllowedIPs()
    table.insert("10.0.0.0/8", a)
    table.compact()
    assert table.lookup(ip("10.1.1.1")) is a
    table.insert("10.1.0.0/16", b)  # stale index must not answer
    assert table.lookup(ip("10.1.1.1")) is b
    for _ in range(3):
        assert table.lookup(ip("10.1.1.1")) is b
    assert table.lookup(ip("10.2.0.1")) is a
    table.remove("10.1.0.0/16", b)
    assert table.lookup(ip("10.1.1.1")) is a
    table.insert("0.0.0.0/0", b)
    table.compact()
    assert table.lookup(ip("255.255.255.255")) is b
    assert table.lookup(ip("10.255.255.255")) is a


def test_remove_only_by_owner_and_remove_by_peer():
    a, b = Peer("a"), Peer("b")
    table: AllowedIPs[Peer] = AllowedIPs()
    table.insert("10.0.0.0/24", a)
    table.insert("10.0.1.0/24", a)
    table.insert("10.0.2.0/24", b)
    assert not table.remove("10.0.2.0/24", a)
    assert table.lookup(ip("10.0.2.1")) is b
    assert table.remove("10.0.0.0/24", a)
    assert table.lookup(ip("10.0.0.1")) is None
    table.remove_by_peer(a)
    assert table.lookup(ip("10.0.1.1")) is None and table.entries_for_peer(a) == []
    assert len(table) == 1


def brute_force(prefixes: dict[tuple[int, int, int], Peer], version: int, address: int):
    bits = 32 if version == 4 else 128
    best = None
    for (v, network, length), peer in prefixes.items():
        matches = v == version and address >> (bits - length) == network >> (bits - length)
        if matches and (best is None or length > best[0]):
            best = (length, peer)
    return None if best is None else best[1]


def test_random_prefixes_against_brute_force_oracle():
    rng = random.Random(20261125)
    peers = [Peer(f"p{i}") for i in range(40)]
    table: AllowedIPs[Peer] = AllowedIPs()
    truth: dict[tuple[int, int, int], Peer] = {}
    inserted = []
    for _ in range(10_000):
        version = rng.choice((4, 6))
        bits = 32 if version == 4 else 128
        # cluster addresses so prefixes overlap and nest
        length = rng.randint(0, bits)
        address = rng.getrandbits(8) << (bits - 8) | rng.getrandbits(bits - 8)
        if version == 4:
            address = (10 << 24) | (address & 0xFFFFFF) if rng.random() < 0.8 else address
        else:
            address = (0xFD00 << 112) | (address & ((1 << 100) - 1)) if rng.random() < 0.8 \
                else address
        network = address & (((1 << bits) - 1) ^ ((1 << (bits - length)) - 1))
        peer = rng.choice(peers)
        cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        table.insert(cls((network, length)), peer)
        truth[(version, network, length)] = peer
        inserted.append((version, network, length, address))
    for version, network, length, _ in rng.sample(inserted, 1500):
        owner = truth.get((version, network, length))
        cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        if owner is not None and rng.random() < 0.5:
            assert table.remove(cls((network, length)), owner)
            del truth[(version, network, length)]
    probes = [address for *_, address in rng.sample(inserted, 1500)]
    probes += [rng.getrandbits(32) for _ in range(200)]
    probes += [(10 << 24) + rng.getrandbits(24) for _ in range(300)]
    expected = {}
    for address in probes:
        version = 4 if address < 1 << 32 and rng.random() < 0.5 else 6
        if version == 4 and address >= 1 << 32:
            continue
        expected[(version, address)] = brute_force(truth, version, address)
    # both lookup paths: probing the per-length dicts, then the flattened index
    for compacted in (False, True):
        if compacted:
            table.compact()
        for (version, address), peer in expected.items():
            packed = address.to_bytes(4 if version == 4 else 16, "big")
            assert table.lookup(packed) is peer, (compacted, version, address)
    for peer in peers:
        expected = {k for k, v in truth.items() if v is peer}
        got = {(n.version, int(n.network_address), n.prefixlen)
               for n in table.entries_for_peer(peer)}
        assert got == expected


def test_cached_answers_follow_every_change():
    """Lookups interleaved with inserts, removes and peer removals over a small address space
    (so the answer cache is hit, invalidated and overflows) always agree with brute force."""
    rng = random.Random(7)
    peers = [Peer(f"p{i}") for i in range(5)]
    table: AllowedIPs[Peer] = AllowedIPs()
    truth: dict[tuple[int, int, int], Peer] = {}
    base = 10 << 24
    for step in range(20_000):
        action = rng.random()
        if action < 0.02:
            length = rng.randint(16, 32)
            network = (base | rng.getrandbits(13)) & (((1 << 32) - 1) ^ ((1 << (32 - length)) - 1))
            peer = rng.choice(peers)
            table.insert(ipaddress.IPv4Network((network, length)), peer)
            truth[(4, network, length)] = peer
        elif action < 0.03 and truth:
            key = rng.choice(list(truth))
            assert table.remove(ipaddress.IPv4Network(key[1:]), truth.pop(key))
        elif action < 0.032:
            gone = rng.choice(peers)
            table.remove_by_peer(gone)
            truth = {key: peer for key, peer in truth.items() if peer is not gone}
        else:
            address = base | rng.getrandbits(13)
            assert table.lookup(address.to_bytes(4, "big")) is brute_force(truth, 4, address), step
