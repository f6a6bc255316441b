"""The UAPI socket server on a temporary directory (no root): framing as wireguard-go does
it, and a daemon that no client can break or block."""

import logging
import os
import socket
import stat
import threading

import pytest

from wgpy.core.crypto import clamp_private_key, public_key
from wgpy.uapi import framing, protocol
from wgpy.uapi.framing import MAX_LINE
from wgpy.uapi.protocol import format_get
from wgpy.uapi.server import UapiServer
from wgpy.uapi.text import socket_path

KEY = clamp_private_key(bytes(range(32)))
PEERS = [public_key(clamp_private_key(bytes([n]) * 32)).hex() for n in range(1, 4)]
TIMEOUT = 0.5  # the server's request and idle timeouts in these tests


@pytest.fixture
def uapi(host, tmp_path):
    server = UapiServer("wtest0", host, socket_dir=str(tmp_path / "run"),
                        request_timeout=TIMEOUT, idle_timeout=TIMEOUT)
    server.start()
    yield server
    server.close()
    assert not os.path.exists(server.path)


def connect(path: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(path)
    return client


def read_replies(client: socket.socket, count: int = 1) -> str:
    """Read until `count` replies (each ends in a blank line) or EOF."""
    data = b""
    while data.count(b"\n\n") < count:
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


def request(path: str, data: str | bytes, count: int = 1, shut: bool = False) -> str:
    with connect(path) as client:
        client.sendall(data.encode() if isinstance(data, str) else data)
        if shut:
            client.shutdown(socket.SHUT_WR)
        return read_replies(client, count)


def get(path: str) -> str:
    return request(path, "get=1\n\n")


def closed_without_reply(client: socket.socket) -> bool:
    """The server closed the connection (a reset, if it left our data unread) and sent
    nothing; a timeout or a reply is False."""
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def test_set_then_get(uapi, host):
    body = (f"set=1\nprivate_key={KEY.hex()}\nlisten_port=51820\n"
            f"public_key={PEERS[0]}\nallowed_ip=10.0.0.0/8\n\n")
    assert request(uapi.path, body) == "errno=0\n\n"
    text = get(uapi.path)
    assert text.startswith(f"private_key={KEY.hex()}\nlisten_port=51820\npublic_key=")
    assert text.endswith("allowed_ip=10.0.0.0/8\nerrno=0\n\n")


def test_a_get_in_many_chunks_arrives_whole_to_a_slow_reader(uapi, host, monkeypatch):
    """A big `get` is written a turn of peers at a time (protocol.GET_PEERS_PER_CALL): the
    chunks arrive whole and in order, also to a client that reads in small bites, and the
    connection takes the next request after them."""
    monkeypatch.setattr(protocol, "GET_PEERS_PER_CALL", 7)
    body = "".join(f"public_key={public_key(clamp_private_key(bytes([n]) * 32)).hex()}\n"
                   f"endpoint=192.0.2.{n % 250 + 1}:{n}\nallowed_ip=10.{n >> 8}.{n & 255}.0/24\n"
                   for n in range(1, 101))
    assert request(uapi.path, f"set=1\n{body}\n") == "errno=0\n\n"
    expected = format_get(host) + "errno=0\n\n"
    assert expected.count("public_key=") == 100 and len(expected) > 20_000
    with connect(uapi.path) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"get=1\n\nget=1\n\n")
        data = b""
        while data.count(b"errno=0\n\n") < 2:
            chunk = client.recv(1000)
            assert chunk, "connection closed early"
            data += chunk
    assert data.decode() == expected * 2


def test_drop_counters_on_their_own_request(uapi, host):
    host.device.drops["replayed"] = 5
    with connect(uapi.path) as client:
        client.sendall(b"wgpy_get=1\n\nget=1\n\nwgpy_get=1\nx")  # as get=1: one newline
        drops, device, refused = read_replies(client, 3).split("\n\n")[:3]
    assert "drop_replayed=5\n" in drops and drops.endswith("errno=0")
    assert "drop" not in device
    assert refused == "errno=-22"


def test_several_requests_on_one_connection_even_in_one_write(uapi):
    with connect(uapi.path) as client:
        client.sendall(b"set=1\nlisten_port=7\n\nget=1\n\nset=1\nbogus=1\n\nget=1\n\n")
        replies = read_replies(client, 4).split("\n\n")
        assert replies[0] == "errno=0"
        assert "listen_port=7\n" in replies[1] and replies[1].endswith("errno=0")
        assert replies[2] == "errno=-22"
        assert replies[3].endswith("errno=0")


def test_crlf_body_lines_as_bufio_scanner(uapi, host):
    assert request(uapi.path, "set=1\r\nlisten_port=5\n\n") == ""  # the operation is exact
    assert request(uapi.path, "set=1\nlisten_port=18\r\n\r\n") == "errno=0\n\n"
    assert host.port == 18
    assert request(uapi.path, "get=1\r\n\n") == ""


def test_get_takes_exactly_one_newline(uapi):
    with connect(uapi.path) as client:
        client.sendall(b"get=1\nxget=1\n\n")  # 'x' is consumed, then a valid get follows
        replies = read_replies(client, 2)
    assert replies.startswith("errno=-22\n\n") and replies.endswith("errno=0\n\n")


@pytest.mark.parametrize("garbage", [
    b"hello\n\n", b"\x00\xff\x01garbage\n", b"GET=1\n\n", b"set=2\n\n", b"\n",
    b"get=1 \n\n", b"x" * (MAX_LINE * 2) + b"\n",
], ids=lambda garbage: repr(garbage[:12]))
def test_garbage_operation_closes_without_reply(uapi, garbage):
    with connect(uapi.path) as client:
        client.sendall(garbage)
        assert closed_without_reply(client)
    assert get(uapi.path).endswith("errno=0\n\n")


def test_over_long_set_line_gets_eio_and_close(uapi, host):
    with connect(uapi.path) as client:
        client.sendall(b"set=1\nlisten_port=9\nlisten_port=" + b"1" * (MAX_LINE + 1) + b"\n\n")
        assert read_replies(client) == "errno=-5\n\n"
        assert closed_without_reply(client)
    assert host.port == 0


def test_over_large_request_gets_eio_and_nothing_applied(uapi, host, monkeypatch):
    monkeypatch.setattr(framing, "MAX_REQUEST", 4096)
    body = "set=1\nlisten_port=9\n" + "".join(
        f"public_key={PEERS[n % 3]}\nallowed_ip=10.0.{n}.0/24\n" for n in range(60)) + "\n"
    assert request(uapi.path, body) == "errno=-5\n\n"
    assert host.port == 0 and host.device.peers == {}


def test_bad_line_reply_comes_after_the_whole_request(uapi, host):
    with connect(uapi.path) as client:
        client.sendall(b"set=1\nlisten_port=9\nbad line\nlisten_port=10\n")
        client.settimeout(TIMEOUT / 5)
        with pytest.raises(TimeoutError):
            client.recv(1)  # no reply before the blank line
        client.settimeout(5)
        client.sendall(b"fwmark=1\n\nget=1\n\n")
        replies = read_replies(client, 2)
    assert replies.startswith("errno=-71\n\n") and "listen_port" not in replies
    assert (host.port, host.mark) == (0, 0)


def test_set_ended_by_eof_is_not_applied(uapi, host):
    assert request(uapi.path, "set=1\nlisten_port=33\n", shut=True) == "errno=-71\n\n"
    assert request(uapi.path, "set=1\nlisten_port=34", shut=True) == "errno=-71\n\n"
    assert request(uapi.path, "get=1\n", shut=True) == ""
    assert host.port == 0


def test_stalled_client_times_out_without_blocking_others(uapi, host):
    stalled = connect(uapi.path)
    stalled.sendall(b"set=1\nlisten_port=11\n")
    try:
        assert get(uapi.path).endswith("errno=0\n\n")  # served meanwhile
        stalled.settimeout(TIMEOUT * 10)
        assert closed_without_reply(stalled)  # closed by the server's request timeout
    finally:
        stalled.close()
    assert host.port == 0


def test_idle_connection_is_closed(uapi):
    with connect(uapi.path) as client:
        client.sendall(b"get=1\n\n")
        assert read_replies(client).endswith("errno=0\n\n")
        client.settimeout(TIMEOUT * 10)
        assert closed_without_reply(client)


def test_concurrent_clients(uapi, host):
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for i in range(20):
                peer = public_key(clamp_private_key(bytes([index, i]) * 16)).hex()
                reply = request(uapi.path, f"set=1\npublic_key={peer}\n"
                                           f"allowed_ip=10.{index}.{i}.0/24\n\n")
                assert reply == "errno=0\n\n"
                assert get(uapi.path).endswith("errno=0\n\n")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(host.device.peers) == 160


def test_failures_inside_the_host_do_not_kill_the_server(uapi, host):
    real_call = host.call

    def broken_call(fn):
        raise RuntimeError("bug")

    host.call = broken_call
    assert request(uapi.path, "set=1\nlisten_port=1\n\n") == "errno=-55\n\n"  # IpcErrorUnknown
    host.call = lambda fn: (_ for _ in ()).throw(OSError(108, "shutting down"))
    assert request(uapi.path, "get=1\n\n") == ""
    host.call = real_call
    assert get(uapi.path).endswith("errno=0\n\n")


def test_no_key_material_in_the_log(uapi, caplog):
    secret = KEY.hex()
    caplog.set_level(logging.DEBUG, logger="wgpy.uapi")
    for body in (f"{secret}\n", f"{secret}=1\n", f"private_key={secret}x\n",
                 f"public_key={PEERS[0]}\npreshared_key={secret[:-1]}\n",
                 f"public_key={PEERS[0]}\n{secret}=x\n", f"private_key={secret}\nbogus\n"):
        assert request(uapi.path, f"set=1\n{body}\n").startswith("errno=-")
    request(uapi.path, f"{secret}\n\n")
    assert caplog.records
    assert secret not in caplog.text and secret[:-1] not in caplog.text


# ---------------------------------------------------------------------- the socket file


def test_socket_and_directory_modes(uapi):
    assert stat.S_ISSOCK(os.stat(uapi.path).st_mode)
    assert oct(os.stat(uapi.path).st_mode & 0o777) == "0o700"  # bound under umask 077
    assert oct(os.stat(uapi.socket_dir).st_mode & 0o777) == "0o755"


def test_stale_socket_is_replaced_but_a_live_one_is_not(tmp_path, make_host):
    path = tmp_path / "wstale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    first = UapiServer("wstale", make_host(), socket_dir=str(tmp_path))
    first.start()
    try:
        second = UapiServer("wstale", make_host(), socket_dir=str(tmp_path))
        with pytest.raises(OSError):
            second.start()
        assert get(first.path).endswith("errno=0\n\n")
    finally:
        first.close()
    assert not path.exists()


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path, make_host):
    path = tmp_path / "wfile.sock"
    path.write_text("not a socket")
    with pytest.raises(OSError):
        UapiServer("wfile", make_host(), socket_dir=str(tmp_path)).start()
    assert path.read_text() == "not a socket"


def test_close_leaves_a_socket_that_replaced_ours(tmp_path, make_host):
    first = UapiServer("wrepl", make_host(), socket_dir=str(tmp_path))
    first.start()
    os.unlink(first.path)
    second = UapiServer("wrepl", make_host(), socket_dir=str(tmp_path))
    second.start()
    try:
        first.close()
        assert get(second.path).endswith("errno=0\n\n")
    finally:
        second.close()


def test_close_ends_open_connections(tmp_path, make_host):
    server = UapiServer("wend", make_host(), socket_dir=str(tmp_path))
    server.start()
    client = connect(server.path)
    client.sendall(b"set=1\n")
    server.close()
    assert closed_without_reply(client)
    client.close()


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_interface_names_that_are_not_file_names_are_refused(tmp_path, make_host, name):
    with pytest.raises(ValueError):
        UapiServer(name, make_host(), socket_dir=str(tmp_path))


@pytest.mark.parametrize("env", [None, "", "{tmp}"])
def test_server_and_client_agree_on_the_socket_directory(tmp_path, make_host, monkeypatch, env):
    """One function decides for both ends: an empty WG_SOCKET_DIR means the default for the
    server as it does for the client (it once made wgpyd fail to start)."""
    if env is None:
        monkeypatch.delenv("WG_SOCKET_DIR", raising=False)
    else:
        monkeypatch.setenv("WG_SOCKET_DIR", env.format(tmp=tmp_path))
    expected = str(tmp_path) if env else "/var/run/wireguard"
    assert UapiServer("wdir", make_host()).path == socket_path("wdir")
    assert socket_path("wdir") == os.path.join(expected, "wdir.sock")
