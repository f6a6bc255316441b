"""`wgpy mesh`: the files it writes follow the seed documents' rules, and `wgpy check` finds
nothing wrong with them, alone or together."""

import os
from pathlib import Path

import pytest

from wgpy.cli.check import check_file, check_together, read
from wgpy.cli.punch import hub_from_config
from wgpy.config.names import peer_names
from wgpy.config.parser import read_config
from wgpy.core.keys import key_from_base64

from clilab import run_wgpy


def generate(tmp_path: Path, *args: str) -> dict[str, Path]:
    result = run_wgpy("mesh", "-o", str(tmp_path), *args)
    assert result.returncode == 0, result.stderr
    return {path.stem: path for path in tmp_path.glob("*.conf")}


def peers_by_name(path: Path) -> dict[str, dict[str, str]]:
    """[Peer] sections keyed by the peer's name (the `# Name =` comment config/names.py reads,
    which mesh writes in each)."""
    names = peer_names(path.read_text())
    return {names[key_from_base64(section["PublicKey"])]: section
            for section in _sections(path.read_text())}


def _sections(text: str) -> list[dict[str, str]]:
    sections: list[dict[str, str]] = []
    for line in text.splitlines():
        if line == "[Peer]":
            sections.append({})
        elif sections and " = " in line and not line.startswith("#"):
            key, value = line.split(" = ", 1)
            sections[-1][key] = value
    return sections


def findings(files: dict[str, Path]) -> list[str]:
    configs = [read(str(path)) for path in files.values()]
    return [str(f) for c in configs for f in check_file(c)] + \
        [str(f) for f in check_together(configs)]


def test_full_mesh_of_reachable_nodes(tmp_path):
    files = generate(tmp_path, "a=192.0.2.1", "b=192.0.2.2:51900", "c=[2001:db8::3]:7")
    assert sorted(files) == ["a", "b", "c"]
    assert oct(os.stat(files["a"]).st_mode & 0o777) == "0o600"  # private keys inside
    a = peers_by_name(files["a"])
    assert a == {
        "b": {"PublicKey": a["b"]["PublicKey"], "AllowedIPs": "10.100.0.2/32",
              "Endpoint": "192.0.2.2:51900"},
        "c": {"PublicKey": a["c"]["PublicKey"], "AllowedIPs": "10.100.0.3/32",
              "Endpoint": "[2001:db8::3]:7"},
    }
    device = read_config(str(files["b"]), quick=True)
    assert device.quick.addresses == ["10.100.0.2/32"] and device.listen_port == 51900
    assert findings(files) == []


def test_hub_relays_for_nodes_behind_nats(tmp_path):
    files = generate(tmp_path, "--hub", "hub", "--psk", "hub=198.51.100.1", "laptop",
                     "phone", "office=203.0.113.9")
    laptop = peers_by_name(files["laptop"])
    assert sorted(laptop) == ["hub", "office"]  # never the other node behind a NAT
    assert laptop["hub"]["AllowedIPs"] == "10.100.0.0/24"  # the catch-all
    assert laptop["hub"]["PersistentKeepalive"] == "25"
    assert laptop["office"]["AllowedIPs"] == "10.100.0.4/32"  # more specific: direct
    hub_text = files["hub"].read_text()
    assert "Address = 10.100.0.1/24" in hub_text
    assert "PreUp = sysctl -w net.ipv4.ip_forward=1" in hub_text
    hub = peers_by_name(files["hub"])
    assert sorted(hub) == ["laptop", "office", "phone"]
    assert "Endpoint" not in hub["laptop"] and "PersistentKeepalive" not in hub["office"]
    assert all(section["AllowedIPs"].endswith("/32") for section in hub.values())
    assert hub["laptop"]["PresharedKey"] == laptop["hub"]["PresharedKey"]
    assert findings(files) == []


def test_punch_says_where_the_hub_publishes_in_comments(tmp_path):
    files = generate(tmp_path, "--hub", "hub", "--punch", "hub=198.51.100.1", "laptop",
                     "office=203.0.113.9")
    laptop = files["laptop"].read_text()
    assert hub_from_config(laptop) == "http://10.100.0.1:9586/json"
    assert hub_from_config(files["office"].read_text()) is None  # reachable: needs none
    assert "wgpy serve --listen 10.100.0.1:9586 hub" in files["hub"].read_text()
    # comments only (wg-quick ignores them): the file reads as one without --punch
    assert next(line for line in laptop.splitlines() if "PunchHub" in line).startswith("#")
    device = read_config(str(files["laptop"]), quick=True)
    assert device.quick.addresses == ["10.100.0.2/32"] and len(device.peers) == 2
    assert findings(files) == []
    result = run_wgpy("mesh", "-o", str(tmp_path / "x"), "--punch", "a=192.0.2.1", "b")
    assert result.returncode == 1 and "--punch needs --hub" in result.stderr


def test_nodes_behind_nats_without_a_hub_are_reported(tmp_path):
    result = run_wgpy("mesh", "-o", str(tmp_path), "server=192.0.2.1", "x", "y")
    assert result.returncode == 0
    assert "x and y are both behind NATs" in result.stderr and "--hub" in result.stderr
    assert sorted(peers_by_name(tmp_path / "x.conf")) == ["server"]


@pytest.mark.parametrize(("args", "message"), [
    (["a", "a=192.0.2.1"], "given twice"),
    (["--hub", "a", "a", "b=192.0.2.1"], "needs a public HOST"),
    (["--hub", "z", "a=192.0.2.1"], "no such node"),
    (["--subnet", "10.0.0.0/31", "a", "b", "c"], "no address left"),
    (["bad/name"], "not a usable node name"),
    (["a=192.0.2.1:99999"], "99999"),
    (["--port", "0", "a=192.0.2.1"], "'0' is not a port"),
    (["--subnet", "10.0.0.300/24", "a"], "10.0.0.300"),
])
def test_impossible_networks_are_refused(tmp_path, args, message):
    result = run_wgpy("mesh", "-o", str(tmp_path), *args)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_files_are_not_overwritten(tmp_path):
    (tmp_path / "a.conf").write_text("mine")
    result = run_wgpy("mesh", "-o", str(tmp_path), "a=192.0.2.1", "b")
    assert result.returncode == 1 and "already exist" in result.stderr
    assert (tmp_path / "a.conf").read_text() == "mine" and not (tmp_path / "b.conf").exists()


def test_usage_errors_return_argparse_codes():
    assert run_wgpy("mesh").returncode == 2
    assert run_wgpy("mesh", "--help").returncode == 0
