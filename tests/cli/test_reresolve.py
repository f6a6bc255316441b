"""Which peers `wgpy reresolve` looks after: those whose Endpoint in the file is a hostname
(with the peer's name from its comment); addresses, IPv4 or IPv6, are left alone. And its
command line: a clear error, never a traceback."""

import os
import subprocess
import sys

from wgpy.cli.reresolve import named_endpoints
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
    assert result.returncode == 1 and "give one with --config" in result.stderr
