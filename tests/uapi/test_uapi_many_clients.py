"""The control socket under many clients (issue 11.3, issue 18): hundreds of idle or
slowly-writing connections cost little and never delay a new client's `get` or `set`; when
the process runs out of file descriptors the connection idle longest makes room; with nobody
connected the server sleeps without a timeout; the socket file's removal is an event."""

import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc

import pytest

from threadstat import voluntary_switches
from wgpy.uapi import server as server_module
from wgpy.uapi.server import UapiServer

CLIENTS = 300


def connect(path: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(5)
    client.connect(path)
    return client


def ask(path: str, data: bytes) -> bytes:
    """One request on a new connection; the reply (up to its blank line)."""
    with connect(path) as client:
        client.sendall(data)
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.fixture
def patient(host, tmp_path):
    """A server with the default (long) timeouts: idle clients are not closed for us."""
    server = UapiServer("wmany0", host, socket_dir=str(tmp_path / "run"))
    server.start()
    yield server
    server.close()


def test_hundreds_of_idle_and_slow_clients_do_not_delay_a_new_one(patient, host):
    idle = [connect(patient.path) for _ in range(CLIENTS // 2)]
    slow = [connect(patient.path) for _ in range(CLIENTS // 2)]
    try:
        for client in slow:  # a request begun, never finished
            client.sendall(b"set=1\nlisten_port=1")
        for step in (b"1", b"1"):  # and still trickling
            for client in slow:
                client.sendall(step)
        assert wait_for(lambda: patient.connections == CLIENTS)
        peer = "f" * 64
        assert ask(patient.path, f"set=1\npublic_key={peer}\n\n".encode()) == b"errno=0\n\n"
        assert ask(patient.path, b"get=1\n\n").endswith(b"errno=0\n\n")
        assert len(host.device.peers) == 1 and host.port == 0  # no slow `set` was applied
    finally:
        for client in idle + slow:
            client.close()
    assert wait_for(lambda: patient.connections == 0)


def test_an_idle_connection_costs_little_memory(patient):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        clients = [connect(patient.path) for _ in range(CLIENTS)]
        assert wait_for(lambda: patient.connections == CLIENTS)
        per_connection = (tracemalloc.get_traced_memory()[0] - before) / CLIENTS
    finally:
        tracemalloc.stop()
    for client in clients:
        client.close()
    # Both ends' Python objects are counted (the test's sockets too): about 1 KiB. A thread
    # per connection, as before, would add its stack (8 MiB of address space) on top.
    assert per_connection < 4096


def test_a_client_pipelining_many_requests_takes_turns_with_others(patient):
    with connect(patient.path) as greedy:
        greedy.sendall(b"get=1\n\n" * 2000)  # never reads its replies
        assert ask(patient.path, b"get=1\n\n").endswith(b"errno=0\n\n")


def test_with_nobody_connected_the_server_sleeps(patient):
    ask(patient.path, b"get=1\n\n")
    assert wait_for(lambda: patient.connections == 0)
    thread = next(t for t in threading.enumerate() if t.name == "uapi-wmany0")
    before = voluntary_switches(thread)
    time.sleep(1.0)
    assert voluntary_switches(thread) - before == 0  # it used to wake twice a second


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "without-inotify"])
def test_removing_the_socket_file_is_noticed(host, tmp_path, monkeypatch, inotify):
    if not inotify:  # e.g. fs.inotify.max_user_instances reached: it looks at the file
        def refuse(path):
            raise OSError(24, "Too many open files")
        monkeypatch.setattr(server_module, "FileWatch", refuse)
        monkeypatch.setattr(server_module, "SOCKET_WATCH_INTERVAL", 0.05)
    lost = threading.Event()
    server = UapiServer("wgone0", host, socket_dir=str(tmp_path), on_socket_lost=lost.set)
    server.start()
    try:
        os.chmod(server.path, 0o600)  # a change that is not a removal: keeps serving
        assert not lost.wait(0.3)
        assert ask(server.path, b"get=1\n\n").endswith(b"errno=0\n\n")
        os.unlink(server.path)
        assert lost.wait(5)
    finally:
        server.close()


def test_out_of_file_descriptors_the_longest_idle_connection_makes_room(tmp_path):
    """Under a low RLIMIT_NOFILE (a subprocess, so the test runner keeps its own), idle
    clients fill the table; a new client is still answered, and the oldest idle one is
    the one closed."""
    script = textwrap.dedent(f"""
        import resource, socket, sys, time
        sys.path[:0] = {[os.path.dirname(__file__)]!r}
        from conftest import FakeHost
        from wgpy.uapi.server import UapiServer
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        server = UapiServer("wfd0", FakeHost(), socket_dir={str(tmp_path)!r})
        server.start()
        clients = []
        try:
            while True:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                clients.append(c)
                c.settimeout(5)
                c.connect(server.path)
        except OSError:
            clients.pop().close()  # the test's own end of the table is full
        for _ in range(2):  # room for a new client: two descriptors
            clients.pop().close()
        deadline = time.monotonic() + 5
        while server.connections < len(clients) and time.monotonic() < deadline:
            time.sleep(0.01)
        first = clients[0]
        new = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        new.settimeout(5)
        new.connect(server.path)
        new.sendall(b"get=1\\n\\n")
        reply = new.recv(65536)
        print(reply.endswith(b"errno=0\\n\\n"), first.recv(1) == b"")
        server.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr


def test_garbage_from_hundreds_of_clients_loses_nothing(patient, host):
    peer = "e" * 64
    assert ask(patient.path, f"set=1\npublic_key={peer}\n\n".encode()) == b"errno=0\n\n"
    rng = random.Random(18)
    clients = []
    for index in range(CLIENTS):
        client = connect(patient.path)
        prefix = (b"", b"set=1\n", b"get=1")[index % 3]
        client.sendall(prefix + rng.randbytes(rng.randrange(1, 300)))
        if index % 2:
            client.close()  # some hang up at once, some stay
        else:
            clients.append(client)
    try:
        reply = ask(patient.path, b"get=1\n\n")
        assert reply.endswith(b"errno=0\n\n") and f"public_key={peer}".encode() in reply
        assert len(host.device.peers) == 1
    finally:
        for client in clients:
            client.close()
    assert wait_for(lambda: patient.connections == 0)
