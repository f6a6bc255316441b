"""Which peers `wgpy reresolve` looks after: those whose Endpoint in the file is a hostname
(with the peer's name from its comment), or that `wgpy set` was given by name; addresses,
IPv4 or IPv6, are left alone. And its command line: a clear error, never a traceback."""

import os
import subprocess
import sys

from wgpy.cli.reresolve import is_hostname_endpoint, named_endpoints
from wgpy.config.names import remember_set_endpoints, remembered_endpoint_names
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64


def _key() -> bytes:
    return public_key(generate_private_key(os.urandom))


def test_only_hostname_endpoints_are_followed():
    by_name, v4, v6, no_endpoint = (_key() for _ in range(4))
    text = ("[Interface]\nAddress = 10.0.0.1/24\nPrivateKey = "
            f"{key_to_base64(_key())}\n\n"
            f"[Peer]\n# Name = home\nPublicKey = {key_to_base64(by_name)}\n"
            "Endpoint = home.dyn.example:51820 # dynamic DNS\n\n"
            f"[Peer]\nPublicKey = {key_to_base64(v4)}\nEndpoint = 192.0.2.1:51820\n\n"
            f"[Peer]\nPublicKey = {key_to_base64(v6)}\nEndpoint = [2001:db8::1]:51820\n\n"
            f"[Peer]\nPublicKey = {key_to_base64(no_endpoint)}\nAllowedIPs = 10.0.0.9/32\n")
    found = named_endpoints(text)
    assert [(entry.public_key, entry.endpoint, entry.name) for entry in found] == [
        (by_name, "home.dyn.example:51820", "home")]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wgpy.cli.main", "reresolve", *args],
                          capture_output=True, text=True, env=env)


def test_command_line_errors_are_plain(tmp_path):
    assert "Usage:" in _run().stderr
    assert "Usage:" in _run("wg0", "--interval").stderr
    result = _run("wg0", "--config", str(tmp_path / "none.conf"), "--stale", "soon")
    assert result.returncode == 1 and "not a number" in result.stderr
    env = dict(os.environ, WGPY_STATE_DIR=str(tmp_path))
    result = _run("wgpy-nothing0", env=env)
    assert result.returncode == 1 and "give a file with --config" in result.stderr


def test_set_remembers_names_and_forgets_them(tmp_path, monkeypatch):
    """`wgpy set` names are kept per interface; an address or `remove` forgets them."""
    monkeypatch.setenv("WGPY_STATE_DIR", str(tmp_path))
    first, second = (key_to_base64(_key()) for _ in range(2))
    remember_set_endpoints("wg5", ["listen-port", "51820", "peer", first, "endpoint",
                                   "home.dyn.example:51820", "allowed-ips", "10.0.0.2/32",
                                   "peer", second, "endpoint", "[2001:db8::2]:51820"],
                           is_hostname_endpoint)
    assert {key_to_base64(k): v for k, v in remembered_endpoint_names("wg5").items()} == {
        first: "home.dyn.example:51820"}
    remember_set_endpoints("wg5", ["peer", first, "endpoint", "192.0.2.9:51820"],
                           is_hostname_endpoint)
    assert remembered_endpoint_names("wg5") == {}
    remember_set_endpoints("wg5", ["peer", second, "endpoint", "b.example:1"],
                           is_hostname_endpoint)
    remember_set_endpoints("wg5", ["peer", second, "remove"], is_hostname_endpoint)
    assert remembered_endpoint_names("wg5") == {}
    assert remembered_endpoint_names("wg6") == {}
