"""The systemd units `wgpy-quick install-units` writes: systemd itself finds nothing wrong with
them (`systemd-analyze verify`, warnings included), and their own commands, run as systemd
would run them, bring an interface up, reload it from its file and take it down again."""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import require
from wgpy.core.crypto import public_key
from wgpy.core.keys import generate_private_key, key_to_base64
from wgpy.quick import units

from netlab import Namespace, unique_name

pytestmark = pytest.mark.root

QUICK = "wgpy-quick@.service"
DAEMON = "wgpyd@.service"
RERESOLVE = "wgpy-reresolve@.service"
PUNCH = "wgpy-punch@.service"
SERVE = "wgpy-serve@.service"
ALL_UNITS = sorted([QUICK, DAEMON, RERESOLVE, PUNCH, SERVE])


def unit_commands(text: str, instance: str,
                  environment: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Exec* lines of a unit, with %i/%I expanded as systemd expands them for `instance` and
    ${NAME} from the unit's Environment= lines, overridden by `environment` (as by an
    EnvironmentFile=)."""
    values = {}
    for line in text.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            values[name] = value
    values.update(environment or {})
    commands = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("Exec"):
            value = value.replace("%i", instance).replace("%I", instance)
            for name, setting in values.items():
                value = value.replace("${" + name + "}", setting)
            commands[key] = shlex.split(value)
    return commands


def new_key() -> tuple[str, str]:
    private = generate_private_key(os.urandom)
    return key_to_base64(private), key_to_base64(public_key(private))


@pytest.fixture
def unit_dir(root_netns: None):
    require(shutil.which("systemd-analyze") is not None,
            "needs systemd-analyze (apt-get install systemd)")
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(
            [sys.executable, "-m", "wgpy.quick.main", "install-units", directory],
            capture_output=True, text=True, check=True,
        )
        assert sorted(os.listdir(directory)) == ALL_UNITS, result.stderr
        yield directory


def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as handle:
        return handle.read()


def test_install_units_names_the_installed_commands(tmp_path):
    written = units.install_units(str(tmp_path), bindir="/opt/wgpy/bin")
    assert sorted(os.path.basename(path) for path in written) == ALL_UNITS
    quick = unit_commands(read(str(tmp_path), QUICK), "wg7")
    assert quick["ExecStart"] == ["/opt/wgpy/bin/wgpy-quick", "up", "wg7"]
    assert quick["ExecStop"] == ["/opt/wgpy/bin/wgpy-quick", "down", "wg7"]
    assert quick["ExecReload"][:2] == ["/bin/bash", "-c"]
    assert "/opt/wgpy/bin/wgpy syncconf wg7" in quick["ExecReload"][2]
    daemon = unit_commands(read(str(tmp_path), DAEMON), "wg7")
    assert daemon["ExecStart"] == ["/opt/wgpy/bin/wgpyd", "-f", "wg7"]
    reresolve = unit_commands(read(str(tmp_path), RERESOLVE), "wg7")
    assert reresolve["ExecStart"] == ["/opt/wgpy/bin/wgpy", "reresolve", "wg7", "--interval",
                                      "30"]
    punch = unit_commands(read(str(tmp_path), PUNCH), "wg7")
    assert punch["ExecStart"] == ["/opt/wgpy/bin/wgpy", "punch", "wg7"]
    serve = unit_commands(read(str(tmp_path), SERVE), "wg7")
    assert serve["ExecStart"] == ["/opt/wgpy/bin/wgpy", "serve", "--listen",
                                  "127.0.0.1:9586", "wg7"]


@pytest.mark.parametrize("name", [QUICK, DAEMON, RERESOLVE, PUNCH, SERVE])
def test_systemd_analyze_verify_finds_nothing(unit_dir, name):
    result = subprocess.run(["systemd-analyze", "verify", os.path.join(unit_dir, name)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # not even a warning


def test_verify_catches_a_broken_unit(unit_dir):
    """The check above can fail: a unit whose command does not exist is refused."""
    path = os.path.join(unit_dir, "wgpybroken@.service")
    with open(path, "w") as handle:
        handle.write(read(unit_dir, QUICK).replace(units.scripts_dir(), "/nonexistent"))
    result = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
    assert result.returncode != 0 or result.stderr.strip()


def test_quick_unit_commands_bring_an_interface_up_reload_and_down(unit_dir):
    iface = unique_name("wu", max_len=15)
    config_path = f"/etc/wireguard/{iface}.conf"
    private, _ = new_key()
    _, first_peer = new_key()
    _, second_peer = new_key()
    body = (f"[Interface]\nPrivateKey = {private}\nAddress = 10.93.0.1/24\n\n"
            f"[Peer]\nPublicKey = {first_peer}\nAllowedIPs = 10.93.0.2/32\n")
    commands = unit_commands(read(unit_dir, QUICK), iface)
    os.makedirs("/etc/wireguard", exist_ok=True)
    with Namespace(unique_name("wgpyunit-")) as ns:
        try:
            with open(os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                      "w") as handle:
                handle.write(body)
            ns.run(*commands["ExecStart"])
            assert "10.93.0.1/24" in ns.run("ip", "-4", "addr", "show", "dev", iface).stdout
            assert first_peer in ns.run("wgpy", "show", iface, "peers").stdout

            with open(config_path, "a") as handle:
                handle.write(f"\n[Peer]\nPublicKey = {second_peer}\nAllowedIPs = 10.93.0.3/32\n")
            ns.run(*commands["ExecReload"])
            peers = ns.run("wgpy", "show", iface, "peers").stdout.split()
            assert sorted(peers) == sorted([first_peer, second_peer])

            ns.run(*commands["ExecStop"])
            assert ns.run("ip", "link", "show", iface, check=False).returncode != 0
        finally:
            ns.run("ip", "link", "del", iface, check=False)
            os.unlink(config_path)


def test_daemon_unit_reports_ready_and_stops_on_sigterm(unit_dir):
    """Type=notify: READY=1 arrives once the UAPI socket is there; SIGTERM (systemctl stop)
    removes the socket and the interface."""
    iface = unique_name("wd", max_len=15)
    command = unit_commands(read(unit_dir, DAEMON), iface)["ExecStart"]
    with tempfile.TemporaryDirectory() as directory, Namespace(unique_name("wgpyunit-")) as ns, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify_path = os.path.join(directory, "notify")
        notify.bind(notify_path)
        notify.settimeout(20)
        daemon = ns.popen(*command, env={**os.environ, "NOTIFY_SOCKET": notify_path},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert notify.recv(256) == b"READY=1"
            assert os.path.exists(f"/var/run/wireguard/{iface}.sock")
            ns.run("wgpy", "show", iface)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0
            assert not os.path.exists(f"/var/run/wireguard/{iface}.sock")
            assert ns.run("ip", "link", "show", iface, check=False).returncode != 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()


def test_serve_unit_publishes_the_interface_where_its_environment_file_says(unit_dir):
    """The hub's case: WGPY_SERVE_LISTEN (from /etc/default/wgpy-serve-IFACE) names where the
    page is bound, and /json lists the interface's peers for the spokes' `wgpy punch`."""
    iface = unique_name("ws", max_len=15)
    _, peer_key = new_key()
    daemon_command = unit_commands(read(unit_dir, DAEMON), iface)["ExecStart"]
    serve_command = unit_commands(read(unit_dir, SERVE), iface,
                                  {"WGPY_SERVE_LISTEN": "10.94.0.1:9586"})["ExecStart"]
    assert serve_command[-3:] == ["--listen", "10.94.0.1:9586", iface]
    with Namespace(unique_name("wgpyunit-")) as ns:
        daemon = ns.popen(*daemon_command, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        server = None
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(f"/var/run/wireguard/{iface}.sock"):
                assert time.monotonic() < deadline and daemon.poll() is None
                time.sleep(0.05)
            ns.run("wgpy", "set", iface, "peer", peer_key, "allowed-ips", "10.94.0.2/32")
            ns.run("ip", "address", "add", "10.94.0.1/24", "dev", iface)
            ns.run("ip", "link", "set", iface, "up")
            server = ns.popen(*serve_command, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
            assert "http://10.94.0.1:9586/" in server.stderr.readline()
            page = ns.run("python3", "-c", "import urllib.request, sys; sys.stdout.write("
                          "urllib.request.urlopen('http://10.94.0.1:9586/json', timeout=10)"
                          ".read().decode())").stdout
            interface = json.loads(page)["interfaces"][0]
            assert interface["name"] == iface
            assert [p["public_key"] for p in interface["peers"]] == [peer_key]
        finally:
            for process in (server, daemon):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(timeout=20)
