"""The client's two readers of a `get=1` reply: the regular-layout one (a peer per regular
expression match) must give exactly the line-by-line reader's records whenever it accepts a
reply, and hand every other reply over to it; the line reader keeps wg's rules."""

import base64
import random
import socket

import pytest

from wgpy.uapi.reply import (
    DeviceState,
    EndpointUnreachable,
    ReplyReader,
    _read_lines,
    _read_regular,
    read_reply,
)
from wgpy.uapi.text import UapiFormatError


def _peer(rng: random.Random, index: int) -> list[str]:
    """A peer section as wireguard-go lays it out, values drawn to reach every branch."""
    lines = [f"public_key={rng.randbytes(32).hex()}",
             f"preshared_key={rng.choice(['00' * 32, rng.randbytes(32).hex()])}",
             "protocol_version=1"]
    endpoint = rng.choice([None, f"192.0.2.{index % 256}:{rng.randrange(65536)}",
                           f"[2001:db8::{index:x}]:51820", "[::ffff:192.0.2.9]:7"])
    if endpoint is not None:
        lines.append(f"endpoint={endpoint}")
    lines += [f"last_handshake_time_sec={rng.choice([0, rng.randrange(2**40)])}",
              f"last_handshake_time_nsec={rng.randrange(10**9)}",
              f"tx_bytes={rng.choice([0, rng.randrange(10**19)])}",
              f"rx_bytes={rng.randrange(2**50)}",
              f"persistent_keepalive_interval={rng.choice([0, 25, 65535])}"]
    for _ in range(rng.randrange(4)):
        lines.append("allowed_ip=" + rng.choice([
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24", "0.0.0.0/0",
            f"fd00:{rng.randrange(65536):x}::/64", "::/0", "::ffff:10.1.2.3/128",
            "::102:304/128", f"2001:db8:0:0:1:0:0:{index:x}/128"]))
    return lines


def _reply(rng: random.Random, peers: int) -> str:
    header = [f"private_key={rng.randbytes(32).hex()}", "listen_port=51820", "fwmark=3054"]
    lines = header[:rng.randrange(4)]
    for index in range(peers):
        lines += _peer(rng, index)
    return "\n".join([*lines, "errno=0", "", ""])


def _records(device: DeviceState) -> tuple:
    return (device.private_key, device.listen_port, device.fwmark, device.peers)


def _both(text: str) -> tuple[bool, tuple, tuple]:
    regular, lines = DeviceState("wg0"), DeviceState("wg0")
    accepted = _read_regular(regular, text)
    code = _read_lines(lines, text)
    return accepted and code == 0, _records(regular), _records(lines)


def test_regular_replies_read_as_line_by_line():
    rng = random.Random(16)
    for size in (0, 1, 2, 5, 40, 300):
        text = _reply(rng, size)
        accepted, regular, lines = _both(text)
        assert accepted, text[:200]
        assert regular == lines
        assert _records(read_reply("wg0", text)[0]) == lines


def test_inet_ntop_text_replaces_the_devices_where_they_differ():
    key = "01" * 32
    text = (f"public_key={key}\npreshared_key={'00' * 32}\nprotocol_version=1\n"
            "endpoint=[2001:DB8:0:0::1]:5\nlast_handshake_time_sec=0\n"
            "last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
            "persistent_keepalive_interval=0\nallowed_ip=::102:304/128\n"
            "allowed_ip=10.0.0.0/8\nallowed_ip=2001:DB8::/32\nerrno=0\n\n")
    accepted, regular, lines = _both(text)
    assert accepted and regular == lines
    (peer,) = regular[3]
    assert peer.endpoint == "[2001:db8::1]:5"
    assert peer.allowed_ips == ["::1.2.3.4/128", "10.0.0.0/8", "2001:db8::/32"]


IRREGULAR = [
    # what the regular reader must hand over: another order, leading zeros, unknown keys,
    # a zone, values only the line reader judges
    "listen_port=1\nprivate_key={key}\nerrno=0\n\n",
    "listen_port=01\nerrno=0\n\n",
    "fwmark=4294967295\nerrno=0\n\n",
    "future=1\nerrno=0\n\n",
    "public_key={key}\nallowed_ip=10.0.0.1/8\nerrno=0\n\n",
    "public_key={key}\npreshared_key={zero}\nprotocol_version=1\nendpoint=[fe80::1%lo]:9\n"
    "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
    "persistent_keepalive_interval=0\nerrno=0\n\n",
    "public_key={key}\npreshared_key={zero}\nprotocol_version=1\n"
    "last_handshake_time_sec=007\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
    "persistent_keepalive_interval=0\nerrno=0\n\n",
    "public_key={key}\npreshared_key={zero}\nprotocol_version=1\n"
    "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=18446744073709551615\n"
    "rx_bytes=0\npersistent_keepalive_interval=0\nerrno=0\n\n",
    "errno=0\n\nafter=1\n",
    "errno=22\n\n",
]


@pytest.mark.parametrize("template", IRREGULAR)
def test_other_replies_go_line_by_line(template):
    text = template.format(key="ab" * 32, zero="00" * 32)
    assert not _read_regular(DeviceState("wg0"), text)
    expected = DeviceState("wg0")
    code = _read_lines(expected, text)
    device, got = read_reply("wg0", text)
    assert (got, _records(device)) == (code, _records(expected))


BROKEN = {
    "allowed_ip=10.0.0.1/33": UapiFormatError,
    "allowed_ip=1:2:3/8": UapiFormatError,
    "allowed_ip=::/129": UapiFormatError,
    "allowed_ip=010.0.0.1/8": UapiFormatError,
    "persistent_keepalive_interval=65536": UapiFormatError,
    "endpoint=[1:2:3]:5": EndpointUnreachable,
    "endpoint=192.0.2.1": UapiFormatError,
}


@pytest.mark.parametrize("line", sorted(BROKEN))
def test_bad_values_fail_both_ways_as_wg(line):
    """A bad value in a reply otherwise regular: refused with wg's error, never accepted."""
    text = (f"public_key={'ab' * 32}\npreshared_key={'00' * 32}\nprotocol_version=1\n"
            "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\n"
            f"rx_bytes=0\npersistent_keepalive_interval=0\n{line}\nerrno=0\n\n")
    assert not _read_regular(DeviceState("wg0"), text)
    with pytest.raises(BROKEN[line]):
        read_reply("wg0", text)


def test_public_key_is_x25519_of_the_private_key():
    device = DeviceState("wg0")
    assert device.public_key() is None
    device.private_key = bytes(range(32))
    from wgpy.core.crypto import public_key

    assert device.public_key() == public_key(bytes(range(32)))


def test_inet_pton_takes_ipv4_only_in_inet_ntops_form():
    """What the regular reader relies on: IPv4 text glibc's inet_pton accepts is the text
    its inet_ntop prints (no leading zeros, four parts), so it is kept as the device sent it."""
    for text in ("0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.1.10"):
        assert socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text)) == text
    for text in ("010.0.0.1", "10.0.1", "10.0.0.256", "1.2.3.4.5", " 1.2.3.4"):
        with pytest.raises(OSError):
            socket.inet_pton(socket.AF_INET, text)


def test_printers_give_the_same_text_from_either_reader():
    """`wgpy show` prints from the table's columns: the regular reader's table (the reply's
    own text) and the line reader's (rebuilt value by value) must print identically."""
    from wgpy.cli import show

    rng = random.Random(17)
    for size in (0, 1, 3, 60):
        text = _reply(rng, size)
        regular, lines = DeviceState("wg0"), DeviceState("wg0")
        assert _read_regular(regular, text)
        _read_lines(lines, text)
        for device in (regular, lines):
            device.private_key = None  # no X25519 needed to compare the peers' part
        printed = [(show.pretty(d, color, now=2**41), show.showconf(d),
                    *(show.show_field(d, field, with_interface) for field in show.FIELDS
                      for with_interface in (False, True)))
                   for d in (regular, lines) for color in (False, True)]
        assert printed[0] == printed[2] and printed[1] == printed[3]


def test_keys_convert_to_base64_all_at_once():
    from wgpy.cli.show import _keys

    rng = random.Random(18)
    keys = [rng.randbytes(32) for _ in range(50)] + [bytes(32), b"\xff" * 32]
    hexes = [key.hex() if index % 2 else key.hex().upper() for index, key in enumerate(keys)]
    assert _keys(hexes) == [base64.b64encode(key).decode() for key in keys]
    assert _keys([]) == []


def test_a_reply_read_as_it_arrives_reads_as_a_whole():
    """`wgpy show` feeds the reply in the pieces the socket gives: wherever they are cut
    (inside a key, a line, `public_key=` itself, the trailer), the result is read_reply's,
    regular or not, errors included."""
    rng = random.Random(19)
    texts = [_reply(rng, size) for size in (0, 1, 2, 7, 40)]
    texts += [template.format(key="ab" * 32, zero="00" * 32) for template in IRREGULAR]
    texts.append(texts[3].replace("persistent_keepalive_interval=0\n",
                                  "persistent_keepalive_interval=65536\n", 1))
    for text in texts:
        try:
            expected: object = _outcome(read_reply("wg0", text))
        except (UapiFormatError, EndpointUnreachable) as exc:
            expected = type(exc)
        for _ in range(20):
            count = min(len(text) + 1, rng.randrange(1, 9))
            cuts = sorted(rng.sample(range(len(text) + 1), count))
            reader = ReplyReader(DeviceState("wg0"))
            for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
                reader.feed(text[start:end])
            try:
                got: object = _outcome(reader.result())
            except (UapiFormatError, EndpointUnreachable) as exc:
                got = type(exc)
            assert got == expected, (text[:80], cuts)


def _outcome(result: tuple[DeviceState, int | None]) -> tuple:
    device, code = result
    return code, _records(device), device.table.allowed_ip_lines, device.table.public_keys
